"""Images: content-addressed deps images and a thin code image per commit.

`inputs` is pure (the planner uses it); `build` talks to Docker and the
registry. Planning imports this package for `inputs`, so `build` (with the
HTTP and registry clients it brings, about 0.15 s) is imported only when one
of its names is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from flowship.images.inputs import deps_tag, family_inputs
from flowship.images.render import CODE_DIR

if TYPE_CHECKING:
    from flowship.images.build import BuildResult, FamilyImages, build_images

_FROM_BUILD = frozenset({"BuildResult", "FamilyImages", "build_images"})

__all__ = ["CODE_DIR", "BuildResult", "FamilyImages", "build_images", "deps_tag", "family_inputs"]


def __getattr__(name: str) -> Any:
    if name in _FROM_BUILD:
        return getattr(importlib.import_module("flowship.images.build"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
