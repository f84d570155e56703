"""Deep-ATAC titration: real SNARE-seq RNA with ATAC redrawn from the fine labels at depths D
(``benchmarks/titration_data.py``); peers and sci2cl (joint, RNA and ATAC latents of the same
runs, training seeds 0-2) trained and scored at each D with the main harness's runner, cache
and scoring; the report block in docs/benchmarks.md is replaced in place.

    python -m benchmarks.run --titration --out OUT                  # all rows, cached
    python -m benchmarks.run --titration --out OUT --force          # re-train sci2cl rows only
    python -m benchmarks.run --titration --out OUT --titration-methods my_variant \\
        --titration-depths 1000,3000 --titration-seeds 0            # one variant, some D, seed 0

A sci2cl variant is one line in ``VARIANTS``: (name, label, extra ``sci2cl run`` flags).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from benchmarks.bench_input import read_labels
from benchmarks.datasets import load_snare
from benchmarks.methods import BY_NAME, Method
from benchmarks.sci2cl_outputs import validation_moc
from benchmarks.titration_data import titration
from sci2cl.io import write_h5mu
from sci2cl.preprocess import PrepareConfig, prepare

GROUP = "titration"
SEEDS = (0, 1, 2)
PEERS = ("rna_pca", "atac_lsi", "concat_pca_lsi", "wnn", "multivi")
# MultiVI on all 25,734 peaks on one CPU thread: 60 epochs (of its default 500) keeps the four
# depths to about an hour of MultiVI on the shared 2-core machine (--caps multivi=N overrides)
MULTIVI_CAP = 60
# sci2cl variants, each run at every D and training seed: (name, label, `sci2cl run` flags)
VARIANTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("sci2cl", "sci2cl (defaults)", ()),
    # one line per variant, e.g. ("all_peaks", "all peaks", ("--n-top-peaks", "30000"))
)
# the scored embeddings of one sci2cl run: (row-name suffix, what, obsm key)
LATENTS = (
    ("", "joint", "X_sci2cl"),
    ("_rna", "RNA latent", "X_sci2cl_rna"),
    ("_atac", "ATAC latent", "X_sci2cl_atac"),
)


def variant_rows(name: str, label: str, flags: tuple[str, ...], seeds: tuple[int, ...]) -> list:
    """One training run per seed and, from it, one row per latent (``extra`` names both)."""
    rows = []
    for seed in seeds:
        run = f"{name}_seed_{seed}"
        for suffix, what, obsm in LATENTS:
            rows.append(
                Method(
                    run + suffix,
                    f"{label} {what}",
                    GROUP,
                    flags=flags,
                    seed=seed,
                    obsm=obsm,
                    run=run if suffix else "",
                    extra={"variant": name, "latent": what},
                )
            )
    return rows


def all_rows(seeds: tuple[int, ...] = SEEDS) -> list[Method]:
    """Every titration row: the peers (as in the main benchmark), then each variant's rows."""
    rows = [replace(BY_NAME[name], group=GROUP) for name in PEERS]
    for variant in VARIANTS:
        rows += variant_rows(*variant, seeds)
    return rows


def depth_folder(out: Path, depth: int) -> Path:
    return out / "titration" / f"D{depth}"


def write_titration_input(data_dir: Path, folder: Path, depth: int) -> Path:
    """``folder/snare.h5mu`` (all genes, all peaks, raw counts, ATAC redrawn at ``depth``) and
    ``folder/labels.csv``, once. Cells are those sci2cl's default QC keeps on this data (a
    redrawn ATAC depth can fall below its minimum), so every method sees the same cells."""
    h5mu = folder / "snare.h5mu"
    if h5mu.exists() and (folder / "labels.csv").exists():
        return h5mu
    folder.mkdir(parents=True, exist_ok=True)
    mdata, meta = load_snare(data_dir)
    titrated = titration(mdata, meta, depth)
    kept = prepare(titrated, PrepareConfig(), "snare")[0].obs_names
    write_h5mu(titrated[kept].copy(), h5mu)
    meta.loc[kept].rename_axis("barcode").to_csv(folder / "labels.csv")
    (folder / "input.json").write_text(
        json.dumps({"depth": depth, "cells_in": mdata.n_obs, "cells_kept": len(kept)})
    )
    return h5mu


def selected_rows(args: argparse.Namespace) -> list[Method]:
    seeds = tuple(int(s) for s in args.titration_seeds.split(","))
    rows = all_rows(seeds)
    if args.titration_methods != "all":
        wanted = {name.strip() for name in args.titration_methods.split(",")}
        rows = [m for m in rows if m.name in wanted or m.extra.get("variant") in wanted]
    # cheap rows first, MultiVI last: a partial run still has the baselines
    return sorted(rows, key=lambda m: m.name == "multivi")


def record_moc(run: Method, out: Path) -> None:
    """Cache a sci2cl run's validation MOC figures and fusion verdict as ``moc.json``."""
    folder = out / "methods" / run.name
    if (folder / "run.json").exists() and not (folder / "moc.json").exists():
        (folder / "moc.json").write_text(json.dumps(validation_moc(folder), indent=2))


def titration_caps(args: argparse.Namespace) -> str:
    """``--caps`` for the titration: the MultiVI cap first, so the user's caps override it."""
    return ",".join(item for item in (f"multivi={MULTIVI_CAP}", args.caps) if item)


def run_titration(args: argparse.Namespace) -> None:
    """Train (cached), score and report every selected row at every selected depth."""
    from benchmarks.run import collect, say, score, train
    from benchmarks.titration_report import write_titration_block

    args = argparse.Namespace(**vars(args) | {"caps": titration_caps(args)})
    family = all_rows(SEEDS)
    runs = {m.name: m for m in family}
    for depth in (int(d) for d in args.titration_depths.split(",")):
        folder = depth_folder(args.out, depth)
        start = time.perf_counter()
        h5mu = write_titration_input(args.data, folder / "input", depth)
        say(f"D={depth}: input ready in {time.perf_counter() - start:.0f}s")
        barcodes = read_labels(folder / "input").index.to_numpy()
        trained: set[str] = set()
        for method in selected_rows(args):
            run = runs[method.run_name]
            if not args.no_train and run.name not in trained:
                # peers train once; --force re-trains sci2cl runs only
                forced = argparse.Namespace(**vars(args) | {"force": args.force and run.is_sci2cl})
                train(run, h5mu, folder, forced, family)
                trained.add(run.name)
            try:
                if run.is_sci2cl:
                    record_moc(run, folder)
                found = collect(method, folder, barcodes)
                if found is not None:
                    score(method, found, folder, args)
            except Exception as error:  # one row's failure must not lose the others
                say(f"D={depth} {method.name} failed to score: {error!r}")
    write_titration_block(args.out, args.doc)
