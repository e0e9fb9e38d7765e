"""The project's own error types: errors a user can act on, whose messages say what to do.

The command line (training/cli.py) and the demo turn a `TriptychError` into its message; anything else is a
fault of the code and keeps its traceback. None of them is a `ValueError` or `RuntimeError`, so that an
`except ValueError` written for a library's errors never swallows one of ours, nor ours a bug.
"""

from __future__ import annotations


class TriptychError(Exception):
    """An error a user can act on; the message says what is wrong and what to do."""


class SettingsError(TriptychError):
    """A setting (a command-line flag) whose value cannot be used; the message names the flag."""


class DatasetError(TriptychError):
    """A dataset that cannot be used as asked; the message says what to change."""


class MissingSplit(DatasetError):
    """The dataset has no split of the name asked for."""
