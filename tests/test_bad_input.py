"""`sci2cl prepare` on bad input: one-line error naming file and problem, exit != 0, no output."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData
from click.testing import CliRunner
from conftest import GEX_ONLY_EMPTY_MEX, GEX_ONLY_H5, PBMC_H5, PBMC_OUTS, PEAKS_ONLY_H5
from tenx_files import write_tenx_h5

from sci2cl.cli import main
from sci2cl.io import write_h5mu
from sci2cl.io.read import TenxMatrix, assemble_multiome, read_tenx_h5


def _with_counts(tmp: Path, change: Callable[[np.ndarray], np.ndarray]) -> Path:
    """The PBMC 10x h5 with its non-zero values changed."""
    matrix = read_tenx_h5(PBMC_H5)
    counts = matrix.counts.astype(np.float32)
    counts.data = change(counts.data.copy())
    path = tmp / "bad_counts.h5"
    write_tenx_h5(path, dataclasses.replace(matrix, counts=counts))
    return path


def _set_first(value: float) -> Callable[[np.ndarray], np.ndarray]:
    def change(data: np.ndarray) -> np.ndarray:
        data[0] = value
        return data

    return change


def _truncated(tmp: Path) -> Path:
    path = tmp / "truncated.h5"
    path.write_bytes(PBMC_H5.read_bytes()[: PBMC_H5.stat().st_size // 2])
    return path


def _not_hdf5(tmp: Path) -> Path:
    path = tmp / "matrix.h5"
    path.write_text("barcode,gene,count\nAAAC-1,CD3E,4\n")
    return path


def _no_cells(tmp: Path) -> Path:
    matrix = read_tenx_h5(PBMC_H5)
    empty = TenxMatrix(
        sp.csr_matrix((0, len(matrix.features)), dtype=np.int32),
        np.array([], dtype=str),
        matrix.features,
    )
    path = tmp / "empty.h5"
    write_tenx_h5(path, empty)
    return path


def _no_shared_barcodes(tmp: Path) -> Path:
    def modality(barcodes: list[str], features: list[str]) -> AnnData:
        return AnnData(
            sp.csr_matrix(np.ones((2, 2), dtype=np.float32)),
            obs=pd.DataFrame(index=barcodes),
            var=pd.DataFrame(index=features),
        )

    rna, atac = modality(["A-1", "B-1"], ["g1", "g2"]), modality(["C-1", "D-1"], ["p1", "p2"])
    path = tmp / "disjoint.h5mu"
    write_h5mu(assemble_multiome(rna, atac), path)
    return path


def _outs_without_matrix(tmp: Path) -> Path:
    outs = tmp / "S1" / "outs"
    outs.mkdir(parents=True)
    (outs / "summary.csv").write_text("x\n1\n")
    return outs


CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing_path": (lambda tmp: tmp / "no_such_outs", "no such file or directory"),
    "truncated_h5": (_truncated, "truncated"),
    "not_hdf5": (_not_hdf5, "not an HDF5 file"),
    "only_rna_h5": (lambda tmp: GEX_ONLY_H5, "only one modality: no 'Peaks' (atac)"),
    "only_atac_h5": (lambda tmp: PEAKS_ONLY_H5, "only one modality: no 'Gene Expression' (rna)"),
    "only_rna_mex": (lambda tmp: GEX_ONLY_EMPTY_MEX, "only one modality"),
    "no_shared_barcodes": (_no_shared_barcodes, "no shared barcodes"),
    "empty_matrix": (_no_cells, "empty matrix: 0 cells"),
    "non_integer": (lambda tmp: _with_counts(tmp, _set_first(0.5)), "not integers"),
    "negative": (lambda tmp: _with_counts(tmp, _set_first(-3)), "negative values"),
    "nan": (lambda tmp: _with_counts(tmp, _set_first(np.nan)), "NaN"),
    "infinite": (lambda tmp: _with_counts(tmp, _set_first(np.inf)), "infinite"),
    "unrecognised_folder": (_outs_without_matrix, "unrecognised folder layout"),
}


def _run_prepare(input_path: Path, out: Path, *extra: str):
    args = ["prepare", "--input", str(input_path), "--output-prefix", str(out / "res"), *extra]
    return CliRunner().invoke(main, args)


def _assert_clean_failure(result, named: Path, problem: str, out: Path) -> None:
    assert result.exit_code not in (0, None), result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(named) in lines[0] and problem in lines[0], lines[0]
    assert not out.exists() or not any(out.rglob("*")), list(out.rglob("*"))


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_fails_cleanly(case, tmp_path):
    build, problem = CASES[case]
    source = build(tmp_path)
    out = tmp_path / "out"
    result = _run_prepare(source, out)
    _assert_clean_failure(result, source, problem, out)


def test_everything_filtered_out_fails_cleanly(tmp_path):
    out = tmp_path / "out"
    result = _run_prepare(PBMC_OUTS, out, "--min-rna-counts", "1000000")
    _assert_clean_failure(result, PBMC_H5, "no cells pass QC", out)


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def half_write(mdata, path):
        Path(path).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("sci2cl.cli.prepare.write_h5mu", half_write)
    out = tmp_path / "out" / "deeper"
    result = _run_prepare(PBMC_OUTS, out)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1].endswith("No space left on device)")
    assert not (tmp_path / "out").exists()


def test_prepare_cli_writes_the_prepared_h5mu(tmp_path):
    staged = tmp_path / "PBMC_1" / "outs"
    shutil.copytree(PBMC_OUTS, staged)
    out = tmp_path / "results"
    result = _run_prepare(staged, out, "--n-top-peaks", "100", "--min-atac-counts", "1")
    assert result.exit_code == 0, result.output
    assert [p.name for p in out.iterdir()] == ["res.prepared.h5mu"]
    assert "sample PBMC_1: 1000 cells ->" in result.stderr
    assert result.stdout == ""
    from sci2cl.io import read_multiome

    back = read_multiome(out / "res.prepared.h5mu")
    assert back.n_obs > 900 and back["atac"].var["sci2cl_selected"].sum() == 100
