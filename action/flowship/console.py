"""All human output: plain text locally, workflow commands in GitHub Actions.

Everything human goes to stderr (stdout is kept for `--json` documents and
`$GITHUB_OUTPUT`-style data). In Actions, stages are `::group::`s closed with
a tick and a duration, problems become `file:line` annotations, and secrets
are masked with `::add-mask::` before anything could print them.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from flowship import redact as _redact
from flowship.errors import FlowshipError

_state = {"actions": False}


def configure(*, actions: bool, secrets: list[str] | tuple[str, ...] = ()) -> None:
    _state["actions"] = actions
    for secret in secrets:
        mask(secret)


def _stream() -> TextIO:
    return sys.stderr


def mask(secret: str | None) -> None:
    """Hide `secret` from every later line, here and in the Actions log."""
    if not secret or secret in _redact.secrets():
        return
    _redact.add(secret)
    if _state["actions"]:
        # Every spelling the redactor knows, so a log line flowship did not
        # write (a subprocess, a traceback) is masked by the runner as well.
        for form in (secret, *_redact.forms(secret)):
            for part in _LINES.split(form):
                if len(part.strip()) >= 4:
                    print(f"::add-mask::{_escape_data(part)}", file=_stream(), flush=True)


def redact(text: str) -> str:
    return _redact.redact(text)


def _escape_data(text: str) -> str:
    # GitHub's workflow-command escaping: a crafted value (a branch name with
    # a newline and `::error::`) must stay data, never become a command.
    # The legacy `##[cmd]` form is read anywhere in a line, so it is broken too.
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace("##[", "##\u200b[")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


# The runner ends a line at \n, \r\n or a lone \r.
_LINES = re.compile(r"\r\n|\r|\n")


def defuse(text: str) -> str:
    """`text` that starts no workflow command, as the runner reads them.

    `ActionCommand.TryParseV2` takes a line that starts with `::` after
    leading whitespace; the legacy `TryParse` takes `##[` anywhere in a line.
    A zero-width space (not whitespace to .NET) breaks both.
    """
    text = text.replace("##[", "##\u200b[")
    lines = _LINES.split(text)
    return "\n".join(("\u200b" + line) if line.lstrip().startswith("::") else line for line in lines)


def neutralize(text: str) -> str:
    """A value someone else chose, made safe to print in Actions."""
    text = redact(text)
    return defuse(text) if _state["actions"] else text


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


def failure(exc: FlowshipError) -> None:
    """A `FlowshipError` as people read it: its sentence, annotated at its file:line when it has one."""
    error(exc.message if exc.file else str(exc), file=exc.file, line=exc.line)


def error(message: str, *, file: str | None = None, line: int | None = None, title: str | None = None) -> None:
    _annotate("error", message, file, line, title)


def warning(message: str, *, file: str | None = None, line: int | None = None, title: str | None = None) -> None:
    _annotate("warning", message, file, line, title)


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
        print(neutralize(f"{mark} {title} ({took:.1f}s)"), file=_stream(), flush=True)
