"""`KEY=VALUE` command-line values (`run --param`, `bootstrap --parameter`): one parser, one error."""

from __future__ import annotations

from collections.abc import Iterable

from flowship.errors import InputError


def key_values(pairs: Iterable[str], flag: str, example: str) -> dict[str, str]:
    """`KEY=VALUE` strings as a dict (a later key wins); a pair without `=` or a key is one sentence."""
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"{flag} {pair!r} is not KEY=VALUE (e.g. {flag} {example}).")
        values[key] = value
    return values
