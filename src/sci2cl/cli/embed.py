"""``sci2cl embed``: map cells into a trained model's space."""

from __future__ import annotations

from pathlib import Path

import click

from sci2cl.api import SCI2CL
from sci2cl.cli.common import info, input_option, path_option, set_threads
from sci2cl.io import default_sample_name, read_multiome
from sci2cl.io.write import check_writable, output_paths


@click.command("embed")
@path_option("model", "model_path", "A PREFIX.model.pt written by sci2cl train / run.")
@input_option("Prepared h5mu, or raw input (ARC outs, .h5, MEX, .h5mu) to prepare alike.")
@click.option(
    "--output-prefix", required=True, help="Writes PREFIX.embeddings.parquet and PREFIX.h5mu."
)
@click.option("--sample", default=None, help="Sample name for raw input (default: from path).")
@click.option("--batch-size", type=click.IntRange(1), default=1024)
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
@click.option("--threads", type=click.IntRange(1), default=None)
def command(
    model_path: Path,
    input_path: Path,
    output_prefix: str,
    sample: str | None,
    batch_size: int,
    device: str,
    threads: int | None,
) -> None:
    """Embed cells with a saved model (features aligned by name; absent ones count zero)."""
    check_writable(output_paths(output_prefix, trained=False).values())
    set_threads(threads)
    model = SCI2CL.load(model_path)
    query = model.map_query(read_multiome(input_path), sample or default_sample_name(input_path))
    query.get_latent_representation(batch_size=batch_size, device=device)
    written = query.write(output_prefix)
    info(f"embedded {query.mdata.n_obs} cells; wrote {', '.join(map(str, written))}")
