"""The Docker daemon, through the docker SDK's low-level API (for streaming).

Build and push output streams into the current `console.group`, and the
SDK's errors become FlowshipError sentences here, at the edge.
"""

from __future__ import annotations

import io
from typing import Any

from flowship import console
from flowship.errors import FlowshipError
from flowship.images.registry import Remote

# Push statuses worth a line (the byte-by-byte progress is not).
_PUSH_EVENTS = ("Pushed", "Layer already exists", "Mounted from", "Preparing", "Waiting")


class Daemon:
    def __init__(self, client: Any = None):
        import docker

        self._errors = docker.errors
        try:
            self.client = client or docker.from_env(timeout=900)
            self.client.ping()
        except docker.errors.DockerException as exc:
            raise FlowshipError(
                f"cannot reach the Docker daemon ({exc}); start Docker, or set DOCKER_HOST to where it runs."
            ) from None
        self.api = self.client.api

    def login(self, credentials: dict[str, str] | None) -> dict[str, str] | None:
        """Sign in for the builds' FROM pulls; returns the auth config pushes take."""
        if not credentials:
            return None
        try:
            self.api.login(
                username=credentials["username"], password=credentials["password"],
                registry=credentials["serveraddress"], reauth=True,
            )
        except self._errors.APIError as exc:
            raise FlowshipError(f"the registry {credentials['serveraddress']} refused the sign-in: {_explain(exc)}.") from None
        return {"username": credentials["username"], "password": credentials["password"]}

    def build(self, context: bytes, ref: str, *, dockerfile: str, platform: str, labels: dict[str, str]) -> str:
        """Build `context` (a tar) as `ref`, streaming the log; returns the image id."""
        image_id = None
        try:
            stream = self.api.build(
                fileobj=io.BytesIO(context), custom_context=True, dockerfile=dockerfile, tag=ref,
                rm=True, forcerm=True, decode=True, platform=platform, labels=labels,
            )
            for chunk in stream:
                if "error" in chunk:
                    raise FlowshipError(f"building {ref} failed: {_last_line(chunk['error'])}")
                text = chunk.get("stream")
                if text and text.strip():
                    console.info(text.rstrip("\n"))
                image_id = (chunk.get("aux") or {}).get("ID", image_id)
        except self._errors.APIError as exc:
            raise FlowshipError(f"building {ref} failed: {_explain(exc)}.") from None
        except self._errors.DockerException as exc:
            raise FlowshipError(f"building {ref} failed: {exc}.") from None
        if image_id is None:
            raise FlowshipError(f"building {ref} failed: the daemon reported no image.")
        return image_id

    def push(self, remote: Remote, tag: str, auth: dict[str, str] | None) -> str:
        """Push `remote:tag`; returns the digest the registry stored."""
        digest = None
        try:
            for chunk in self.api.push(remote.name, tag=tag, stream=True, decode=True, auth_config=auth):
                if "error" in chunk:
                    raise FlowshipError(f"pushing {remote.tagged(tag)} failed: {_last_line(chunk['error'])}")
                status = chunk.get("status", "")
                if status.startswith(_PUSH_EVENTS) and chunk.get("id"):
                    console.info(f"{chunk['id']}: {status}")
                digest = (chunk.get("aux") or {}).get("Digest", digest)
        except self._errors.APIError as exc:
            raise FlowshipError(f"pushing {remote.tagged(tag)} failed: {_explain(exc)}.") from None
        if digest is None:  # older daemons: the digest is in the image's RepoDigests
            digests = self.api.inspect_image(remote.tagged(tag)).get("RepoDigests", [])
            digest = next((d.split("@", 1)[1] for d in digests if d.startswith(remote.name + "@")), None)
        if digest is None:
            raise FlowshipError(f"pushing {remote.tagged(tag)} gave no digest.")
        console.info(f"pushed {remote.by_digest(digest)}")
        return digest


def _last_line(text: str) -> str:
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


def _explain(exc: Exception) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc).strip().rstrip(".")
