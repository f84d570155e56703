"""Package versions of both environments and a description of the machine."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from benchmarks.methods import PEER_PYTHON

PRODUCT_PACKAGES = ("sci2cl", "torch", "numpy", "scipy", "scanpy", "anndata", "umap-learn")
PEER_PACKAGES = ("scvi-tools", "muon", "mofapy2", "torch", "scanpy", "pynndescent", "lightning")
VERSION_SCRIPT = (
    "import json, sys\nfrom importlib import metadata\n"
    "out = {}\nfor p in sys.argv[1:]:\n"
    "    try: out[p] = metadata.version(p)\n"
    "    except metadata.PackageNotFoundError: out[p] = 'absent'\n"
    "print(json.dumps(out))"
)


def product_versions() -> dict[str, str]:
    return {p: metadata.version(p) for p in PRODUCT_PACKAGES}


def peer_versions() -> dict[str, str]:
    if not PEER_PYTHON.exists():
        return {}
    result = subprocess.run(
        [str(PEER_PYTHON), "-c", VERSION_SCRIPT, *PEER_PACKAGES],
        capture_output=True,
        text=True,
        check=False,
    )
    return json.loads(result.stdout) if result.returncode == 0 else {}


def machine() -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram_gib": f"{pages / 2**30:.0f}",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "gpu": "none (CPU only; no GPU machine was lent to this benchmark session)",
    }
