"""Property: a workflow is planned iff a file in its import closure or its image inputs changed.

Hypothesis builds random small repositories (packages, namespace packages, a
`src/` layout, helpers in the flows directory, import cycles, every import
form) and a random second commit, and compares `make_plan` with a brute-force
oracle that parses whole modules with `ast` and walks each flow's closure
itself, with no cache and no reverse graph; the plan of the partial analysis
(the reverse search) must also equal the plan from the full import graph.
"""

from __future__ import annotations

import ast
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowship.changes import make_plan
from flowship.config import load_config
from flowship.scope import Scope
from testing.git import Repo

MODULES = [
    "lib/__init__.py", "lib/a.py", "lib/b.py", "lib/sub/__init__.py", "lib/sub/c.py", "lib/sub/d.py",
    "util.py", "flows/helpers.py", "src/pkg/__init__.py", "src/pkg/e.py",
]
FLOWS = ["flows/f0.py", "flows/f1.py", "flows/team/f2.py"]
ROOTS = ["", "flows", "src"]
PYPROJECT = """
[tool.flowship]
flows = "flows"

[tool.flowship.images.gpu]
template = "images/gpu.j2"
requirements = ["req/gpu.txt"]
"""


def dotted(path: str) -> str:
    for root in ("src/", "flows/"):
        if path.startswith(root):
            path = path[len(root):]
    return path.removesuffix("/__init__.py").removesuffix(".py").replace("/", ".")


def import_line(importer: str, target: str, form: int) -> str:
    name = dotted(target)
    parent, _, last = name.rpartition(".")
    same_package = importer.rpartition("/")[0] == target.rpartition("/")[0] and not target.endswith("__init__.py")
    forms = [
        f"import {name}",
        f"from {parent} import {last}" if parent else f"import {name} as alias",
        f"def lazy():\n    import {name}\n    return {name}",
        f"import importlib\nM = importlib.import_module('{name}')",
        f"from . import {last}" if same_package and "/" in importer else f"from {name} import *",
        f"try:\n    import {name}\nexcept ImportError:\n    pass",
        f"from {parent} import (\n    {last},\n)" if parent else f"import \\\n    {name}",
        _relative(importer, target) or f"import {name} as alias",
        f"X = 1; import {name}",
    ]
    return forms[form % len(forms)]


def _relative(importer: str, target: str) -> str | None:
    """`from .. import x` / `from .sub import x` between the lib packages, where one applies."""
    if target.endswith("__init__.py") or not importer.startswith("lib/") or not target.startswith("lib/"):
        return None
    last = target.rpartition("/")[2].removesuffix(".py")
    if importer.startswith("lib/sub/") and target.count("/") == 1:
        return f"from .. import {last}"
    if importer.count("/") == 1 and target.startswith("lib/sub/"):
        return f"from .sub import {last}"
    return None


@st.composite
def module_text(draw, path: str, existing: list[str]) -> str:
    lines = ["import os", "import torch_not_installed"][: draw(st.integers(0, 2))]
    targets = [t for t in existing if t != path]
    for target in draw(st.lists(st.sampled_from(targets), max_size=3, unique=True)) if targets else []:
        lines.append(import_line(path, target, draw(st.integers(0, 8))))
    lines.append(f"X = {draw(st.integers(0, 3))}")
    return "\n".join(lines) + "\n"


def flow_text(index: int, body: str, gpu: bool) -> str:
    image = 'image="gpu"' if gpu else "image=AwsEcsImage.base"
    return (
        "from prefect import flow\nfrom flowship import AwsEcsImage, AwsEcsMachine, Workflow\n" + body
        + f"workflow = Workflow(machine=AwsEcsMachine({image}))\n\n@flow\ndef flow_{index}():\n    pass\n"
    )


@st.composite
def histories(draw):
    present = [m for m in MODULES if draw(st.booleans())]
    base: dict[str, str] = {"pyproject.toml": PYPROJECT, "images/gpu.j2": "FROM scratch\n", "req/gpu.txt": "a\n"}
    for path in present:
        base[path] = draw(module_text(path, present))
    gpu = [draw(st.booleans()) for _ in FLOWS]
    for i, path in enumerate(FLOWS):
        base[path] = flow_text(i, draw(module_text(path, present)), gpu[i])
    head = dict(base)
    after = MODULES  # head may import modules that do not exist (yet)
    for path in MODULES:
        choice = draw(st.sampled_from(["keep", "keep", "touch", "rewrite", "delete", "create"]))
        if choice == "touch" and path in head:
            head[path] += "# touched\n"
        elif choice == "rewrite" and path in head:
            head[path] = draw(module_text(path, after))
        elif choice == "delete" and path in head:
            del head[path]
        elif choice == "create" and path not in head:
            head[path] = draw(module_text(path, after))
    for i, path in enumerate(FLOWS):
        if draw(st.integers(0, 4)) == 0:
            head[path] = flow_text(i, draw(module_text(path, after)), gpu[i])
    if draw(st.integers(0, 4)) == 0:
        head["req/gpu.txt"] = "a\nb\n"
    if draw(st.integers(0, 5)) == 0:
        head["docs/readme.md"] = "words\n"
    return base, head, gpu


# -- the oracle ----------------------------------------------------------------------

def oracle_imports(source: str) -> list[tuple[int, str, list[str]]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(0, a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or "", [a.name for a in node.names]))
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant)):
            found.append((0, node.args[0].value, []))
    return found


def oracle_files(importer: str, imp: tuple[int, str, list[str]], files: set[str]) -> set[str]:
    """Every file Python could execute for one import statement (all roots, every package on the way)."""
    level, module, names = imp
    if level:
        base_dir = "/".join(importer.split("/")[:-level])
        bases = [base_dir]
        parts = module.split(".") if module else []
    else:
        bases = ROOTS
        parts = module.split(".")
    out: set[str] = set()
    for base in bases:
        prefix = f"{base}/" if base else ""
        if level:
            out |= {f"{prefix}__init__.py"} & files
        dotted_names = [parts[:i] for i in range(1, len(parts) + 1)] + [parts + [n] for n in names if n != "*"]
        for chain in dotted_names:
            stem = prefix + "/".join(chain)
            out |= {stem + ".py", stem + "/__init__.py"} & files
            for i in range(1, len(chain)):  # packages on the way
                out |= {prefix + "/".join(chain[:i]) + "/__init__.py"} & files
    return out


def closure(flow: str, head: dict[str, str], files: set[str]) -> set[str]:
    seen, stack = {flow}, [flow]
    while stack:
        path = stack.pop()
        deps: set[str] = set()
        if path in head:
            for imp in oracle_imports(head[path]):
                deps |= oracle_files(path, imp, files)
        if not path.startswith("flows/"):  # a library module runs its packages' __init__ first
            parts = path.split("/")
            deps |= {"/".join(parts[:i]) + "/__init__.py" for i in range(1, len(parts) - 1)} & files
        for dep in deps - seen:
            seen.add(dep)
            stack.append(dep)
    return seen


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(histories())
def test_plan_matches_the_brute_force_oracle(history):
    base_files, head_files, gpu = history
    tmp = Path(tempfile.mkdtemp(prefix="flowship-prop-"))
    try:
        repo = Repo(tmp / "repo")
        base = repo.commit(base_files)
        repo.write({p: None for p in base_files if p not in head_files})
        head = repo.commit(head_files)
        config = load_config(repo.path, {})
        plan = make_plan(config, scope=Scope.main(), base=base, head=head)
        # The partial analysis (reverse search) and the full graph give the same plan.
        full = make_plan(config, scope=Scope.main(), base=base, head=head, full_scan=True)
        assert [(w.name, w.reasons) for w in plan.workflows] == [(w.name, w.reasons) for w in full.workflows]
        assert (plan.delete, plan.images) == (full.delete, full.images)
        assert set(plan.messages) <= set(full.messages)

        changed = {p for p in set(base_files) | set(head_files) if base_files.get(p) != head_files.get(p)}
        files = {p for p in set(base_files) | set(head_files) if p.endswith(".py")}
        image_changed = "req/gpu.txt" in changed
        expected = {
            f"flow-{i}" for i, flow in enumerate(FLOWS)
            if closure(flow, head_files, files) & changed or (gpu[i] and image_changed)
        }
        assert {w.name for w in plan.workflows} == expected
        for w in plan.workflows:  # every reason is a changed path
            assert set(w.reasons) <= changed
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
