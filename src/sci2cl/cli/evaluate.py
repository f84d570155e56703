"""``sci2cl evaluate``: NMI / ARI (KMeans, Leiden, paper protocol) of an embedding vs labels."""

from __future__ import annotations

import json
from pathlib import Path

import click

from sci2cl.cli.common import info, input_option, path_option
from sci2cl.evaluate import EvaluationConfig, evaluate_embedding, labelled_cells, read_embeddings
from sci2cl.io.write import check_writable, staged_outputs

# metrics on the summary line: NMI and ARI of each clustering, then batch mixing
SHOWN = [f"{c}_{s}" for c in ("leiden", "kmeans", "umap_kmeans") for s in ("nmi", "ari")]
SHOWN += ["batch_entropy", "ilisi", "graph_connectivity"]


@click.command("evaluate")
@input_option("PREFIX.h5mu or PREFIX.embeddings.parquet.")
@path_option(
    "labels",
    "labels_csv",
    "CSV: first column barcode (or sample:barcode), one column per labelling.",
)
@click.option("--label-column", required=True, help="Column of --labels to score against.")
@click.option("--exclude", multiple=True, help="Label value to leave out (repeatable).")
@click.option(
    "--batch-column",
    default=None,
    help="Also score batch mixing (kNN batch entropy, iLISI, graph connectivity) over this "
    "column of --labels, or 'sample' for the embedding's sample column.",
)
@path_option("output", "output", "metrics.json")
@click.option("--obsm-key", default="X_sci2cl", help="Embedding in an h5mu.")
@click.option(
    "--seeds", type=click.IntRange(1), default=3, help="KMeans / Leiden seeds to average."
)
@click.option(
    "--paper-protocol/--no-paper-protocol",
    default=True,
    help="Also run the scI2CL paper protocol (2-D UMAP then KMeans, 5 seeds).",
)
def command(
    input_path: Path,
    labels_csv: Path,
    label_column: str,
    exclude: tuple[str, ...],
    batch_column: str | None,
    output: Path,
    obsm_key: str,
    seeds: int,
    paper_protocol: bool,
) -> None:
    """Score an embedding against reference labels (labels are never used in training)."""
    check_writable([output])
    identity, embedding = read_embeddings(input_path, obsm_key)
    rows, labels, batches = labelled_cells(
        identity, labels_csv, label_column, tuple(exclude), batch_column
    )
    config = EvaluationConfig(seeds=tuple(range(seeds)), paper_protocol=paper_protocol)
    metrics = evaluate_embedding(embedding[rows], labels, config, batches)
    metrics.update(
        {
            "input": str(input_path),
            "label_column": label_column,
            "excluded": list(exclude),
            "batch_column": batch_column,
            "n_unlabelled": int(len(identity) - len(rows)),
        }
    )
    with staged_outputs({"json": output}) as temp:
        temp["json"].write_text(json.dumps(metrics, indent=2) + "\n")
    shown = [k for k in SHOWN if k in metrics]
    info(" ".join(f"{k}={metrics[k]:.3f}" for k in shown) + f" n_cells={len(rows)}")
