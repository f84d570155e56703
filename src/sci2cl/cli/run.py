"""``sci2cl run``: prepare + train in one call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sci2cl.api import SCI2CL
from sci2cl.cli.common import config_from, config_options, input_option
from sci2cl.cli.train import check_before_work, train_and_write, train_options
from sci2cl.io import default_sample_name, read_multiome
from sci2cl.preprocess import PrepareConfig


@click.command("run")
@input_option("Cell Ranger ARC outs/ folder, 10x .h5, MEX folder, .h5mu, or a folder holding one.")
@click.option("--output-prefix", required=True, help="Output path prefix.")
@click.option("--sample", default=None, help="Sample name (default: derived from --input).")
@config_options(PrepareConfig)
@train_options
def command(input_path: Path, output_prefix: str, sample: str | None, **options: Any) -> None:
    """Prepare one sample and train scI2CL on it (what to try first)."""
    prepare = config_from(PrepareConfig, options)
    config = check_before_work(output_prefix, options)
    sample = sample or default_sample_name(input_path)
    model = SCI2CL.setup(read_multiome(input_path), sample, prepare, config=config)
    train_and_write(model, output_prefix, options)
