"""``sci2cl prepare``: read one sample, QC it, mark selected features, write ``.prepared.h5mu``."""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import click

from sci2cl.cli.common import info, user_errors
from sci2cl.errors import Sci2clError
from sci2cl.io import default_sample_name, read_multiome, staged_outputs, write_h5mu
from sci2cl.preprocess import PrepareConfig, prepare

PREPARED_SUFFIX = ".prepared.h5mu"


def prepared_path(prefix: str | Path) -> Path:
    """Where ``sci2cl prepare --output-prefix prefix`` writes its MuData."""
    return Path(f"{prefix}{PREPARED_SUFFIX}")


def _click_type(name: str, hint: Any, meta: Mapping[str, Any]) -> click.ParamType:
    base = next((t for t in typing.get_args(hint) if t is not type(None)), hint)
    bounds = {"min": meta["min"], "max": meta["max"]}
    if base is int:
        return click.IntRange(**bounds)
    if base is float:
        return click.FloatRange(**bounds)
    raise TypeError(f"PrepareConfig.{name}: no CLI type for {hint!r}")


def prepare_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add one ``--option`` per :class:`PrepareConfig` field (defaults from the dataclass)."""
    hints = typing.get_type_hints(PrepareConfig)
    for spec in reversed(fields(PrepareConfig)):
        default = None if spec.default is MISSING else spec.default
        func = click.option(
            f"--{spec.name.replace('_', '-')}",
            spec.name,
            type=_click_type(spec.name, hints[spec.name], spec.metadata),
            default=default,
            show_default=True if default is not None else "off",
            help=spec.metadata["help"],
        )(func)
    return func


def config_from_options(kwargs: Mapping[str, Any]) -> PrepareConfig:
    """Build a PrepareConfig from click keyword arguments (other keys are ignored)."""
    names = {spec.name for spec in fields(PrepareConfig)}
    try:
        return PrepareConfig(**{k: v for k, v in kwargs.items() if k in names})
    except ValueError as err:
        raise click.UsageError(str(err)) from err


@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Cell Ranger ARC outs/ folder, 10x .h5, MEX folder, .h5mu, or a folder holding one.",
)
@click.option(
    "--output-prefix",
    required=True,
    help=f"Output path prefix; writes PREFIX{PREPARED_SUFFIX}.",
)
@click.option("--sample", default=None, help="Sample name (default: derived from --input).")
@prepare_options
@user_errors
def _prepare(input_path: Path, output_prefix: str, sample: str | None, **options: Any) -> None:
    """QC cells and features of one multiome sample and mark the features to model."""
    config = config_from_options(options)
    sample = sample or default_sample_name(input_path)
    mdata = read_multiome(input_path)
    prepared, report = prepare(mdata, config, sample)
    info(f"read {mdata.uns['files']['input']}")
    for line in report.summary_lines():
        info(line)
    final = prepared_path(output_prefix)
    try:
        with staged_outputs({"h5mu": final}) as temps:
            write_h5mu(prepared, temps["h5mu"])
    except OSError as err:
        raise Sci2clError(f"{final}: cannot write output ({err.strerror or err})") from err
    info(f"wrote {final}")


command = click.command("prepare")(_prepare)
