"""A real Docker daemon, a real local registry and a local Python base image.

Nothing can be pulled from outside on these machines, so the base image the
`base` family builds FROM in tests is made here: the host's own CPython (the
interpreter running the tests), its standard library and the installed
distributions of pip, prefect and prefect-aws, plus the shared libraries they
link against (found with `ldd`), `docker import`ed as one layer. The image
sets PIP_NO_INDEX=1, so a build that would download anything fails loudly
instead of reaching the network; `pip install prefect==<same version>` in the
real `base` template is then an offline "already satisfied".

The registry is Debian's `docker-registry` (distribution 2.x) with a config of
our own (the packaged one demands htpasswd auth) on a free loopback port.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from testing.servers import Server, free_port, require_or_skip, wait_http

REGISTRY_BIN = "/usr/bin/docker-registry"
BASE_REPOSITORY = "flowship-test/python"
# Bump when the rootfs recipe changes, so a cached image is not reused.
RECIPE = "5"
# Distributions the test base image carries (with their dependencies).
BASE_DISTRIBUTIONS = ("pip", "prefect", "prefect-aws")
_STDLIB_SKIP = {"site-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "__pycache__"}


def docker_client():
    """A client for a running daemon, starting `dockerd` as setup.sh does when root; None if impossible."""
    import docker

    def ping():
        try:
            client = docker.from_env(timeout=300)
            client.ping()
            return client
        except Exception:
            return None

    client = ping()
    if client is None and os.geteuid() == 0 and shutil.which("dockerd"):
        log = open("/var/log/flowship-dockerd.log", "ab")
        subprocess.Popen(["dockerd", "--iptables=false"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while client is None and time.monotonic() < deadline:
            time.sleep(0.5)
            client = ping()
    return client


@dataclass
class LocalRegistry:
    """A running `docker-registry`; `host` is what image references start with."""

    server: Server
    host: str  # 127.0.0.1:PORT
    storage: Path

    @property
    def url(self) -> str:
        return self.server.url

    def blobs(self) -> dict[str, int]:
        """Every blob the registry stores, digest -> bytes: what pushes uploaded."""
        root = self.storage / "docker/registry/v2/blobs/sha256"
        if not root.is_dir():
            return {}
        return {p.parent.name: p.stat().st_size for p in root.glob("*/*/data")}

    def tags(self, repository: str) -> list[str]:
        import json
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.url}/v2/{repository}/tags/list", timeout=10) as resp:
                return sorted(json.load(resp).get("tags") or [])
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return []
            raise

    def manifest(self, repository: str, reference: str) -> tuple[bytes, str]:
        """The manifest bytes and its media type, as a pull would see them."""
        import urllib.request

        request = urllib.request.Request(
            f"{self.url}/v2/{repository}/manifests/{reference}",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.read(), resp.headers["Content-Type"]

    def put_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        """Store a manifest (an index, say) as another client would; returns its digest."""
        import urllib.request

        request = urllib.request.Request(
            f"{self.url}/v2/{repository}/manifests/{reference}", data=body, method="PUT",
            headers={"Content-Type": media_type},
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.headers["Docker-Content-Digest"]

    def delete_manifest(self, repository: str, digest: str) -> None:
        """Remove a manifest (and so every tag on it): the registry no longer has that image."""
        import urllib.request

        request = urllib.request.Request(f"{self.url}/v2/{repository}/manifests/{digest}", method="DELETE")
        urllib.request.urlopen(request, timeout=10).close()


def start_registry(workdir: Path, *, access_log: bool = False) -> LocalRegistry:
    """`access_log`: one line per request in `server.log`, with the bytes each answer carried
    (what the benchmark counts pulls with)."""
    if not os.access(REGISTRY_BIN, os.X_OK):
        raise FileNotFoundError(REGISTRY_BIN)
    port = free_port()
    storage = workdir / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    config = workdir / "config.yml"
    # Our own config: no auth, our storage, loopback only (Docker needs no TLS there).
    config.write_text(
        "version: 0.1\n"
        f"log:\n  level: warn\n  accesslog:\n    disabled: {'false' if access_log else 'true'}\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    log = workdir / "registry.log"
    proc = subprocess.Popen(
        [REGISTRY_BIN, "serve", str(config)], stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    if not wait_http(f"{url}/v2/", 30, proc):
        proc.kill()
        raise RuntimeError(f"docker-registry did not start:\n{log.read_text()[-3000:]}")
    return LocalRegistry(Server(proc, url, log), f"127.0.0.1:{port}", storage)


# --- the local Python base image -------------------------------------------------


def _closure(names: tuple[str, ...]) -> dict[str, md.Distribution]:
    """The installed distributions `names` need, dependencies included (markers evaluated)."""
    from packaging.requirements import Requirement

    seen: dict[str, md.Distribution] = {}
    walked: set[tuple[str, str]] = set()  # (distribution, extra): extras add requirements

    def walk(name: str, extras: tuple[str, ...]) -> None:
        key = re.sub(r"[-_.]+", "-", name).lower()
        todo = [e for e in ("", *extras) if (key, e) not in walked]
        if not todo:
            return
        try:
            dist = seen.get(key) or md.distribution(name)
        except md.PackageNotFoundError:
            return  # an optional dependency not installed here
        seen[key] = dist
        walked.update((key, e) for e in todo)
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in todo):
                continue
            if not req.marker and "" not in todo:
                continue  # already walked with the plain requirements
            walk(req.name, tuple(req.extras))

    for name in names:
        walk(name, ())
    return seen


def _base_key(dists: dict[str, md.Distribution]) -> str:
    digest = hashlib.sha256(f"{RECIPE}|{sys.version}|{os.path.realpath(sys.executable)}".encode())
    for key in sorted(dists):
        digest.update(f"|{key}=={dists[key].version}".encode())
    return digest.hexdigest()[:16]


def _shared_libraries(files: list[str]) -> set[str]:
    """Every shared library the ELF files need, by the path the loader found it at (ldd)."""
    libs: set[str] = set()
    for start in range(0, len(files), 200):
        out = subprocess.run(["ldd", *files[start:start + 200]], capture_output=True, text=True).stdout
        for line in out.splitlines():
            match = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
            if match:
                libs.add(match.group(1))
    return libs


def _write_rootfs(tar_path: Path, dists: dict[str, md.Distribution]) -> None:
    exe = Path(os.path.realpath(sys.executable))  # the venv's python -> the real interpreter
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    libpython = Path(sysconfig.get_config_var("LIBDIR") or "") / (sysconfig.get_config_var("INSTSONAME") or "")
    dest_lib = f"usr/local/lib/{version}"

    def skip(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = Path(info.name).parts
        if len(parts) > 4 and parts[4] in _STDLIB_SKIP and parts[3] == version:
            return None
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    elf: list[str] = [str(exe), "/bin/dash"]
    with tarfile.open(tar_path, "w") as tar:
        for d in ("tmp", "root", "etc", "usr/local/bin", f"{dest_lib}/site-packages"):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        tar.add(exe, f"usr/local/bin/{version}")
        for alias in ("python3", "python"):
            info = tarfile.TarInfo(f"usr/local/bin/{alias}")
            info.type = tarfile.SYMTYPE
            info.linkname = version
            tar.addfile(info)
        tar.add("/bin/dash", "bin/sh")
        tar.add(stdlib, dest_lib, filter=skip)
        elf += [str(p) for p in (stdlib / "lib-dynload").glob("*.so")]
        if libpython.is_file():
            # A shared-library build: put libpython where the loader looks by default.
            tar.add(libpython, f"usr/lib/x86_64-linux-gnu/{libpython.name}")
        site = Path(sysconfig.get_paths()["purelib"])
        for dist in dists.values():
            for file in dist.files or []:
                src = Path(dist.locate_file(file))
                try:
                    rel = src.resolve().relative_to(site.resolve())
                except ValueError:
                    continue  # console scripts under bin/: not needed
                if src.is_file():
                    tar.add(src, f"{dest_lib}/site-packages/{rel}", recursive=False)
                    if src.suffix == ".so" or ".so." in src.name:
                        elf.append(str(src))
        for lib in sorted(_shared_libraries(elf)):
            # Dereferenced: a symlink chain would cross the host's merged /lib -> /usr/lib.
            info = tar.gettarinfo(os.path.realpath(lib), lib.lstrip("/"))
            info.uid = info.gid = 0
            with open(lib, "rb") as data:
                tar.addfile(info, data)
        passwd = b"root:x:0:0:root:/root:/bin/sh\n"
        info = tarfile.TarInfo("etc/passwd")
        info.size = len(passwd)
        import io

        tar.addfile(info, io.BytesIO(passwd))


def python_base_image(client) -> str:
    """`flowship-test/python:<key>`, built once per daemon (cached by the content it carries)."""
    import docker

    dists = _closure(BASE_DISTRIBUTIONS)
    ref = f"{BASE_REPOSITORY}:{_base_key(dists)}"
    try:
        client.images.get(ref)
        return ref
    except docker.errors.ImageNotFound:
        pass
    with tempfile.TemporaryDirectory(prefix="flowship-rootfs-") as tmp:
        tar_path = Path(tmp) / "rootfs.tar"
        _write_rootfs(tar_path, dists)
        repository, tag = ref.split(":")
        client.api.import_image_from_file(
            str(tar_path), repository=repository, tag=tag,
            changes=[
                "ENV PATH=/usr/local/bin:/usr/bin:/bin",
                "ENV PIP_NO_INDEX=1",
                'CMD ["python3"]',
            ],
        )
    client.images.get(ref)
    return ref


# --- fixtures --------------------------------------------------------------------


@pytest.fixture(scope="session")
def docker_daemon():
    """A docker SDK client for a running daemon (skips, or fails in CI, when there is none)."""
    client = docker_client()
    if client is None:
        require_or_skip("no Docker daemon (scripts/setup.sh installs and starts one)")
    yield client
    client.close()


@pytest.fixture(scope="session")
def local_registry(tmp_path_factory) -> LocalRegistry:
    try:
        registry = start_registry(tmp_path_factory.mktemp("registry"))
    except FileNotFoundError:
        require_or_skip(f"{REGISTRY_BIN} is not installed (Debian's docker-registry)")
    yield registry
    registry.server.stop()
    _remove_local_images(registry.host + "/")


def _remove_local_images(prefix: str) -> None:
    """Untag what the tests built for this registry (its port is never reused)."""
    client = docker_client()
    if client is None:
        return
    for image in client.images.list():
        for tag in image.tags:
            if tag.startswith(prefix):
                try:
                    client.images.remove(tag, noprune=False)
                except Exception:
                    pass  # in use or already gone: leaving a tag behind is harmless


@pytest.fixture(scope="session")
def python_image(docker_daemon) -> str:
    """A local image with Python, pip, prefect and prefect-aws (nothing pulled)."""
    return python_base_image(docker_daemon)
