"""The code image through the registry's HTTP API: the deps image is never pulled.

What `crane append`, ko and Jib do. The code layer (`source.code_layer`: the
files the code Dockerfile COPYs, at the same paths) is uploaded as one blob,
and a new config and manifest are written that extend the deps image's: its
layers plus this one, its config plus the code Dockerfile's WORKDIR, ENV and
labels. A fresh CI runner then moves kilobytes for a code-only commit instead
of pulling the deps image's gigabytes, and needs no Docker daemon.

Nothing read is trusted by name: a manifest or config must hash to the digest
it was asked by. Every blob written is named by the sha256 of its bytes (the
registry checks that too), and the tag is read back to be the manifest sent.
python-dxf speaks the protocol (Basic auth for ECR, bearer tokens elsewhere);
it is imported here and only when a code image is made, so planning never
loads it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from flowship import console
from flowship.errors import FlowshipError
from flowship.images import render, source
from flowship.images.registry import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, Remote

# A manifest's layers keep its family of media types (Docker's or OCI's).
LAYER_TYPES = {
    DOCKER_MANIFEST: "application/vnd.docker.image.rootfs.diff.tar.gzip",
    OCI_MANIFEST: "application/vnd.oci.image.layer.v1.tar+gzip",
}
INDEX_TYPES = (DOCKER_LIST, OCI_INDEX)
# Part of every code layer's digest: changing it changes every commit's image.
GZIP_LEVEL = 6
TIMEOUT = 300  # seconds per request: a large code layer on a slow link
# Fields of the deps config that describe the container its last step ran in, not the image.
_BUILD_CONTAINER = ("container", "container_config")


@dataclass(frozen=True)
class Layer:
    blob: bytes  # the gzipped tar: what is uploaded
    digest: str  # sha256 of `blob`: its name in the registry and the manifest
    diff_id: str  # sha256 of the tar itself: what the image config lists

    @classmethod
    def of(cls, tar: bytes) -> Layer:
        # mtime 0 in the gzip header: the same tar gives the same blob.
        blob = gzip.compress(tar, compresslevel=GZIP_LEVEL, mtime=0)
        return cls(blob, sha256(blob), sha256(tar))


@dataclass(frozen=True)
class Appended:
    digest: str  # the code image's manifest
    layer_size: int  # bytes of the code layer blob
    sent: int  # bytes uploaded: the blobs the registry lacked, and the manifest
    received: int  # bytes read: the deps manifest (and index) and its config


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def append_code_image(
    remote: Remote, credentials: Mapping[str, str] | None, commit: source.Commit, *,
    deps_digest: str, tag: str, platform: str, labels: Mapping[str, str],
) -> Appended:
    """Write `remote:tag`: the deps image `deps_digest` plus `commit`'s code layer."""
    layer = Layer.of(source.code_layer(commit, code_dir=render.CODE_DIR, runtime_dir=render.RUNTIME_DIR))
    deps_ref = remote.by_digest(deps_digest)
    with _Session(remote, credentials) as session:
        manifest, media_type, received = session.image_manifest(deps_digest, platform)
        described = manifest.get("config") or {}
        config_raw = session.blob(str(described.get("digest")), described.get("size"), f"the config of {deps_ref}")
        received += len(config_raw)
        config = extend_config(
            _json_object(config_raw, f"the config of {deps_ref}"), layer.diff_id, platform=platform,
            deps_ref=deps_ref, labels=labels, created=commit.committed(),
            created_by=f"flowship: the code of commit {commit.sha} and flowship's runtime, appended by the registry API",
        )
        config_blob = _canonical(config)
        sent = session.put_blob(layer.blob, layer.digest) + session.put_blob(config_blob, sha256(config_blob))
        image = dict(manifest)
        image["mediaType"] = media_type  # optional in OCI; set so the tag says what it is
        image["config"] = {**described, "digest": sha256(config_blob), "size": len(config_blob)}
        image["layers"] = [*manifest.get("layers", []), {
            "mediaType": LAYER_TYPES[media_type], "size": len(layer.blob), "digest": layer.digest,
        }]
        manifest_raw = _canonical(image)
        sent += session.put_manifest(tag, manifest_raw, media_type)
    appended = Appended(sha256(manifest_raw), len(layer.blob), sent, received)
    console.info(
        f"pushed {remote.by_digest(appended.digest)} through the registry API: code layer {len(layer.blob):,} bytes, "
        f"{appended.sent:,} bytes sent, {appended.received:,} read; {deps_ref} was not pulled"
    )
    return appended


def extend_config(
    config: dict[str, Any], diff_id: str, *, platform: str, deps_ref: str, labels: Mapping[str, str],
    created: str, created_by: str,
) -> dict[str, Any]:
    """The deps image's config as the code Dockerfile leaves it: `WORKDIR`, `ENV`
    and labels as docker build sets them, one more layer, the rest inherited."""
    os_name, _, arch = platform.partition("/")
    arch = arch.partition("/")[0]
    if (config.get("os"), config.get("architecture")) != (os_name, arch):
        raise FlowshipError(
            f"{deps_ref} is built for {config.get('os')}/{config.get('architecture')}, not {platform}, "
            "the platform of its image family; rebuild it with --force-rebuild."
        )
    out = {k: v for k, v in config.items() if k not in _BUILD_CONTAINER}
    runtime = dict(config.get("config") or {})
    env = list(runtime.get("Env") or [])
    for name, value in render.CODE_ENV.items():
        # ENV replaces a variable where it stands, else adds it last (as docker build does).
        at = next((i for i, item in enumerate(env) if item.partition("=")[0] == name), None)
        if at is None:
            env.append(f"{name}={value}")
        else:
            env[at] = f"{name}={value}"
    runtime["Env"] = env
    runtime["WorkingDir"] = render.CODE_DIR
    runtime["Labels"] = {**(runtime.get("Labels") or {}), **labels}
    out["config"] = runtime
    out["created"] = created
    rootfs = dict(config.get("rootfs") or {"type": "layers"})
    rootfs["diff_ids"] = [*rootfs.get("diff_ids", []), diff_id]
    out["rootfs"] = rootfs
    out["history"] = [*config.get("history", []), {"created": created, "created_by": created_by}]
    return out


def _canonical(document: Mapping[str, Any]) -> bytes:
    # ASCII and no spaces: the bytes (so the digest) depend on the content alone.
    return json.dumps(document, separators=(",", ":"), ensure_ascii=True).encode()


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(raw)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise FlowshipError(f"{what} is not a JSON object; refusing to build on it.")
    return document


class _Session:
    """One registry repository through python-dxf, its errors turned into sentences."""

    def __init__(self, remote: Remote, credentials: Mapping[str, str] | None):
        import dxf

        self.remote = remote
        self.signs_in = bool(credentials)

        def sign_in(client: dxf.DXFBase, response: Any) -> None:
            assert credentials  # only passed to python-dxf when there are some
            client.authenticate(credentials["username"], credentials["password"], response=response)

        self.client = dxf.DXF(
            remote.host, remote.repository, auth=sign_in if credentials else None,
            insecure=remote.plain_http, timeout=TIMEOUT,
        )

    def __enter__(self) -> _Session:
        self.client.__enter__()  # one HTTP session: the connection is kept between requests
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.__exit__(*exc)

    def image_manifest(self, digest: str, platform: str) -> tuple[dict[str, Any], str, int]:
        """The image manifest `digest` names (through an index, the `platform` entry):
        the manifest, its media type and the bytes read."""
        manifest, media_type, raw = self.manifest(digest)
        received = len(raw)
        if media_type in INDEX_TYPES:
            entry = _platform_entry(manifest, platform, self.remote.by_digest(digest))
            manifest, media_type, raw = self.manifest(str(entry.get("digest")))
            received += len(raw)
        if media_type not in LAYER_TYPES:
            raise FlowshipError(
                f"{self.remote.by_digest(digest)} is a {media_type or 'manifest without a media type'}, "
                "not an image manifest flowship can extend; rebuild it with --force-rebuild."
            )
        return manifest, media_type, received

    def manifest(self, digest: str) -> tuple[dict[str, Any], str, bytes]:
        ref = self.remote.by_digest(digest)
        with self._asking(f"read {ref}", absent=f"{ref} is not in the registry, though it was listed there"):
            _, response = self.client.get_manifest_and_response(digest)
        raw: bytes = response.content
        if sha256(raw) != digest:
            raise FlowshipError(f"the registry answered for {ref} with a manifest of another digest; refusing to build on it.")
        manifest = _json_object(raw, f"the manifest of {ref}")
        media_type = manifest.get("mediaType") or response.headers.get("Content-Type", "").partition(";")[0]
        return manifest, str(media_type), raw

    def blob(self, digest: str, size: object, what: str) -> bytes:
        from dxf import exceptions

        with self._asking(f"read {what}", absent=f"{what} ({digest}) is not in the registry"):
            try:
                chunks = cast(Iterable[bytes], self.client.pull_blob(digest))  # size=False: the chunks alone
                data = b"".join(chunks)  # python-dxf checks the sha256 as it reads
            except exceptions.DXFDigestMismatchError:
                raise FlowshipError(f"the registry sent {what} with another digest than {digest}; refusing to build on it.") from None
        if size is not None and len(data) != size:
            raise FlowshipError(f"{what} is {len(data)} bytes, not the {size} its manifest says; refusing to build on it.")
        return data

    def put_blob(self, data: bytes, digest: str) -> int:
        """Upload `data` (named `digest`) unless the registry has it; the bytes sent."""
        assert digest == sha256(data)
        with self._asking(f"upload {digest}"):
            if self._has_blob(digest):
                return 0
            # bytes, not chunks: a body that can be sent again if a sign-in asks for a retry
            self.client.push_blob(data=data, digest=digest, check_exists=False)  # type: ignore[arg-type]
        return len(data)

    def _has_blob(self, digest: str) -> bool:
        import requests

        try:
            self.client.blob_size(digest)
        except requests.HTTPError as exc:
            if exc.response is not None and exc.response.status_code == 404:
                return False
            raise
        return True

    def put_manifest(self, tag: str, raw: bytes, media_type: str) -> int:
        ref = self.remote.tagged(tag)
        with self._asking(f"write {ref}"):
            self.client.set_manifest(tag, raw.decode("ascii"))
            stored, _ = self.client.head_manifest_and_response(tag)
        if stored != sha256(raw):
            raise FlowshipError(f"{ref} points at {stored}, not the manifest flowship wrote ({sha256(raw)}).")
        return len(raw)

    @contextmanager
    def _asking(self, what: str, *, absent: str | None = None) -> Iterator[None]:
        import requests
        from dxf import exceptions

        host = self.remote.host
        try:
            yield
        except exceptions.DXFUnauthorizedError:
            if self.signs_in:
                raise FlowshipError(f"the registry {host} refused flowship's credentials to {what}.") from None
            raise FlowshipError(
                f"the registry {host} asks for credentials to {what}; flowship signs in only to ECR "
                "(set tool.flowship.ecr-repository)."
            ) from None
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status == 404 and absent:
                raise FlowshipError(f"{absent}; rebuild it with --force-rebuild.") from None
            raise FlowshipError(f"the registry {host} answered HTTP {status} when asked to {what}.") from None
        except (requests.RequestException, exceptions.DXFError) as exc:
            raise FlowshipError(f"could not {what} at the registry {host}: {exc}.") from None


def _platform_entry(index: Mapping[str, Any], platform: str, ref: str) -> Mapping[str, Any]:
    """The index's entry for `platform` (`os/arch[/variant]`); a variant counts only when both name one."""
    os_name, _, rest = platform.partition("/")
    arch, _, variant = rest.partition("/")
    for entry in index.get("manifests") or []:
        named = entry.get("platform") or {}
        if (named.get("os"), named.get("architecture")) == (os_name, arch) and (
            not variant or not named.get("variant") or named.get("variant") == variant
        ):
            return dict(entry)
    raise FlowshipError(f"{ref} is a multi-platform index with no {platform} image, the platform of its image family.")
