"""Write docs/benchmarks.md (and its figures) from the cached results in ``--out``."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.bench_input import EXCLUDE, LABELS, read_labels
from benchmarks.environment import machine, peer_versions, product_versions
from benchmarks.figures import scaling_plot, umap_grid
from benchmarks.loader import loader_section
from benchmarks.methods import MAIN_GROUPS, METHODS, Method
from benchmarks.scaling_10x import scaling_10x_section

PROTOCOLS = (("leiden", "Leiden k"), ("kmeans", "KMeans k"), ("umap_kmeans", "UMAP-2D + KMeans"))


def load(out: Path, method: Method) -> tuple[dict, dict] | None:
    folder = out / "methods" / method.name
    if not (folder / "metrics.json").exists():
        return None
    metrics = json.loads((folder / "metrics.json").read_text())
    return metrics, json.loads((folder / "run.json").read_text())


def _f(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def epochs_text(run: dict) -> str:
    epochs, cap = run.get("epochs"), run.get("epoch_cap")
    if epochs is None:
        return f"≤{cap} it (cap)" if cap else "–"
    text = str(epochs)
    if cap and epochs >= cap:
        text += f" (**capped at {cap}**)"
    elif run.get("stopped_early"):
        text += " (early stop)"
    return text


def quality_rows(results: dict[str, tuple[dict, dict]], labelling: str, timing: bool) -> list[str]:
    head = ["method"] + [f"{t} {s}" for _, t in PROTOCOLS for s in ("NMI", "ARI")]
    head += ["silhouette", "kNN acc"]
    if timing:
        head += ["train s", "process s", "process CPU s", "peak RSS MiB", "epochs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, (metrics, run) in results.items():
        m = metrics[labelling]
        cells = [name] + [_f(m.get(f"{p}_{s}")) for p, _ in PROTOCOLS for s in ("nmi", "ari")]
        cells += [_f(m.get("silhouette")), _f(m.get("knn_accuracy"))]
        if timing:
            cells += [
                _f(run.get("train_s"), 1),
                _f(run.get("process_s"), 1),
                _f(run.get("cpu_s"), 1),
                ("" if run.get("rss_isolated") else "≤") + _f(run.get("peak_rss_mib"), 0),
                epochs_text(run),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


SPEED_PAIR = ("sci2cl", "multivi")  # trained at the same time by `run.py --speed-check`
MULTIVI_BUDGETS = (150, 500)  # epochs: our capped run, and MultiVI's own default


def seconds_per_epoch(record: dict) -> float:
    return record["train_s"] / max(record.get("epochs") or 1, 1)


def side_by_side_lines(out: Path) -> list[str]:
    """The ratio from ``--speed-check``: both methods trained concurrently."""
    files = [out / "speed" / "methods" / name / "run.json" for name in SPEED_PAIR]
    if not all(f.exists() for f in files):
        return ["- No side-by-side run yet (`python -m benchmarks.run ... --speed-check 20`)."]
    ours, theirs = (json.loads(f.read_text()) for f in files)
    per_epoch = seconds_per_epoch(theirs)
    day = datetime.date.fromtimestamp(files[0].stat().st_mtime).isoformat()
    ratio, full = (ours["train_s"] / (per_epoch * n) for n in MULTIVI_BUDGETS)
    return [
        f"- **Side by side** ({day}, `--speed-check {theirs.get('epoch_cap')}`: both trained at "
        f"the same time, one process and {ours.get('threads')} thread(s) each, so both see the "
        f"same machine state): sci2cl's whole default run {ours['train_s']:.0f} s "
        f"({ours.get('epochs')} epochs); MultiVI {per_epoch:.1f} s/epoch over "
        f"{theirs.get('epochs')} epochs. **Ratio sci2cl / MultiVI at {MULTIVI_BUDGETS[0]} epochs: "
        f"{ratio:.2f}** (goal ≤ 0.20: {'met' if ratio <= 0.2 else 'missed'}), at MultiVI's "
        f"default {MULTIVI_BUDGETS[1]}: {full:.3f}. The rows above come from runs at "
        "different times, and a shared machine's speed drifts between them: this is the ratio "
        "to quote.",
    ]


def speed_lines(results: dict[str, tuple[dict, dict]]) -> list[str]:
    if "sci2cl (defaults)" not in results or "MultiVI" not in results:
        return ["sci2cl or MultiVI has no result yet."]
    ours, theirs = results["sci2cl (defaults)"][1], results["MultiVI"][1]
    per_epoch = seconds_per_epoch(theirs)
    ratio = ours["train_s"] / theirs["train_s"]
    capped, full = (per_epoch * n for n in MULTIVI_BUDGETS)
    lines = [
        f"- sci2cl trained {ours.get('epochs')} epochs (early stopping) in "
        f"{ours['train_s']:.0f} s; MultiVI ran {theirs.get('epochs')} epochs in "
        f"{theirs['train_s']:.0f} s ({per_epoch:.1f} s/epoch), same device (CPU), "
        f"same threads ({ours.get('threads')}).",
        f"- Ratio sci2cl / MultiVI of these two runs (trained at different times): {ratio:.2f}.",
        f"- Whole child process CPU seconds (less sensitive to other load on the machine): "
        f"sci2cl {ours['cpu_s']:.0f} s, MultiVI {theirs['cpu_s']:.0f} s "
        f"(ratio {ours['cpu_s'] / theirs['cpu_s']:.2f}).",
    ]
    if theirs.get("epochs") and theirs.get("epoch_cap") and theirs["epochs"] >= theirs["epoch_cap"]:
        lines.append(
            f"- MultiVI hit its epoch cap, so it had not converged: its own default budget is "
            f"500 epochs with early stopping (the shared-data README saw it still improving at "
            f"150). Priced at the measured {per_epoch:.1f} s/epoch: 150 epochs = "
            f"{capped:.0f} s (ratio {ours['train_s'] / capped:.3f}), 500 "
            f"epochs = {full:.0f} s (ratio {ours['train_s'] / full:.3f}). These are "
            "estimates, not measurements."
        )
    return lines


def goal_lines(results: dict[str, tuple[dict, dict]], groups: dict[str, str]) -> list[str]:
    ours = results.get("sci2cl (defaults)")
    if ours is None:
        return []
    lines = []
    for labelling in LABELS:
        for protocol, title in PROTOCOLS:
            for score in ("nmi", "ari"):
                key = f"{protocol}_{score}"
                peers = {
                    n: r[0][labelling].get(key)
                    for n, r in results.items()
                    if groups[n] == "peer" and r[0][labelling].get(key) is not None
                }
                if not peers:
                    continue
                best = max(peers, key=peers.get)
                gap = ours[0][labelling][key] - peers[best]
                verdict = "ahead" if gap > 0 else "**behind**"
                lines.append(
                    f"| {labelling} | {title} {score.upper()} | {_f(ours[0][labelling][key])} "
                    f"| {best} {_f(peers[best])} | {gap:+.3f} {verdict} |"
                )
    head = [
        "| labels | metric | sci2cl | best peer | sci2cl − best peer |",
        "|---|---|---|---|---|",
    ]
    return head + lines


def ablation_lines(ablations: dict[str, tuple[dict, dict]], what: str = "ablated") -> list[str]:
    """Each variant's change against the defaults (Leiden k NMI/ARI, both labellings)."""
    base = ablations.get("sci2cl (defaults)")
    if base is None:
        return []
    lines = []
    for name, (metrics, _run) in ablations.items():
        if name == "sci2cl (defaults)":
            continue
        deltas = []
        for labelling in LABELS:
            ours, ref = metrics[labelling], base[0][labelling]
            deltas.append(
                f"{labelling} Leiden NMI {ours['leiden_nmi'] - ref['leiden_nmi']:+.3f}"
                f" / ARI {ours['leiden_ari'] - ref['leiden_ari']:+.3f}"
            )
        lines.append(f"- {name} vs defaults: " + "; ".join(deltas))
    head = f"Change against the defaults (positive: the {what} model scores higher):"
    return [head, ""] + lines


def variant_section(variants: dict[str, tuple[dict, dict]], what: str) -> list[str]:
    """Coarse (with timing) and fine tables of sci2cl variants, then their deltas."""
    return [
        *quality_rows(variants, "coarse", timing=True),
        "",
        "Fine labels:",
        "",
        *quality_rows(variants, "fine", timing=False),
        "",
        *ablation_lines(variants, what),
    ]


def mixing_lines(out: Path, main: dict[str, tuple[dict, dict]]) -> list[str]:
    """Batch mixing of the 12 libraries per method (``mixing.json``, from the run)."""
    folders = {m.label: out / "methods" / m.name / "mixing.json" for m in METHODS}
    rows = {n: json.loads(folders[n].read_text()) for n in main if folders[n].exists()}
    if not rows:
        return ["Not scored yet."]
    lines = [
        "| method | batch entropy | iLISI (of 12) | graph connectivity |",
        "|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {_f(r['batch_entropy'])} | {_f(r['ilisi'], 2)} "
            f"| {_f(r['graph_connectivity'])} |"
        )
    return lines


def markdown_table(table: pd.DataFrame) -> list[str]:
    def cell(value) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    rows = [" | ".join(cell(v) for v in row) for row in table.itertuples(index=False)]
    head = "| " + " | ".join(table.columns) + " |"
    return [head, "|" + "---|" * table.shape[1], *(f"| {r} |" for r in rows)]


def scaling_section(out: Path, figure_dir: Path) -> list[str]:
    path = out / "scaling" / "scaling.csv"
    if not path.exists():
        return ["Not run yet (`python -m benchmarks.run --scaling`)."]
    table = pd.read_csv(path)
    scaling_plot(table, figure_dir / "scaling.png")
    notes = out / "scaling" / "notes.md"
    lines = [*markdown_table(table), "", "![scaling](benchmarks/scaling.png)"]
    return lines + (["", notes.read_text()] if notes.exists() else [])


def write_report(
    out: Path, doc: Path, command_line: str, caps: dict[str, int], umap_seeds: dict[str, int]
) -> None:
    from benchmarks.titration_report import titration_block  # imports this module

    results = {m.label: r for m in METHODS if (r := load(out, m)) is not None}
    groups = {m.label: m.group for m in METHODS}
    notes = {m.label: m.note for m in METHODS if m.note and m.label in results}
    figure_dir = doc.parent / "benchmarks"
    labels = read_labels(out / "input")
    keep = ~labels["coarse"].isin(EXCLUDE).to_numpy()
    panels = {
        m.label: np.load(out / "methods" / m.name / "umap.npy")
        for m in METHODS
        if m.label in results and (out / "methods" / m.name / "umap.npy").exists()
    }
    if panels:
        umap_grid(panels, labels["coarse"].to_numpy(), keep, figure_dir / "umap_grid.png")
    main = {n: r for n, r in results.items() if groups[n] in MAIN_GROUPS}
    ablations, probes = (
        {n: r for n, r in results.items() if n == "sci2cl (defaults)" or groups[n] == group}
        for group in ("ablation", "probe")
    )
    first = next(iter(results.values()), ({"coarse": {}, "fine": {}}, {}))[0]
    versions = {"product (.venv)": product_versions(), "peers (.venv-bench)": peer_versions()}
    text = [
        "# Benchmarks: sci2cl vs peers on real data",
        "",
        "Generated by `benchmarks/run.py`; do not edit by hand. "
        f"Date: {datetime.date.today().isoformat()}.",
        "",
        "```",
        command_line,
        "```",
        "",
        "`make bench` sets up the peers' own venv (`.venv-bench`, from "
        "`benchmarks/requirements-peers.txt`) and runs all methods; `make bench-scaling` runs "
        "the scaling study; `make bench-speed` trains sci2cl and MultiVI side by side for the "
        "speed ratio. Results are cached per method under `--out`; `--methods a,b` "
        "re-runs a subset (with `--force`) and this page is rebuilt from all cached results.",
        "",
        "Data: SNARE-seq adult mouse cortex (`shared/data/snareseq_mouse_cortex_scmomat`), "
        f"{labels.shape[0]:,} cells; every method trains on all of them, on the features sci2cl's "
        "default `prepare` selects (genes in ≥ 3 cells, the 10,000 most frequently accessible "
        "peaks), from raw counts. Scoring drops the `Mis` (unassigned) cells: "
        f"{first['coarse'].get('n_cells', '?')} cells, coarse `cluster (remapped)` "
        f"({first['coarse'].get('n_labels', '?')} types) and fine `Ident` "
        f"({first['fine'].get('n_labels', '?')} types).",
        "",
        "Metrics come from one code path, `sci2cl.evaluate` (`evaluate_embedding`): NMI/ARI of "
        "Leiden with the resolution searched to k clusters on a 15-NN graph (3 seeds), KMeans k "
        "(3 seeds), the scI2CL paper protocol (2-D UMAP then KMeans k, mean over "
        f"{umap_seeds['coarse']} UMAP seed(s) for coarse labels, {umap_seeds['fine']} for fine "
        "labels; 0 = not run, to fit the time budget: `--umap-seeds`, `--fine-umap-seeds`), "
        "silhouette of the labels, leave-one-out kNN label accuracy. WNN is a graph: it gets "
        "the same Leiden search and kNN accuracy on its own graph, the rest is n/a. "
        "Wall time: `train s` is the training call alone (reported by the method), `process s` "
        "the whole child process (load, preprocess, train, write); peak RSS is `ru_maxrss` of "
        "the child (`os.wait4`), `process CPU s` its user+system CPU time (the machine was "
        "shared with other jobs, so wall times carry contention; CPU seconds less so). "
        "A peak RSS marked ≤ is an upper bound: it was measured with the child started "
        "straight from the harness, and Linux's ru_maxrss then includes the harness's own "
        "memory at fork; later runs start children from a small launcher "
        "(`benchmarks/measure.py`), which fixes this. "
        "Every method ran with the same thread count, on CPU. Epoch "
        f"caps on CPU: MultiVI ≤ {caps.get('multivi')}, PeakVI ≤ {caps.get('peakvi')}, scVI ≤ "
        f"{caps.get('scvi')} epochs (their early stopping still on), MOFA+ ≤ "
        f"{caps.get('mofa')} iterations; sci2cl uses its defaults "
        "(≤ 100 epochs, early stopping).",
        "",
        "## Coarse labels (`cluster (remapped)`, no `Mis`)",
        "",
        *quality_rows(main, "coarse", timing=True),
        "",
        "## Fine labels (`Ident`, no `Mis`)",
        "",
        *quality_rows(main, "fine", timing=False),
        "",
        "## Library mixing (12 SNARE-seq libraries, `Batch` 09A…09L)",
        "",
        "The same cells, each method's 15-NN graph (WNN: its own graph): normalised kNN batch "
        "entropy (1 = neighbours spread over libraries as evenly as possible), iLISI (effective "
        "number of libraries among a cell's neighbours) and graph connectivity of the coarse "
        "labels (`sci2cl.evaluate.batch_mixing`, as `sci2cl evaluate --batch-column`). These "
        "libraries carry little technical effect, so all methods mix them about equally; "
        "docs/multisample.md tests training across them as separate samples.",
        "",
        *mixing_lines(out, main),
        "",
        "## Goal check: sci2cl defaults vs the best peer",
        "",
        *goal_lines(results, groups),
        "",
        "## Speed headline: sci2cl vs MultiVI",
        "",
        *speed_lines(results),
        *side_by_side_lines(out),
        "",
        *titration_block(out, doc),  # its own block: `--titration` rewrites it in place
        "",
        "## Ablations (same data, same run settings)",
        "",
        *variant_section(ablations, "ablated"),
        "",
        "## Probes toward the quality bar (training seeds and other settings)",
        "",
        "Issue #2 asks for Leiden NMI ≥ 0.70 / ARI ≥ 0.50 on these coarse labels with the "
        "defaults. The seed rows retrain the defaults with other seeds (the spread any "
        "setting's effect must beat), and the same seeds without MOM or without the fusion "
        "check (the residual always kept); the other rows (seed 0) try settings that could "
        "plausibly move the score (training length, regularisation, capacity) or score the "
        "joint embedding's RNA half alone. Scored with Leiden and KMeans only (no UMAP "
        "protocol); docs/method.md discusses the results.",
        "",
        *variant_section(probes, "probed"),
        "",
        "Notes:",
        "",
        *[f"- {name}: {note}" for name, note in notes.items()],
        "",
        "## UMAP per method (coloured by coarse label, `Mis` hidden)",
        "",
        "![UMAP grid](benchmarks/umap_grid.png)",
        "",
        "## Scaling (sci2cl, resampled real cells)",
        "",
        *scaling_section(out, figure_dir),
        *loader_section(out, doc),
        *scaling_10x_section(out, doc),
        "",
        "## GPU",
        "",
        "No GPU machine was lent to this session: sci2cl and MultiVI epoch times on a GPU are "
        "not recorded yet. Every number on this page is CPU-only.",
        "",
        "## Machine and versions",
        "",
        *[f"- {k}: {v}" for k, v in machine().items()],
        *[
            f"- {env}: " + ", ".join(f"{p} {v}" for p, v in pkgs.items())
            for env, pkgs in versions.items()
        ],
        "",
    ]
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text("\n".join(text))
