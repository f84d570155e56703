"""``sci2cl embed``: map cells into a trained model's space."""

from __future__ import annotations

from pathlib import Path

import click

from sci2cl.cli.common import info, set_threads, user_errors
from sci2cl.embed import TrainedModel, embed
from sci2cl.errors import InputError
from sci2cl.io import default_sample_name, read_multiome
from sci2cl.outputs import write_embedding_outputs
from sci2cl.transfer import counts_for_model, prepare_like_model


def load_model(path: Path) -> TrainedModel:
    return TrainedModel.load(path)


@click.command("embed")
@click.option(
    "--model",
    "model_path",
    required=True,
    type=click.Path(path_type=Path),
    help="A PREFIX.model.pt written by sci2cl train / run.",
)
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Prepared h5mu, or raw input (ARC outs, .h5, MEX, .h5mu) to prepare alike.",
)
@click.option(
    "--output-prefix", required=True, help="Writes PREFIX.embeddings.parquet and PREFIX.h5mu."
)
@click.option("--sample", default=None, help="Sample name for raw input (default: from path).")
@click.option("--batch-size", type=click.IntRange(1), default=1024, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--threads", type=click.IntRange(1), default=None)
@user_errors
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
    set_threads(threads)
    trained = load_model(model_path)
    mdata = prepare_like_model(
        read_multiome(input_path), trained, sample or default_sample_name(input_path)
    )
    try:
        counts, missing = counts_for_model(mdata, trained)
    except ValueError as err:
        raise InputError(input_path, str(err)) from None
    for modality, n in missing.items():
        if n:
            total = len(trained.features[modality])
            info(f"warning: {n} of {total} model {modality} features absent; treated as zeros")
    embeddings = embed(trained.module, trained.dataset(counts), batch_size, device)
    params = {**trained.train_params, "embedded_with": str(model_path)}
    paths = {s: Path(f"{output_prefix}{s}") for s in (".embeddings.parquet", ".h5mu")}
    seed = int(trained.train_params.get("train", {}).get("seed", 0))
    write_embedding_outputs(mdata, embeddings, trained, params, paths, seed)
    info(f"embedded {mdata.n_obs} cells; wrote {', '.join(str(p) for p in paths.values())}")
