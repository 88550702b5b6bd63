"""`python -m allies` runs the CLI."""

from .cli import run

run()
