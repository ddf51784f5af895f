"""GitHub events -> scope, head, base; and the base resolved on real git histories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowship.changes import resolve_base
from flowship.config import load_config
from flowship.errors import InputError
from flowship.changes import Candidate
from flowship.actions.events import SMOKE_LABEL, Event, read_event
from flowship.scope import Scope
from testing.git import Repo, git, seed_flow

# Real webhook payloads (octokit/webhooks examples, MIT), kept next to the tests.
PAYLOADS = Path(__file__).parents[1] / "testing" / "github-payloads"


def payload(name: str) -> dict:
    return json.loads((PAYLOADS / f"{name}.json").read_text())


def event(tmp_path: Path, name: str, data: dict, **env: str) -> Event:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(data))
    return read_event({"GITHUB_EVENT_NAME": name, "GITHUB_EVENT_PATH": str(path), **env})


def test_push_to_default_branch_deploys_main(tmp_path):
    data = payload("push.with-new-branch")
    data |= {"before": "a" * 40, "created": False}
    e = event(tmp_path, "push", data)
    assert (e.action, e.scope, e.head) == ("deploy", Scope.main("master"), data["after"])
    assert e.bases == (Candidate("commit", "a" * 40, "the push's previous head"),)
    assert e.repository == "Codertocat/Hello-World" and e.repository_url == "https://github.com/Codertocat/Hello-World"


def test_push_creating_a_branch_has_no_before(tmp_path):
    data = payload("push.with-new-branch") | {"ref": "refs/heads/feature/Fancy_Thing"}
    e = event(tmp_path, "push", data)
    assert e.action == "deploy" and e.scope == Scope.preview("feature/Fancy_Thing") and e.bases == ()
    # the config's default branch wins over the payload's
    path = tmp_path / "event.json"
    e = read_event({"GITHUB_EVENT_NAME": "push", "GITHUB_EVENT_PATH": str(path)}, default_branch="feature/Fancy_Thing")
    assert e.scope.is_main


def test_tag_push_and_ref_deletion_deploy_nothing(tmp_path):
    e = event(tmp_path, "push", payload("push"))  # a tag deletion
    assert e.action == "nothing" and "not a branch" in e.reason
    data = payload("push") | {"ref": "refs/heads/gone"}
    assert event(tmp_path, "push", data).action == "nothing"
    tag = payload("push.with-new-branch") | {"ref": "refs/tags/v1"}
    assert event(tmp_path, "push", tag).action == "nothing"


@pytest.mark.parametrize("variant", ["opened", "synchronize", "reopened"])
def test_pull_request_deploys_a_preview_of_the_head(tmp_path, variant):
    data = payload(f"pull_request.{variant}")
    e = event(tmp_path, "pull_request", data, GITHUB_SHA="f" * 40)
    assert e.action == "deploy" and e.fork is False and e.pr == 2
    assert e.scope == Scope.preview("changes", 2)
    assert e.head == data["pull_request"]["head"]["sha"] != "f" * 40  # never the merge commit
    assert e.bases == (Candidate("merge-base", data["pull_request"]["base"]["sha"], "the merge base with master"),)
    assert e.pr_title == "Update the README with new information."


def test_closed_pull_request_cleans_up_and_other_actions_do_nothing(tmp_path):
    e = event(tmp_path, "pull_request", payload("pull_request.closed"))
    assert e.action == "cleanup" and e.scope == Scope.preview("changes", 2)
    labeled = payload("pull_request.opened") | {"action": "labeled"}
    assert event(tmp_path, "pull_request", labeled).action == "nothing"


def test_the_smoke_label_asks_for_a_previews_smoke_runs(tmp_path):
    label = {"id": 7, "name": SMOKE_LABEL, "color": "ededed", "default": False}
    plain = event(tmp_path, "pull_request", payload("pull_request.synchronize"))
    assert (plain.smoke, plain.replan) == (False, False)  # the payload's own label is `bug`
    labelled = payload("pull_request.synchronize")
    labelled["pull_request"]["labels"].append(label)
    e = event(tmp_path, "pull_request", labelled)
    assert (e.action, e.smoke, e.replan) == ("deploy", True, False)  # each push smoke-runs what it changed
    # Adding the label deploys the preview again from the merge base, and smoke-runs it.
    added = labelled | {"action": "labeled", "label": label}
    e = event(tmp_path, "pull_request", added)
    assert (e.action, e.smoke, e.replan) == ("deploy", True, True) and SMOKE_LABEL in e.reason
    assert e.bases == (Candidate("merge-base", added["pull_request"]["base"]["sha"], "the merge base with master"),)
    # Another label asks for nothing; nor does a fork's pull request, which deploys nothing.
    other = labelled | {"action": "labeled", "label": labelled["pull_request"]["labels"][0]}
    assert event(tmp_path, "pull_request", other).action == "nothing"
    labelled["pull_request"]["head"]["repo"]["full_name"] = "someone/Hello-World"
    assert event(tmp_path, "pull_request", labelled).smoke is False
    # A manual run on a branch asks with its `smoke` input.
    dispatch = payload("workflow_dispatch") | {"ref": "refs/heads/feat/x", "inputs": {"smoke": "true"}}
    e = event(tmp_path, "workflow_dispatch", dispatch, GITHUB_SHA="c" * 40)
    assert e.smoke and e.inputs.smoke and not e.scope.is_main


def test_fork_pull_request_is_flagged_and_scoped_by_label(tmp_path):
    data = payload("pull_request.opened")
    data["pull_request"]["head"]["repo"]["full_name"] = "someone/Hello-World"
    data["pull_request"]["head"]["label"] = "someone:changes"
    e = event(tmp_path, "pull_request", data)
    assert e.fork is True and e.scope.branch == "someone:changes" and e.scope.slug != "changes"


def test_workflow_dispatch_inputs(tmp_path):
    data = payload("workflow_dispatch") | {"inputs": {"flows": "train, etl", "force_rebuild": "true", "run": True}}
    e = event(tmp_path, "workflow_dispatch", data, GITHUB_SHA="c" * 40)
    assert e.action == "deploy" and e.scope == Scope.main("master") and e.head == "c" * 40
    assert e.inputs.flows == ("train", "etl") and e.inputs.force_rebuild and e.inputs.run and not e.inputs.wait
    assert e.everything is False
    plain = event(tmp_path, "workflow_dispatch", payload("workflow_dispatch"), GITHUB_SHA="c" * 40)
    assert plain.everything is True and plain.inputs.flows == ()
    rollback = payload("workflow_dispatch") | {"inputs": {"sha": "d" * 40}}
    assert event(tmp_path, "workflow_dispatch", rollback, GITHUB_SHA="c" * 40).head == "d" * 40
    bad = payload("workflow_dispatch") | {"inputs": {"wait": "maybe"}}
    with pytest.raises(InputError, match="wait='maybe' must be true or false"):
        event(tmp_path, "workflow_dispatch", bad, GITHUB_SHA="c" * 40)


def test_delete_event_cleans_up_branches_only(tmp_path):
    assert event(tmp_path, "delete", payload("delete")).action == "nothing"  # a tag
    branch = payload("delete") | {"ref_type": "branch", "ref": "feature/x"}
    e = event(tmp_path, "delete", branch)
    assert e.action == "cleanup" and e.scope == Scope.preview("feature/x")
    assert event(tmp_path, "delete", payload("delete") | {"ref_type": "branch", "ref": "master"}).action == "nothing"
    assert event(tmp_path, "create", payload("create")).action == "nothing"


def test_malformed_events_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="GITHUB_EVENT_NAME is not set"):
        read_event({})
    with pytest.raises(InputError, match="GITHUB_EVENT_PATH is not set"):
        read_event({"GITHUB_EVENT_NAME": "push"})
    with pytest.raises(InputError, match="cannot read the event payload"):
        read_event({"GITHUB_EVENT_NAME": "push", "GITHUB_EVENT_PATH": str(tmp_path / "missing.json")})
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="is not JSON"):
        read_event({"GITHUB_EVENT_NAME": "push", "GITHUB_EVENT_PATH": str(tmp_path / "bad.json")})
    with pytest.raises(InputError, match="payload.pull_request"):
        event(tmp_path, "pull_request", {"action": "opened"})


# -- resolving the base on real histories --------------------------------------------

def push_event(head: str, before: str | None, branch: str = "main") -> Event:
    bases = (Candidate("commit", before, "the push's previous head"),) if before else ()
    return Event(name="push", action="deploy", reason="", scope=Scope.main(branch), head=head, bases=bases)


def test_base_prefers_last_deployed_then_before(repo: Repo):
    a = repo.commit({"flows/a.py": seed_flow("a")})
    b = repo.commit({"x": "1"})
    c = repo.commit({"x": "2"})
    config = load_config(repo.path, {})
    assert resolve_base(config, push_event(c, b), a)[0] == a  # a failed deploy of b is covered
    base, note = resolve_base(config, push_event(c, b), None)
    assert base == b and "previous head" in note
    # The record was read and is empty (nothing deployed in full yet): `before` was
    # never deployed here, so everything is planned rather than trusting it.
    assert resolve_base(config, push_event(c, b), None, record_read=True)[0] is None


def test_force_push_falls_back_when_before_left_history(repo: Repo):
    a = repo.commit({"flows/a.py": seed_flow("a")})
    orphan = repo.commit({"x": "old"})
    repo.git("reset", "-q", "--hard", a)
    c = repo.commit({"x": "new"})
    config = load_config(repo.path, {})
    base, note = resolve_base(config, push_event(c, orphan), None)
    assert base is None and "not an ancestor" in note and "planning every workflow" in note
    base, note = resolve_base(config, push_event(c, orphan), a)
    assert base == a
    missing = "1" * 40
    base, note = resolve_base(config, push_event(c, missing), None)
    assert base is None and "not in this clone" in note


def test_first_commit_and_new_branch_plan_everything(repo: Repo):
    a = repo.commit({"flows/a.py": seed_flow("a")})
    base, note = resolve_base(load_config(repo.path, {}), push_event(a, None), None)
    assert base is None and "no earlier commit" in note


def test_pull_request_uses_the_merge_base(repo: Repo):
    a = repo.commit({"flows/a.py": seed_flow("a")})
    repo.git("checkout", "-q", "-b", "feature")
    f = repo.commit({"x": "feature"})
    repo.git("checkout", "-q", "main")
    m = repo.commit({"y": "main moved on"})
    e = Event(name="pull_request", action="deploy", reason="", scope=Scope.preview("feature", 1), head=f,
              bases=(Candidate("merge-base", m, "the merge base with main"),))
    config = load_config(repo.path, {})
    assert resolve_base(config, e, None) == (a, f"comparing with the merge base with main, {a[:12]}.")
    assert resolve_base(config, e, f)[0] == f  # a later push: the last preview deploy


def test_shallow_clone_is_deepened_from_its_remote(repo: Repo, tmp_path):
    shas = [repo.commit({"flows/a.py": seed_flow("a"), "n": str(i)}) for i in range(4)]
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{repo.path}", str(clone))
    assert git(clone, "rev-parse", "--is-shallow-repository") == "true"
    config = load_config(clone, {})
    base, note = resolve_base(config, push_event(shas[3], shas[1]), None)
    assert base == shas[1]
    # without a remote there is nothing to deepen from: everything, and why
    clone2 = tmp_path / "clone2"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{repo.path}", str(clone2))
    git(clone2, "remote", "remove", "origin")
    base, note = resolve_base(load_config(clone2, {}), push_event(shas[3], shas[1]), None)
    assert base is None and "shallow" in note and "fetch-depth: 0" in note
