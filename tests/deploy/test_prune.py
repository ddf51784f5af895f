"""Prune against a real Prefect server, a real origin repository and the GitHub API stand-in:
orphans, closed and stale previews go; main's live flows stay; a dry run writes nothing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from flowship.cli import main
from flowship.commands.prune import sweep
from flowship.config import load_config
from flowship.deploy import LocalTarget, deploy_plan, record_deployed
from flowship.deploy.state import read_last_deployed
from flowship.scope import Scope
from flowship.workflow import AwsEcsMachine, Workflow

from testing.deployments import FlowRepo, counting_client, read_back, uid
from testing.git import git
from testing.github_server import GitHubServer

pytestmark = pytest.mark.integration

CPU = AwsEcsMachine(cpu_value=256, memory_value=512)
TOKEN = "ghs_prune_test"


@pytest.fixture
def flows(repo, prefect_api, tmp_path) -> FlowRepo:
    flows = FlowRepo.create(repo, prefect_api)
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    repo.git("remote", "add", "origin", str(origin))
    return flows


def function(name: str) -> str:
    return f"flows/{name.replace('-', '_')}.py"


def preview(flows: FlowRepo, branch: str, name: str, pr: int | None = None) -> str:
    """A branch with a change to `name`, pushed to origin, and its preview deployed."""
    flows.repo.git("checkout", "-q", "-b", branch, "main")
    sha = flows.repo.commit({f"{function(name)}": f"# {branch}\n" + (flows.repo.path / function(name)).read_text()})
    flows.repo.git("push", "-q", "origin", branch)
    config = flows.config
    deploy_plan(config, flows.plan(Scope.preview(branch, pr), sha, [name]), LocalTarget(config))
    flows.repo.git("checkout", "-q", "main")
    return f"{name}/{Scope.preview(branch).slug}"


@pytest.fixture
def fleet(flows):
    """main: `kept` (declared), `orphan` (deleted from main, its deployment left behind), `newer`
    (deployed at a commit main's record does not reach yet); previews of a gone branch, a
    live branch, a closed and an open pull request."""
    kept, orphan, newer = f"kept-{uid()}", f"orphan-{uid()}", f"newer-{uid()}"
    flows.write_flow(kept, Workflow(machine=CPU))
    flows.write_flow(orphan, Workflow(machine=CPU))
    first = flows.repo.commit(message="two flows")
    flows.repo.git("push", "-q", "origin", "main")
    config = flows.config
    deploy_plan(config, flows.plan(Scope.main(), first, [kept, orphan]), LocalTarget(config))

    names = {
        "gone": preview(flows, f"feature/gone-{uid()}", kept),
        "live": preview(flows, f"feature/live-{uid()}", kept),
        "closed": preview(flows, f"feature/closed-{uid()}", kept, pr=12),
        "open": preview(flows, f"gone-but-open-{uid()}", kept, pr=11),
    }
    for name in ("gone", "open"):  # their branches go from origin; the open PR's head lives on in a fork
        branch = next(b for b in flows.repo.git("branch", "--format=%(refname:short)").split() if
                      Scope.preview(b).slug == names[name].split("/", 1)[1])
        flows.repo.git("push", "-q", "origin", "--delete", branch)

    flows.repo.write({function(orphan): None})
    second = flows.repo.commit(message=f"remove {orphan}")
    # Its deletion was missed (a failed job, a rename done by hand): the deployment stays behind.
    deploy_plan(config, flows.plan(Scope.main(), second, [kept]), LocalTarget(config))
    flows.write_flow(newer, Workflow(machine=CPU))
    third = flows.repo.commit(message=f"add {newer}")
    deploy_plan(config, flows.plan(Scope.main(), third, [newer]), LocalTarget(config))
    record_deployed(config, Scope.main(), second)  # as if the deploy of `third` failed in part
    flows.repo.git("push", "-q", "origin", "main")
    names |= {"kept": f"{kept}/main", "orphan": f"{orphan}/main", "newer": f"{newer}/main"}
    return names, [kept, orphan, newer]


def github_env(flows: FlowRepo, gh: GitHubServer) -> dict[str, str]:
    gh.state.tokens.add(TOKEN)
    gh.add_repo("acme/flows")
    gh.add_pull("acme/flows", 12, title="closed", head="feature/closed", state="closed")
    gh.add_pull("acme/flows", 11, title="open", head="in-a-fork")
    return {"PREFECT_API_URL": flows.api, "GITHUB_TOKEN": TOKEN, "GITHUB_REPOSITORY": "acme/flows",
            "GITHUB_API_URL": gh.url}


def test_dry_run_lists_exactly_the_candidates_and_writes_nothing(flows, fleet, capsys):
    names, flow_names = fleet
    with GitHubServer() as gh:
        env = github_env(flows, gh)
        config = load_config(flows.repo.path, env)
        before = read_back(flows.api, flow_names)
        with counting_client(config, with_lock=True) as (client, writes):
            from flowship.commands.targets import make_target
            from flowship.commands.prune import declared_flows, open_pulls
            from flowship.deploy.prune import prune
            from flowship import git as fgit
            from functools import partial

            result = prune(config, make_target(config, "local"), live_branches=fgit.remote_branches(config.root),
                           open_prs=open_pulls(config), declared_flows=partial(declared_flows, config),
                           dry_run=True, client=client)
        assert writes == [] and read_back(flows.api, flow_names) == before
        assert {c.deployment: c.reason for c in result.candidates} == {
            names["orphan"]: f"{flows.repo.git('rev-parse', 'HEAD~1')[:12]} (main) no longer declares it",
            names["gone"]: f"branch {names['gone'].split('/', 1)[1]!r} no longer exists",
            names["closed"]: "pull request #12 is closed",
        }
        assert any(f"left {names['newer']}" in n for n in result.notes)

        code = main(["prune", "--dry-run", "--root", str(flows.repo.path)], env)
    err = capsys.readouterr().err
    assert code == 0 and "would remove 3 deployment(s); nothing was written." in err
    assert f"would remove {names['closed']}: pull request #12 is closed" in err
    assert read_back(flows.api, flow_names) == before


def test_prune_removes_orphans_closed_and_gone_previews_and_never_main(flows, fleet, capsys):
    names, flow_names = fleet
    config = flows.config
    slug = names["gone"].split("/", 1)[1]
    gone_scope = Scope(kind="branch", branch=slug, slug=slug)
    assert read_last_deployed(config, gone_scope) is not None
    with GitHubServer() as gh:
        env = github_env(flows, gh)
        code = main(["prune", "--root", str(flows.repo.path)], env)
    assert code == 0, capsys.readouterr().err
    left = set(read_back(flows.api, flow_names))
    assert left == {names["kept"], names["newer"], names["live"], names["open"]}
    # A preview with nothing left loses its record, so a new branch of that name starts afresh.
    assert read_last_deployed(config, gone_scope) is None
    assert read_last_deployed(config, Scope.main()) is not None

    # Everything left is live: a second sweep finds nothing.
    with GitHubServer() as gh:
        assert sweep(load_config(flows.repo.path, github_env(flows, gh)), "local", dry_run=False).candidates == []


def test_stale_previews_go_after_the_configured_days_and_main_never(flows, fleet):
    names, flow_names = fleet
    from flowship.commands.prune import declared_flows
    from flowship.deploy.prune import prune
    from functools import partial

    config = flows.config
    assert config.prune.stale_days == 30
    later = datetime.now(timezone.utc) + timedelta(days=31)
    result = prune(config, LocalTarget(config), live_branches=None, open_prs=None,
                   declared_flows=partial(declared_flows, config), dry_run=True, now=later)
    reasons = {c.deployment: c.reason for c in result.candidates}
    # Without branch or pull request answers every preview goes for its age; main only for the orphan.
    assert set(reasons) == {names["gone"], names["live"], names["closed"], names["open"], names["orphan"]}
    assert reasons[names["live"]].startswith("not updated since ")
    assert "branches not checked: the `origin` remote could not be asked" in result.notes

    flows.repo.write({"pyproject.toml": (flows.repo.path / "pyproject.toml").read_text()
                      + "[tool.flowship.prune]\nstale-days = 0\n"})
    never = load_config(flows.repo.path, {"PREFECT_API_URL": flows.api})
    kept = prune(never, LocalTarget(never), live_branches=None, open_prs=None,
                 declared_flows=partial(declared_flows, never), dry_run=True, now=later)
    assert [c.deployment for c in kept.candidates] == [names["orphan"]]


def test_stale_days_is_a_typed_setting(tmp_path):
    from flowship.config import parse_config
    from flowship.errors import ConfigError

    assert parse_config("[tool.flowship.prune]\nstale-days = 7\n", root=tmp_path, env={}).prune.stale_days == 7
    for bad in ("-1", "true", '"30"', "99999"):
        with pytest.raises(ConfigError, match="stale-days must be a whole number of days"):
            parse_config(f"[tool.flowship.prune]\nstale-days = {bad}\n", root=tmp_path, env={})
    with pytest.raises(ConfigError, match="Did you mean 'stale-days'"):
        parse_config("[tool.flowship.prune]\nstale-day = 7\n", root=tmp_path, env={})
