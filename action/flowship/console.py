"""All human output: plain text locally, workflow commands in GitHub Actions.

Everything human goes to stderr (stdout is kept for `--json` documents and
`$GITHUB_OUTPUT`-style data). In Actions, stages are `::group::`s closed with
a tick and a duration, problems become `file:line` annotations, and secrets
are masked with `::add-mask::` before anything could print them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

_state = {"actions": False}
_secrets: list[str] = []


def configure(*, actions: bool, secrets: list[str] | tuple[str, ...] = ()) -> None:
    _state["actions"] = actions
    for secret in secrets:
        mask(secret)


def _stream() -> TextIO:
    return sys.stderr


def mask(secret: str | None) -> None:
    """Hide `secret` from every later line, here and in the Actions log."""
    if not secret or secret in _secrets:
        return
    _secrets.append(secret)
    if _state["actions"]:
        for part in secret.splitlines():
            if part.strip():
                print(f"::add-mask::{part}", file=_stream(), flush=True)


def redact(text: str) -> str:
    for secret in _secrets:
        text = text.replace(secret, "***")
    return text


def _escape_data(text: str) -> str:
    # GitHub's workflow-command escaping: a crafted value (a branch name with
    # a newline and `::error::`) must stay data, never become a command.
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def neutralize(text: str) -> str:
    """A user-controlled value made safe to print on its own line in Actions."""
    text = redact(text)
    if _state["actions"]:
        # A line starting with `::` is read as a workflow command.
        text = "\n".join(("\u200b" + line) if line.lstrip().startswith("::") else line for line in text.split("\n"))
    return text


def info(message: str) -> None:
    print(neutralize(message), file=_stream(), flush=True)


def command(argv: list[str]) -> None:
    """Echo a subprocess before running it, as `+ cmd`."""
    info("+ " + " ".join(argv))


def _annotate(kind: str, message: str, file: str | None, line: int | None, title: str | None) -> None:
    message = redact(message)
    if _state["actions"]:
        props = []
        if file:
            props.append(f"file={_escape_property(file)}")
            if line:
                props.append(f"line={line}")
        if title:
            props.append(f"title={_escape_property(title)}")
        head = f"::{kind} {','.join(props)}::" if props else f"::{kind}::"
        print(head + _escape_data(message), file=_stream(), flush=True)
    else:
        where = f"{file}:{line}: " if file and line else (f"{file}: " if file else "")
        print(f"{kind}: {where}{message}", file=_stream(), flush=True)


def error(message: str, *, file: str | None = None, line: int | None = None, title: str | None = None) -> None:
    _annotate("error", message, file, line, title)


def warning(message: str, *, file: str | None = None, line: int | None = None, title: str | None = None) -> None:
    _annotate("warning", message, file, line, title)


def notice(message: str, *, file: str | None = None, line: int | None = None, title: str | None = None) -> None:
    _annotate("notice", message, file, line, title)


@contextmanager
def group(title: str) -> Iterator[None]:
    """A collapsible stage in Actions; closed with a tick (or cross) and its duration."""
    start = time.monotonic()
    title = redact(title)
    if _state["actions"]:
        print(f"::group::{_escape_data(title)}", file=_stream(), flush=True)
    else:
        print(f"==> {title}", file=_stream(), flush=True)
    ok = False
    try:
        yield
        ok = True
    finally:
        took = time.monotonic() - start
        if _state["actions"]:
            print("::endgroup::", file=_stream(), flush=True)
        mark = "✓" if ok else "✗"
        print(f"{mark} {title} ({took:.1f}s)", file=_stream(), flush=True)
