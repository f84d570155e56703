"""``sci2cl train``: prepared h5mu in; embeddings parquet, h5mu, model, history, figures out."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click

from sci2cl.cli.common import EpochProgress, info, set_threads, user_errors
from sci2cl.errors import InputError
from sci2cl.io import read_multiome
from sci2cl.model import ModelConfig
from sci2cl.outputs import TRAIN_OUTPUTS, write_training_outputs
from sci2cl.samples import combine_samples
from sci2cl.train import TrainConfig

M, T = ModelConfig, TrainConfig


def _hidden(_ctx, _param, value: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None
    if not dims or min(dims) < 1:
        raise click.BadParameter("hidden sizes must be positive integers")
    return dims


_OPTIONS: list[Callable[[Callable], Callable]] = [
    click.option(
        "--latent-dim",
        type=click.IntRange(2),
        default=M.latent_dim,
        show_default=True,
        help="Dimension of each modality latent and of the joint embedding.",
    ),
    click.option(
        "--hidden-dims",
        default=",".join(map(str, M.hidden_dims)),
        show_default=True,
        callback=_hidden,
        help="Encoder hidden sizes (decoder mirrors them).",
    ),
    click.option("--dropout", type=click.FloatRange(0, 0.9), default=M.dropout, show_default=True),
    click.option(
        "--n-views",
        type=click.IntRange(0),
        default=M.n_views,
        show_default=True,
        help="Masked views T per cell for intra-omics attention (0 disables).",
    ),
    click.option(
        "--mask-rate",
        type=click.FloatRange(0, 0.95),
        default=M.mask_rate,
        show_default=True,
        help="Fraction of each cell's measured features masked.",
    ),
    click.option("--n-heads", type=click.IntRange(1), default=M.n_heads, show_default=True),
    click.option(
        "--n-tokens",
        type=click.IntRange(1),
        default=M.n_tokens,
        show_default=True,
        help="Tokens per modality latent for cross-attention.",
    ),
    click.option(
        "--temperature",
        type=click.FloatRange(0.001),
        default=M.temperature,
        show_default=True,
        help="InfoNCE temperature of the MOC loss.",
    ),
    click.option(
        "--lambda-rec",
        type=click.FloatRange(0),
        default=M.lambda_rec,
        show_default=True,
        help="Weight of the ZINB reconstruction losses (lambda1).",
    ),
    click.option(
        "--lambda-mse",
        type=click.FloatRange(0),
        default=M.lambda_mse,
        show_default=True,
        help="Weight of the masked-view consistency MSE (lambda2).",
    ),
    click.option(
        "--lambda-moc",
        type=click.FloatRange(0),
        default=M.lambda_moc,
        show_default=True,
        help="Weight of the contrastive MOC loss (lambda3).",
    ),
    click.option(
        "--lambda-mom",
        type=click.FloatRange(0),
        default=M.lambda_mom,
        show_default=True,
        help="Weight of the matching MOM loss (lambda4).",
    ),
    click.option(
        "--decoder-features-per-step",
        type=click.IntRange(16),
        default=M.decoder_features_per_step,
        show_default=True,
        help="Features per step in the ZINB loss of wide modalities (random subset).",
    ),
    click.option(
        "--cross-attention/--no-cross-attention",
        "use_cross_attention",
        default=M.use_cross_attention,
        show_default=True,
        help="Fuse with cross-attention (else: concatenated latents, no MOM).",
    ),
    click.option(
        "--joint-half-counts",
        type=click.FloatRange(0),
        default=M.joint_half_counts,
        show_default=True,
        help="Counts at which a modality gets half weight in a cell's joint embedding "
        "(weight n/(n+this); 0 = equal weights).",
    ),
    click.option(
        "--inter-gradient",
        type=click.Choice(["both", "rna", "atac", "none", "reliability", "atac_depth"]),
        default=M.inter_gradient,
        show_default=True,
        help="Encoders that MOC/MOM gradients reach (e.g. 'atac': align ATAC to a fixed RNA).",
    ),
    click.option(
        "--learn-reliability/--fixed-reliability",
        default=M.learn_reliability,
        show_default=True,
        help="Learn each modality's half-count from masked views.",
    ),
    click.option(
        "--negatives",
        type=click.Choice(["any", "within_sample"]),
        default=M.negatives,
        show_default=True,
        help="Several samples: MOC/MOM negatives from any cell of the batch or only from "
        "cells of the same sample.",
    ),
    click.option(
        "--batch-covariate/--no-batch-covariate",
        default=M.batch_covariate,
        show_default=True,
        help="Several samples: condition the decoders on the sample (scVI style).",
    ),
    click.option(
        "--max-epochs",
        type=click.IntRange(1),
        default=T.max_epochs,
        show_default=True,
        help="Cap on total epochs (warm-up + joint).",
    ),
    click.option(
        "--warmup-epochs",
        type=click.IntRange(0),
        default=T.warmup_epochs,
        show_default=True,
        help="Reconstruction-only epochs before all losses.",
    ),
    click.option("--batch-size", type=click.IntRange(2), default=T.batch_size, show_default=True),
    click.option("--lr", type=click.FloatRange(0, min_open=True), default=T.lr, show_default=True),
    click.option(
        "--weight-decay", type=click.FloatRange(0), default=T.weight_decay, show_default=True
    ),
    click.option(
        "--fusion-check/--no-fusion-check",
        default=T.fusion_check,
        show_default=True,
        help="After training, drop the cross-attention residual unless the held-out MOM loss "
        "beats its chance level (ln 2), i.e. unless matching generalises to unseen cells.",
    ),
    click.option(
        "--patience",
        type=click.IntRange(1),
        default=T.patience,
        show_default=True,
        help="Early stopping: epochs without validation improvement.",
    ),
    click.option(
        "--validation-fraction",
        type=click.FloatRange(0, 0.5, max_open=True),
        default=T.validation_fraction,
        show_default=True,
        help="Held-out cells for early stopping.",
    ),
    click.option("--seed", type=int, default=T.seed, show_default=True),
    click.option(
        "--device", default=T.device, show_default=True, help="auto, cpu, cuda or cuda:N."
    ),
    click.option(
        "--precision",
        type=click.Choice(["auto", "32", "bf16", "16"]),
        default=T.precision,
        show_default=True,
        help="auto = bf16 mixed precision on CUDA, float32 on CPU.",
    ),
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
    for option in reversed(_OPTIONS):
        func = option(func)
    return func


def configs_from_options(options: Mapping[str, Any]) -> tuple[ModelConfig, TrainConfig]:
    model_fields = set(ModelConfig.__dataclass_fields__)
    train_fields = set(TrainConfig.__dataclass_fields__)
    try:
        model = ModelConfig(**{k: v for k, v in options.items() if k in model_fields})
        train = TrainConfig(**{k: v for k, v in options.items() if k in train_fields})
    except ValueError as err:
        raise click.UsageError(str(err)) from err
    return model, train


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
