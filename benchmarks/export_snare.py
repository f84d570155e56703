"""Write the SNARE-seq cortex data as an .h5mu + labels CSV, the inputs ``sci2cl`` takes.

python -m benchmarks.export_snare --data ../shared/data --out bench/snare
# -> bench/snare.h5mu, bench/snare.labels.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.datasets import load_snare
from sci2cl.io import write_h5mu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path, help="the shared/data folder")
    parser.add_argument("--out", required=True, help="output prefix")
    args = parser.parse_args()
    mdata, meta = load_snare(args.data)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_h5mu(mdata, Path(f"{args.out}.h5mu"))
    meta.rename_axis("barcode").to_csv(f"{args.out}.labels.csv")


if __name__ == "__main__":
    main()
