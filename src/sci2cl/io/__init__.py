"""Input/output: 10x / MuData readers and atomic writers."""

from sci2cl.io.read import assemble_multiome, default_sample_name, read_multiome, validate_counts
from sci2cl.io.write import read_parquet_metadata, staged_outputs, write_h5mu, write_parquet

__all__ = [
    "assemble_multiome",
    "default_sample_name",
    "read_multiome",
    "read_parquet_metadata",
    "staged_outputs",
    "validate_counts",
    "write_h5mu",
    "write_parquet",
]
