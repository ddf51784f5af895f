"""The Prefect client flowship uses, and Prefect's errors turned into sentences."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from flowship.config import Config
from flowship.errors import FlowshipError, InputError

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient


def api_url(config: Config) -> str:
    """The Prefect API flowship talks to: `PREFECT_API_URL`, else the active Prefect profile's.

    Never Prefect's ephemeral server: deployments written there would vanish.
    """
    if config.env.prefect_api_url:
        return config.env.prefect_api_url.rstrip("/")
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        raise InputError(
            "no Prefect server to deploy to; set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api) "
            "or a Prefect profile with an API URL."
        )
    return str(url).rstrip("/")


# Prefect's client retries a failed request 5 times, backing off 2, 4, 8, 16 and
# 32 s: about 70 s before it gives up on a server that went away, paid again by
# every later request. Three retries (about 14 s; 30 s for a 502/503 answer,
# after whose last try Prefect waits once more) still ride out a restart of the
# server or a busy SQLite (503), and the deploy stops trying after the first
# request that fails for good (core.py), so an outage costs the job seconds,
# not its timeout. PREFECT_CLIENT_MAX_RETRIES, when set, is used as is.
MAX_RETRIES = 3


@contextmanager
def open_client(config: Config, *, httpx_settings: dict[str, Any] | None = None) -> Iterator[SyncPrefectClient]:
    """A synchronous Prefect client for `config`'s API (writes are serial anyway:
    a SQLite Prefect server serialises them; docs/deploy.md)."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.settings import (
        PREFECT_API_AUTH_STRING,
        PREFECT_API_KEY,
        PREFECT_CLIENT_MAX_RETRIES,
        get_current_settings,
        temporary_settings,
    )

    url = api_url(config)
    client = SyncPrefectClient(
        url,
        api_key=config.env.prefect_api_key or PREFECT_API_KEY.value(),
        auth_string=PREFECT_API_AUTH_STRING.value(),
        httpx_settings=httpx_settings,
    )
    # The client reads the setting at each request, so it holds while the client is open.
    chosen = "max_retries" in get_current_settings().client.model_fields_set
    retries = PREFECT_CLIENT_MAX_RETRIES.value() if chosen else MAX_RETRIES
    try:
        with temporary_settings(updates={PREFECT_CLIENT_MAX_RETRIES: retries}), client:
            # One GET first: a wrong URL would otherwise read as "nothing
            # deployed yet" (Prefect answers 404 for a missing variable too).
            problem = client.api_healthcheck()
            if problem is not None:
                raise FlowshipError(describe(problem, url))
            yield client
    except Exception as exc:
        raise translate(exc, url) from exc


@contextmanager
def using(config: Config, client: SyncPrefectClient | None) -> Iterator[SyncPrefectClient]:
    """`client` when the caller already holds one open, else a new one for `config`."""
    if client is not None:
        yield client
    else:
        with open_client(config) as opened:
            yield opened


def describe(exc: BaseException, url: str | None = None) -> str:
    """One sentence for a Prefect client error: the status, Prefect's own detail, and a fix."""
    import httpx

    from prefect.exceptions import ObjectNotFound

    if isinstance(exc, FlowshipError):
        return exc.message
    if isinstance(exc, ObjectNotFound):
        return "Prefect has no such object (404)."
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        detail = _detail(exc.response)
        hint = {
            401: " Check PREFECT_API_KEY.",
            403: " The API key may lack permission, or the workspace reached a limit.",
            404: " Check PREFECT_API_URL: it should be the server's API, e.g. http://127.0.0.1:4200/api.",
            409: " It already exists under another owner.",
            422: " Prefect rejected the fields flowship sent.",
        }.get(status, " The Prefect server failed; see its logs." if status >= 500 else "")
        return f"Prefect answered {status} to {exc.request.method} {exc.request.url.path}: {detail}.{hint}"
    if isinstance(exc, httpx.TransportError):
        where = url or "the Prefect API"
        return f"cannot reach Prefect at {where} ({type(exc).__name__}); is the server running and PREFECT_API_URL right?"
    return f"{type(exc).__name__}: {exc}"


def unreachable(exc: BaseException) -> bool:
    """Whether `exc` says the Prefect server stopped answering (after the client's retries),
    rather than that it refused one request: nothing sent to it now would fare better."""
    import httpx

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:  # a FlowshipError may wrap it
        seen.add(id(current))
        if isinstance(current, httpx.TransportError):
            return True
        if isinstance(current, httpx.HTTPStatusError) and current.response.status_code in (502, 503, 504):
            return True  # still, after the retries: a gateway with nothing behind it, or a server that cannot serve
        current = current.__cause__ or current.__context__
    return False


def translate(exc: BaseException, url: str | None = None) -> BaseException:
    """A `FlowshipError` for Prefect's HTTP and transport errors; anything else unchanged."""
    import httpx

    if isinstance(exc, httpx.HTTPError):
        return FlowshipError(describe(exc, url))
    return exc


def _detail(response: Any) -> str:
    try:
        body = response.json()
    except (ValueError, json.JSONDecodeError):
        return (response.text or "no detail").strip()[:200]
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, list):  # FastAPI validation errors: [{"loc": [...], "msg": ...}]
        parts = []
        for item in detail[:3]:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
                parts.append(f"{loc}: {item.get('msg', item)}" if loc else str(item.get("msg", item)))
        return "; ".join(parts) or str(detail)[:200]
    return str(detail)[:200]


def expected(exc: Exception) -> bool:
    """Errors that are one workflow's failure (reported), not a bug (raised)."""
    import httpx

    from prefect.exceptions import PrefectException

    return isinstance(exc, FlowshipError | httpx.HTTPError | PrefectException | ValueError)
