"""sci2cl: scI2CL joint embeddings of paired scRNA + scATAC (10x Multiome) cells."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sci2cl")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.1.0"

__all__ = ["__version__"]
