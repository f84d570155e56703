"""``sci2cl multiqc``: MultiQC custom content (QC, training curves, embedding, UMAP)."""

from __future__ import annotations

from pathlib import Path

import click

from sci2cl.cli.common import info
from sci2cl.io.write import write_multiqc_content


@click.command("multiqc")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--outdir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the *_mqc.json / *_mqc.png files (then run `multiqc` on it).",
)
def command(inputs: tuple[Path, ...], outdir: Path) -> None:
    """Write MultiQC custom content from sci2cl outputs.

    INPUTS: *.prepared.h5mu (per-sample QC), trained *.h5mu (embedding summary, clusters),
    *.history.csv (training curves) and *umap*.png files.
    """
    written = write_multiqc_content(inputs, outdir)
    info(f"wrote {len(written)} MultiQC file(s) to {outdir}")
