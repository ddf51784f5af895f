"""The partial analysis (reverse import search, partial discovery) on real git repositories.

Each plan is also made with `full_scan=True` (the whole tree, the full import
graph) and the two must agree; the property test in test_changes_property.py
does the same on random repositories.
"""

from __future__ import annotations

import pytest

from flowship.changes import make_plan
from flowship.config import load_config
from flowship.changes.reverse import ReverseSearch, TooBroad, import_lines
from flowship.scope import Scope
from testing.git import Repo, seed_flow


def both(repo: Repo, base: str):
    config = load_config(repo.path, {})
    partial = make_plan(config, scope=Scope.main(), base=base)
    full = make_plan(config, scope=Scope.main(), base=base, full_scan=True)
    assert [(w.name, w.reasons) for w in partial.workflows] == [(w.name, w.reasons) for w in full.workflows]
    assert (partial.delete, partial.images) == (full.delete, full.images)
    return partial, full


def flow(name: str, *imports: str) -> str:
    return "\n".join(imports) + "\n" + seed_flow(name)


LIB = {
    "lib/__init__.py": "",
    "lib/pkg/__init__.py": "",
    "lib/pkg/mod.py": "X = 1\n",
    "lib/pkg/other.py": "Y = 1\n",
    "lib/pkg/deep/__init__.py": "",
    "lib/pkg/deep/leaf.py": "from .. import mod\n",  # relative, two levels: the word `pkg` is not written
    "lib/util.py": "from lib.pkg import (\n    other,\n    mod,\n)\n",  # one statement over four lines
    "lib/shim.py": "import lib.pkg \\\n    .mod\n",  # a backslash inside the dotted name
}


def test_multiline_relative_and_continued_imports_are_found(repo: Repo):
    base = repo.commit({
        **LIB,
        "flows/a.py": flow("a", "import lib.util"),
        "flows/b.py": flow("b", "from lib.pkg.deep import leaf"),
        "flows/c.py": flow("c", "import lib.shim"),
        "flows/d.py": flow("d", "import lib.pkg.other"),
        "flows/e.py": flow("e", "def later():\n    from lib.pkg import mod  # lazily\n    return mod"),
    })
    repo.commit({"lib/pkg/mod.py": "X = 2\n"})
    partial, _ = both(repo, base)
    assert [w.name for w in partial.workflows] == ["a", "b", "c", "e"]
    assert all(w.reasons == ("lib/pkg/mod.py",) for w in partial.workflows)


def test_a_package_init_reaches_every_module_below_it(repo: Repo):
    base = repo.commit({
        **LIB, "flows/a.py": flow("a", "import lib.pkg.deep.leaf"), "flows/b.py": flow("b", "import lib.util"),
        "flows/c.py": flow("c", "X = 1"),
    })
    repo.commit({"lib/pkg/deep/__init__.py": "Z = 1\n"})
    partial, _ = both(repo, base)
    assert [w.name for w in partial.workflows] == ["a"]


def test_reasons_name_each_changed_module_that_reaches_a_flow(repo: Repo):
    base = repo.commit({
        **LIB, "flows/a.py": flow("a", "import lib.util"), "flows/b.py": flow("b", "import lib.pkg.other"),
    })
    repo.commit({"lib/pkg/mod.py": "X = 3\n", "lib/pkg/other.py": "Y = 3\n"})
    partial, _ = both(repo, base)
    assert {w.name: w.reasons for w in partial.workflows} == {
        "a": ("lib/pkg/mod.py", "lib/pkg/other.py"), "b": ("lib/pkg/other.py",),
    }


def test_a_duplicate_name_in_an_untouched_file_is_still_found(repo: Repo):
    base = repo.commit({**LIB, "flows/a.py": flow("a"), "flows/old.py": flow("taken"), "flows/z.py": flow("z")})
    repo.commit({"flows/a.py": flow("taken")})  # now clashes with flows/old.py, which did not change
    partial, full = both(repo, base)
    assert partial.workflows == () and [d.name for d in partial.delete] == []  # a broken head file deletes nothing
    clash = [p for p in full.problems if "two workflows are named 'taken'" in p.message]
    assert len(clash) == 2 and set(clash) <= set(partial.problems)


def test_a_renamed_flow_is_looked_up_by_name_for_deletions(repo: Repo):
    base = repo.commit({"flows/a.py": flow("first"), "flows/b.py": flow("second")})
    repo.commit({"flows/a.py": flow("second_take")})  # named after the function: "second-take"
    partial, _ = both(repo, base)
    assert [w.name for w in partial.workflows] == ["second-take"]
    assert [d.name for d in partial.delete] == ["first"]


def test_import_lines_widen_to_the_whole_file_when_a_statement_continues():
    assert import_lines(b"x = 1\n") == (b"", False)
    text, whole = import_lines(b'"""Docs."""\nimport a.b as c\nfrom d import e  # note\ny = 2\n')
    assert not whole and b"import a.b as c" in text and b"from d import e  # note" in text and b"y = 2" not in text
    source = b"from d import (\n    e,\n)\n"
    assert import_lines(source) == (source, True)


def test_the_search_gives_up_when_the_closure_is_large():
    sources = {f"m{i}.py": f"import m{i + 1}\n".encode() for i in range(10)}
    search = ReverseSearch([*sources, "m10.py"], [""], limit=5)
    search.read(([path], source) for path, source in sources.items())
    with pytest.raises(TooBroad):
        search.dependents(["m10.py"])
    search = ReverseSearch([*sources, "m10.py"], [""])
    search.read(([path], source) for path, source in sources.items())
    reached = search.dependents(["m10.py"])
    assert set(reached) == {*sources, "m10.py"} and all(r == {"m10.py"} for r in reached.values())
