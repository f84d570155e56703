"""Config fields that are CLI options: a field declared with :func:`knob` carries its help text
and bounds, and ``sci2cl.cli.common`` turns it into ``--its-name``; plain fields stay internal."""

from __future__ import annotations

from dataclasses import field
from typing import Any


def knob(
    default: Any, help: str, low: float | None = None, high: float | None = None, **cli
) -> Any:
    """A dataclass field exposed as a CLI option; ``low``/``high`` bound numbers (inclusive).

    ``cli`` may add ``choices`` (allowed strings), ``flag`` (the option name of a boolean
    when it differs from the field's), ``min_open`` / ``max_open`` (exclusive bounds).
    """
    return field(default=default, metadata={"help": help, "min": low, "max": high, **cli})


def check_bounds(config: Any) -> None:
    """ValueError naming the first knob of ``config`` outside its ``low``/``high`` bounds."""
    for name, spec in config.__dataclass_fields__.items():
        value, low, high = getattr(config, name), spec.metadata.get("min"), spec.metadata.get("max")
        if value is None or isinstance(value, bool | str | tuple):
            continue
        if (low is not None and value < low) or (high is not None and value > high):
            bound = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
            raise ValueError(f"{name}={value} is outside {bound}")
