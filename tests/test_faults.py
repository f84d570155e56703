"""Fault injection: corrupted inputs, unwritable outputs, a full disk, a failing figure, out of
memory and internal errors. Each ends in one line on stderr, a documented exit code, and no
partial output; a trained model is never thrown away."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mudata as md
import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from conftest import PBMC_OUTS
from corrupt import CORPUS, partly_shared_barcodes
from helpers import SMALL_CLI_ARGS

from sci2cl.api import SCI2CL
from sci2cl.cli import main
from sci2cl.errors import Sci2clError, Sci2clWarning
from sci2cl.io.write import FIGURES, MODEL, RESULTS

ALL = (MODEL, *RESULTS, *FIGURES)


def _invoke(*args) -> tuple[int, list[str]]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.stderr.strip().splitlines()


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- corrupted inputs ----------------------------------------------------------------------


def test_the_corpus_is_large_enough():
    assert len(CORPUS) >= 30


@pytest.mark.parametrize("case", list(CORPUS))
def test_corrupted_input_fails_in_one_line(case, tmp_path):
    source = CORPUS[case](tmp_path)
    code, lines = _invoke("prepare", "--input", source, "--output-prefix", tmp_path / "out" / "x")
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"sci2cl: error: {source}"), lines[0]
    assert not (tmp_path / "out").exists()


def test_partly_shared_barcodes_warn_with_counts(tmp_path):
    source = partly_shared_barcodes(tmp_path)
    code, lines = _invoke("prepare", "--input", source, "--output-prefix", tmp_path / "x")
    assert code == 0
    warning = f"sci2cl: warning: {source}: 900 cells have both modalities and are kept; dropped "
    assert [line for line in lines if "warning" in line] == [
        f"{warning}100 of 1000 'rna' and 0 of 900 'atac' cells without the other"
    ]


# --- before the work -----------------------------------------------------------------------


@pytest.mark.parametrize("command", ["run", "train", "prepare"])
def test_unwritable_prefix_fails_before_reading_input(command, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    prefix = blocker / "sub" / "x"
    source = tmp_path / "never_read.h5mu"  # does not exist: the output check comes first
    args = [command, "--input", source, "--output-prefix", prefix]
    code, lines = _invoke(*args, *(SMALL_CLI_ARGS if command != "prepare" else ()))
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"sci2cl: error: {prefix}") and "is not a folder" in lines[0]


def test_unwritable_metrics_path_fails_before_evaluating(tmp_path):
    (tmp_path / "f").write_text("")
    code, lines = _invoke(
        "evaluate", "--input", tmp_path / "none.parquet", "--labels", tmp_path / "none.csv",
        "--label-column", "x", "--output", tmp_path / "f" / "m.json",
    )  # fmt: skip
    assert code == 2 and len(lines) == 1 and "is not a folder" in lines[0], lines


# --- while writing -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pbmc_model() -> SCI2CL:
    """A small model trained through the API on the PBMC ARC fixture."""
    from sci2cl.io import read_multiome

    torch.set_num_threads(1)
    model = SCI2CL.setup(
        read_multiome(PBMC_OUTS),
        latent_dim=8,
        hidden_dims=(32, 16),
        n_views=2,
        n_heads=2,
        n_tokens=2,
    )
    model.train(max_epochs=3, warmup_epochs=1, batch_size=128)
    return model


def test_failed_figure_warns_and_keeps_every_result(pbmc_model, tmp_path, monkeypatch):
    def broken(annotated, path):
        Path(path).write_bytes(b"half a png")
        raise RuntimeError("no display for you")

    monkeypatch.setattr("sci2cl.io.write.plot_umap", broken)
    prefix = tmp_path / "pbmc"
    with pytest.warns(Sci2clWarning, match=r"pbmc.umap.png: figure not written \(RuntimeError"):
        written = pbmc_model.write(prefix)
    assert _listing(tmp_path) == sorted(f"pbmc{s}" for s in ALL if s != ".umap.png")
    assert written == [Path(f"{prefix}{s}") for s in ALL if s != ".umap.png"]
    reloaded = SCI2CL.load(f"{prefix}.model.pt").map_query(pbmc_model.mdata)
    table = pd.read_parquet(f"{prefix}.embeddings.parquet")
    embedding = reloaded.get_latent_representation()
    np.testing.assert_allclose(table.iloc[:, 3:].to_numpy(), embedding, rtol=1e-4, atol=1e-5)
    annotated = md.read_h5mu(f"{prefix}.h5mu")
    assert annotated.n_obs == len(table) == pbmc_model.mdata.n_obs
    assert {"X_sci2cl", "X_umap"} <= set(annotated.obsm)
    assert annotated.obs["sci2cl_leiden"].astype(str).tolist() == table["sci2cl_leiden"].tolist()


def test_disk_full_while_writing_results_keeps_only_the_model(pbmc_model, tmp_path, monkeypatch):
    def full_disk(mdata, path):
        Path(path).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("sci2cl.io.write.write_h5mu", full_disk)
    prefix = tmp_path / "pbmc"
    with pytest.raises(Sci2clError, match="cannot write output \\(No space left on device\\)") as e:
        pbmc_model.write(prefix)
    assert e.value.__notes__ == [f"the trained model was saved to {prefix}.model.pt"]
    assert _listing(tmp_path) == ["pbmc.model.pt"]
    SCI2CL.load(f"{prefix}.model.pt")  # complete: loads


def test_cli_disk_full_while_saving_the_model(tmp_path, monkeypatch):
    def full_disk(payload, path):
        Path(path).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("sci2cl.api.torch.save", full_disk)
    out = tmp_path / "out"
    args = ["run", "--input", PBMC_OUTS, "--output-prefix", out / "pbmc", "--no-figures"]
    code, lines = _invoke(*args, *SMALL_CLI_ARGS)
    assert code == 2, lines
    assert (
        lines[-1]
        == f"sci2cl: error: {out}/pbmc.model.pt: cannot write output (No space left on device)"
    )
    assert _listing(out) == [] and not out.exists()


UNSHARE = shutil.which("unshare")


def _in_tmpfs(size: str, script: str, tmp: Path) -> subprocess.CompletedProcess:
    """Run ``script`` (Python) in a private mount namespace with a ``size`` tmpfs at ``tmp/fs``."""
    mount = tmp / "fs"
    mount.mkdir(parents=True)
    code = script.replace("MOUNT", str(mount))
    shell = f'mount -t tmpfs -o size={size} tmpfs {mount} && exec {sys.executable} -c "$0"'
    return subprocess.run(
        [UNSHARE, "-rm", "sh", "-c", shell, code],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _tmpfs_works(tmp: Path) -> bool:
    if UNSHARE is None:
        return False
    return _in_tmpfs("64k", "import sys; sys.exit(0)", tmp).returncode == 0


FILL = """
import shutil
from pathlib import Path

def fill():
    free = shutil.disk_usage("MOUNT").free
    Path("MOUNT/ballast").write_bytes(bytes(max(free - 16384, 0)))
"""


def test_real_full_disk_while_writing_the_h5mu(tmp_path):
    """HDF5 on a really full disk: one line, exit 2, no partial file, no crash at exit."""
    if not _tmpfs_works(tmp_path / "probe"):
        pytest.skip("no unprivileged mount namespaces here")
    script = f"""{FILL}
import sci2cl.cli.prepare as command
from sci2cl.cli import main

write = command.write_h5mu
command.write_h5mu = lambda mdata, path: (fill(), write(mdata, path))
main(["prepare", "--input", "{PBMC_OUTS}", "--output-prefix", "MOUNT/pbmc"])
"""
    ran = _in_tmpfs("4m", script, tmp_path)
    final = f"{tmp_path}/fs/pbmc.prepared.h5mu"
    assert ran.returncode == 2 and "Traceback" not in ran.stderr, ran.stderr
    last = ran.stderr.strip().splitlines()[-1]
    assert last == f"sci2cl: error: {final}: cannot write output (No space left on device)"


def test_real_full_disk_while_saving_the_model(pbmc_model, tmp_path):
    """torch.save on a really full disk raises RuntimeError: still reported as a full disk."""
    if not _tmpfs_works(tmp_path / "probe"):
        pytest.skip("no unprivileged mount namespaces here")
    source = pbmc_model.save(tmp_path / "pbmc.model.pt")
    script = f"""{FILL}
from sci2cl.api import SCI2CL

model = SCI2CL.load("{source}")
fill()
try:
    model.save("MOUNT/pbmc.model.pt")
except Exception as err:
    print(type(err).__name__, err)
print(sorted(path.name for path in Path("MOUNT").iterdir()))
"""
    ran = _in_tmpfs("4m", script, tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == [
        f"Sci2clError {tmp_path}/fs/pbmc.model.pt: cannot write output (No space left on device)",
        "['ballast']",
    ]


def test_real_small_disk_fails_before_training(tmp_path):
    if not _tmpfs_works(tmp_path / "probe"):
        pytest.skip("no unprivileged mount namespaces here")
    script = f"""
from sci2cl.cli import main
main(["run", "--input", "{PBMC_OUTS}", "--output-prefix", "MOUNT/pbmc"] + {SMALL_CLI_ARGS!r})
"""
    ran = _in_tmpfs("64k", script, tmp_path)
    lines = ran.stderr.strip().splitlines()
    assert ran.returncode == 2 and "training on" not in ran.stderr, ran.stderr
    assert "not enough free space" in lines[-1] and "outputs need about" in lines[-1]


# --- out of memory, internal errors --------------------------------------------------------


def test_out_of_memory_exits_3_with_a_hint(tmp_path, monkeypatch):
    def oom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr("sci2cl.api.fit", oom)
    code, lines = _invoke("run", "--input", PBMC_OUTS, "--output-prefix", tmp_path / "o" / "x")
    assert code == 3
    assert lines[-1] == (
        "sci2cl: error: out of memory (CUDA out of memory. Tried to allocate 20.00 GiB); "
        "try a lower --batch-size, or --device cpu"
    )
    assert not (tmp_path / "o").exists()


def test_internal_error_exits_1_and_logs_the_traceback(tmp_path, monkeypatch):
    def bug(*args, **kwargs):
        return {}["no such key"]

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sci2cl.cli.prepare.prepare", bug)
    code, lines = _invoke("prepare", "--input", PBMC_OUTS, "--output-prefix", tmp_path / "x")
    assert code == 1 and len(lines) == 1, lines
    head, log = lines[0].split("; traceback in ")
    assert head == "sci2cl: internal error: KeyError: 'no such key'"
    text = Path(log).read_text()
    assert Path(log).parent == tmp_path and "Traceback" in text and "in bug" in text
