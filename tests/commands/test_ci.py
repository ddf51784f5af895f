"""`flowship ci` driven in-process with real webhook payload shapes, a real git
repository, the session's real Prefect server (local target) and a local
GitHub API for the pull-request comment."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest

from flowship.cli import main
from flowship.actions.github import COMMENT_MARKER
from testing.ci import FORK_NAME, REPO_NAME, ZERO, payload, pr_payload, push_payload
from testing.deployments import read_back
from testing.git import Repo, cpu_flow
from testing.github_server import GitHubServer, parse_outputs

class Ci:
    """One repository under test: its flows, the GitHub files, and `flowship ci` runs."""

    def __init__(self, repo: Repo, tmp: Path, prefect: str, github: GitHubServer):
        self.repo, self.tmp, self.prefect, self.github = repo, tmp, prefect, github
        self.suffix = uuid.uuid4().hex[:6]  # flows and project unique on the shared Prefect server
        self.flow = f"train_{self.suffix}"
        self.flow_name = self.flow.replace("_", "-")
        self.runs = 0
        # A token of its own: the console masks each secret once per process.
        self.token = f"ghs_{uuid.uuid4().hex}"
        github.add_token(self.token)

    def seed(self) -> str:
        return self.repo.commit({
            "pyproject.toml": f'[tool.flowship]\nflows = "flows"\nproject = "p{self.suffix}"\n',
            ".gitignore": ".flowship/\n",
            f"flows/{self.flow}.py": cpu_flow(self.flow),
            "README.md": "hello\n",
        }, message="seed")

    def env(self, event: str, data: dict, **extra: str) -> dict[str, str]:
        self.runs += 1
        path = self.tmp / f"event-{self.runs}.json"
        path.write_text(json.dumps(data))
        self.output = self.tmp / f"output-{self.runs}"
        self.summary = self.tmp / f"summary-{self.runs}.md"
        env = {
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": event,
            "GITHUB_EVENT_PATH": str(path),
            "GITHUB_OUTPUT": str(self.output),
            "GITHUB_STEP_SUMMARY": str(self.summary),
            "GITHUB_REPOSITORY": REPO_NAME,
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_API_URL": self.github.url,
            "GITHUB_RUN_ID": "4242",
            "GITHUB_SHA": data.get("after") or self.repo.head(),
            "GITHUB_REF": data.get("ref") or "refs/heads/main",
            "GITHUB_TOKEN": self.token,
            "PREFECT_API_URL": self.prefect,
            "FLOWSHIP_PREFECT_UI_URL": "http://prefect-ui.localhost",
            "FLOWSHIP_TARGET": "local",
        }
        return env | extra

    def __call__(self, event: str, data: dict, capsys, **extra: str) -> tuple[int, str]:
        code = main(["--root", str(self.repo.path), "ci"], env=self.env(event, data, **extra))
        return code, capsys.readouterr().err

    def outputs(self) -> dict[str, str]:
        return parse_outputs(self.output.read_text() if self.output.exists() else "")

    def deployments(self) -> dict[str, str]:
        return {d["deployment"]: d["status"] for d in json.loads(self.outputs()["deployments"])}


def prefect_deployments(url: str, flow_name: str) -> set[str]:
    return {name.split("/", 1)[1] for name in read_back(url, [flow_name])}


@pytest.fixture
def github():
    with GitHubServer() as server:
        server.add_token("ghs_readonly5678", read_only=True)
        server.add_repo(REPO_NAME)
        yield server


@pytest.fixture
def ci(repo, tmp_path, prefect_api, github) -> Ci:
    return Ci(repo, tmp_path, prefect_api, github)


# -- push ------------------------------------------------------------------------
@pytest.mark.integration
def test_push_to_main_deploys_then_updates_then_leaves_alone(ci, capsys):
    first = ci.seed()
    code, err = ci("push", push_payload(ref="refs/heads/main", before=ZERO, after=first), capsys)
    assert code == 0, err
    main_name = f"{ci.flow_name}/main"
    assert ci.deployments() == {main_name: "created"}
    assert prefect_deployments(ci.prefect, ci.flow_name) == {"main"}
    out = ci.outputs()
    assert json.loads(out["plan"])["head"] == first and out["preview-url"] == ""
    summary = ci.summary.read_text()
    assert summary.startswith("## flowship: production deploy of main\n")
    assert "1 created." in summary and "](http://prefect-ui.localhost/deployments/deployment/" in summary
    # Stages are groups; the secret token never printed.
    for stage in ("Event", "Plan", "Deploy to local", "Report"):
        assert f"::group::{stage}" in err
    assert err.startswith(f"::add-mask::{ci.token}\n") and err.count(ci.token) == 1

    # A change to the flow updates it (the base is the last deployed commit).
    second = ci.repo.commit({f"flows/{ci.flow}.py": cpu_flow(ci.flow).replace("rows: int = 10", "rows: int = 11")})
    code, err = ci("push", push_payload(ref="refs/heads/main", before=first, after=second), capsys)
    assert code == 0, err
    assert ci.deployments() == {main_name: "updated"}
    assert f"flows/{ci.flow}.py" in json.loads(ci.outputs()["plan"])["workflows"][0]["reasons"]

    # A README-only commit affects no workflow: nothing built or deployed, and it says so.
    third = ci.repo.commit({"README.md": "more\n"})
    code, err = ci("push", push_payload(ref="refs/heads/main", before=second, after=third), capsys)
    assert code == 0, err
    assert ci.deployments() == {}
    assert "No workflow is affected" in ci.summary.read_text()


@pytest.mark.integration
def test_force_push_whose_before_is_gone_plans_everything(ci, capsys):
    head = ci.seed()
    gone = "f" * 40  # a `before` that a force push removed from history
    code, err = ci("push", push_payload(ref="refs/heads/main", before=gone, after=head, forced=True), capsys)
    assert code == 0, err
    assert ci.deployments() == {f"{ci.flow_name}/main": "created"}
    assert "planning every workflow" in err


@pytest.mark.parametrize(
    ("ref", "deleted", "says"),
    [("refs/tags/v1.0", False, "is not a branch"), ("refs/heads/old-feature", True, "the push deleted old-feature")],
)
def test_tag_push_and_branch_deletion_do_nothing_and_say_so(ci, capsys, ref, deleted, says):
    head = ci.seed()
    data = push_payload(ref=ref, before=head, after=ZERO if deleted else head)
    code, err = ci("push", data, capsys)
    assert code == 0, err
    assert says in err
    summary = ci.summary.read_text()
    assert summary.startswith("## flowship: nothing to do\n") and says.replace(" ", " ") in summary.replace("\\", "")
    assert ci.outputs() == {"plan": "", "deployments": "[]", "images": "{}", "preview-url": ""}


# -- pull requests ---------------------------------------------------------------
@pytest.mark.integration
def test_pull_request_preview_comment_is_created_once_then_edited_and_cleaned_up(ci, capsys):
    base = ci.seed()
    ci.repo.git("checkout", "-q", "-b", "feat/new-model")
    head1 = ci.repo.commit({f"flows/{ci.flow}.py": cpu_flow(ci.flow).replace("rows: int = 10", "rows: int = 12")})
    ci.github.add_pull(REPO_NAME, 12, title="New model", head="feat/new-model")
    preview = f"{ci.flow_name}/feat-new-model-"

    code, err = ci("pull_request", pr_payload("opened", number=12, branch="feat/new-model", head=head1, base=base), capsys)
    assert code == 0, err
    [(name, status)] = ci.deployments().items()
    assert name.startswith(preview) and status == "created"
    [comment] = ci.github.comments(REPO_NAME, 12)
    assert comment.body.startswith(COMMENT_MARKER) and comment.edits == 0
    assert "flowship run " + ci.flow_name + " --scope feat/new-model" in comment.body
    assert "/run)" in comment.body  # the Prefect UI's run form
    assert ci.outputs()["preview-url"].startswith("http://prefect-ui.localhost/deployments/deployment/")

    head2 = ci.repo.commit({f"flows/{ci.flow}.py": cpu_flow(ci.flow).replace("rows: int = 10", "rows: int = 13")})
    code, err = ci("pull_request", pr_payload("synchronize", number=12, branch="feat/new-model", head=head2, base=base), capsys)
    assert code == 0, err
    assert list(ci.deployments().values()) == ["updated"]
    [comment] = ci.github.comments(REPO_NAME, 12)  # still one comment, edited in place
    assert comment.edits == 1 and head2[:12] in comment.body
    posts = [r for r in ci.github.state.requests if r.method == "POST" and r.path.endswith("/comments")]
    assert len(posts) == 1

    code, err = ci("pull_request", pr_payload("closed", number=12, branch="feat/new-model", head=head2, base=base,
                                              merged=False), capsys)
    assert code == 0, err
    assert list(ci.deployments().values()) == ["deleted"]
    assert prefect_deployments(ci.prefect, ci.flow_name) == set()
    [comment] = ci.github.comments(REPO_NAME, 12)
    assert comment.edits == 2 and "deleted" in comment.body


@pytest.mark.integration
def test_merged_pull_request_cleans_up_its_preview_but_never_main(ci, capsys):
    base = ci.seed()
    code, _ = ci("push", push_payload(ref="refs/heads/main", before=ZERO, after=base), capsys)
    assert code == 0
    ci.repo.git("checkout", "-q", "-b", "fix")
    head = ci.repo.commit({f"flows/{ci.flow}.py": cpu_flow(ci.flow) + "\n# fix\n"})
    ci.github.add_pull(REPO_NAME, 3, title="Fix", head="fix")
    assert ci("pull_request", pr_payload("opened", number=3, branch="fix", head=head, base=base), capsys)[0] == 0
    assert prefect_deployments(ci.prefect, ci.flow_name) == {"main", "fix"}
    code, err = ci("pull_request", pr_payload("closed", number=3, branch="fix", head=head, base=base, merged=True), capsys)
    assert code == 0, err
    assert ci.deployments() == {f"{ci.flow_name}/fix": "deleted"}
    assert prefect_deployments(ci.prefect, ci.flow_name) == {"main"}


@pytest.mark.integration
def test_fork_pull_request_is_planned_and_commented_never_deployed(ci, capsys):
    base = ci.seed()
    ci.repo.git("checkout", "-q", "-b", "patch-1")
    head = ci.repo.commit({f"flows/{ci.flow}.py": cpu_flow(ci.flow) + "\n# from a fork\n"})
    ci.github.add_pull(REPO_NAME, 9, title="Drive-by", head="patch-1", head_repo=FORK_NAME)
    # A fork's run: no Prefect key, a read-only token.
    code, err = ci("pull_request", pr_payload("opened", number=9, branch="patch-1", head=head, base=base, fork=True),
                   capsys, GITHUB_TOKEN="ghs_readonly5678", PREFECT_API_URL="")
    assert code == 0, err
    assert ci.deployments() == {}
    assert prefect_deployments(ci.prefect, ci.flow_name) == set()
    plan = json.loads(ci.outputs()["plan"])
    assert [w["name"] for w in plan["workflows"]] == [ci.flow_name]
    summary = ci.summary.read_text()
    assert "comes from a fork" in summary and "built or deployed nothing" in summary
    # The read-only token cannot comment: a warning, not a failure.
    assert "::warning::GitHub refused to comment on pull request #9 (403" in err
    assert ci.github.comments(REPO_NAME, 9) == []


# -- workflow_dispatch -------------------------------------------------------------
@pytest.mark.integration
def test_dispatch_deploys_the_named_flow_and_rolls_back_to_an_older_commit(ci, capsys):
    old = ci.seed()
    assert ci("push", push_payload(ref="refs/heads/main", before=ZERO, after=old), capsys)[0] == 0
    new = ci.repo.commit({f"flows/{ci.flow}.py": cpu_flow(ci.flow).replace("rows: int = 10", "rows: int = 99")})
    assert ci("push", push_payload(ref="refs/heads/main", before=old, after=new), capsys)[0] == 0

    # Without a commit: a rerun of the branch head, the named flow only, nothing to change.
    data = payload("workflow_dispatch") | {"ref": "refs/heads/main", "inputs": {"flows": ci.flow_name}}
    code, err = ci("workflow_dispatch", data, capsys, GITHUB_SHA=new)
    assert code == 0, err
    assert ci.deployments() == {f"{ci.flow_name}/main": "unchanged"}

    # A rollback: the older commit goes back over the newer one, and the summary says so.
    data = payload("workflow_dispatch") | {"ref": "refs/heads/main", "inputs": {"sha": old}}
    code, err = ci("workflow_dispatch", data, capsys, GITHUB_SHA=new)
    assert code == 0, err
    assert ci.deployments() == {f"{ci.flow_name}/main": "updated"}
    assert json.loads(ci.outputs()["plan"])["head"] == old
    assert "Rollback" in ci.summary.read_text()


def test_dry_run_plans_and_reports_only(ci, capsys):
    head = ci.seed()
    code, err = ci("push", push_payload(ref="refs/heads/main", before=ZERO, after=head), capsys,
                   FLOWSHIP_DRY_RUN="true", PREFECT_API_URL="")
    assert code == 0, err
    assert ci.deployments() == {}
    assert [w["name"] for w in json.loads(ci.outputs()["plan"])["workflows"]] == [ci.flow_name]
    assert "Dry run" in ci.summary.read_text()


# -- reporting is inert ------------------------------------------------------------
CRAFTED_TITLE = 'Fix "it" $(touch /tmp/pwned) `id` | <script>x</script>\n::error::owned\n::add-mask::x'
CRAFTED_BRANCH = "feat/$(touch_pwned)`id`|\"q\"'s<b>"


@pytest.mark.integration
def test_crafted_branch_and_title_are_reported_inertly(ci, capsys):
    base = ci.seed()
    ci.repo.git("checkout", "-q", "-b", CRAFTED_BRANCH)
    head = ci.repo.commit({f"flows/{ci.flow}.py": cpu_flow(ci.flow) + "\n# x\n"})
    ci.github.add_pull(REPO_NAME, 66, title=CRAFTED_TITLE, head=CRAFTED_BRANCH)
    data = pr_payload("opened", number=66, branch=CRAFTED_BRANCH, head=head, base=base, title=CRAFTED_TITLE)
    code, err = ci("pull_request", data, capsys)
    assert code == 0, err
    # Nothing user-controlled starts a workflow command of its own.
    commands = [line for line in err.splitlines() if line.startswith("::")]
    assert all(re.match(r"::(group|endgroup|add-mask|warning|error|notice)\b", c) for c in commands), commands
    assert not any("owned" in c or c.startswith("::add-mask::x") for c in commands)
    assert not Path("/tmp/pwned").exists()
    # The summary and the comment carry the branch escaped, never as markup.
    summary = ci.summary.read_text()
    escaped = "feat\\/\\$\\(touch\\_pwned\\)\\`id\\`\\|\\\"q\\\"\\'s&lt;b&gt;"
    assert f"**branch:** {escaped} ·" in summary
    assert "<b>" not in summary and "<script>" not in summary
    title = ("Fix \\\"it\\\" \\$\\(touch \\/tmp\\/pwned\\) \\`id\\` \\| &lt;script&gt;x&lt;\\/script&gt; "
             "\\:\\:error\\:\\:owned \\:\\:add\\-mask\\:\\:x")
    assert f"**Pull request:** {title}\n" in summary
    # In the log the title's lines are data: each `::` line is prefixed so the runner ignores it.
    assert "\n\u200b::error::owned\n\u200b::add-mask::x\n" in err
    [comment] = ci.github.comments(REPO_NAME, 66)
    body_outside_code = re.sub(r"(?ms)^```+sh\n.*?^```+$", "", comment.body)
    assert "<b>" not in body_outside_code and escaped in body_outside_code
    # The run instruction is a shell-quoted, fenced command.
    assert "--scope 'feat/$(touch_pwned)`id`|\"q\"'\"'\"'s<b>'\n" in comment.body


@pytest.mark.integration
def test_bad_declaration_becomes_a_file_line_annotation(ci, capsys):
    head = ci.seed()
    head = ci.repo.commit({"flows/broken.py": (
        "from prefect import flow\nfrom flowship import AwsEcsMachine, Workflow\n\n"
        "workflow = Workflow(machine=AwsEcsMachine(cpu_value=3, memory_value=512))\n\n"
        "@flow\ndef broken():\n    pass\n"
    )})
    code, err = ci("push", push_payload(ref="refs/heads/main", before=ZERO, after=head), capsys)
    assert re.search(r"^::error file=flows/broken\.py,line=4,title=flowship::", err, flags=re.M), err
    assert "flows\\/broken\\.py\\:4\\:" in ci.summary.read_text()
    assert f"{ci.flow_name}/main" in ci.deployments()  # the good flow still deploys
