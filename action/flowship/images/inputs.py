"""What an image family's deps image is made of, and its content-addressed tag.

The planner calls these (no docker here): `family_inputs` says which files
make a family's deps image change, and `deps_tag` names the deps image by a
hash of everything its build sees, so an unchanged tag means an image that
is already built (and, when the registry has it, pushed).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping

from flowship.config import Config, ImageFamily
from flowship.images.render import Reader, deps_files, render_deps, resolve_family

# Bump when what goes into a deps build changes in a way the inputs below do not show.
RECIPE = 1
HASH_LEN = 16  # hex characters of sha256 in the tag: 64 bits


def family_inputs(config: Config, family: str) -> list[str]:
    """Repo-relative globs whose change changes `family`'s deps image.

    The repository's own template (a built-in one changes only with flowship),
    the requirements files and the context globs. `pyproject.toml` (the
    family's args and platform) is a flowship-configuration input the planner
    already treats as affecting everything.
    """
    declared = config.images.get(family) or ImageFamily(name=family)
    inputs = [declared.template] if declared.template else []
    inputs += [*declared.requirements, *declared.context]
    return [p.strip("/") for p in dict.fromkeys(inputs)]


def deps_tag(config: Config, family: str, read: Reader, files: Iterable[str] | None = None) -> str:
    """`<family>-deps-<hash>`; `read(path)` gives a file's bytes at the planned commit (None if missing).

    The hash covers the rendered Dockerfile (so the template and its
    parameters), every requirements/context file's bytes, the build args and
    the target platform. `files` (the commit's file list) is needed only to
    expand context globs; plain paths work without it.
    """
    spec = resolve_family(config, family, read)
    inputs = deps_files(spec, read, files)
    dockerfile = render_deps(spec, inputs)
    return f"{family}-deps-{_digest(family, dockerfile, inputs, spec.args, spec.platform)}"


def _digest(family: str, dockerfile: str, inputs: dict[str, bytes], args: Mapping[str, str], platform: str) -> str:
    document = {
        "recipe": RECIPE,
        "family": family,
        "dockerfile": dockerfile,
        "files": {path: hashlib.sha256(data).hexdigest() for path, data in sorted(inputs.items())},
        "args": dict(sorted(args.items())),
        "platform": platform,
    }
    blob = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:HASH_LEN]
