"""scvi-tools peers: scVI (RNA counts), PeakVI (ATAC) and MultiVI (both), default models.

Each trains with scvi-tools' own early stopping, capped at ``--max-epochs`` on CPU; the
record keeps the epochs run and the mean seconds per epoch so a longer budget can be priced.
"""

from __future__ import annotations

import mudata as md
import numpy as np
import scvi

from benchmarks.peers.common import parse_args, stopwatch, write_embedding


def build(name: str, mdata: md.MuData):
    """The untrained model on raw counts (same cells and features as every method)."""
    if name == "scvi":
        rna = mdata["rna"].copy()
        scvi.model.SCVI.setup_anndata(rna)
        return scvi.model.SCVI(rna), {"early_stopping": True}
    if name == "peakvi":
        atac = mdata["atac"].copy()
        scvi.model.PEAKVI.setup_anndata(atac)
        return scvi.model.PEAKVI(atac), {}
    scvi.model.MULTIVI.setup_mudata(mdata, modalities={"rna_layer": "rna", "atac_layer": "atac"})
    model = scvi.model.MULTIVI(mdata, n_genes=mdata["rna"].n_vars, n_regions=mdata["atac"].n_vars)
    return model, {}


def epochs_run(model) -> int:
    history = model.history
    key = next((k for k in ("elbo_train", "train_loss_epoch") if k in history), None)
    return int(len(history[key])) if key else -1


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    scvi.settings.seed = args.seed
    scvi.settings.num_threads = args.threads
    scvi.settings.dl_num_workers = 0
    mdata = md.read_h5mu(args.input)
    model, options = build(args.method, mdata)
    if args.max_epochs:
        options["max_epochs"] = args.max_epochs
    record = {"device": "cpu", "threads": args.threads, "epoch_cap": args.max_epochs}
    with stopwatch(record):
        model.train(accelerator="cpu", devices=1, enable_progress_bar=False, **options)
    record["epochs"] = epochs_run(model)
    record["s_per_epoch"] = record["train_s"] / max(record["epochs"], 1)
    record["stopped_early"] = bool(args.max_epochs and record["epochs"] < args.max_epochs)
    embedding = np.asarray(model.get_latent_representation())
    write_embedding(args.out, embedding, record)


if __name__ == "__main__":
    main()
