"""``sci2cl train``: prepared h5mu in; model, embeddings parquet, h5mu, history, figures out."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click

from sci2cl.api import SCI2CL, is_prepared, training_summary
from sci2cl.cli.common import config_from, config_options, info, input_option, set_threads
from sci2cl.errors import InputError
from sci2cl.io import read_multiome
from sci2cl.io.write import check_writable, estimated_bytes, output_paths
from sci2cl.model import ModelConfig
from sci2cl.samples import GENES
from sci2cl.train import TrainConfig

_RUN_OPTIONS: list[Callable[[Callable], Callable]] = [
    click.option("--threads", type=click.IntRange(1), help="CPU threads for torch (default: all)."),
    click.option(
        "--checkpoint", type=click.Path(), help="Resumable checkpoint, written each epoch."
    ),
    click.option("--resume/--no-resume", help="Resume from --checkpoint when it exists."),
    click.option("--figures/--no-figures", default=True, help="Write UMAP and loss PNGs."),
]

#: Latest losses shown beside the progress bar over epochs.
PROGRESS_KEYS = ("train_loss", "val_loss", "val_zinb_rna", "val_zinb_atac", "val_moc", "val_mom")


def train_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """All model and training options (shared by ``train`` and ``run``)."""
    for option in reversed(_RUN_OPTIONS):
        func = option(func)
    return config_options(ModelConfig, TrainConfig)(func)


def check_before_work(output_prefix: str, options: Mapping[str, Any]) -> ModelConfig:
    """Fail on bad options or unwritable outputs before any input is read; the model config."""
    config = config_from(ModelConfig, options)
    paths = output_paths(output_prefix, figures=options["figures"]).values()
    check_writable([*paths, *([options["checkpoint"]] if options["checkpoint"] else [])])
    config_from(TrainConfig, options)
    return config


def train_and_write(model: SCI2CL, output_prefix: str, options: Mapping[str, Any]) -> None:
    """Train ``model`` and write every output (used by train and run)."""
    for report in model.reports:
        for line in report.summary_lines():
            info(line)
    mdata = model.mdata
    combined = mdata.uns.get("sci2cl", {}).get("combine")
    if combined:
        how = "recounted from fragments" if combined["recounted_from_fragments"] else "summed"
        info(
            f"combined {len(combined['samples'])} samples: {combined['n_genes']} genes "
            f"({combined['genes']}, {combined['n_genes_in_all_samples']} in all); "
            f"{combined['n_peaks_merged']} merged peaks from "
            f"{'+'.join(map(str, combined['n_peaks_per_sample']))} ({how})"
        )
    paths = output_paths(output_prefix, figures=options["figures"]).values()
    check_writable(paths, estimated_bytes(mdata, model.config))
    train_config = config_from(TrainConfig, options)
    set_threads(options["threads"])
    samples = mdata.obs["sample"].nunique() if "sample" in mdata.obs else 1
    info(f"training on {mdata.n_obs} cells from {samples} sample(s); device={train_config.device}")
    from tqdm.auto import tqdm

    with tqdm(total=train_config.max_epochs, desc="epochs", unit="epoch", file=sys.stderr) as bar:

        def progress(record: dict) -> None:
            shown = {
                k.replace("val_", "v_"): f"{record[k]:.3f}" for k in PROGRESS_KEYS if k in record
            }
            bar.set_postfix(stage=record.get("stage"), **shown, refresh=False)
            bar.update(1)

        result = model.train(train_config, progress, options["checkpoint"], options["resume"])
    written = model.write(output_prefix, figures=options["figures"])
    info(f"{training_summary(result, mdata.n_obs)}; wrote {len(written)} files")


def read_prepared(path: Path):
    mdata = read_multiome(path)
    if not is_prepared(mdata):
        raise InputError(path, "not a prepared h5mu (no selected features); run sci2cl prepare")
    return mdata


@click.command("train")
@input_option(
    "Prepared h5mu (from sci2cl prepare); repeat for several samples.", "inputs", multiple=True
)
@click.option(
    "--genes",
    type=click.Choice(GENES),
    default="union",
    help="Several samples: genes of any sample (absent = uncovered there) or of all samples.",
)
@click.option(
    "--fragments",
    multiple=True,
    type=click.Path(path_type=Path),
    help="10x fragments.tsv.gz per --input (same order): recount ATAC over the merged peaks.",
)
@click.option(
    "--output-prefix",
    required=True,
    help="Output path prefix; writes PREFIX.{model.pt,embeddings.parquet,h5mu,history.csv} "
    "and the figures.",
)
@train_options
def command(
    inputs: tuple[Path, ...],
    genes: str,
    fragments: tuple[Path, ...],
    output_prefix: str,
    **options: Any,
) -> None:
    """Train scI2CL on prepared sample(s) and write model, embeddings, h5mu and history.

    Several samples are trained into one space: genes of any (or all) samples, peaks merged
    across samples (see docs/usage.md), the sample as a decoder covariate."""
    config = check_before_work(output_prefix, options)
    for path in fragments:
        if not path.is_file() or not os.access(path, os.R_OK):
            raise InputError(path, "no such file" if not path.exists() else "not a readable file")
    prepared = [read_prepared(p) for p in inputs]
    model = SCI2CL.setup(prepared, genes=genes, fragments=fragments or None, config=config)
    train_and_write(model, output_prefix, options)
