"""The "Deep-ATAC titration" section of docs/benchmarks.md, from ``OUT/titration/D<d>/``.

The section sits between two markers: ``write_report`` includes it (keeping the page's block
when ``--out`` holds no titration results), and ``write_titration_block`` replaces it in place,
leaving the rest of the page untouched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.report import _f, epochs_text, load
from benchmarks.titration import MULTIVI_CAP, VARIANTS, all_rows, depth_folder
from benchmarks.titration_data import TYPE_WEIGHT

START, END = "<!-- titration:start -->", "<!-- titration:end -->"
ANCHOR = "## Ablations"  # a page without the block gets it before this heading
SCORES = (
    ("coarse", "leiden_nmi", "coarse Leiden NMI"),
    ("coarse", "leiden_ari", "coarse Leiden ARI"),
    ("fine", "leiden_nmi", "fine Leiden NMI"),
    ("fine", "leiden_ari", "fine Leiden ARI"),
    ("coarse", "kmeans_nmi", "coarse KMeans NMI"),
    ("fine", "kmeans_nmi", "fine KMeans NMI"),
)
DEEP = 1000  # the bars that need ATAC signal apply from this depth on


@dataclass
class Row:
    """One table row: a peer's single run, or a sci2cl variant's latent over its seeds."""

    label: str
    runs: list[tuple[dict, dict]]  # (metrics, run.json) per seed
    variant: str = ""
    latent: str = ""

    def values(self, labelling: str, key: str) -> list[float]:
        found = [m[labelling].get(key) for m, _ in self.runs]
        return [v for v in found if v is not None and not np.isnan(v)]

    def mean(self, labelling: str, key: str) -> float | None:
        values = self.values(labelling, key)
        return float(np.mean(values)) if values else None

    def cell(self, labelling: str, key: str) -> str:
        values = self.values(labelling, key)
        if len(values) < 2:
            return _f(values[0] if values else None)
        return f"{np.mean(values):.3f} ({min(values):.3f}–{max(values):.3f})"


def depths_run(out: Path) -> list[int]:
    found = (p.name[1:] for p in (out / "titration").glob("D*"))
    return sorted(int(d) for d in found if d.isdigit())


def seeds_run(folder: Path) -> tuple[int, ...]:
    """Training seeds of the sci2cl runs in ``folder`` (folders ``<variant>_seed_<n>``)."""
    tails = (p.name.rsplit("_seed_", 1)[-1] for p in (folder / "methods").glob("*_seed_*"))
    return tuple(sorted({int(t) for t in tails if t.isdigit()}))


def depth_rows(folder: Path) -> dict[str, Row]:
    """Rows with results at one depth, by label (a variant's seeds share a label)."""
    rows: dict[str, Row] = {}
    for method in all_rows(seeds_run(folder)):
        result = load(folder, method)
        if result is None:
            continue
        row = rows.setdefault(
            method.label,
            Row(method.label, [], method.extra.get("variant", ""), method.extra.get("latent", "")),
        )
        row.runs.append(result)
    return rows


def moc_records(folder: Path, variant: str) -> dict[int, dict]:
    """Seed -> the run's ``moc.json`` (validation MOC, fusion verdict)."""
    records = {}
    for path in sorted((folder / "methods").glob(f"{variant}_seed_*/moc.json")):
        seed = path.parent.name.rsplit("_", 1)[1]
        if seed.isdigit():
            records[int(seed)] = json.loads(path.read_text())
    return records


def score_table(rows: dict[str, Row]) -> list[str]:
    head = ["method", *(title for _, _, title in SCORES), "train s", "epochs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows.values():
        seeds = f" ({len(row.runs)} seeds)" if len(row.runs) > 1 else ""
        trains = [run.get("train_s") for _, run in row.runs if run.get("train_s") is not None]
        cells = [row.label + seeds, *(row.cell(lab, key) for lab, key, _ in SCORES)]
        if row.latent not in ("", "joint"):  # scored from the joint rows' runs
            cells += ["same runs"] * 2
        else:
            cells.append(_f(float(np.mean(trains)) if trains else None, 0))
            cells.append(", ".join(epochs_text(run) for _, run in row.runs))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


@dataclass(frozen=True)
class Bar:
    """One of issue 12's bars: the joint's Leiden NMI ≥ the best of ``references`` (row
    labels; ``{variant}`` stands for the variant's label) minus ``margin``."""

    text: str
    labelling: str
    references: tuple[str, ...]
    margin: float
    deep_only: bool

    def target(self, rows: dict[str, Row], variant: str) -> float | None:
        labels = [r.format(variant=variant) for r in self.references]
        found = [rows[r].mean(self.labelling, "leiden_nmi") if r in rows else None for r in labels]
        return None if None in found else max(found) - self.margin


FUSION_PEERS = ("RNA PCA + ATAC LSI", "WNN (muon)")
BARS = (
    *(
        Bar(f"{lab} Leiden NMI ≥ max(PCA+LSI concat, WNN) − 0.01", lab, FUSION_PEERS, 0.01, True)
        for lab in ("coarse", "fine")
    ),
    *(
        Bar(f"{lab} Leiden NMI ≥ ATAC LSI − 0.03", lab, ("ATAC LSI",), 0.03, True)
        for lab in ("coarse", "fine")
    ),
    Bar("coarse Leiden NMI ≥ its own RNA latent", "coarse", ("{variant} RNA latent",), 0, False),
    Bar("coarse Leiden NMI ≥ RNA PCA − 0.01", "coarse", ("RNA PCA",), 0.01, False),
)


def bar_cell(rows: dict[str, Row], variant: str, bar: Bar) -> str:
    ours, target = (
        rows[f"{variant} joint"].mean(bar.labelling, "leiden_nmi"),
        bar.target(rows, variant),
    )
    if ours is None or target is None:
        return "n/a"
    verdict = "met" if ours >= target else "**missed**"
    return f"{verdict}: {ours:.3f} vs {target:.3f} ({ours - target:+.3f})"


def moc_cell(records: dict[int, dict]) -> str:
    pairs = [(r["val_moc_first_joint"], r["val_moc_last"]) for r in records.values()]
    pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
    if not pairs:
        return "n/a"
    falls = sum(b < a for a, b in pairs)
    verdict = "met" if falls == len(pairs) else "**missed**"
    return f"{verdict}: falls in {falls}/{len(pairs)} seeds"


def bar_table(depth: int, rows: dict[str, Row], folder: Path) -> list[str]:
    """Issue 12's bars for each sci2cl variant with a joint row at this depth (seed means)."""
    variants = [(n, lab) for n, lab, _ in VARIANTS if f"{lab} joint" in rows]
    if not variants:
        return []
    head = ["bar (mean over seeds)", *(lab for _, lab in variants)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    deep = depth >= DEEP
    for bar in BARS:
        if deep or not bar.deep_only:
            cells = [bar_cell(rows, lab, bar) for _, lab in variants]
            lines.append(f"| {bar.text} | " + " | ".join(cells) + " |")
    if deep:
        cells = [moc_cell(moc_records(folder, name)) for name, _ in variants]
        text = "validation MOC at the last epoch < at the first joint epoch"
        lines.append(f"| {text} | " + " | ".join(cells) + " |")
    return lines


def fusion_text(check: dict) -> str:
    if not check:
        return "no MOM (not run)"
    if not check.get("tested"):
        return "untested: residual kept"
    verdict = "kept" if check.get("residual_kept") else "dropped"
    mom, chance = _f(check.get("held_out_mom"), 4), _f(check.get("chance"), 4)
    return f"{verdict} (held-out MOM {mom} vs chance {chance})"


def moc_table(folder: Path) -> list[str]:
    lines = [
        "| variant | seed | val MOC, first joint epoch | selected epoch: val MOC "
        "| last epoch: val MOC | fusion check |",
        "|---|---|---|---|---|---|",
    ]
    for name, label, _ in VARIANTS:
        for seed, r in moc_records(folder, name).items():
            lines.append(
                f"| {label} | {seed} | {r['first_joint_epoch']}: {_f(r['val_moc_first_joint'])} "
                f"| {r['best_epoch']}: {_f(r['val_moc_best'])} "
                f"| {r['last_epoch']}: {_f(r['val_moc_last'])} | {fusion_text(r['fusion_check'])} |"
            )
    return lines if len(lines) > 2 else []


def overview(by_depth: dict[int, dict[str, Row]], labelling: str) -> list[str]:
    """Leiden NMI of every row (seed means) across the depths run."""
    labels = list(dict.fromkeys(label for rows in by_depth.values() for label in rows))
    head = ["method", *(f"D = {d:,}" for d in by_depth)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label in labels:
        cells = [
            _f(rows[label].mean(labelling, "leiden_nmi") if label in rows else None)
            for rows in by_depth.values()
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def input_text(folder: Path) -> str:
    path = folder / "input" / "input.json"
    if not path.exists():
        return ""
    info = json.loads(path.read_text())
    return f" {info['cells_kept']:,} of {info['cells_in']:,} cells pass sci2cl's default QC."


def titration_section(out: Path) -> list[str]:
    """The section's lines (heading included), from whatever depths ``out`` holds."""
    by_depth = {d: depth_rows(depth_folder(out, d)) for d in depths_run(out)}
    by_depth = {d: rows for d, rows in by_depth.items() if rows}
    caps = {
        run.get("epoch_cap")
        for rows in by_depth.values()
        if "MultiVI" in rows
        for _, run in rows["MultiVI"].runs
    }
    cap_text = ", ".join(str(c) for c in sorted(caps)) if caps else str(MULTIVI_CAP)
    lines = [
        "## Deep-ATAC titration (semi-synthetic)",
        "",
        "**The ATAC here is generated from the labels.** Each cell keeps its real SNARE-seq RNA "
        "counts; its ATAC is redrawn over all 25,734 peaks from its fine type's (`Ident`) "
        f"pseudobulk profile, smoothed as {TYPE_WEIGHT:g} · type profile + "
        f"{1 - TYPE_WEIGHT:.1g} · global profile (each with a +1 pseudocount), with "
        "Poisson(D · the cell's real ATAC depth / median real depth) counts drawn "
        "multinomially (fixed seed; `benchmarks/titration_data.py`). So this measures whether a "
        "model uses a modality that carries signal, not realism: the ATAC carries the fine "
        "types and no other biology, and it is as informative as D allows. D = 83 is the real "
        "median depth; 10x Multiome cells have thousands of ATAC fragments in peaks.",
        "",
        "Every method reads the same input per D: all genes and all 25,734 peaks, raw counts, "
        "the cells sci2cl's default QC keeps. Peers as in the main tables (RNA PCA; ATAC LSI = "
        "TF-IDF + LSI on all peaks; PCA+LSI concat; WNN; MultiVI capped at "
        f"{cap_text} epochs on all peaks). sci2cl runs `sci2cl run` with its defaults (its own "
        "prepare and feature selection) at training seeds 0, 1, 2; its RNA latent "
        "(`X_sci2cl_rna`) and ATAC latent (`X_sci2cl_atac`) come from the same runs. Cells "
        "shown as mean (min–max) over seeds. Scores: `sci2cl.evaluate`, Leiden k and KMeans k "
        "(3 clustering seeds each), no UMAP protocol; `Mis` cells dropped; coarse = "
        "`cluster (remapped)`, fine = `Ident`.",
        "",
        "`python -m benchmarks.run --titration --out OUT` (`make bench-titration`) trains what "
        "`OUT/titration/D<d>/` lacks and rewrites only this block; `--force` re-trains the "
        "sci2cl rows (peers train once); `--titration-methods NAMES` (peers and/or sci2cl "
        "variant names), `--titration-depths 1000,3000` and `--titration-seeds 0` pick a "
        "subset. A sci2cl variant is one line in `VARIANTS` (`benchmarks/titration.py`): "
        "name, label, extra `sci2cl run` flags.",
        "",
    ]
    if not by_depth:
        return lines + ["Not run yet."]
    for labelling in ("coarse", "fine"):
        lines += [f"Leiden NMI, {labelling} labels, across depths:", ""]
        lines += [*overview(by_depth, labelling), ""]
    for depth, rows in by_depth.items():
        folder = depth_folder(out, depth)
        lines += [f"### D = {depth:,}", "", input_text(folder).strip(), ""]
        lines += [*score_table(rows), ""]
        table = bar_table(depth, rows, folder)
        lines += ["Issue 12's bars:", "", *table, ""] if table else []
        table = moc_table(folder)
        lines += (
            ["Validation MOC (`history.csv`) and the fusion check:", "", *table, ""]
            if table
            else []
        )
    return lines[:-1]


def existing_block(doc: Path) -> list[str] | None:
    text = doc.read_text() if doc.exists() else ""
    if START not in text or END not in text:
        return None
    head, rest = text.split(START, 1)
    return (START + rest.split(END, 1)[0] + END).split("\n")


def titration_block(out: Path, doc: Path) -> list[str]:
    """The marked block; the page's current one when ``out`` holds no titration results."""
    if not depths_run(out) and (kept := existing_block(doc)) is not None:
        return kept
    return [START, *titration_section(out), END]


def write_titration_block(out: Path, doc: Path) -> None:
    """Replace the page's block in place (or insert it before ``ANCHOR``, else at the end)."""
    block = "\n".join(titration_block(out, doc))
    text = doc.read_text() if doc.exists() else ""
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + block + rest.split(END, 1)[1]
    elif f"\n{ANCHOR}" in text:
        head, rest = text.split(f"\n{ANCHOR}", 1)
        text = head + "\n" + block + "\n\n" + ANCHOR + rest
    else:
        text = text + ("\n" if text and not text.endswith("\n") else "") + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
