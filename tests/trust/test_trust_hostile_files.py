"""One hostile file never stops the rest, and nothing hangs (issue 10, items 5 and 6).

Each hostile file is committed beside good flows in a real git repository;
`flowship plan` (and `discover` on the working tree) must plan every good
flow, report the hostile file as a problem at `file:line`, and finish
promptly. Property tests throw generated hostile sources at the analysers.
"""

from __future__ import annotations

import json
import os
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from flowship.discovery import limits
from flowship.cli import main
from flowship.discovery.declarations import NOT_AT_TOP, analyze
from flowship.deploy import vcs
from flowship.globs import glob_match
from flowship.discovery.imports import scan_imports
from testing.git import Repo, cpu_flow

GOOD = {f"flows/good{i}.py": cpu_flow(f"good{i}") for i in range(3)}
GOOD_NAMES = sorted(f"good{i}" for i in range(3))
WF_HEADER = "from prefect import flow\nfrom flowship import Workflow, AwsEcsMachine\n"


def plan_json(repo: Repo, capsys, *args: str) -> tuple[int, dict, str]:
    code = main(["--root", str(repo.path), "plan", "--branch", "main", "--json", *args], env={})
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if captured.out.strip() else {}), captured.err


HOSTILE = {
    "deep-sum": "x = " + "+".join(["1"] * 5000) + "\n",
    "deep-brackets": "x = " + "[" * 3000 + "]" * 3000 + "\n",
    "huge-literal": "x = '" + "a" * (limits.MAX_FILE_BYTES + 10) + "'\n",
    "huge-power": WF_HEADER + "workflow = Workflow(retries=9**9**9)\n\n@flow\ndef bad():\n    pass\n",
    "null-bytes": "x = 1\0\n",
    "not-utf8": b"\xff\xfe = 1\n".decode("latin-1"),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
@pytest.mark.parametrize("where", ["flows/bad.py", "lib/helper.py"])
def test_a_hostile_file_is_a_problem_and_the_good_flows_are_planned(repo: Repo, capsys, kind, where):
    repo.commit({**GOOD, "lib/__init__.py": ""})
    target = repo.path / where
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(HOSTILE[kind].encode("latin-1" if kind == "not-utf8" else "utf-8"))
    repo.commit(message="hostile")

    start = time.monotonic()
    code, doc, err = plan_json(repo, capsys, "--all")
    elapsed = time.monotonic() - start
    assert sorted(w["name"] for w in doc["workflows"]) == GOOD_NAMES
    assert elapsed < 30, f"plan took {elapsed:.1f} s"
    problems = [p for p in doc["problems"] if "bad.py" in p or "helper.py" in p]
    if where.startswith("flows/"):
        # A flows-directory file is read for declarations: its trouble is a problem at its line.
        assert problems and problems[0].startswith("flows/bad.py:"), doc["problems"]
        assert code == 2
    else:
        assert problems == [] and code == 0  # a helper is only scanned for imports, never a problem


def test_workflow_not_at_module_level_is_a_problem_and_never_a_deletion(repo: Repo, capsys):
    moved = {
        "if": "import os\nif os.environ.get('X'):\n    workflow = Workflow()\n",
        "type-checking": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    workflow = Workflow()\n",
        "try": "try:\n    workflow = Workflow()\nexcept Exception:\n    pass\n",
        "with": "import contextlib\nwith contextlib.suppress(Exception):\n    workflow = Workflow()\n",
        "function": "def make():\n    return Workflow()\n",
    }
    flows = {f"flows/{k.replace('-', '_')}.py": WF_HEADER + f"workflow = Workflow()\n\n@flow\ndef f_{k.replace('-', '_')}():\n    pass\n"
             for k in moved}
    base = repo.commit({**GOOD, **flows})
    head = repo.commit({
        f"flows/{k.replace('-', '_')}.py": WF_HEADER + body + f"\n@flow\ndef f_{k.replace('-', '_')}():\n    pass\n"
        for k, body in moved.items()
    })
    code, doc, _ = plan_json(repo, capsys, "--base", base)
    assert doc["head"] == head and doc["delete"] == []  # no production deployment goes
    assert code == 2
    for k in moved:
        path = f"flows/{k.replace('-', '_')}.py"
        source = (repo.path / path).read_text()
        line = next(n for n, text in enumerate(source.splitlines(), 1) if "Workflow()" in text)
        assert f"{path}:{line}: {NOT_AT_TOP}" in doc["problems"], doc["problems"]


def test_an_import_under_type_checking_still_declares():
    source = (b"from typing import TYPE_CHECKING\nfrom prefect import flow\nif TYPE_CHECKING:\n    pass\n"
              b"try:\n    from flowship import Workflow\nexcept ImportError:\n    raise\n"
              b"workflow = Workflow(retries=2)\n\n@flow\ndef f():\n    pass\n")
    facts = analyze(source)
    assert [d.workflow["retries"] for d in facts.declared] == [2]


def test_a_symlinked_flow_file_at_head_is_a_problem_not_a_deletion(repo: Repo, capsys):
    base = repo.commit({**GOOD, "flows/linked.py": cpu_flow("linked")})
    (repo.path / "flows/linked.py").unlink()
    os.symlink("/dev/zero", repo.path / "flows/linked.py")
    repo.commit(message="a link to a device")
    code, doc, _ = plan_json(repo, capsys, "--base", base)
    assert doc["delete"] == [] and code == 2
    assert f"flows/linked.py:1: {limits.NOT_REGULAR}" in doc["problems"]


def test_discover_never_follows_a_link_nor_opens_a_fifo(repo: Repo, capsys):
    repo.commit(GOOD)
    os.symlink("/dev/zero", repo.path / "flows/zero.py")
    os.mkfifo(repo.path / "flows/pipe.py")
    (repo.path / "flows/big.py").write_bytes(b"#" * (limits.MAX_FILE_BYTES + 1))
    start = time.monotonic()
    code = main(["--root", str(repo.path), "discover", "--json"], env={})
    elapsed = time.monotonic() - start
    doc = json.loads(capsys.readouterr().out)
    assert elapsed < 30 and code == 2
    assert sorted(w["name"] for w in doc["workflows"]) == GOOD_NAMES
    assert {(p["file"], p["line"], p["message"]) for p in doc["problems"]} == {
        ("flows/zero.py", 1, limits.NOT_REGULAR),
        ("flows/pipe.py", 1, limits.NOT_REGULAR),
        ("flows/big.py", 1, limits.TOO_LARGE),
    }


@pytest.mark.parametrize("setting, expect", [
    ('flows = "../.."', "tool.flowship.flows must be a path inside the repository"),
    ('flows = "/etc"', "tool.flowship.flows must be a path inside the repository"),
    ('[tool.flowship.data]\n"[z-a]" = ["good0"]', "is not a valid glob"),
    ('[tool.flowship.data]\n"../secrets/**" = ["good0"]', "must name paths inside the repository"),
])
def test_paths_and_globs_that_leave_the_repository_are_one_sentence(repo: Repo, capsys, setting, expect):
    repo.commit({**GOOD, "pyproject.toml": f"[tool.flowship]\n{setting}\n"})
    code, _, err = plan_json(repo, capsys, "--all")
    assert code == 2 and expect in err and "Traceback" not in err


def test_a_flows_directory_symlinked_outside_is_refused(repo: Repo, tmp_path, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.py").write_text(cpu_flow("x"))
    repo.commit({"README.md": "x"})
    os.symlink(outside, repo.path / "flows")
    code = main(["--root", str(repo.path), "discover"], env={})
    assert code == 2 and "leads outside" in capsys.readouterr().err


def test_a_crafted_data_glob_is_matched_in_linear_time(repo: Repo, capsys):
    crafted = "**a" * 40 + "b"
    base = repo.commit({**GOOD, "pyproject.toml": f'[tool.flowship.data]\n"{crafted}" = ["good0"]\n'})
    repo.commit({("a" * 200) + ".txt": "x", "lib/" + ("a/" * 50) + "x.txt": "y"})
    start = time.monotonic()
    code, doc, _ = plan_json(repo, capsys, "--base", base)
    assert code == 0 and time.monotonic() - start < 30
    assert doc["workflows"] == []


def test_a_commit_with_an_outward_symlink_still_checks_out(repo: Repo, tmp_path, capsys):
    repo.commit(GOOD)
    os.symlink("/etc/passwd", repo.path / "flows/abs-link")
    os.symlink("../../outside", repo.path / "flows/up-link")
    os.symlink("good0.py", repo.path / "flows/inside-link.py")
    sha = repo.commit(message="links")
    dest = vcs.materialize(repo.path, sha, tmp_path / "checkout")
    assert sorted(p.name for p in (dest / "flows").iterdir()) == ["good0.py", "good1.py", "good2.py", "inside-link.py"]
    assert (dest / "flows/inside-link.py").read_text() == (dest / "flows/good0.py").read_text()
    err = capsys.readouterr().err
    assert "left out 2 link(s)" in err and "flows/abs-link" in err


# -- generated hostile sources --------------------------------------------------------

_FRAGMENTS = st.sampled_from([
    "(", ")", "[", "]", "{", "}", "+1", "-", "**9", "not ", "lambda:", "'", '"""', "\\", "\n", "\r", "\0",
    "\xff", "Workflow(", "@flow\n", "import ", "from . import ", "if x:\n ", "9" * 50, "1e999", ",", ":", ";",
])


@st.composite
def hostile_sources(draw) -> bytes:
    repeat = draw(st.integers(min_value=1, max_value=4000))
    body = "".join(draw(st.lists(_FRAGMENTS, min_size=1, max_size=8)))
    text = WF_HEADER + draw(st.sampled_from(["x = ", "workflow = Workflow(retries=", ""])) + body * repeat
    return text.encode("utf-8", "surrogateescape")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_sources())
def test_analysers_never_raise_nor_hang_on_hostile_sources(source):
    start = time.monotonic()
    facts = analyze(source)
    assert facts.syntax_error is None or (facts.syntax_error[0] >= 1 and facts.syntax_error[1])
    for declared in facts.declared:
        assert (declared.workflow is None) == (declared.problem is not None)
    assert isinstance(scan_imports(source), tuple)
    assert time.monotonic() - start < 10


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ab*?/[]!-", max_size=30), st.text(alphabet="ab/", max_size=300))
def test_globs_answer_quickly_or_are_refused(pattern, path):
    start = time.monotonic()
    try:
        glob_match(pattern, path)
    except ValueError:
        pass  # an invalid class: config.py turns it into one sentence
    assert time.monotonic() - start < 1

