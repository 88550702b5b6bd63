"""The `allies` command line: thin commands over the library, one module per area.

Each module registers its commands on the `main` group when imported; `main` imports a module
only when one of its commands runs (see base.COMMAND_MODULES).
"""

from .base import main, run

__all__ = ["main", "run"]
