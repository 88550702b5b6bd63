"""The base of every failure the library reports on purpose, with a message meant for people.

A leaf: it imports nothing of allies, so every module can raise these without reaching up. The
faces turn them into their answer: the CLI into one line and an exit code (an `InputProblem` is
the user's input, exit 2; any other `AlliesError`, exit 1), the web faces into a status."""

from __future__ import annotations


class AlliesError(Exception):
    """A failure reported on purpose: its message says what went wrong, for people."""


class InputProblem(AlliesError):
    """What the user gave (a setting, an argument, a request) is wrong."""


class ConfigError(InputProblem):
    """A setting is missing or malformed; the message names the variable or file."""
