"""Real Nextflow runs of the sci2cl-nf pipeline (`-profile test`, `-resume`, `-stub`, bad input).

Nextflow comes from tests/get_nextflow.sh: `nextflow` on PATH, else Nextflow 24.10.x resolved
from Maven Central into ~/.cache/sci2cl-nf. Runs are offline (NXF_OFFLINE=true) with a fresh
NXF_HOME, so a run that needed a plugin download would fail here. One Nextflow run at a time.

    pytest -m pipeline tests/test_pipeline.py -v -s
"""

from __future__ import annotations

import csv
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import sci2cl

pytestmark = pytest.mark.pipeline

REPO = Path(__file__).resolve().parents[1]
TEST_SAMPLES = {
    "snare_a": "tests/data/snare_libraries/snare_a.h5mu",
    "snare_b": "tests/data/snare_libraries/snare_b.h5mu",
}
JOINT = "joint"  # -profile test trains both samples into one model (--integration joint)
TRAIN_FILES = ("embeddings.parquet", "h5mu", "model.pt", "history.csv", "umap.png", "losses.png")


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


class Run:
    def __init__(self, proc: subprocess.CompletedProcess, seconds: float, launch_dir: Path):
        self.returncode = proc.returncode
        self.output = proc.stdout
        self.seconds = seconds
        self.launch_dir = launch_dir

    def explain(self) -> str:
        log = self.launch_dir / ".nextflow.log"
        tail = log.read_text(errors="replace")[-6000:] if log.exists() else "(no .nextflow.log)"
        return (
            f"exit {self.returncode} after {self.seconds:.0f}s\n"
            f"--- output ---\n{self.output[-8000:]}\n"
            f"--- .nextflow.log (tail) ---\n{tail}"
        )


def read_trace(outdir: Path, suffix: str) -> list[dict[str, str]]:
    trace = outdir / "pipeline_info" / f"execution_trace_{suffix}.txt"
    assert trace.exists(), f"missing trace file {trace}"
    with trace.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


@pytest.fixture(scope="session")
def nextflow(tmp_path_factory) -> dict:
    """Path of a runnable Nextflow launcher and the environment for running it offline."""
    proc = subprocess.run(
        ["bash", str(REPO / "tests" / "get_nextflow.sh")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, f"tests/get_nextflow.sh failed:\n{proc.stderr}"
    launcher = proc.stdout.strip().splitlines()[-1]
    assert os.access(launcher, os.X_OK), f"not executable: {launcher!r}"

    env = dict(os.environ)
    env.update(
        NXF_HOME=str(tmp_path_factory.mktemp("nxf_home")),  # nothing cached: no plugins available
        NXF_OFFLINE="true",  # a run that needed a plugin download would fail instead
        NXF_DISABLE_CHECK_LATEST="true",
        NXF_ANSI_LOG="false",
    )
    env.pop("NXF_WORK", None)
    version = subprocess.run(
        [launcher, "-version"], capture_output=True, text=True, env=env, timeout=300
    )
    assert version.returncode == 0, version.stdout + version.stderr
    match = re.search(r"version (\d+\.\d+\.\d+)", version.stdout)
    assert match, version.stdout
    print(f"\nNextflow {match.group(1)} from {launcher}")
    return {"launcher": launcher, "env": env, "version": match.group(1)}


def run_nextflow(
    nextflow: dict, launch_dir: Path, *args: str, env: dict | None = None, timeout: int = 900
) -> Run:
    launch_dir.mkdir(parents=True, exist_ok=True)
    cmd = [nextflow["launcher"], "run", str(REPO), *args]
    start = time.monotonic()
    proc = subprocess.run(
        cmd,
        cwd=launch_dir,
        env=env or nextflow["env"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    seconds = time.monotonic() - start
    print(f"\n$ {' '.join(cmd[1:])}  ({seconds:.1f} s, exit {proc.returncode})")
    return Run(proc, seconds, launch_dir)


# --------------------------------------------------------------------------------------------
# -profile test (real data, CPU) and -resume
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def profile_test_run(nextflow, tmp_path_factory) -> tuple[Run, Path]:
    launch_dir = tmp_path_factory.mktemp("profile_test")
    outdir = launch_dir / "results"
    run = run_nextflow(
        nextflow,
        launch_dir,
        "-profile",
        "test",
        "--outdir",
        str(outdir),
        "--trace_report_suffix",
        "run1",
    )
    assert run.returncode == 0, run.explain()
    return run, outdir


def test_profile_test_completes(profile_test_run):
    run, outdir = profile_test_run
    tasks = read_trace(outdir, "run1")
    processes = sorted(t["process"].split(":")[-1] for t in tasks)
    assert processes == ["MULTIQC"] + ["SCI2CL_PREPARE"] * 2 + ["SCI2CL_TRAIN"], processes
    assert all(t["status"] == "COMPLETED" for t in tasks), [(t["name"], t["status"]) for t in tasks]
    print(f"-profile test wall time: {run.seconds:.0f} s")


def test_output_layout(profile_test_run):
    _, outdir = profile_test_run
    for sample in TEST_SAMPLES:
        assert (outdir / "prepare" / sample / f"{sample}.prepared.h5mu").is_file()
    for suffix in TRAIN_FILES:
        path = outdir / "train" / JOINT / f"{JOINT}.{suffix}"
        assert path.is_file() and path.stat().st_size > 0, path
    assert sorted(p.name for p in (outdir / "train").iterdir()) == [JOINT]
    assert (outdir / "multiqc" / "multiqc_report.html").is_file()
    assert not list(outdir.glob("*/*/multiqc")), "MultiQC inputs must not be published"
    assert not list(outdir.rglob("*.checkpoint.pt")), "checkpoints stay in the work directory"
    info = outdir / "pipeline_info"
    for pattern in (
        "execution_report_run1.html",
        "execution_timeline_run1.html",
        "pipeline_dag_run1.html",
    ):
        assert (info / pattern).is_file(), pattern
    assert not list(outdir.rglob("versions.yml")), "versions.yml files must not be published"


def test_software_versions(profile_test_run):
    import yaml

    _, outdir = profile_test_run
    versions = yaml.safe_load(
        (outdir / "pipeline_info" / "sci2cl_software_mqc_versions.yml").read_text()
    )
    assert set(versions["SCI2CL_PREPARE"]) == {"sci2cl", "python"}, versions
    assert set(versions["SCI2CL_TRAIN"]) == {"sci2cl", "python", "torch", "cuda"}, versions
    for process in ("SCI2CL_PREPARE", "SCI2CL_TRAIN"):
        assert versions[process]["sci2cl"] == sci2cl.__version__, versions[process]
        # the interpreter that ran sci2cl (the repository's .venv), not `python` from PATH
        assert versions[process]["python"] == platform.python_version(), versions[process]
    assert versions["SCI2CL_TRAIN"]["torch"] == torch.__version__
    assert versions["SCI2CL_TRAIN"]["cuda"] == "none"  # the device the task had, not the build
    assert versions["Workflow"]["sci2cl-nf"]
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", str(versions["Workflow"]["Nextflow"]))


def test_multiqc_report(profile_test_run):
    _, outdir = profile_test_run
    html = (outdir / "multiqc" / "multiqc_report.html").read_text()
    for section in (
        "sci2cl_prepare",  # per-sample QC table
        "sci2cl_prepare_cells",  # cells kept / removed
        "sci2cl_training",  # training curves
        "sci2cl_embedding",  # embedding summary
        f"sci2cl_{JOINT}_umap",  # UMAP
        "multiqc_software_versions",
    ):
        assert f'id="mqc-module-section-{section}"' in html or f'id="{section}"' in html, section
    data = json.loads(
        (outdir / "multiqc" / "multiqc_report_data" / "multiqc_data.json").read_text()
    )
    table = data["report_saved_raw_data"]["multiqc_sci2cl_prepare_table"]
    assert sorted(table) == sorted(TEST_SAMPLES), table
    assert all(row["n_cells_out"] <= row["n_cells_in"] for row in table.values()), table


def test_embeddings_parquet(profile_test_run):
    import mudata
    import pyarrow as pa
    import pyarrow.parquet as pq

    _, outdir = profile_test_run

    prepared = {
        s: mudata.read_h5mu(outdir / "prepare" / s / f"{s}.prepared.h5mu") for s in TEST_SAMPLES
    }
    table = pq.read_table(outdir / "train" / JOINT / f"{JOINT}.embeddings.parquet")
    names = table.column_names
    assert names[:2] == ["barcode", "sample"], names
    dims = names[2:]
    assert dims == [f"sci2cl_{i}" for i in range(len(dims))] and len(dims) >= 2, names
    assert table.schema.field("barcode").type in (pa.string(), pa.large_string())
    assert table.schema.field("sample").type in (pa.string(), pa.large_string())
    assert all(table.schema.field(d).type == pa.float32() for d in dims)

    # one row per prepared (QC-passing) cell of every sample, which keeps its sample name
    frame = table.select(["sample", "barcode"]).to_pandas()
    for sample, mdata in prepared.items():
        assert sorted(frame.loc[frame["sample"] == sample, "barcode"]) == sorted(mdata.obs_names)
    assert table.num_rows == sum(m.n_obs for m in prepared.values())
    assert not frame.duplicated().any()
    assert table.schema.metadata, "parquet file metadata (sci2cl version, parameters) missing"
    values = table.select(dims).to_pandas().to_numpy()
    assert (values == values).all(), "NaN in embeddings"


def test_trained_h5mu(profile_test_run):
    import mudata
    import pyarrow.parquet as pq

    _, outdir = profile_test_run

    table = pq.read_table(outdir / "train" / JOINT / f"{JOINT}.embeddings.parquet").to_pandas()
    mdata = mudata.read_h5mu(outdir / "train" / JOINT / f"{JOINT}.h5mu")
    assert {"rna", "atac"} <= set(mdata.mod), list(mdata.mod)
    assert mdata.n_obs == len(table)
    emb = mdata.obsm["X_sci2cl"]
    assert emb.shape == (len(table), table.shape[1] - 2), emb.shape
    assert list(mdata.obs_names) == list(table["sample"] + ":" + table["barcode"])
    combined = mdata.uns["sci2cl"]["combine"]
    assert list(combined["samples"]) == sorted(TEST_SAMPLES)
    # per-sample peak sets were merged: fewer regions than the two sets together
    assert combined["n_peaks_merged"] < sum(combined["n_peaks_per_sample"])


def test_resume_caches_every_task(nextflow, profile_test_run):
    run, outdir = profile_test_run
    again = run_nextflow(
        nextflow,
        run.launch_dir,
        "-profile",
        "test",
        "--outdir",
        str(outdir),
        "--trace_report_suffix",
        "resume1",
        "-resume",
    )
    assert again.returncode == 0, again.explain()
    tasks = read_trace(outdir, "resume1")
    assert len(tasks) == 4, tasks
    assert all(t["status"] == "CACHED" for t in tasks), [(t["name"], t["status"]) for t in tasks]
    print(f"-resume wall time: {again.seconds:.0f} s")


# --------------------------------------------------------------------------------------------
# a retried SCI2CL_TRAIN resumes from the checkpoint of the failed attempt
# --------------------------------------------------------------------------------------------

KILL_AFTER_FIRST_CHECKPOINT = """#!/usr/bin/env bash
# test shim: runs the real `sci2cl`, and SIGKILLs training once its first checkpoint exists
"{real}" "$@" &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
    if compgen -G '*.checkpoint.pt' >/dev/null; then
        kill -9 "$pid"
        echo "test shim: killed sci2cl after its first checkpoint" >&2
        exit 137
    fi
    sleep 0.1
done
wait "$pid"
exit 1  # finished without a checkpoint: nothing to resume from
"""


def test_retried_train_resumes_from_checkpoint(nextflow, profile_test_run, tmp_path):
    run, _ = profile_test_run
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sci2cl").write_text(KILL_AFTER_FIRST_CHECKPOINT.format(real=REPO / ".venv/bin/sci2cl"))
    (shim / "sci2cl").chmod(0o755)
    venv = REPO / ".venv" / "bin"
    config = tmp_path / "retry.config"
    # the first attempt runs under the shim (killed: exit 137, which base.config retries);
    # --seed 1 gives the task a new hash, so the prepared samples come from the cache
    config.write_text(
        "process { withName: 'SCI2CL_TRAIN' {\n"
        "    maxRetries = 1\n"
        "    ext.args = '--hidden-dims 64,32 --latent-dim 16 --n-views 2 --max-epochs 5 "
        "--warmup-epochs 2 --batch-size 256 --seed 1'\n"
        f'    beforeScript = {{ "export PATH={venv}:\\$PATH" + '
        f"(task.attempt == 1 ? \"; export PATH={shim}:\\$PATH\" : '') }}\n"
        "} }\n"
    )
    outdir = tmp_path / "results"
    retry = run_nextflow(
        nextflow,
        run.launch_dir,
        "-profile",
        "test",
        "-c",
        str(config),
        "--outdir",
        str(outdir),
        "--trace_report_suffix",
        "retry1",
        "-resume",
    )
    assert retry.returncode == 0, retry.explain()
    tasks = {(t["process"].split(":")[-1], t["attempt"]): t for t in read_trace(outdir, "retry1")}
    first, second = tasks[("SCI2CL_TRAIN", "1")], tasks[("SCI2CL_TRAIN", "2")]
    assert (first["status"], first["exit"]) == ("FAILED", "137"), first
    assert second["status"] == "COMPLETED", second
    assert tasks[("SCI2CL_PREPARE", "1")]["status"] == "CACHED"
    err = (Path(second["workdir"]) / ".command.err").read_text()
    assert "attempt 2: resuming from the checkpoint of attempt 1" in err, err
    # the retry ran only the epochs the killed attempt had not finished ...
    epochs_run = max(int(n) for n in re.findall(r"(\d+)/5 ", err))
    assert 1 <= epochs_run < 5, err
    # ... and the model still has all 5 epochs of history
    history = (outdir / "train" / JOINT / f"{JOINT}.history.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in history[1:]] == ["1", "2", "3", "4", "5"], history


# --------------------------------------------------------------------------------------------
# the outs/** file list of nf-core CELLRANGERARC_COUNT
# --------------------------------------------------------------------------------------------


def _arc_outs(tmp_path: Path) -> tuple[Path, Path]:
    """An ARC outs/ folder: the bundled matrices plus the files that collide when flattened
    (raw_feature_bc_matrix/), per_barcode_metrics.csv and atac_fragments.tsv.gz."""
    import gzip
    import shutil

    outs = tmp_path / "pbmc" / "outs"
    shutil.copytree(REPO / "tests/data/pbmc_arc/outs", outs)
    shutil.copytree(outs / "filtered_feature_bc_matrix", outs / "raw_feature_bc_matrix")
    with gzip.open(outs / "filtered_feature_bc_matrix" / "barcodes.tsv.gz", "rt") as handle:
        barcodes = handle.read().split()
    lines = ["barcode,is_cell,atac_fragments"]
    lines += [f"{b},1,{100 + i}" for i, b in enumerate(barcodes)]
    (outs / "per_barcode_metrics.csv").write_text("\n".join(lines) + "\n")
    fragments = outs / "atac_fragments.tsv.gz"
    with gzip.open(fragments, "wt") as handle:
        handle.writelines(
            f"chr1\t{100 * i}\t{100 * i + 50}\t{b}\t1\n" for i, b in enumerate(barcodes)
        )
    return outs, fragments


def test_cellrangerarc_outs_file_list(nextflow, tmp_path):
    import mudata

    outs, fragments = _arc_outs(tmp_path)
    config = tmp_path / "venv.config"
    config.write_text(f"process.beforeScript = 'export PATH={REPO}/.venv/bin:$PATH'\n")
    launch = tmp_path / "launch"
    launch.mkdir()
    cmd = [nextflow["launcher"], "run", str(REPO / "tests" / "cellrangerarc_outs.nf")]
    proc = subprocess.run(
        [*cmd, "-c", str(config), "--outs", str(outs), "--sample", "pbmc"],
        cwd=launch,
        env=nextflow["env"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout
    prepared = dict(re.findall(r"prepared (pbmc_\w+) (\S+)", proc.stdout))
    assert sorted(prepared) == ["pbmc_all", "pbmc_mex"], proc.stdout

    full = mudata.read_h5mu(prepared["pbmc_all"])
    # per_barcode_metrics.csv was found next to the matrix: its columns are in obs
    barcodes = full.obs_names.to_series()
    assert (full.obs["arc_atac_fragments"] >= 100).all(), full.obs.columns
    assert full.n_obs == len(barcodes) > 0
    # the fragments path reaches the output and leads to the sample's fragments file
    recorded = Path(full.uns["files"]["fragments"])
    assert recorded.name == "atac_fragments.tsv.gz", recorded
    assert recorded.resolve().read_bytes() == fragments.read_bytes()

    mex = mudata.read_h5mu(prepared["pbmc_mex"])  # only the filtered MEX files: still works
    assert mex.n_obs == full.n_obs
    assert "fragments" not in mex.uns.get("files", {})


# --------------------------------------------------------------------------------------------
# -stub
# --------------------------------------------------------------------------------------------


def test_stub_per_sample_integration(nextflow, tmp_path):
    # sci2cl options reach the CLI through ext.args (the stub echoes its arguments)
    config = tmp_path / "args.config"
    config.write_text(
        "process { withName: 'SCI2CL_TRAIN' { ext.args = '--latent-dim 8 --no-fusion-check' } }\n"
    )
    outdir = tmp_path / "results"
    run = run_nextflow(
        nextflow,
        tmp_path / "launch",
        "-profile",
        "test",
        "-stub",
        "-c",
        str(config),
        "--integration",
        "per_sample",
        "--outdir",
        str(outdir),
        "--trace_report_suffix",
        "per_sample1",
    )
    assert run.returncode == 0, run.explain()
    scripts = [p.read_text() for p in (tmp_path / "launch").glob("work/*/*/.command.sh")]
    train = [s for s in scripts if "embeddings.parquet" in s]
    assert len(train) == 2, scripts
    assert all("--latent-dim 8 --no-fusion-check" in s for s in train), train
    tasks = read_trace(outdir, "per_sample1")
    processes = sorted(t["process"].split(":")[-1] for t in tasks)
    assert processes == ["MULTIQC"] + ["SCI2CL_PREPARE"] * 2 + ["SCI2CL_TRAIN"] * 2, processes
    for sample in TEST_SAMPLES:
        for suffix in TRAIN_FILES:
            assert (outdir / "train" / sample / f"{sample}.{suffix}").exists()
    assert (outdir / "multiqc" / "multiqc_report.html").exists()


# --------------------------------------------------------------------------------------------
# malformed input fails fast, naming the problem
# --------------------------------------------------------------------------------------------

BAD_SHEETS = {
    "missing_column": (
        "sample,path\npbmc_arc,tests/data/pbmc_arc/outs\n",
        [r"line 1 \(header\): missing required column\(s\) 'input'"],
    ),
    "row_errors": (
        "sample,input\n"
        ",tests/data/pbmc_arc/outs\n"  # line 2: empty sample
        "pbmc arc,tests/data/pbmc_arc/outs\n"  # line 3: space in sample
        "snare,tests/data/does_not_exist.h5mu\n"  # line 4: missing path
        "snare,tests/data/snare_subset/snare_subset.h5mu\n"  # line 5: duplicate sample
        "pbmc2,tests/data/pbmc_arc/outs;rm\n"  # line 6: bad characters
        "pbmc3,tests/data/pbmc_arc/outs,extra\n",  # line 7: extra field
        [
            r"line 2, column 'sample': value is empty",
            r"line 3, column 'sample': 'pbmc arc' must .*letters, digits",
            r"line 4, column 'input': path 'tests/data/does_not_exist.h5mu' does not exist",
            r"line 5, column 'sample': 'snare' is duplicated \(first used on line 4\)",
            r"line 6, column 'input': 'tests/data/pbmc_arc/outs;rm' must be a path",
            r"line 7: has 3 field\(s\) but the header has 2",
        ],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_SHEETS))
def test_bad_samplesheet_fails_fast(nextflow, tmp_path, case):
    text, expected = BAD_SHEETS[case]
    sheet = tmp_path / f"{case}.csv"
    sheet.write_text(text)
    launch = tmp_path / "launch"
    run = run_nextflow(
        nextflow,
        launch,
        "-profile",
        "test",
        "--input",
        str(sheet),
        "--outdir",
        str(tmp_path / "results"),
    )
    assert run.returncode != 0, run.explain()
    assert "invalid samplesheet" in run.output, run.explain()
    for pattern in expected:
        assert re.search(pattern, run.output), f"{pattern!r} not in output:\n{run.output}"
    # nothing ran: the samplesheet is checked before any task is submitted
    assert "Submitted process" not in run.output, run.output
    work = launch / "work"
    assert not work.exists() or not any(work.iterdir()), "tasks were started"


def test_bad_params_fail_fast(nextflow, tmp_path):
    run = run_nextflow(
        nextflow,
        tmp_path / "launch",
        "-profile",
        "test",
        "--outdir",
        str(tmp_path / "results"),
        "--integration",
        "everything",
        "--gpu_cuda",
        "11",
        "--save_model",
        "maybe",
    )
    assert run.returncode != 0, run.explain()
    assert "--integration 'everything' is not one of: per_sample, joint" in run.output, run.output
    assert "--gpu_cuda '11' is not one of: 12, 13" in run.output, run.output
    assert "--save_model 'maybe' is not of type boolean" in run.output, run.output
    assert "Submitted process" not in run.output


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-m", "pipeline", "-v", "-s"]))
