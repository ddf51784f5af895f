"""The one place secrets are taken out of text that leaves flowship.

Fed once from the environment (the Prefect API key, credentials inside
PREFECT_API_URL, the GitHub token, AWS secret keys) and at run time with the
registry password. Every spelling a secret can take on its way out is
redacted: raw, Markdown-escaped, URL-encoded and base64 (alone or as
`user:secret`), because GitHub's own masking only matches the raw bytes.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

from flowship.markdown import escape  # the report's own escaping
from urllib.parse import quote, quote_plus, unquote, urlsplit

_ENV_SECRETS = ("PREFECT_API_KEY", "GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
_MIN = 4  # shorter "secrets" would redact ordinary words
_secrets: list[str] = []
_forms: list[str] = []
_spellings: dict[str, set[str]] = {}


def from_environment(env: Mapping[str, str]) -> list[str]:
    """The secrets an environment holds (`console.configure` registers them)."""
    found = [env.get(name) or "" for name in _ENV_SECRETS]
    found += url_credentials(env.get("PREFECT_API_URL") or "")
    return [s for s in found if len(s) >= _MIN]


def url_credentials(url: str) -> list[str]:
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    return [unquote(v) for v in (parts.password, parts.username) if v]


def add(secret: str | None) -> None:
    if not secret or len(secret) < _MIN or secret in _secrets:
        return
    _secrets.append(secret)
    _spellings[secret] = forms = {secret, escape(secret), quote(secret, safe=""), quote_plus(secret), quote(secret)}
    raw = secret.encode()
    for k in range(3):  # the secret at any byte offset inside a longer base64 text
        enc = base64.b64encode(b"\0" * k + raw).decode().rstrip("=")
        forms.add(enc[(4 * k + 2) // 3:(8 * (k + len(raw))) // 6])
    forms.discard(secret)
    _forms.extend(f for f in forms | {secret} if len(f) >= _MIN and f not in _forms)
    _forms.sort(key=len, reverse=True)  # the longest spelling first, so no half remains


def forms(secret: str) -> tuple[str, ...]:
    """The other spellings of a registered secret (for the runner's masks)."""
    return tuple(f for f in _spellings.get(secret, ()) if len(f) >= _MIN)


def secrets() -> tuple[str, ...]:
    return tuple(_secrets)


def redact(text: str) -> str:
    for form in _forms:
        text = text.replace(form, "***")
    return _URL_USERINFO.sub(r"\1***@", text)


def redact_json(value: Any) -> Any:
    """`value` with every string in it (keys too) redacted: what flowship writes to Prefect."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_json(k): redact_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_json(v) for v in value)
    return value


# Any `scheme://user:password@` in text, whoever's it is, loses its password.
_URL_USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)[^/\s@]+@")


def reset() -> None:
    """Forget every secret (tests run many configurations in one process)."""
    _secrets.clear()
    _forms.clear()
    _spellings.clear()
