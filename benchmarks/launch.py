"""Run one method as a child process; measure its wall time, CPU time and peak RSS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.peers.common import THREAD_VARIABLES


def child_environment(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update({name: str(threads) for name in THREAD_VARIABLES})
    env["PYTHONHASHSEED"] = "0"
    env.setdefault("MPLBACKEND", "Agg")
    return env


def run_child(command: list[str], threads: int, log: Path) -> dict:
    """Run ``command`` through ``benchmarks.measure`` (peak RSS and CPU of the child alone,
    ``os.wait4``); returns those, the exit code and the wall seconds."""
    log.parent.mkdir(parents=True, exist_ok=True)
    usage = log.with_suffix(".usage.json")
    wrapped = [sys.executable, "-m", "benchmarks.measure", str(usage), *command]
    start = time.perf_counter()
    with open(log, "w") as handle:
        returncode = subprocess.run(
            wrapped, stdout=handle, stderr=subprocess.STDOUT, env=child_environment(threads)
        ).returncode
    record = {"returncode": returncode, "process_s": time.perf_counter() - start}
    if usage.exists():
        record |= json.loads(usage.read_text()) | {"rss_isolated": True}
    return record | {"command": command}
