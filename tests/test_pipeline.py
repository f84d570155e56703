"""Real Nextflow runs of the sci2cl-nf pipeline (`-profile test`, `-resume`, `-stub`, bad input).

Nextflow comes from tests/get_nextflow.sh: `nextflow` on PATH, else Nextflow 24.10.x resolved
from Maven Central into ~/.cache/sci2cl-nf. Runs are offline (NXF_OFFLINE=true) with a fresh
NXF_HOME, so a run that needed a plugin download would fail here. One Nextflow run at a time.

    pytest -m pipeline tests/test_pipeline.py -v -s
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

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
    assert processes == ["SCI2CL_PREPARE"] * 2 + ["SCI2CL_TRAIN"], processes
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
        (outdir / "pipeline_info" / "sci2cl_software_versions.yml").read_text()
    )
    for process in ("SCI2CL_PREPARE", "SCI2CL_TRAIN"):
        assert set(versions[process]) == {"sci2cl", "python", "torch", "cuda"}, versions[process]
        assert re.fullmatch(r"\d+\.\d+\.\d+.*", str(versions[process]["sci2cl"])), versions[process]
        assert str(versions[process]["torch"]).strip(), versions[process]
    assert versions["Workflow"]["sci2cl-nf"]
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", str(versions["Workflow"]["Nextflow"]))


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
    assert len(tasks) == 3, tasks
    assert all(t["status"] == "CACHED" for t in tasks), [(t["name"], t["status"]) for t in tasks]
    print(f"-resume wall time: {again.seconds:.0f} s")


# --------------------------------------------------------------------------------------------
# -stub: no Python toolkit needed
# --------------------------------------------------------------------------------------------


def test_stub_run_without_python_deps(nextflow, tmp_path):
    # A PATH in which `sci2cl` and `python` exist but fail, as on a machine without the toolkit.
    fake_bin = tmp_path / "no_deps_bin"
    fake_bin.mkdir()
    for tool in ("sci2cl", "python", "python3"):
        script = fake_bin / tool
        script.write_text('#!/bin/sh\necho "$0: not installed" >&2\nexit 127\n')
        script.chmod(0o755)
    config = tmp_path / "no_deps.config"
    config.write_text(f"process.beforeScript = 'export PATH={fake_bin}:$PATH'\n")
    outdir = tmp_path / "results"
    run = run_nextflow(
        nextflow,
        tmp_path / "launch",
        "-profile",
        "test",
        "-stub",
        "-c",
        str(config),
        "--outdir",
        str(outdir),
        "--trace_report_suffix",
        "stub1",
    )
    assert run.returncode == 0, run.explain()
    tasks = read_trace(outdir, "stub1")
    assert len(tasks) == 3 and all(t["status"] == "COMPLETED" for t in tasks), tasks
    for suffix in TRAIN_FILES:
        assert (outdir / "train" / JOINT / f"{JOINT}.{suffix}").exists()
    versions = (outdir / "pipeline_info" / "sci2cl_software_versions.yml").read_text()
    assert "stub" in versions, versions
    print(f"-stub wall time: {run.seconds:.0f} s")


def test_stub_per_sample_integration(nextflow, tmp_path):
    outdir = tmp_path / "results"
    run = run_nextflow(
        nextflow,
        tmp_path / "launch",
        "-profile",
        "test",
        "-stub",
        "--integration",
        "per_sample",
        "--cross_attention",
        "true",
        "--fusion_check",
        "false",
        "--outdir",
        str(outdir),
        "--trace_report_suffix",
        "per_sample1",
    )
    assert run.returncode == 0, run.explain()
    # boolean params become the CLI's --flag / --no-flag (the stub echoes its arguments)
    scripts = [p.read_text() for p in (tmp_path / "launch").glob("work/*/*/.command.sh")]
    train = [s for s in scripts if "embeddings.parquet" in s]
    assert len(train) == 2, scripts
    assert all("--cross-attention" in s and "--no-fusion-check" in s for s in train), train
    tasks = read_trace(outdir, "per_sample1")
    processes = sorted(t["process"].split(":")[-1] for t in tasks)
    assert processes == ["SCI2CL_PREPARE"] * 2 + ["SCI2CL_TRAIN"] * 2, processes
    for sample in TEST_SAMPLES:
        for suffix in TRAIN_FILES:
            assert (outdir / "train" / sample / f"{sample}.{suffix}").exists()


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
        "--max_epochs",
        "many",
    )
    assert run.returncode != 0, run.explain()
    assert "--integration 'everything' is not one of: per_sample, joint" in run.output, run.output
    assert "--max_epochs 'many' is not of type integer" in run.output, run.output
    assert "Submitted process" not in run.output


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-m", "pipeline", "-v", "-s"]))
