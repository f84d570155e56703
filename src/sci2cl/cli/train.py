"""``sci2cl train``: prepared h5mu in; embeddings parquet, h5mu, model, history, figures out."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click

from sci2cl.cli.common import EpochProgress, info, set_threads, user_errors
from sci2cl.cli.options import config_from, config_options
from sci2cl.errors import InputError
from sci2cl.io import read_multiome
from sci2cl.model import ModelConfig
from sci2cl.outputs import TRAIN_OUTPUTS, write_training_outputs
from sci2cl.samples import combine_samples
from sci2cl.train import TrainConfig

_RUN_OPTIONS: list[Callable[[Callable], Callable]] = [
    click.option(
        "--threads",
        type=click.IntRange(1),
        default=None,
        help="CPU threads for torch (default: all available).",
    ),
    click.option(
        "--checkpoint",
        type=click.Path(path_type=Path),
        default=None,
        help="Write a resumable checkpoint here after every epoch.",
    ),
    click.option(
        "--resume/--no-resume",
        default=False,
        show_default=True,
        help="Resume from --checkpoint when it exists.",
    ),
    click.option(
        "--figures/--no-figures",
        default=True,
        show_default=True,
        help="Write UMAP and loss-curve PNGs.",
    ),
]


def train_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """All model and training options (shared by ``train`` and ``run``)."""
    for option in reversed(_RUN_OPTIONS):
        func = option(func)
    return config_options(ModelConfig, TrainConfig)(func)


def configs_from_options(options: Mapping[str, Any]) -> tuple[ModelConfig, TrainConfig]:
    return config_from(ModelConfig, options), config_from(TrainConfig, options)


def run_training(
    prepared: list,
    output_prefix: str,
    options: Mapping[str, Any],
    fragments: list[Path] | None = None,
    genes: str = "union",
) -> None:
    """Train on prepared MuData objects and write every output (used by train and run)."""
    model_config, train_config = configs_from_options(options)
    set_threads(options.get("threads"))
    mdata = combine_samples(prepared, fragments, genes)
    combined = mdata.uns.get("sci2cl", {}).get("combine")
    if combined:
        how = "recounted from fragments" if combined["recounted_from_fragments"] else "summed"
        info(
            f"combined {len(prepared)} samples: {combined['n_genes']} genes ({combined['genes']}, "
            f"{combined['n_genes_in_all_samples']} in all); "
            f"{combined['n_peaks_merged']} merged peaks from "
            f"{'+'.join(map(str, combined['n_peaks_per_sample']))} ({how})"
        )
    info(
        f"training on {mdata.n_obs} cells from {len(prepared)} sample(s); "
        f"device={train_config.device}"
    )
    progress = EpochProgress(train_config.max_epochs)
    try:
        summary = write_training_outputs(
            mdata,
            output_prefix,
            model_config,
            train_config,
            on_epoch=progress,
            checkpoint=options.get("checkpoint"),
            resume=bool(options.get("resume")),
            figures=bool(options.get("figures", True)),
        )
    finally:
        progress.close()
    info(str(summary))


def read_prepared(path: Path):
    mdata = read_multiome(path)
    for mod in ("rna", "atac"):
        if "sci2cl_selected" not in mdata[mod].var:
            raise InputError(path, "not a prepared h5mu (no selected features); run sci2cl prepare")
    return mdata


@click.option(
    "--input",
    "inputs",
    required=True,
    multiple=True,
    type=click.Path(path_type=Path),
    help="Prepared h5mu (from sci2cl prepare); repeat for several samples.",
)
@click.option(
    "--genes",
    type=click.Choice(["union", "common"]),
    default="union",
    show_default=True,
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
    help=f"Output path prefix; writes PREFIX{{{','.join(TRAIN_OUTPUTS)}}}.",
)
@train_options
@user_errors
def _train(
    inputs: tuple[Path, ...],
    genes: str,
    fragments: tuple[Path, ...],
    output_prefix: str,
    **options: Any,
) -> None:
    """Train scI2CL on prepared sample(s) and write embeddings, h5mu, model and history.

    Several samples are trained into one space: genes of any (or all) samples, peaks merged
    across samples (see docs/usage.md), the sample as a decoder covariate."""
    for path in fragments:
        if not path.exists():
            raise InputError(path, "no such file")
    prepared = [read_prepared(p) for p in inputs]
    run_training(prepared, output_prefix, options, list(fragments) or None, genes)


command = click.command("train")(_train)
