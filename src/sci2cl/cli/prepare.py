"""``sci2cl prepare``: read one sample, QC it, mark selected features, write ``.prepared.h5mu``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sci2cl.cli.common import config_from, config_options, info, input_option
from sci2cl.io import default_sample_name, read_multiome
from sci2cl.io.write import PREPARED, check_writable, estimated_bytes, staged_outputs, write_h5mu
from sci2cl.preprocess import PrepareConfig, prepare


@click.command("prepare")
@input_option("Cell Ranger ARC outs/ folder, 10x .h5, MEX folder, .h5mu, or a folder holding one.")
@click.option(
    "--output-prefix", required=True, help=f"Output path prefix; writes PREFIX{PREPARED}."
)
@click.option("--sample", default=None, help="Sample name (default: derived from --input).")
@config_options(PrepareConfig)
def command(input_path: Path, output_prefix: str, sample: str | None, **options: Any) -> None:
    """QC cells and features of one multiome sample and mark the features to model."""
    config = config_from(PrepareConfig, options)
    final = Path(f"{output_prefix}{PREPARED}")
    check_writable([final])
    mdata = read_multiome(input_path)
    prepared, report = prepare(mdata, config, sample or default_sample_name(input_path))
    info(f"read {mdata.uns['files']['input']}")
    for line in report.summary_lines():
        info(line)
    check_writable([final], estimated_bytes(prepared))
    with staged_outputs({"h5mu": final}) as temps:
        write_h5mu(prepared, temps["h5mu"])
    info(f"wrote {final}")
