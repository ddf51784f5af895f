"""Branch slugs, scopes, deployment names and tags (docs/design.md's contract)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from flowship.scope import Scope, branch_slug, deployment_name, deployment_tags

SLUG = re.compile(r"^[a-z0-9-]{1,40}$")


def test_clean_branch_names_are_kept():
    assert branch_slug("feature-x") == "feature-x"
    assert branch_slug("refs/heads/fix-1") == "fix-1"


def test_lossy_names_end_in_a_hash_of_the_full_name():
    slug = branch_slug("feature/Add-GPU")
    assert re.fullmatch(r"feature-add-gpu-[0-9a-f]{8}", slug)
    assert branch_slug("Feature") != branch_slug("feature")
    long = "a" * 60
    assert len(branch_slug(long)) <= 40 and branch_slug(long) != branch_slug(long + "b")


def test_a_preview_never_gets_the_production_slug():
    assert branch_slug("main") != "main"
    assert Scope.for_branch("main", default_branch="master").slug != "main"


def test_hostile_names_give_valid_slugs():
    for name in ["$(rm -rf /)", "`id`", "a\nb::error::x", "日本語", "--", "x" * 250, "'\"; DROP"]:
        assert SLUG.match(branch_slug(name)), name


def test_names_that_look_hashed_do_not_collide_with_lossy_slugs():
    lossy = branch_slug("Feature")
    assert branch_slug(lossy) != lossy


@settings(max_examples=400, deadline=None)
@given(st.text(min_size=1, max_size=80), st.text(min_size=1, max_size=80))
def test_slugs_are_valid_stable_and_injective(a, b):
    sa, sb = branch_slug(a), branch_slug(b)
    assert SLUG.match(sa) and not sa.startswith("-") and not sa.endswith("-")
    assert sa == branch_slug(a)
    if a.removeprefix("refs/heads/") != b.removeprefix("refs/heads/"):
        assert sa != sb


def test_scopes_names_and_tags():
    main = Scope.for_branch("main", default_branch="main")
    assert main.is_main and deployment_name("train", main) == "train/main"
    preview = Scope.for_branch("feature/x", default_branch="main", pr=7)
    assert deployment_name("train", preview) == f"train/{preview.slug}"
    tags = deployment_tags(preview, "a" * 40, gpu=True, extra=["team:vision"])
    assert tags == ["flowship", "scope:preview", f"branch:{preview.slug}", "pr:7", f"sha:{'a' * 12}", "gpu", "team:vision"]
    assert Scope.from_json(preview.to_json()) == preview
