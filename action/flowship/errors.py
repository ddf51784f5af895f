"""The one error type users see, and where it came from.

Every failure a user can act on is raised as `FlowshipError` (or a subclass)
with a short sentence that says what is wrong and how to fix it. The CLI is
the single boundary that catches it, prints the message without a traceback
and exits with the error's code.
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_FAILURE = 1  # the work failed (a build, a deploy, an API)
EXIT_USAGE = 2  # bad usage or bad input (a flag, a declaration, a config key)


class FlowshipError(Exception):
    """A failure explained in one sentence; `exit_code` is what the CLI returns."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line

    def __str__(self) -> str:
        if self.file:
            where = f"{self.file}:{self.line}" if self.line else self.file
            return f"{where}: {self.message}"
        return self.message


class InputError(FlowshipError):
    """Bad input: a declaration, a configuration key, a flag, an event."""

    exit_code = EXIT_USAGE


class MachineError(InputError, ValueError):
    """An invalid machine; a ValueError too, so plain Python code can catch it."""

    def __init__(self, field: str, value: object, allowed: str):
        super().__init__(f"{field}={value!r} is invalid: {allowed}.")
        self.field = field
        self.value = value
        self.allowed = allowed


class ConfigError(InputError):
    """A `[tool.flowship]` key that is missing, unknown or of the wrong type."""


@dataclass(frozen=True)
class Problem:
    """A problem tied to a place in the repository, reported as `file:line: message`."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"
