"""Input/output: 10x / MuData readers and atomic writers."""

from sci2cl.io.read import (
    assemble_multiome,
    default_sample_name,
    multiome_from_mudata,
    read_multiome,
)
from sci2cl.io.write import staged_outputs, write_h5mu, write_parquet

__all__ = [
    "assemble_multiome",
    "default_sample_name",
    "multiome_from_mudata",
    "read_multiome",
    "staged_outputs",
    "write_h5mu",
    "write_parquet",
]
