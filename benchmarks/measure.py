"""Run a command and write its peak RSS and CPU seconds as JSON.

    python -m benchmarks.measure usage.json COMMAND...

On Linux a child's ``ru_maxrss`` keeps the high-water mark of the process image it was
forked from, so a child started straight from the (large) harness would report at least the
harness's own memory. This small process starts the child instead, so its figure is the
child's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys


def main() -> None:
    target, command = sys.argv[1], sys.argv[2:]
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    record = {
        "returncode": process.returncode,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024,  # Linux: KiB
    }
    with open(target, "w") as handle:
        json.dump(record, handle)
    sys.exit(process.returncode)


if __name__ == "__main__":
    main()
