"""Build and push what a plan's `images` ask for: a deps image per family when
its content hash is new, and a thin code image per family and commit.

Deps images are docker builds. A code image is made through the registry's
API on top of the deps image there (images/append.py: nothing is pulled and
no Docker daemon is needed), or, with `code_via="docker"`, built `FROM` it.

One family failing (a broken requirement, a registry that cannot be asked)
is recorded and the others go on; the caller decides what that means for
the flows that need it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from flowship import console
from flowship.config import Config
from flowship.errors import FlowshipError
from flowship.images import render, source
from flowship.images.inputs import deps_tag as compute_deps_tag
from flowship.images.registry import Registry, open_registry
from flowship.plan import Plan

if TYPE_CHECKING:  # the docker SDK stays off the planning path
    from flowship.images.daemon import Daemon


@dataclass(frozen=True)
class FamilyImages:
    """What happened to one family's two images."""

    family: str
    deps_tag: str
    code_tag: str
    ref: str  # the code image, by digest
    deps_built: bool
    code_built: bool
    code_via: str | None = None  # "registry" or "docker" when code_built
    code_sent: int | None = None  # bytes the registry API uploaded for the code image (None: docker's push)


@dataclass
class BuildResult:
    refs: dict[str, str] = field(default_factory=dict)  # family -> registry/repo@sha256:...
    failed: dict[str, str] = field(default_factory=dict)  # family -> reason
    images: dict[str, FamilyImages] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def built(self) -> list[str]:
        """Tags built (and pushed) by this run, deps before code."""
        tags: list[str] = []
        for image in self.images.values():
            tags += [image.deps_tag] if image.deps_built else []
            tags += [image.code_tag] if image.code_built else []
        return tags

    def to_json(self) -> dict[str, Any]:
        return {"images": dict(self.refs), "failed": dict(self.failed)}


def build_images(
    config: Config, plan: Plan, *, force: bool = False, client: Any = None,
    code_via: Literal["registry", "docker"] = "registry",
) -> BuildResult:
    """Build and push the images `plan` needs; `force` rebuilds even what the registry has.

    `client` is a docker SDK `DockerClient` (default: `docker.from_env()`),
    asked for only when something is built with docker. `code_via="docker"`
    builds code images `FROM` the deps image (pulling it where it is absent).
    """
    result = BuildResult()
    families = list(dict.fromkeys(image.name for image in plan.images))  # each family once per commit
    if not families:
        return result
    code_tags = {image.name: image.tag for image in plan.images}
    planned_deps = {image.name: image.deps_tag for image in plan.images}
    try:
        commit = source.Commit.at(config.root, plan.head)
        registry = open_registry(config)
        docker = _Docker(client, registry.credentials())
    except FlowshipError as exc:
        if exc.exit_code != 1:
            raise  # bad configuration: a usage error, not a failed build
        for family in families:
            result.failed[family] = str(exc)
        return result
    for family in families:
        try:
            with console.group(f"image {family}"):
                result.images[family] = _build_family(
                    config, family, commit, registry, docker,
                    code_tag=code_tags[family] or f"{family}-{commit.sha}",
                    planned_deps=planned_deps[family], force=force, code_via=code_via,
                )
            result.refs[family] = result.images[family].ref
        except FlowshipError as exc:  # a bad template too: it fails its own family only
            result.failed[family] = str(exc)
            console.info(f"image {family} failed: {exc}")  # callers annotate it, once
    return result


class _Docker:
    """The daemon, started and signed in on first use: a code-only commit never needs it."""

    def __init__(self, client: Any, credentials: dict[str, str] | None):
        self.client = client
        self.credentials = credentials
        self._daemon: Daemon | None = None
        self.auth: dict[str, str] | None = None

    @property
    def daemon(self) -> Daemon:
        if self._daemon is None:
            from flowship.images.daemon import Daemon

            daemon = Daemon(self.client)
            self.auth = daemon.login(self.credentials)
            self._daemon = daemon
        return self._daemon


def _build_family(
    config: Config, family: str, commit: source.Commit, registry: Registry, docker: _Docker, *,
    code_tag: str, planned_deps: str | None, force: bool, code_via: str,
) -> FamilyImages:
    remote = registry.remote
    spec = render.resolve_family(config, family, commit.read)
    files = render.deps_files(spec, commit.read, commit.files)
    deps = compute_deps_tag(config, family, commit.read, commit.files)
    if planned_deps and planned_deps != deps:
        console.warning(f"image {family}: the plan named {planned_deps}, but commit {commit.sha[:12]} gives {deps}; building {deps}.")

    deps_digest = None if force else registry.lookup(deps)
    deps_built = deps_digest is None
    if deps_built:
        console.info(f"{remote.tagged(deps)}: {'forced rebuild' if force else 'not in the registry'}; building it")
        dockerfile = render.render_deps(spec, files)
        docker.daemon.build(
            source.deps_context(files, dockerfile, render.DOCKERFILE), remote.tagged(deps),
            dockerfile=render.DOCKERFILE, platform=spec.platform,
            labels={"dev.flowship.family": family, "dev.flowship.deps": deps},
        )
        deps_digest = docker.daemon.push(remote, deps, docker.auth)
    else:
        console.info(f"{remote.tagged(deps)}: in the registry ({deps_digest}); not rebuilt")
    assert deps_digest is not None  # pushed above, or found in the registry

    code_digest = None if (force or deps_built) else registry.lookup(code_tag)
    if code_digest is not None:
        console.info(f"{remote.tagged(code_tag)}: in the registry ({code_digest}); not rebuilt")
        return FamilyImages(family, deps, code_tag, remote.by_digest(code_digest), deps_built, False)
    labels = {
        "dev.flowship.family": family, "dev.flowship.deps": deps, "org.opencontainers.image.revision": commit.sha,
    }
    if code_via == "registry":
        from flowship.images.append import append_code_image

        # The deps image is in the registry now (found there, or just pushed): extend it there.
        appended = append_code_image(
            remote, docker.credentials, commit, deps_digest=deps_digest, tag=code_tag,
            platform=spec.platform, labels=labels,
        )
        return FamilyImages(
            family, deps, code_tag, remote.by_digest(appended.digest), deps_built, True, "registry", appended.sent,
        )
    # FROM the deps image by its tag: the tag is a content hash, so it names
    # one build of these inputs (and a pull, on a fresh runner, needs no digest).
    dockerfile = render.render_code(remote.tagged(deps))
    docker.daemon.build(
        source.code_context(commit, dockerfile, render.DOCKERFILE), remote.tagged(code_tag),
        dockerfile=render.DOCKERFILE, platform=spec.platform, labels=labels,
    )
    code_digest = docker.daemon.push(remote, code_tag, docker.auth)
    return FamilyImages(family, deps, code_tag, remote.by_digest(code_digest), deps_built, True, "docker")
