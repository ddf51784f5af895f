"""Code images through the registry API (images/append.py), against a real
Docker daemon and a real local registry.

The image appended by the API must be the image `docker build` makes from
the code Dockerfile: the same environment, working directory, labels and
files, and the flow runs in both. A code-only commit then needs neither the
deps image's layers nor a Docker daemon; a deps manifest that does not hash
to its digest, or is gone, is refused in one sentence; an index is followed
to the family's platform, or refused.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from flowship.errors import FlowshipError
from flowship.images import render, source
from flowship.images.append import append_code_image, sha256
from flowship.images.registry import DOCKER_LIST, Remote
from testing.faults import FaultProxy
from testing.git import cpu_flow
from testing.images import Project

pytestmark = pytest.mark.integration

# Every file and directory under the code and runtime directories, with what a
# container sees of it (directory times aside: docker gives them the build's clock).
LIST_FILES = r"""
import hashlib, json, os, stat
seen = {}
for top in ("/opt/flowship/code", "/opt/flowship/runtime"):
    seen[top] = stat.filemode(os.lstat(top).st_mode)
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            path = os.path.join(root, name)
            st = os.lstat(path)
            entry = [stat.filemode(st.st_mode), st.st_uid, st.st_gid]
            if stat.S_ISREG(st.st_mode):
                entry += [st.st_size, int(st.st_mtime), hashlib.sha256(open(path, "rb").read()).hexdigest()]
            elif stat.S_ISLNK(st.st_mode):
                entry += [os.readlink(path)]
            seen[path] = entry
print(json.dumps(seen, sort_keys=True))
"""
# The flow's entrypoint resolved from the WORKDIR, as Prefect's worker does, and its body run.
RUN_FLOW = (
    "import os, sys; from prefect.flows import load_flow_from_entrypoint as load; import shared.helpers; "
    "flow = load('flows/etl.py:etl'); print(flow.name, flow.fn(rows=shared.helpers.ROWS), os.getcwd(), "
    "os.environ['PYTHONPATH'])"
)


@pytest.fixture
def project(repo, local_registry, python_image) -> Project:
    return Project(repo, local_registry, f"a-{uuid.uuid4().hex[:10]}", python_image)


def seed(project: Project) -> str:
    """A commit with what a code layer must carry faithfully: an executable, a symlink,
    a nested package and a .dockerignore'd folder."""
    project.repo.write({
        "pyproject.toml": project.pyproject(),
        "requirements.txt": "packaging\n",
        "flows/etl.py": cpu_flow("etl"),
        "shared/__init__.py": "",
        "shared/helpers.py": "ROWS = 7\n",
        "scripts/run.sh": "#!/bin/sh\necho run\n",
        "notes/draft.md": "not shipped\n",
        ".dockerignore": "notes\n",
    })
    (project.repo.path / "scripts/run.sh").chmod(0o755)
    (project.repo.path / "helpers.py").symlink_to("shared/helpers.py")
    return project.repo.commit()


def _run(client, ref: str, code: str) -> str:
    return client.containers.run(ref, ["python", "-c", code], remove=True, network_mode="none").decode().strip()


def _runtime_config(client, ref: str) -> dict:
    config = client.api.inspect_image(ref)["Config"]
    return {key: config.get(key) for key in ("Env", "WorkingDir", "Labels", "Cmd", "Entrypoint", "User")}


def test_the_api_built_code_image_runs_as_the_docker_built_one(project, docker_daemon):
    seed(project)
    _, by_docker = project.build(code_via="docker")
    assert by_docker.ok, by_docker.failed
    docker_ref = by_docker.refs["base"]
    assert by_docker.images["base"].code_via == "docker"

    # The same commit again, the code image made by the registry API instead.
    project.registry.delete_manifest(project.repository, docker_ref.partition("@")[2])
    _, by_api = project.build()
    assert by_api.ok, by_api.failed
    image = by_api.images["base"]
    assert (image.deps_built, image.code_built, image.code_via) == (False, True, "registry")
    api_ref = by_api.refs["base"]
    assert api_ref != docker_ref and api_ref.startswith(f"{project.address}@sha256:")
    docker_daemon.images.pull(api_ref)  # the daemon has never seen it: it was made in the registry
    try:
        assert _runtime_config(docker_daemon, api_ref) == _runtime_config(docker_daemon, docker_ref)
        config = _runtime_config(docker_daemon, api_ref)
        assert config["WorkingDir"] == render.CODE_DIR
        assert "PYTHONPATH=/opt/flowship/code:/opt/flowship/runtime" in config["Env"]
        assert config["Labels"]["org.opencontainers.image.revision"] == project.repo.head()

        files = json.loads(_run(docker_daemon, api_ref, LIST_FILES))
        assert files == json.loads(_run(docker_daemon, docker_ref, LIST_FILES))
        assert files["/opt/flowship/code/scripts/run.sh"][0] == "-rwxrwxr-x"
        assert files["/opt/flowship/code/helpers.py"][-1] == "shared/helpers.py"
        assert "/opt/flowship/runtime/flowship/workflow.py" in files
        assert not any(path.startswith("/opt/flowship/code/notes") for path in files)

        expected = "etl 7 /opt/flowship/code /opt/flowship/code:/opt/flowship/runtime"
        assert _run(docker_daemon, api_ref, RUN_FLOW) == _run(docker_daemon, docker_ref, RUN_FLOW) == expected
    finally:
        docker_daemon.images.remove(api_ref, force=True)


def test_the_same_commit_appends_to_the_same_digest_from_any_clone(project, tmp_path):
    sha = seed(project)
    _, first = project.build()
    assert first.ok, first.failed
    image = first.images["base"]
    deps = project.registry.manifest(project.repository, image.deps_tag)[0]
    labels = {"dev.flowship.family": "base", "dev.flowship.deps": image.deps_tag,
              "org.opencontainers.image.revision": sha}  # what the build stage labels it with
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(project.repo.path), str(clone)], check=True, env=os.environ)
    made = [
        append_code_image(Remote.parse(project.address), None, source.Commit.at(root, sha), deps_digest=sha256(deps),
                          tag=tag, platform="linux/amd64", labels=labels)
        for root, tag in ((project.repo.path, "again-1"), (clone, "again-2"))
    ]
    assert {m.digest for m in made} == {first.refs["base"].partition("@")[2]}
    # The layer and the config were there already: only the manifest went up, twice.
    assert all(m.sent < 2_000 < m.layer_size for m in made), made
    assert image.code_sent is not None and image.code_sent > made[0].layer_size


def test_a_code_only_commit_pulls_no_deps_layer_and_needs_no_docker_daemon(project, monkeypatch):
    seed(project)
    _, first = project.build()
    assert first.ok, first.failed
    blobs = project.registry.blobs()
    deps_layers = [layer["digest"] for layer in json.loads(
        project.registry.manifest(project.repository, first.images["base"].deps_tag)[0])["layers"]]

    with FaultProxy(project.registry.url) as proxy:
        # A commit that points flowship at the registry through the proxy, which logs every request.
        head = project.repo.commit({
            "pyproject.toml": project.pyproject(registry=f"{proxy.host}/{project.repository}"),
            "flows/etl.py": cpu_flow("etl") + "\n# tuned\n",
        })
        monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        _, second = project.build()
        assert second.ok, second.failed
        image = second.images["base"]
        assert (image.deps_built, image.code_built, image.code_via) == (False, True, "registry")
        assert second.refs["base"].startswith(f"{proxy.host}/{project.repository}@sha256:")
        reads = [r.path.rpartition("/")[2] for r in proxy.requests if r.method == "GET" and "/blobs/" in r.path]
        assert reads and not set(reads) & set(deps_layers)  # the config only, never a layer
        # Two tag checks; the deps manifest and config; per blob (layer, config) a check, a start
        # and the upload; the manifest and its read-back.
        assert len(proxy.requests) <= 13, proxy.requests
    new = {d: n for d, n in project.registry.blobs().items() if d not in blobs}
    assert sum(new.values()) <= image.code_sent <= 64_000, new  # a small layer, its config and manifest
    assert project.registry.tags(project.repository).count(f"base-{head}") == 1


class _ForgingProxy:
    """The registry behind a path that alters manifests: bytes no longer match their digest."""

    def __init__(self, upstream_port: int):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=60)
                conn.request(self.command, self.path, body=body, headers=dict(self.headers))
                resp = conn.getresponse()
                data = resp.read()
                if self.command == "GET" and "/manifests/sha256:" in self.path:
                    data = data.replace(b'"layers"', b'"layers" ', 1)  # still JSON; another sha256
                self.send_response(resp.status)
                for name, value in resp.getheaders():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_forged_or_absent_deps_manifest_is_refused_in_one_sentence(project):
    seed(project)
    _, first = project.build()
    assert first.ok, first.failed
    port = int(project.registry.host.rpartition(":")[2])
    forging = _ForgingProxy(port)
    try:
        project.repo.commit({"pyproject.toml": project.pyproject(registry=f"{forging.host}/{project.repository}")})
        _, forged = project.build()
    finally:
        forging.close()
    reason = forged.failed["base"]
    assert "manifest of another digest; refusing to build on it." in reason and reason.count(". ") == 0
    assert forged.refs == {}

    commit = source.Commit.at(project.repo.path, project.repo.head())
    with pytest.raises(FlowshipError, match=r"is not in the registry, though it was listed there; rebuild it"):
        append_code_image(Remote.parse(project.address), None, commit, deps_digest="sha256:" + "0" * 64,
                          tag="nothing", platform="linux/amd64", labels={})


def test_an_index_is_followed_to_the_familys_platform_or_refused(project, docker_daemon):
    seed(project)
    _, first = project.build()
    assert first.ok, first.failed
    deps_tag = first.images["base"].deps_tag
    deps, media_type = project.registry.manifest(project.repository, deps_tag)
    deps_digest = sha256(deps)

    def index(*platforms: str) -> bytes:
        entries = [{"mediaType": media_type, "digest": deps_digest, "size": len(deps),
                    "platform": {"os": p.split("/")[0], "architecture": p.split("/")[1]}} for p in platforms]
        return json.dumps({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": entries}).encode()

    # The deps tag becomes a multi-platform index (arm64 first): amd64 is the family's platform.
    project.registry.put_manifest(project.repository, deps_tag, index("linux/arm64", "linux/amd64"), DOCKER_LIST)
    project.repo.commit({"flows/etl.py": cpu_flow("etl") + "\n# v2\n"})
    _, picked = project.build(base=project.repo.git("rev-parse", "HEAD~1"))
    assert picked.ok, picked.failed
    assert picked.images["base"].code_via == "registry" and not picked.images["base"].deps_built
    try:
        assert _run(docker_daemon, picked.refs["base"], RUN_FLOW).startswith("etl 7 ")
    finally:
        docker_daemon.images.remove(picked.refs["base"], force=True)

    project.registry.put_manifest(project.repository, deps_tag, index("linux/arm64"), DOCKER_LIST)
    project.repo.commit({"flows/etl.py": cpu_flow("etl") + "\n# v3\n"})
    _, refused = project.build(base=project.repo.git("rev-parse", "HEAD~1"))
    assert refused.failed["base"].endswith("is a multi-platform index with no linux/amd64 image, the platform of its image family.")
