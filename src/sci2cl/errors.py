"""Errors that the CLI turns into a one-line message and a non-zero exit code."""

from __future__ import annotations

from pathlib import Path


class Sci2clError(Exception):
    """Base class for user-facing errors (bad input, bad options)."""


class InputError(Sci2clError):
    """A problem with one input file: the message names the file and what is wrong."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
