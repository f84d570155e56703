"""Config fields that are CLI options: a field declared with :func:`knob` carries its help text
and bounds, and ``sci2cl.cli.common`` turns it into ``--its-name``; plain fields stay internal."""

from __future__ import annotations

import math
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
    """ValueError naming the first knob of ``config`` outside its bounds or choices."""
    for name, spec in config.__dataclass_fields__.items():
        value, meta = getattr(config, name), spec.metadata
        if "choices" in meta and value not in meta["choices"]:
            raise ValueError(f"{name} must be one of {', '.join(meta['choices'])}, got {value!r}")
        if value is None or isinstance(value, bool | str | tuple):
            continue
        low = -math.inf if meta.get("min") is None else meta["min"]
        high = math.inf if meta.get("max") is None else meta["max"]
        low_open, high_open = meta.get("min_open", False), meta.get("max_open", False)
        if not low <= value <= high or (low_open and value == low) or (high_open and value == high):
            left, right = "(" if low_open else "[", ")" if high_open else "]"
            raise ValueError(f"{name}={value} is outside {left}{low}, {high}{right}")
