"""Image families and their Dockerfiles, rendered from jinja2 templates.

A family is a Dockerfile template plus what it installs: the built-in
`base` and `ml` ship in `templates/`, and `[tool.flowship.images.<name>]`
overrides their parameters, adds requirements and context files, or names a
template of the repository's own (a new family, or a replacement). Pure: no
docker, no git; files come in through a `read(path)` callable, so the same
code renders a family at any commit.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from flowship.config import Config, ImageFamily
from flowship.errors import InputError
from flowship.globs import glob_match

Reader = Callable[[str], bytes | None]

# Where the deps image keeps requirements/context files and the code image the repository.
DEPS_DIR = "/opt/flowship/deps"
CODE_DIR = "/opt/flowship/code"  # WORKDIR of code images: Prefect entrypoints `flows/x.py:fn` resolve here
RUNTIME_DIR = "/opt/flowship/runtime"  # flowship's declaration API, on PYTHONPATH after the code
# What a code image sets, whichever way it is made (a docker build or the registry API).
CODE_ENV = {"PYTHONPATH": f"{CODE_DIR}:{RUNTIME_DIR}"}
DOCKERFILE = "flowship.Dockerfile"  # its name inside the build context (never clashes with a repo file)
GLOB_CHARS = set("*?[")

# Built-in families: template file and default parameters (pinned, overridable).
BUILTIN: dict[str, tuple[str, dict[str, str]]] = {
    "base": (
        "base.Dockerfile.j2",
        {
            "base_image": "python:3.11-slim-bookworm",
            "prefect_version": "3.9.1",
            "prefect_aws_version": "0.7.12",
        },
    ),
    "ml": (
        "ml.Dockerfile.j2",
        {
            "base_image": "nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04",
            "torch_version": "2.13.0",
            "torch_index": "https://download.pytorch.org/whl/cu128",
            "prefect_version": "3.9.1",
            "prefect_aws_version": "0.7.12",
            "nvidia_ml_py_version": "13.615.71",  # NVML for flowship.gpu's sampler
        },
    ),
}


@dataclass(frozen=True)
class FamilySpec:
    """One family, resolved: the template's source and everything it is rendered with."""

    name: str
    template: str  # jinja2 source
    template_path: str | None  # repo-relative when the repository provides it
    requirements: tuple[str, ...]
    context: tuple[str, ...]  # globs
    args: Mapping[str, str] = field(default_factory=dict)
    platform: str = "linux/amd64"

    @property
    def origin(self) -> str:
        return self.template_path or f"flowship's built-in {self.name} template"


def builtin_template(name: str) -> str:
    return resources.files("flowship.images").joinpath("templates", name).read_text(encoding="utf-8")


def resolve_family(config: Config, family: str, read: Reader) -> FamilySpec:
    """The family `family` as configured; InputError when it has no template."""
    declared = config.images.get(family) or ImageFamily(name=family)
    builtin = BUILTIN.get(family)
    if declared.template:
        source = read(declared.template)
        if source is None:
            raise InputError(
                f"the template of image family {family!r} does not exist at the planned commit.",
                file=declared.template,
            )
        template, template_path = source.decode("utf-8"), declared.template
        defaults: dict[str, str] = {}
    elif builtin:
        template, template_path = builtin_template(builtin[0]), None
        defaults = dict(builtin[1])
    else:
        raise InputError(
            f"image family {family!r} is not built in ({', '.join(BUILTIN)}) and has no template: "
            f"add `template = \"path/to/Dockerfile.j2\"` under [tool.flowship.images.{family}] in pyproject.toml."
        )
    return FamilySpec(
        name=family,
        template=template,
        template_path=template_path,
        requirements=declared.requirements,
        context=declared.context,
        args=defaults | dict(declared.args),
        platform=declared.platform,
    )


def expand_context(spec: FamilySpec, files: Iterable[str] | None) -> list[str]:
    """The context globs matched against the commit's files (sorted, without duplicates).

    A pattern without glob characters is a file or a directory. With `files`
    unknown (None), only plain file paths can be expanded.
    """
    listing = sorted(files) if files is not None else None
    found: list[str] = []
    for pattern in spec.context:
        pattern = pattern.strip("/")
        if listing is None:
            if GLOB_CHARS & set(pattern):
                raise InputError(
                    f"image family {spec.name!r}: context glob {pattern!r} needs the commit's file list to expand."
                )
            found.append(pattern)
            continue
        matched = [f for f in listing if glob_match(pattern, f)]
        if not matched:
            raise InputError(f"image family {spec.name!r}: context {pattern!r} matches no file at the planned commit.")
        found.extend(matched)
    return sorted(dict.fromkeys(found))


def deps_files(spec: FamilySpec, read: Reader, files: Iterable[str] | None) -> dict[str, bytes]:
    """Every file the deps build copies in (requirements, then context): path -> bytes."""
    out: dict[str, bytes] = {}
    for path in [*spec.requirements, *expand_context(spec, files)]:
        path = path.strip("/")
        if path in out:
            continue
        data = read(path)
        if data is None:
            raise InputError(
                f"image family {spec.name!r} needs {path}, which does not exist at the planned commit.",
                file=path,
            )
        out[path] = data
    return out


def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,  # a missing parameter is an error, never an empty string
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["shquote"] = lambda value: shlex.quote(str(value))
    return env


def _render(source: str, origin: str, family: str, variables: Mapping[str, object]) -> str:
    import jinja2

    try:
        return _environment().from_string(source).render(**variables)
    except jinja2.UndefinedError as exc:
        raise InputError(
            f"image family {family!r}: {origin} uses a parameter that is not set ({exc.message}); "
            f"set it under [tool.flowship.images.{family}.args]."
        ) from None
    except jinja2.TemplateError as exc:
        line = getattr(exc, "lineno", None)
        raise InputError(f"image family {family!r}: {origin} is not a valid template: {exc}.", line=line) from None


def render_deps(spec: FamilySpec, files: Mapping[str, bytes]) -> str:
    """The deps image's Dockerfile; `files` are those `deps_files` returned."""
    requirements = [r.strip("/") for r in spec.requirements]
    context = [f for f in files if f not in requirements]
    variables = {
        **spec.args,
        "family": spec.name,
        "requirements": requirements,
        "context": context,
        "deps_dir": DEPS_DIR,
        "code_dir": CODE_DIR,
    }
    return _render(spec.template, spec.origin, spec.name, variables)


def render_code(deps_ref: str) -> str:
    """The code image's Dockerfile: FROM the deps image, plus the repository."""
    return _render(
        builtin_template("code.Dockerfile.j2"), "flowship's code template", "code",
        {"deps_ref": deps_ref, "code_dir": CODE_DIR, "runtime_dir": RUNTIME_DIR, "env": CODE_ENV},
    )
