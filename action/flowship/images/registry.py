"""Where images go, and whether a tag is already there, asked of the registry's own API.

Two kinds: ECR (`ecr-repository`: `describe_images`, credentials from
`get_authorization_token`) and any registry speaking the Docker Registry
HTTP API v2 (`registry`: a manifest HEAD). A check that cannot be answered
is a FlowshipError, never "assume it exists": skipping a build on a guess
would deploy an image that is not there.
"""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Protocol

from flowship import aws, console
from flowship.config import Config
from flowship.errors import FlowshipError, InputError

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
# What `docker push` stores; asked for so the digest returned is the one pushed.
MANIFEST_TYPES = ", ".join([DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX])
_LOOPBACK = ("localhost", "127.", "[::1]")


@dataclass(frozen=True)
class Remote:
    """`host[:port]/repository`, split; image references are made here."""

    host: str
    repository: str

    @classmethod
    def parse(cls, address: str) -> Remote:
        address = address.removeprefix("https://").removeprefix("http://").strip("/")
        host, _, repository = address.partition("/")
        # Docker reads the first part as a host only with a dot, a port or `localhost`.
        if not repository or not ("." in host or ":" in host or host == "localhost"):
            raise InputError(
                f"tool.flowship.registry {address!r} must be `host[:port]/repository`, e.g. 127.0.0.1:5000/flowship."
            )
        return cls(host, repository.lower())

    @property
    def name(self) -> str:
        return f"{self.host}/{self.repository}"

    def tagged(self, tag: str) -> str:
        return f"{self.name}:{tag}"

    def by_digest(self, digest: str) -> str:
        return f"{self.name}@{digest}"

    @property
    def plain_http(self) -> bool:
        """Docker itself talks plain HTTP only to loopback registries; so does flowship."""
        return self.host.startswith(_LOOPBACK)


class Registry(Protocol):
    remote: Remote

    def lookup(self, tag: str) -> str | None:
        """The digest `tag` points at, None when absent; FlowshipError when the check fails."""

    def credentials(self) -> dict[str, str] | None:
        """`{"username", "password", "serveraddress"}` for the docker daemon, or None."""


class HttpRegistry:
    """Any registry speaking the Docker Registry HTTP API v2, without credentials."""

    def __init__(self, remote: Remote):
        self.remote = remote
        self.base = f"{'http' if remote.plain_http else 'https'}://{remote.host}/v2/{remote.repository}"

    def lookup(self, tag: str) -> str | None:
        request = urllib.request.Request(
            f"{self.base}/manifests/{tag}", method="HEAD", headers={"Accept": MANIFEST_TYPES}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                digest = resp.headers.get("Docker-Content-Digest")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            if exc.code == 401:
                raise FlowshipError(
                    f"the registry {self.remote.host} asks for credentials to check {tag}; flowship signs in "
                    "only to ECR (set tool.flowship.ecr-repository)."
                ) from None
            raise FlowshipError(f"could not check {self.remote.tagged(tag)} in the registry: HTTP {exc.code}.") from None
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise FlowshipError(f"could not reach the registry {self.remote.host} to check {tag}: {reason}.") from None
        if not digest:
            raise FlowshipError(f"the registry {self.remote.host} did not say the digest of {tag}.")
        return digest

    def credentials(self) -> dict[str, str] | None:
        return None


class EcrRegistry:
    """An ECR repository, through boto3 (`flowship.aws`)."""

    def __init__(self, config: Config, repository: str):
        self.ecr = aws.client(config, "ecr")
        self.repository = repository
        try:
            found = self.ecr.describe_repositories(repositoryNames=[repository])["repositories"][0]
        except Exception as exc:
            if aws.error_code(exc) == "RepositoryNotFoundException":
                raise FlowshipError(
                    f"the ECR repository {repository!r} does not exist: create it with `flowship bootstrap --target ecs`."
                ) from None
            raise aws.translate(exc, "ecr:DescribeRepositories") from None
        self.registry_id = found["registryId"]
        # `registry` names where pushes go when it is set (e.g. a VPC endpoint alias
        # of this ECR registry); otherwise the repository's own URI.
        self.remote = Remote.parse(config.registry) if config.registry else Remote.parse(found["repositoryUri"])

    def lookup(self, tag: str) -> str | None:
        try:
            found = self.ecr.describe_images(
                registryId=self.registry_id, repositoryName=self.repository, imageIds=[{"imageTag": tag}]
            )
        except Exception as exc:
            if aws.error_code(exc) == "ImageNotFoundException":
                return None
            raise aws.translate(exc, "ecr:DescribeImages") from None
        details = found.get("imageDetails") or []
        return details[0]["imageDigest"] if details else None

    def credentials(self) -> dict[str, str] | None:
        try:
            data = self.ecr.get_authorization_token(registryIds=[self.registry_id])["authorizationData"][0]
        except Exception as exc:
            raise aws.translate(exc, "ecr:GetAuthorizationToken") from None
        username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
        console.mask(password)
        return {"username": username, "password": password, "serveraddress": self.remote.host}


def open_registry(config: Config) -> Registry:
    """The registry the configuration names: ECR when `ecr-repository` is set, else `registry`."""
    if config.ecr_repository:
        return EcrRegistry(config, config.ecr_repository)
    if config.registry:
        return HttpRegistry(Remote.parse(config.registry))
    raise InputError(
        "no registry to push images to: set tool.flowship.ecr-repository (ECR) or tool.flowship.registry "
        "(e.g. \"127.0.0.1:5000/flowship\") in pyproject.toml."
    )
