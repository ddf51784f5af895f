"""One deploy per scope at a time, held through a Prefect global concurrency limit.

Two pipelines deploying one scope at once (a newer and an older commit) would
otherwise interleave their writes. The lock is the Prefect server's own: a
global concurrency limit of one slot per scope, taken with a lease. The
server forgets a lease that is not renewed, so a runner that dies while
holding it blocks the scope for at most `LEASE_SECONDS`, never for good.
While the lease is `intact` (taken, and renewed without a failure within the
last `LEASE_SECONDS - RENEW_SECONDS`) no other flowship deploy of the scope can
have written since the deployer read the scope's deployments, so its writes
trust that read; once a renewal fails, it reads each deployment again right
before writing it (never backwards, even with the lease lost).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING
from uuid import UUID

from flowship import console
from flowship.config import Config
from flowship.deploy.client import using
from flowship.deploy.state import variable_name
from flowship.errors import FlowshipError
from flowship.scope import Scope

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

# The server's floor for a lease; renewed three times within it, so one slow
# request does not lose it.
LEASE_SECONDS = 60.0
RENEW_SECONDS = 20.0
# A deploy waiting longer than this is behind a stuck one: say so and stop.
WAIT_SECONDS = 45 * 60.0


def limit_name(config: Config, scope: Scope) -> str:
    """The concurrency limit's name: the scope's record name, so it is as unique."""
    return f"{variable_name(config, scope)}_lock"


class Lease:
    """The deploy lock as this run holds it."""

    def __init__(self, taken_at: float):
        self.renewed_at = taken_at  # when the last request that took or renewed it was sent
        self.lost = False  # a renewal failed: the server may have given the lock to another run

    def intact(self) -> bool:
        """Whether no other deploy can have held the lock since it was taken."""
        return not self.lost and time.monotonic() - self.renewed_at < LEASE_SECONDS - RENEW_SECONDS


@contextmanager
def held(config: Config, scope: Scope, client: SyncPrefectClient, *,
         wait_seconds: float = WAIT_SECONDS) -> Iterator[Lease]:
    """Hold `scope`'s deploy lease for the body; wait (and say so) while another run holds it."""
    name = limit_name(config, scope)
    _ensure_limit(client, name)
    lease_id, taken_at = _acquire(client, name, scope, wait_seconds)
    lease = Lease(taken_at)
    stop = threading.Event()
    # Its own client: the deployer's is busy on this thread.
    renewer = threading.Thread(target=_renew, args=(config, lease_id, lease, stop), daemon=True, name="flowship-lease")
    renewer.start()
    try:
        yield lease
    finally:
        stop.set()
        renewer.join(timeout=5)
        try:
            client.release_concurrency_slots_with_lease(lease_id)
        except Exception:  # the lease expires by itself; the deploy's result stands
            console.warning(f"could not release the deploy lock of {scope.name}; it frees itself "
                            f"within {LEASE_SECONDS:.0f} s.")


def _ensure_limit(client: SyncPrefectClient, name: str) -> None:
    from prefect.exceptions import ObjectAlreadyExists

    try:
        client.upsert_global_concurrency_limit_by_name(name, 1)
    except ObjectAlreadyExists:  # another run created it between the read and the create
        pass


def _acquire(client: SyncPrefectClient, name: str, scope: Scope, wait_seconds: float) -> tuple[UUID, float]:
    import httpx

    deadline = time.monotonic() + wait_seconds
    waiting_since: float | None = None
    while True:
        sent = time.monotonic()
        try:
            response = client.increment_concurrency_slots_with_lease(
                names=[name], slots=1, mode="concurrency", lease_duration=LEASE_SECONDS)
            if waiting_since is not None:
                console.info(f"got the deploy lock of {scope.name} after {time.monotonic() - waiting_since:.1f} s")
            return UUID(response.json()["lease_id"]), sent
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code != 423:  # 423 Locked: another deploy holds it
                raise
            retry_after = float(exc.response.headers.get("Retry-After") or 1)
        if waiting_since is None:
            waiting_since = time.monotonic()
            console.info(f"another deploy to {scope.name} is running; waiting for it to finish "
                         f"(Prefect concurrency limit {name})")
        if time.monotonic() > deadline:
            raise FlowshipError(f"another deploy to {scope.name} held its lock for over {wait_seconds:.0f} s; "
                                f"if none is running, delete the concurrency limit {name} in Prefect.")
        time.sleep(min(max(retry_after, 0.2), 2.0))


def _renew(config: Config, lease_id: UUID, lease: Lease, stop: threading.Event) -> None:
    try:
        with using(config, None) as client:
            while not stop.wait(RENEW_SECONDS):
                sent = time.monotonic()
                client.renew_concurrency_lease(lease_id, LEASE_SECONDS)
                lease.renewed_at = sent
    except Exception:
        # A lost lease lets another deploy start; from now on the deployer reads
        # each deployment again before writing it, so this one moves nothing backwards.
        lease.lost = True
        if not stop.is_set():
            console.warning("could not renew the deploy lock; another deploy may start alongside this one.")
