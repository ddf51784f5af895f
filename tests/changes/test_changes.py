"""Change analysis on real git repositories: what a commit affects, and why."""

from __future__ import annotations

import pytest

from flowship.discovery.cache import VERSION
from flowship.changes import make_plan
from flowship.globs import glob_match
from flowship.config import load_config
from flowship.errors import InputError
from flowship.scope import Scope
from testing.git import Repo, cpu_flow, seed_flow


def flow_importing(name: str, *imports: str) -> str:
    return "\n".join(imports) + "\n" + seed_flow(name)


def plan(repo: Repo, base: str | None, head: str = "HEAD", **kwargs):
    config = load_config(repo.path, {})
    return make_plan(config, scope=kwargs.pop("scope", Scope.main()), head=head, base=base, **kwargs)


def names(p) -> list[str]:
    return sorted(w.name for w in p.workflows)


LIB = {
    "lib/__init__.py": "",
    "lib/core/__init__.py": "from . import registry\n",
    "lib/core/registry.py": "REGISTRY = {}\n",
    "lib/core/io.py": "from ..core import registry\nfrom .registry import REGISTRY\n",
    "lib/models/__init__.py": "",
    "lib/models/net.py": "import lib.core.io\n",
    "lib/models/lazy.py": "def build():\n    from lib.models import heavy\n    return heavy\n",
    "lib/models/heavy.py": "WEIGHTS = 1\n",
    "lib/plugins/__init__.py": "",
    "lib/plugins/dyn.py": "X = 1\n",
    "src/shared/__init__.py": "",
    "src/shared/text.py": "def clean(s):\n    return s\n",
    "flows/helpers.py": "def helper():\n    return 1\n",
    "docs/index.md": "# docs\n",
    "tests/test_x.py": "def test_x():\n    pass\n",
}


@pytest.mark.parametrize(
    "flow_imports, changed, affected",
    [
        (["import lib.models.net"], "lib/core/registry.py", True),  # transitively, through io's relative imports
        (["import lib.models.net"], "lib/__init__.py", True),  # a package's __init__ runs on import
        (["import lib.models.net"], "lib/models/heavy.py", False),
        (["from lib.models import net"], "lib/core/io.py", True),  # `from a import b`, b a submodule
        (["from lib.models.lazy import build"], "lib/models/heavy.py", True),  # an import inside a function
        (["import importlib", "M = importlib.import_module('lib.plugins.dyn')"], "lib/plugins/dyn.py", True),
        (["from shared.text import clean"], "src/shared/text.py", True),  # src/ layout
        (["import helpers"], "flows/helpers.py", True),  # the flows directory is an import root
        (["try: import lib.plugins.dyn", "except ImportError: pass"], "lib/plugins/dyn.py", True),
        (["from lib import core  # the package only"], "lib/core/io.py", False),
        (["from lib import core"], "lib/core/registry.py", True),  # core/__init__ imports registry
        (["import torch_not_installed", "import lib.models.net"], "docs/index.md", False),
        (["import lib.models.net"], "tests/test_x.py", False),
    ],
)
def test_each_import_form(repo: Repo, flow_imports, changed, affected):
    base = repo.commit({**LIB, "flows/train.py": flow_importing("train", *flow_imports), "flows/etl.py": cpu_flow("etl")})
    repo.commit({changed: (repo.path / changed).read_text() + "\n# changed\n"})
    result = plan(repo, base)
    assert names(result) == (["train"] if affected else [])
    if affected:
        assert result.workflows[0].reasons == (changed,)
        assert result.workflows[0].deployment == "train/main"
    assert result.delete == ()


def test_relative_import_from_a_flow_package(repo: Repo):
    base = repo.commit({
        "flows/team/__init__.py": "",
        "flows/team/common.py": "X = 1\n",
        "flows/team/job.py": flow_importing("job", "from . import common", "from .common import X"),
    })
    repo.commit({"flows/team/common.py": "X = 2\n"})
    assert [(w.name, w.reasons) for w in plan(repo, base).workflows] == [("job", ("flows/team/common.py",))]


def test_docs_only_change_plans_nothing(repo: Repo):
    base = repo.commit({**LIB, "flows/train.py": seed_flow("train"), "README.md": "hi"})
    repo.commit({"README.md": "hello", "docs/index.md": "# more docs\n", "tests/test_x.py": "# x\n"})
    result = plan(repo, base)
    assert result.workflows == () and result.delete == () and result.images == ()


def test_own_file_change_and_reasons_in_json(repo: Repo):
    base = repo.commit({"flows/train.py": seed_flow("train"), "flows/etl.py": cpu_flow("etl")})
    head = repo.commit({"flows/etl.py": cpu_flow("etl").replace("rows: int = 10", "rows: int = 11")})
    doc = plan(repo, base).to_json()
    assert doc["base"] == base and doc["head"] == head
    [wf] = doc["workflows"]
    assert (wf["name"], wf["file"], wf["entrypoint"], wf["reasons"]) == ("etl", "flows/etl.py", "flows/etl.py:etl", ["flows/etl.py"])
    assert wf["machine"]["cpu_value"] == 256 and wf["image"] == "base"
    [image] = doc["images"]
    assert image["name"] == "base" and image["tag"] == f"base-{head}" and image["rebuild"] is False


def test_renamed_flow_file_keeps_its_deployment(repo: Repo):
    base = repo.commit({"flows/train.py": seed_flow("train")})
    repo.git("mv", "flows/train.py", "flows/training.py")
    repo.commit()
    result = plan(repo, base)
    assert [(w.name, w.file, w.deployment) for w in result.workflows] == [("train", "flows/training.py", "train/main")]
    assert result.delete == ()


def test_deleted_flow_and_removed_declaration_become_deletions(repo: Repo):
    base = repo.commit({"flows/a.py": seed_flow("alpha"), "flows/b.py": seed_flow("beta"), "flows/c.py": seed_flow("gamma")})
    without_declaration = seed_flow("beta").split("workflow = Workflow(")[0] + "\n@flow\ndef beta():\n    pass\n"
    repo.commit({"flows/a.py": None, "flows/b.py": without_declaration})
    result = plan(repo, base, scope=Scope.preview("feature/x", 7))
    assert [(d.name, d.deployment) for d in result.delete] == [("alpha", "alpha/feature-x-" + result.scope.slug[-8:]),
                                                               ("beta", f"beta/{result.scope.slug}")]
    assert result.workflows == ()


def test_flow_renamed_is_a_deletion_plus_a_new_deployment(repo: Repo):
    base = repo.commit({"flows/a.py": seed_flow("old_name")})
    repo.commit({"flows/a.py": seed_flow("new_name")})
    result = plan(repo, base)
    assert names(result) == ["new-name"]
    assert [d.deployment for d in result.delete] == ["old-name/main"]


def test_a_broken_head_file_never_deletes_its_deployment(repo: Repo):
    base = repo.commit({"flows/a.py": seed_flow("alpha")})
    repo.commit({"flows/a.py": seed_flow("alpha") + "\ndef broken(:\n"})
    result = plan(repo, base)
    assert result.delete == () and result.workflows == ()
    assert len(result.problems) == 1 and str(result.problems[0]).startswith("flows/a.py:")


PYPROJECT = """
[project]
name = "x"
version = "{version}"

[tool.flowship]
flows = "flows"
{extra}
[tool.flowship.data]
"data/labels/**" = ["train"]

[tool.flowship.images.gpu]
template = "images/gpu.Dockerfile.j2"
requirements = ["requirements/gpu.txt"]
context = ["vendor/"]
"""


def _configured(repo: Repo, version: str = "1", extra: str = "") -> dict[str, str]:
    return {"pyproject.toml": PYPROJECT.format(version=version, extra=extra),
            "images/gpu.Dockerfile.j2": "FROM python:3.11-slim\n"}


def _gpu_flow(name: str) -> str:
    return seed_flow(name).replace("image=AwsEcsImage.ml", 'image="gpu"')


def test_image_inputs_affect_their_family_only(repo: Repo):
    base = repo.commit({
        **_configured(repo), "requirements/gpu.txt": "numpy\n", "vendor/lib.whl": "x",
        "flows/train.py": _gpu_flow("train"), "flows/etl.py": cpu_flow("etl"),
    })
    repo.commit({"requirements/gpu.txt": "numpy\nscipy\n", "vendor/more/other.whl": "y"})
    result = plan(repo, base)
    assert names(result) == ["train"]
    assert result.workflows[0].reasons == ("requirements/gpu.txt", "vendor/more/other.whl")
    [image] = result.images
    assert (image.name, image.rebuild, image.reasons) == ("gpu", True, ("requirements/gpu.txt", "vendor/more/other.whl"))
    base = repo.head()
    repo.commit({"images/gpu.Dockerfile.j2": "FROM python:3.12-slim\n"})
    result = plan(repo, base)
    assert [(w.name, w.reasons) for w in result.workflows] == [("train", ("images/gpu.Dockerfile.j2",))]
    assert result.images[0].rebuild and result.images[0].reasons == ("images/gpu.Dockerfile.j2",)


def test_data_globs_map_to_flows(repo: Repo):
    base = repo.commit({**_configured(repo), "flows/train.py": seed_flow("train"), "flows/etl.py": cpu_flow("etl"),
                        "data/labels/a/x.csv": "1", "data/other.csv": "2"})
    repo.commit({"data/labels/a/x.csv": "3"})
    assert [(w.name, w.reasons) for w in plan(repo, base).workflows] == [("train", ("data/labels/a/x.csv",))]
    base = repo.head()
    repo.commit({"data/other.csv": "4"})
    assert plan(repo, base).workflows == ()


def test_flowship_config_change_plans_everything_other_pyproject_changes_nothing(repo: Repo):
    base = repo.commit({**_configured(repo), "flows/train.py": seed_flow("train"), "flows/etl.py": cpu_flow("etl")})
    repo.commit(_configured(repo, version="2"))
    assert plan(repo, base).workflows == ()
    base = repo.head()
    repo.commit(_configured(repo, version="2", extra='project = "renamed"\n'))
    result = plan(repo, base)
    assert names(result) == ["etl", "train"]
    assert {w.reasons for w in result.workflows} == {("pyproject.toml",)}
    assert all(i.rebuild for i in result.images)


def test_no_base_means_everything_and_force_rebuild(repo: Repo):
    repo.commit({"flows/train.py": seed_flow("train"), "flows/etl.py": cpu_flow("etl")})
    result = plan(repo, None)
    assert names(result) == ["etl", "train"] and {w.reasons for w in result.workflows} == {("(all)",)}
    assert [(i.name, i.rebuild) for i in result.images] == [("base", True), ("ml", True)]
    base = repo.head()
    repo.commit({"README.md": "x"})
    forced = plan(repo, base, everything=True, force_rebuild=True)
    assert names(forced) == ["etl", "train"]
    assert all(i.rebuild and i.reasons == ("(forced)",) for i in forced.images)


def test_only_named_flows_and_unknown_names(repo: Repo):
    base = repo.commit({"flows/train.py": seed_flow("train"), "flows/etl.py": cpu_flow("etl")})
    result = plan(repo, base, only=("etl",))
    assert [(w.name, w.reasons) for w in result.workflows] == [("etl", ("(requested)",))]
    with pytest.raises(InputError, match=r"no workflow is named 'trian' \(did you mean 'train'\?\)"):
        plan(repo, base, only=("trian",))


def test_unknown_revision_is_an_input_error(repo: Repo):
    repo.commit({"flows/train.py": seed_flow("train")})
    with pytest.raises(InputError, match="unknown revision 'nope'"):
        plan(repo, "nope")


def test_plan_reads_commits_not_the_working_tree_and_fills_the_cache(repo: Repo):
    base = repo.commit({"flows/train.py": seed_flow("train"), "lib/x.py": "X = 1\n"})
    mid = repo.commit({"lib/x.py": "X = 2\n", "flows/train.py": flow_importing("train", "import lib.x")})
    repo.write({"flows/train.py": "def broken(:\n"})  # the working tree must not matter
    assert names(plan(repo, base, head=mid)) == ["train"]
    cache = repo.path / ".git" / "flowship" / f"parse-flows-v{VERSION}.json"
    assert cache.is_file()
    before = cache.stat().st_mtime_ns
    assert names(plan(repo, base, head=mid)) == ["train"]  # warm: same answer, nothing new to write
    assert cache.stat().st_mtime_ns == before


@pytest.mark.parametrize(
    "pattern, path, hit",
    [
        ("data/**", "data/a/b.csv", True), ("data/*.csv", "data/a/b.csv", False), ("data/*.csv", "data/b.csv", True),
        ("**/*.csv", "b.csv", True), ("**/*.csv", "x/y/b.csv", True), ("vendor/", "vendor/a/b", True),
        ("vendor", "vendor2/a", False), ("req?.txt", "req1.txt", True), ("[!a]x", "bx", True), ("[!a]x", "ax", False),
        ("./requirements.txt", "requirements.txt", True),
    ],
)
def test_glob_match(pattern, path, hit):
    assert glob_match(pattern, path) is hit


def test_the_kept_import_graph_follows_changed_imports(repo: Repo):
    a = repo.commit({"flows/train.py": flow_importing("train", "import lib.a"), "lib/a.py": "X = 1\n", "lib/b.py": "Y = 1\n"})
    b = repo.commit({"lib/a.py": "import lib.b\n"})
    assert names(plan(repo, a, b, full_scan=True)) == ["train"]  # stores the graph of b
    c = repo.commit({"lib/b.py": "Y = 2\n"})
    assert names(plan(repo, b, c, full_scan=True)) == ["train"]  # a -> b, from the kept graph
    d = repo.commit({"lib/a.py": "X = 2\n"})
    e = repo.commit({"lib/b.py": "Y = 3\n"})
    assert names(plan(repo, d, e, full_scan=True)) == []  # lib/a.py was re-read: it no longer imports lib.b
    assert (repo.path / ".git" / "flowship" / f"graph-v{VERSION}.json").is_file()
