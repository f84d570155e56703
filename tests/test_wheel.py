"""The release artefacts: `python -m build` makes a wheel and an sdist, and the wheel installs
into a clean virtualenv where `sci2cl --version` and `sci2cl run` work.

Offline and fast: the wheel is installed with --no-index --no-deps, and the clean venv finds
the dependencies (torch, ...) through a .pth line naming this environment's site-packages,
after its own site-packages, so `sci2cl` itself is imported from the wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest
from conftest import PBMC_OUTS
from helpers import SMALL_CLI_ARGS

from sci2cl import __version__

REPO = Path(__file__).resolve().parents[1]


def sh(*args, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)
    assert proc.returncode == 0, f"{args}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    sh(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, REPO, cwd=REPO)
    return out


def test_build_makes_wheel_and_sdist(dist):
    wheel = dist / f"sci2cl-{__version__}-py3-none-any.whl"
    sdist = dist / f"sci2cl-{__version__}.tar.gz"
    assert sorted(p.name for p in dist.iterdir()) == sorted([wheel.name, sdist.name])
    names = zipfile.ZipFile(wheel).namelist()
    assert "sci2cl/cli/__init__.py" in names and "sci2cl/io/write.py" in names
    entry_points = zipfile.ZipFile(wheel).read(f"sci2cl-{__version__}.dist-info/entry_points.txt")
    assert b"sci2cl = sci2cl.cli:main" in entry_points
    with tarfile.open(sdist) as archive:
        members = archive.getnames()
    assert f"sci2cl-{__version__}/pyproject.toml" in members
    assert f"sci2cl-{__version__}/src/sci2cl/train/trainer.py" in members


def test_wheel_installs_into_a_clean_venv_and_runs(dist, tmp_path):
    venv = tmp_path / "venv"
    sh(sys.executable, "-m", "venv", "--without-pip", venv)
    bin_dir = venv / "bin"
    site = Path(
        sh(
            bin_dir / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"
        ).stdout.strip()
    )
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel = next(dist.glob("*.whl"))
    pip = (sys.executable, "-m", "pip", "--python", bin_dir / "python")
    sh(*pip, "install", "--no-deps", "--no-index", "--ignore-installed", wheel)

    env = {**os.environ, "PYTHONNOUSERSITE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    version = sh(bin_dir / "sci2cl", "--version", env=env)
    assert version.stdout.strip() == f"sci2cl, version {__version__}"
    where = sh(bin_dir / "python", "-c", "import sci2cl; print(sci2cl.__file__)", env=env)
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout  # the wheel, not src/

    prefix = tmp_path / "out" / "pbmc"
    run = [bin_dir / "sci2cl", "run", "--input", PBMC_OUTS, "--output-prefix", prefix]
    sh(*run, "--no-figures", *SMALL_CLI_ARGS, env=env)
    for suffix in (".embeddings.parquet", ".h5mu", ".model.pt", ".history.csv"):
        assert (tmp_path / "out" / f"pbmc{suffix}").stat().st_size > 0, suffix
