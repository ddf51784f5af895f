"""Shared fixtures: real git repos, a real Prefect server, moto in server mode,
and a guard that fails any test reaching a non-loopback address."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from testing.git import GIT_ENV, Repo
from testing.servers import Server, start_moto, start_prefect

# Docker daemon, local registry and local base image fixtures (testing/docker.py).
pytest_plugins = ["testing.docker"]

# Fake AWS credentials for every test: boto3 must never find real ones.
AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
for _k, _v in (AWS_TEST_ENV | GIT_ENV).items():
    os.environ[_k] = _v
for _k in ("GITHUB_ACTIONS", "GITHUB_TOKEN", "PREFECT_API_KEY", "AWS_PROFILE"):
    os.environ.pop(_k, None)
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"

_LOOPBACK = {"localhost", "127.0.0.1", "::1", "0.0.0.0", ""}
_real_getaddrinfo = socket.getaddrinfo


def _guarded_getaddrinfo(host, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else (host or "")
    if name not in _LOOPBACK and not name.startswith("127.") and not name.endswith(".localhost"):
        raise AssertionError(f"a test tried to reach {name!r}; tests may only talk to loopback servers")
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture(autouse=True)
def _no_outside_network(monkeypatch):
    """Fail loudly if anything would reach a real AWS or GitHub endpoint."""
    monkeypatch.setattr(socket, "getaddrinfo", _guarded_getaddrinfo)


@pytest.fixture(autouse=True)
def _no_home_writes(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path / "repo")


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory) -> Server:
    server = start_prefect(tmp_path_factory.mktemp("prefect"))
    yield server
    server.stop()


@pytest.fixture
def prefect_api(prefect_server, monkeypatch) -> str:
    """PREFECT_API_URL pointed at the session's real Prefect server."""
    monkeypatch.setenv("PREFECT_API_URL", prefect_server.url)
    return prefect_server.url


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory) -> Server:
    server = start_moto(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


@pytest.fixture
def aws(moto_server, monkeypatch) -> str:
    """AWS_ENDPOINT_URL pointed at a fresh moto server state."""
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{moto_server.url}/moto-api/reset", method="POST")).close()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    return moto_server.url


@pytest.fixture
def drain_prefect():
    """Send a test's logs and events while the session's server still runs.

    Otherwise Prefect's background workers try at interpreter exit, after the
    server stopped, and retry for a minute before giving up.
    """
    yield
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10, at_exit=False)
    EventsWorker.drain_all(timeout=10, at_exit=False)


@pytest.fixture
def prefect_proxy(prefect_server):
    """A fault-injecting proxy in front of the session's Prefect server (testing/faults.py)."""
    from testing.faults import FaultProxy

    with FaultProxy(prefect_server.url.removesuffix("/api")) as proxy:
        yield proxy
