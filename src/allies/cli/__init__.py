"""The `allies` command line: thin commands over the library, one module per area."""

from . import admin, logs, service, support  # noqa: F401 - importing registers the commands on the group
from .base import main

__all__ = ["main"]
