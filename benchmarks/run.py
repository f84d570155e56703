"""sci2cl vs peers on real data, one harness: train each method as its own process (wall time
and peak RSS measured), score all with sci2cl's evaluation, regenerate docs/benchmarks.md.

    python -m benchmarks.run --data ../shared/data --out benchmarks/results --threads 1
    python -m benchmarks.run ... --methods sci2cl,multivi     # re-run a subset (cached rest)
    python -m benchmarks.run ... --scaling                    # time/memory vs cells, features
    python -m benchmarks.run ... --speed-check 20             # sci2cl and MultiVI side by side
    python -m benchmarks.run ... --titration                  # deep-ATAC titration (see there)
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks.bench_input import EXCLUDE, read_batches, read_labels, write_input
from benchmarks.launch import run_child
from benchmarks.methods import BY_NAME, MAIN_GROUPS, METHODS, Method, command
from benchmarks.report import SPEED_PAIR, write_report
from benchmarks.sci2cl_outputs import embedding, training_record
from benchmarks.scoring import mixing_scores, score_method, umap_coordinates
from benchmarks.titration import SEEDS, run_titration
from benchmarks.titration_data import DEPTHS
from sci2cl.evaluate import EvaluationConfig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--doc", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--methods", default="all", help="comma list of names, or 'all'")
    parser.add_argument("--threads", type=int, default=1, help="threads for every method")
    parser.add_argument("--max-cells", type=int, default=None, help="seeded subset (dev runs)")
    parser.add_argument("--peer-max-epochs", type=int, default=30, help="scVI/PeakVI/MultiVI cap")
    parser.add_argument("--mofa-max-iter", type=int, default=200, help="MOFA+ iteration cap")
    parser.add_argument("--caps", default="", help="per-method overrides, e.g. multivi=60,scvi=100")
    parser.add_argument(
        "--umap-seeds", type=int, default=None, help="paper protocol UMAP seeds (5; titration 0)"
    )
    parser.add_argument(
        "--fine-umap-seeds", type=int, default=None, help="same for the fine labels (0: skip)"
    )
    parser.add_argument("--force", action="store_true", help="re-train cached methods")
    parser.add_argument("--no-train", action="store_true", help="only score + report")
    parser.add_argument(
        "--speed-check",
        type=int,
        default=0,
        metavar="EPOCHS",
        help="train sci2cl and MultiVI (capped at EPOCHS) at the same time, then report",
    )
    parser.add_argument("--scaling", action="store_true", help="run the scaling study instead")
    parser.add_argument("--scaling-cells", default="10000,50000,200000,1000000")
    parser.add_argument("--scaling-peaks", default="2500,10000,25000")
    parser.add_argument("--scaling-steps", type=int, default=20, help="timed steps per size")
    parser.add_argument("--titration", action="store_true", help="run the deep-ATAC titration")
    parser.add_argument("--titration-methods", default="all", help="peers and/or variant names")
    parser.add_argument("--titration-depths", default=",".join(map(str, DEPTHS)))
    parser.add_argument("--titration-seeds", default=",".join(map(str, SEEDS)))
    args = parser.parse_args(argv)
    for name in ("umap_seeds", "fine_umap_seeds"):  # the titration skips UMAP unless asked
        if getattr(args, name) is None:
            setattr(args, name, 0 if args.titration else 5)
    return args


def say(message: str) -> None:
    """One progress line, written at once (the speed check trains in two threads)."""
    sys.stderr.write(f"[bench] {message}\n")
    sys.stderr.flush()


def caps(args: argparse.Namespace) -> dict[str, int]:
    scvi_family = {m: args.peer_max_epochs for m in ("multivi", "scvi", "peakvi")}
    overrides = dict(item.split("=") for item in args.caps.split(",") if item)
    return {**scvi_family, "mofa": args.mofa_max_iter} | {k: int(v) for k, v in overrides.items()}


def train(
    method: Method,
    h5mu: Path,
    out: Path,
    args: argparse.Namespace,
    family: Sequence[Method] = METHODS,
) -> None:
    """Run the method's child process once; write ``run.json`` (cached unless --force).
    Re-training clears the rows of ``family`` scored from this run."""
    folder = out / "methods" / method.name
    if (folder / "run.json").exists() and not args.force:
        return
    for stale in [method] + [m for m in family if m.run == method.name]:
        shutil.rmtree(out / "methods" / stale.name, ignore_errors=True)
    folder.mkdir(parents=True)
    cap = caps(args).get(method.name)
    say(f"training {method.name}")
    record = run_child(
        command(method, h5mu, folder, args.threads, cap), args.threads, folder / "log.txt"
    )
    child = folder / "child.json"
    record |= json.loads(child.read_text()) if child.exists() else {}
    if method.is_sci2cl:
        record |= training_record(folder / "log.txt")
    record |= {"threads": args.threads, "epoch_cap": cap}
    say(f"{method.name}: {record['process_s']:.0f}s rc={record['returncode']}")
    if record["returncode"] != 0:
        (folder / "failed.json").write_text(json.dumps(record, indent=2, default=str))
        return
    (folder / "run.json").write_text(json.dumps(record, indent=2, default=str))


def collect(method: Method, out: Path, barcodes: np.ndarray) -> Path | None:
    """The folder holding the method's embedding.npy or graph.npz (None if it did not run)."""
    folder = out / "methods" / method.name
    source = out / "methods" / method.run_name
    if not (source / "run.json").exists():
        return None
    if method.is_sci2cl and not (folder / "embedding.npy").exists():
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "embedding.npy", embedding(source, method.obsm, barcodes))
        if source != folder:
            shutil.copy(source / "run.json", folder / "run.json")
    return folder


def evaluation_configs(args: argparse.Namespace) -> dict[str, EvaluationConfig]:
    """Per labelling; the paper protocol (UMAP) is the slow part, so its seeds are options."""
    return {
        "coarse": EvaluationConfig(
            umap_seeds=tuple(range(args.umap_seeds)), paper_protocol=args.umap_seeds > 0
        ),
        "fine": EvaluationConfig(
            umap_seeds=tuple(range(args.fine_umap_seeds)), paper_protocol=args.fine_umap_seeds > 0
        ),
    }


def score(method: Method, folder: Path, out: Path, args: argparse.Namespace) -> None:
    """metrics.json (both labellings, Mis dropped) and umap.npy for the figure; cached."""
    labels = read_labels(out / "input")
    keep = ~labels["coarse"].isin(EXCLUDE).to_numpy() & ~labels["fine"].isin(EXCLUDE).to_numpy()
    if not (folder / "metrics.json").exists():
        say(f"scoring {folder.name}")
        values = {name: labels[name].to_numpy() for name in labels.columns}
        start = time.perf_counter()
        configs = evaluation_configs(args)
        if method.group == "probe":  # Leiden and KMeans suffice to compare settings
            configs = {k: replace(c, paper_protocol=False) for k, c in configs.items()}
        metrics = score_method(folder, values, keep, configs)
        metrics["scoring_s"] = time.perf_counter() - start
        metrics["umap_seeds"] = {"coarse": args.umap_seeds, "fine": args.fine_umap_seeds}
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if method.group in MAIN_GROUPS and not (folder / "mixing.json").exists():
        batches = read_batches(out / "input").loc[labels.index].to_numpy()
        mixing = mixing_scores(folder, batches, labels["coarse"].to_numpy(), keep)
        (folder / "mixing.json").write_text(json.dumps(mixing, indent=2))
    if method.group in MAIN_GROUPS and not (folder / "umap.npy").exists():
        np.save(folder / "umap.npy", umap_coordinates(folder))


def speed_check(h5mu: Path, args: argparse.Namespace) -> None:
    """sci2cl (defaults) and MultiVI trained at the same time, one child each, into OUT/speed:
    both see the same machine state, so their ratio holds even when the machine's speed drifts
    between sequential runs."""
    side = argparse.Namespace(**vars(args) | {"caps": f"multivi={args.speed_check}", "force": True})
    folder = args.out / "speed"
    with ThreadPoolExecutor(len(SPEED_PAIR)) as pool:
        list(pool.map(lambda name: train(BY_NAME[name], h5mu, folder, side), SPEED_PAIR))


def selected(methods: str) -> list[Method]:
    if methods == "all":
        return list(METHODS)
    return [BY_NAME[name.strip()] for name in methods.split(",")]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.scaling:
        from benchmarks.scaling import run_scaling

        run_scaling(args)
        return
    if args.titration:
        run_titration(args)
        return
    h5mu = write_input(args.data, args.out / "input", args.max_cells)
    barcodes = read_labels(args.out / "input").index.to_numpy()
    if args.speed_check:
        speed_check(h5mu, args)
    # train then score each in turn: partial runs still report
    for method in [] if args.speed_check else selected(args.methods):
        if not args.no_train:
            train(BY_NAME[method.run_name], h5mu, args.out, args)
        try:
            folder = collect(method, args.out, barcodes)
            if folder is not None:
                score(method, folder, args.out, args)
        except Exception as error:  # one method's failure must not lose the others
            say(f"{method.name} failed to score: {error!r}")
    command_line = "python -m benchmarks.run " + shlex.join(argv if argv else sys.argv[1:])
    seeds = {"coarse": args.umap_seeds, "fine": args.fine_umap_seeds}
    write_report(args.out, args.doc, command_line, caps(args), seeds)


if __name__ == "__main__":
    main()
