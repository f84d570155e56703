"""Shared CLI plumbing: options (those of the config dataclasses generated from their fields),
messages on stderr, thread settings."""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, fields
from pathlib import Path
from typing import Any, TypeVar

import click

C = TypeVar("C")


def path_option(name: str, dest: str, help: str, **kwargs):
    """A required ``--name PATH`` option."""
    path = click.Path(path_type=Path)
    return click.option(f"--{name}", dest, required=True, type=path, help=help, **kwargs)


def input_option(help: str, dest: str = "input_path", **kwargs):
    """The required ``--input PATH`` of a command."""
    return path_option("input", dest, help, **kwargs)


def info(message: str) -> None:
    """Progress / summary messages go to stderr so stdout stays clean."""
    click.echo(message, err=True)


def set_threads(threads: int | None) -> None:
    """Limit torch's CPU threads (Nextflow passes task.cpus)."""
    if threads:
        import torch

        torch.set_num_threads(threads)


# --- options generated from the config dataclasses ------------------------------------------


class IntList(click.ParamType):
    """Comma-separated positive integers, e.g. ``256,128``."""

    name = "INTS"

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[int, ...]:
        if isinstance(value, tuple):
            return value
        try:
            numbers = tuple(int(v) for v in str(value).split(","))
        except ValueError:
            self.fail(f"expected comma-separated integers, got {value!r}", param, ctx)
        if min(numbers) < 1:
            self.fail("expected positive integers", param, ctx)
        return numbers


def _knobs(config: type) -> list[Field]:
    """The fields declared with :func:`sci2cl.knobs.knob` (they carry a help text)."""
    return [spec for spec in fields(config) if "help" in spec.metadata]


def _option(spec: Field, hint: Any) -> Callable[[Callable], Callable]:
    """``--field-name`` with the field's default, help, type and bounds."""
    meta = spec.metadata
    optional = typing.get_origin(hint) in (typing.Union, types.UnionType)
    base = next(t for t in typing.get_args(hint) if t is not type(None)) if optional else hint
    default = None if spec.default is MISSING else spec.default
    name = spec.name.replace("_", "-")
    bounds = {k: meta[k] for k in ("min", "max", "min_open", "max_open") if meta.get(k) is not None}
    if base is bool:
        flag = meta.get("flag", name)
        name, kind = f"{flag}/--no-{flag}", None
    elif "choices" in meta:
        kind: Any = click.Choice(meta["choices"])
    elif base in (int, float):
        kind = (click.IntRange if base is int else click.FloatRange)(**bounds) if bounds else base
    elif typing.get_origin(base) is tuple:
        kind, default = IntList(), ",".join(map(str, default))
    elif base is str:
        kind = str
    else:
        raise TypeError(f"{spec.name}: no CLI type for {hint!r}")
    return click.option(
        f"--{name}",
        spec.name,
        type=kind,
        default=default,
        show_default="off" if default is None else None,
        help=meta["help"],
    )


def config_options(*configs: type) -> Callable[[Callable], Callable]:
    """Decorator adding one option per knob of each config class, in field order."""
    specs = [(s, typing.get_type_hints(c)[s.name]) for c in configs for s in _knobs(c)]

    def decorate(func: Callable) -> Callable:
        for spec, hint in reversed(specs):
            func = _option(spec, hint)(func)
        return func

    return decorate


def config_from(config: type[C], options: Mapping[str, Any]) -> C:
    """An instance of ``config`` from click keyword arguments (other keys are ignored)."""
    names = {spec.name for spec in _knobs(config)}
    try:
        return config(**{k: v for k, v in options.items() if k in names})
    except ValueError as err:
        raise click.UsageError(str(err)) from err
