"""MOFA+ (mofapy2 through muon): Gaussian factors of log-normalised RNA and TF-IDF ATAC.

RNA: normalise to 1e4 and log1p; ATAC: binarise and TF-IDF; all features of the shared input
are used. 20 factors, ``convergence_mode='fast'``, iterations capped at ``--max-epochs``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import h5py
import mudata as md
import muon as mu
import numpy as np
import scanpy as sc

from benchmarks.peers.common import parse_args, stopwatch, write_embedding

N_FACTORS = 20


def iterations(model_file: Path) -> int:
    """Iterations MOFA+ ran (the length of its ELBO trace; NaN-padded when converged early)."""
    with h5py.File(model_file, "r") as handle:
        elbo = np.asarray(handle["training_stats/elbo"][()]).ravel()
    return int(np.isfinite(elbo).sum()) or int(elbo.size)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    mdata = md.read_h5mu(args.input)
    rna, atac = mdata["rna"], mdata["atac"]
    record = {"device": "cpu", "threads": args.threads, "epoch_cap": args.max_epochs}
    with stopwatch(record), tempfile.TemporaryDirectory() as tmp:
        sc.pp.normalize_total(rna, target_sum=1e4)
        sc.pp.log1p(rna)
        atac.X = (atac.X > 0).astype(np.float32)
        mu.atac.pp.tfidf(atac, scale_factor=1e4)
        mu.tl.mofa(
            mdata,
            use_var=None,
            n_factors=N_FACTORS,
            n_iterations=args.max_epochs or 1000,
            convergence_mode="fast",
            seed=args.seed,
            outfile=str(Path(tmp) / "mofa.hdf5"),
            quiet=True,
        )
        record["epochs"] = iterations(Path(tmp) / "mofa.hdf5")
    record["stopped_early"] = bool(args.max_epochs and record["epochs"] < args.max_epochs)
    write_embedding(args.out, mdata.obsm["X_mofa"], record)


if __name__ == "__main__":
    main()
