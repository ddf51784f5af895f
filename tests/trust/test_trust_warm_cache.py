"""A kept parse cache (FLOWSHIP_CACHE_DIR) must plan every later commit, deletion-only ones included."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowship.changes import make_plan
from flowship.config import load_config
from flowship.scope import Scope
from testing.git import Repo, cpu_flow


def _plan(repo: Repo, cache, base, head="HEAD", **kwargs):
    config = load_config(repo.path, {"FLOWSHIP_CACHE_DIR": str(cache)})
    return make_plan(config, scope=Scope.main(), head=head, base=base, **kwargs)


def _names(plan) -> list[str]:
    return sorted(w.name for w in plan.workflows)


def test_a_deletion_only_commit_plans_with_a_warm_graph(tmp_path):
    repo = Repo(tmp_path / "repo")
    first = repo.commit({
        "flows/a.py": "import lib.x\n" + cpu_flow("a"),
        "flows/b.py": cpu_flow("b"),
        "lib/__init__.py": "",
        "lib/x.py": "X = 1\n",
        "lib/unused.py": "Y = 2\n",
    })
    cache = tmp_path / "cache"
    edited = repo.commit({"lib/x.py": "X = 2\n"})
    # A full-path plan with a base builds the import graph and keeps it.
    assert _names(_plan(repo, cache, first, head=edited, everything=True)) == ["a", "b"]
    deleted = repo.commit({"lib/unused.py": None, "lib/x.py": None})
    # Head's files plus the deleted ones are the paths the kept graph has: it is reused.
    again = _plan(repo, cache, edited, head=deleted, everything=True)
    assert _names(again) == ["a", "b"]
    assert dict((w.name, w.reasons) for w in again.workflows)["a"] == ("lib/x.py",)
    # And once more on the same commit: the graph now says x.py is gone.
    assert _names(_plan(repo, cache, edited, head=deleted, only=["a"])) == ["a"]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sets(st.sampled_from(["lib/m0.py", "lib/m1.py", "lib/m2.py", "flows/helper.py"]), min_size=1))
def test_any_deletion_only_commit_agrees_with_a_cold_cache(tmp_path_factory, gone):
    tmp = tmp_path_factory.mktemp("warm")
    repo = Repo(tmp / "repo")
    base = repo.commit({
        "flows/a.py": "import lib.m0\nimport helper\n" + cpu_flow("a"),
        "flows/b.py": "from lib import m1\n" + cpu_flow("b"),
        "flows/helper.py": "from lib import m2\n",
        "lib/__init__.py": "",
        "lib/m0.py": "from . import m1\n",
        "lib/m1.py": "",
        "lib/m2.py": "",
    })
    edited = repo.commit({"lib/m1.py": "Z = 1\n"})
    warm = tmp / "warm"
    _plan(repo, warm, base, head=edited, everything=True)
    head = repo.commit(dict.fromkeys(gone))
    hot = _plan(repo, warm, edited, head=head, everything=True)
    cold = _plan(repo, tmp / "cold", edited, head=head, everything=True)
    assert [(w.name, w.reasons) for w in hot.workflows] == [(w.name, w.reasons) for w in cold.workflows]
