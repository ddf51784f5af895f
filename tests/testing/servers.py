"""Real servers for integration tests, each started on a free loopback port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_or_skip(reason: str) -> None:
    """Skip, unless FLOWSHIP_REQUIRE_SERVICES=1 (CI) turns the skip into a failure."""
    if os.environ.get("FLOWSHIP_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required service unavailable: {reason}")
    pytest.skip(reason)


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status < 500:
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


class Server:
    def __init__(self, proc: subprocess.Popen, url: str, log: Path):
        self.proc = proc
        self.url = url
        self.log = log

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def start_prefect(home: Path, *, ui: bool = False) -> Server:
    """`prefect server start` on SQLite in `home`; answers /api/health in ~15 s.

    `ui=True` serves the Prefect UI too, at the server's root (the browser test).
    """
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    env = os.environ.copy() | {
        "PREFECT_HOME": str(home),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home}/prefect.db",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "true" if ui else "false",
        "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    env.pop("PREFECT_API_URL", None)
    log = home / "server.log"
    proc = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api"
    if not wait_http(f"{url}/health", 90, proc):
        proc.kill()
        raise RuntimeError(f"prefect server did not start:\n{log.read_text()[-3000:]}")
    return Server(proc, url, log)


def start_moto(workdir: Path) -> Server:
    """moto in server mode (a real HTTP endpoint for boto3 and other processes)."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "moto.log"
    exe = shutil.which("moto_server", path=str(BIN)) or str(BIN / "moto_server")
    proc = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    if not wait_http(f"{url}/moto-api/", 30, proc):
        proc.kill()
        raise RuntimeError(f"moto server did not start:\n{log.read_text()[-3000:]}")
    return Server(proc, url, log)
