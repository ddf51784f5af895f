"""`python -m flowship`."""

from flowship.cli import entry

entry()
