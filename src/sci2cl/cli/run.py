"""``sci2cl run``: prepare + train in one call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sci2cl.cli.common import info, user_errors
from sci2cl.cli.options import config_from, config_options
from sci2cl.cli.train import run_training, train_options
from sci2cl.io import default_sample_name, read_multiome
from sci2cl.preprocess import PrepareConfig, prepare


@click.command("run")
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Cell Ranger ARC outs/ folder, 10x .h5, MEX folder or .h5mu.",
)
@click.option("--output-prefix", required=True, help="Output path prefix.")
@click.option("--sample", default=None, help="Sample name (default: derived from --input).")
@config_options(PrepareConfig)
@train_options
@user_errors
def command(input_path: Path, output_prefix: str, sample: str | None, **options: Any) -> None:
    """Prepare one sample and train scI2CL on it (what to try first)."""
    mdata = read_multiome(input_path)
    prepared, report = prepare(
        mdata, config_from(PrepareConfig, options), sample or default_sample_name(input_path)
    )
    for line in report.summary_lines():
        info(line)
    run_training([prepared], output_prefix, options)
