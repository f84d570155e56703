"""Errors and warnings that the CLI turns into one line (errors also into exit code 2)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class Sci2clError(Exception):
    """Base class for user-facing errors (bad input, bad options, unwritable outputs)."""


class InputError(Sci2clError):
    """A problem with one input file: the message names the file and what is wrong."""

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")


class Sci2clWarning(UserWarning):
    """Something the user should know that does not stop the run (dropped cells, absent
    features, a figure that could not be drawn)."""


def one_line(err: BaseException, limit: int | None = 200) -> str:
    """The first line of an exception's message (its type name when empty), cut at ``limit``."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:limit]


@contextmanager
def reading(path: str | Path, problem: str, errors: tuple[type[Exception], ...]) -> Iterator[None]:
    """Turn ``errors`` raised inside into an :class:`InputError` ``path: problem``, the error's
    first line in place of ``{}``."""
    try:
        yield
    except errors as err:
        raise InputError(path, problem.format(one_line(err))) from err
