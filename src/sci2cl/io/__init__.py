"""Input/output: :mod:`.read` reads every input format, :mod:`.write` writes every output."""

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
