"""`python -m allies` runs the CLI."""

from .cli import main

main()
