"""Issue 10, item 13: two repositories on one Prefect server do not collide.

The default project is the repository's own name (real git repositories with
real remotes); records are keyed injectively in the exact project string; a
repository never writes over or cleans up another one's deployment of a
same-named flow. The deploys run the real CLI against the session's real
Prefect server.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from flowship.cli import main
from flowship.config import Config, load_config
from flowship.deploy import read_last_deployed, record_deployed
from flowship.deploy.state import variable_name
from flowship.scope import Scope, branch_slug
from testing.deployments import FLOW, read_back, uid
from testing.git import Repo

PREFECT_NAME = re.compile(r"^[a-z0-9_-]{1,255}$")  # Prefect's rule for variable names


# -- the default project --------------------------------------------------------------
def project_of(root: Path, **env: str) -> str:
    return load_config(root, env).project


@pytest.mark.parametrize(("origin", "expected"), [
    ("https://x-access-token:ghs_abc@github.com/Octo/Flows.git", "octo/flows"),
    ("git@github.com:octo/flows.git", "octo/flows"),
    ("ssh://git@ghe.example:2222/team/ml-pipelines", "team/ml-pipelines"),
])
def test_without_github_repository_the_origin_remote_names_the_project(repo: Repo, origin: str, expected: str):
    repo.commit({"README.md": "x\n"})
    repo.git("remote", "add", "origin", origin)
    assert project_of(repo.path) == expected
    assert project_of(repo.path, GITHUB_REPOSITORY="Octo/Other") == "octo/other"  # Actions' own name wins


def test_the_default_project_falls_back_to_the_folder_and_keeps_subdirectories_apart(tmp_path: Path):
    repo = Repo(tmp_path / "Checkout")
    repo.commit({"ml/pyproject.toml": "[tool.flowship]\n", "etl/pyproject.toml": "[tool.flowship]\n"})
    assert project_of(repo.path) == "Checkout"
    assert project_of(repo.path / "ml", GITHUB_REPOSITORY="octo/mono") == "octo/mono/ml"
    assert project_of(repo.path / "etl", GITHUB_REPOSITORY="octo/mono") == "octo/mono/etl"
    plain = tmp_path / "not-a-clone"
    plain.mkdir()
    assert project_of(plain) == "not-a-clone"
    (plain / "pyproject.toml").write_text('[tool.flowship]\nproject = "set-by-hand"\n')
    assert project_of(plain, GITHUB_REPOSITORY="octo/flows") == "set-by-hand"


# -- records ----------------------------------------------------------------------------
def test_record_names_are_injective_in_the_exact_project(tmp_path: Path):
    projects = ["my_proj", "my-proj", "My-Proj", "my.proj", "my--proj", "octo/flows", "octo-flows", "octo/Flows",
                "x" * 300, "x" * 301, "ml-platform", "ml-platform-1a2b3c4d", "-", "_"]
    names = {p: variable_name(Config(root=tmp_path, project=p), Scope.main()) for p in projects}
    assert len(set(names.values())) == len(projects), names
    for name in names.values():
        assert PREFECT_NAME.match(name + "_lock"), name
    # A project that already is a clean name keeps the record it had.
    assert names["ml-platform"] == "flowship_deployed_ml-platform_main"


@pytest.mark.integration
def test_my_proj_and_my_dash_proj_keep_separate_records(tmp_path: Path, prefect_api: str):
    suffix = uid()
    under = Config(root=tmp_path, project=f"my_proj_{suffix}", env=load_config(tmp_path, {"PREFECT_API_URL": prefect_api}).env)
    dash = Config(root=tmp_path, project=f"my-proj-{suffix}", env=under.env)
    record_deployed(under, Scope.main(), "a" * 40)
    record_deployed(dash, Scope.main(), "b" * 40)
    assert read_last_deployed(under, Scope.main()) == "a" * 40
    assert read_last_deployed(dash, Scope.main()) == "b" * 40


# -- deployments of a same-named flow ---------------------------------------------------
class Repository:
    """A repository with its own GITHUB_REPOSITORY and no `project` set: the default is used."""

    def __init__(self, path: Path, api: str, name: str, pool: str):
        self.repo, self.api, self.name = Repo(path), api, name
        self.repo.write({"pyproject.toml": f'[tool.flowship]\nflows = "flows"\n[tool.flowship.pools]\nlocal = "{pool}"\n',
                         ".gitignore": ".flowship/\n"})

    def flow(self, name: str, label: str = "a") -> None:
        function = name.replace("-", "_")
        text = FLOW.format(name=name, function=function, declaration="machine=AwsEcsMachine(cpu_value=256, memory_value=512)")
        self.repo.write({f"flows/{function}.py": text.replace('label: str = "a"', f'label: str = "{label}"')})

    def env(self) -> dict[str, str]:
        return {"PREFECT_API_URL": self.api, "GITHUB_REPOSITORY": self.name}

    def deploy(self, capsys: pytest.CaptureFixture[str], branch: str = "main") -> tuple[int, str]:
        code = main(["--root", str(self.repo.path), "deploy", "--branch", branch, "--all"], self.env())
        return code, capsys.readouterr().err

    @property
    def config(self) -> Config:
        return load_config(self.repo.path, self.env())


@pytest.mark.integration
def test_a_same_named_flow_in_another_repository_is_refused_never_overwritten(tmp_path: Path, prefect_api: str, capsys):
    suffix = uid()
    shared, own = f"train-{suffix}", f"only-b-{suffix}"
    a = Repository(tmp_path / "a", prefect_api, f"octo/a-{suffix}", f"pool-{suffix}")
    b = Repository(tmp_path / "b", prefect_api, f"octo/b-{suffix}", f"pool-{suffix}")
    a.flow(shared, label="from a")
    head_a = a.repo.commit(message="a's flow")
    code, err = a.deploy(capsys)
    assert code == 0, err
    before = read_back(prefect_api, [shared])[f"{shared}/main"]
    assert f"project:octo/a-{suffix}" in before["tags"]

    b.flow(shared, label="from b")
    b.flow(own)
    head_b = b.repo.commit(message="b's flows")
    code, err = b.deploy(capsys)

    assert code == 1, err
    [line] = [x for x in err.splitlines() if x.startswith("error: ") and shared in x]
    assert f"{shared}/main exists and it belongs to the flowship project 'octo/a-{suffix}', not 'octo/b-{suffix}'" in line
    assert line.endswith("rename one of the flows") and "Traceback" not in err
    after = read_back(prefect_api, [shared, own])
    assert after[f"{shared}/main"] == before  # untouched, field for field
    assert after[f"{shared}/main"]["version"] == head_a
    assert after[f"{own}/main"]["version"] == head_b  # the rest of b still deployed
    assert read_last_deployed(a.config, Scope.main()) == head_a
    assert read_last_deployed(b.config, Scope.main()) is None  # a failed deploy records nothing


@pytest.mark.integration
def test_cleanup_leaves_another_repositorys_preview_of_the_same_branch(tmp_path: Path, prefect_api: str, capsys):
    suffix = uid()
    branch = f"feat-{suffix}"
    a = Repository(tmp_path / "a", prefect_api, f"octo/a-{suffix}", f"pool-{suffix}")
    b = Repository(tmp_path / "b", prefect_api, f"octo/b-{suffix}", f"pool-{suffix}")
    for r, flow in ((a, f"x-{suffix}"), (b, f"y-{suffix}")):
        r.flow(flow)
        r.repo.commit(message="a flow")
        r.repo.git("checkout", "-q", "-b", branch)
        code, err = r.deploy(capsys, branch=branch)
        assert code == 0, err

    code = main(["--root", str(b.repo.path), "cleanup", "--branch", branch], b.env())
    err = capsys.readouterr().err
    assert code == 0, err
    slug = branch_slug(branch)
    assert set(read_back(prefect_api, [f"x-{suffix}", f"y-{suffix}"])) == {f"x-{suffix}/{slug}"}
    assert f"left x-{suffix}/{slug} alone: it is the preview of project 'octo/a-{suffix}'" in err


@pytest.mark.integration
def test_a_deployment_from_before_project_tags_is_adopted_and_tagged(tmp_path: Path, prefect_api: str, capsys):
    suffix = uid()
    flow = f"old-{suffix}"
    a = Repository(tmp_path / "a", prefect_api, f"octo/a-{suffix}", f"pool-{suffix}")
    a.flow(flow)
    a.repo.commit(message="a flow")
    assert a.deploy(capsys)[0] == 0
    deployment = read_back(prefect_api, [flow])[f"{flow}/main"]
    untagged = [t for t in deployment["tags"] if not t.startswith("project:")]
    httpx.patch(f"{prefect_api}/deployments/{deployment['id']}", json={"tags": untagged}).raise_for_status()

    a.flow(flow, label="changed")
    head = a.repo.commit(message="a change")
    code, err = a.deploy(capsys)
    assert code == 0, err
    again = read_back(prefect_api, [flow])[f"{flow}/main"]
    assert again["version"] == head and f"project:octo/a-{suffix}" in again["tags"]
