"""sci2cl: scI2CL joint embeddings of paired scRNA + scATAC (10x Multiome) cells.

>>> import sci2cl
>>> model = sci2cl.SCI2CL.setup(mdata)
>>> model.train()
>>> z = model.get_latent_representation()
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sci2cl")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.1.0"

__all__ = ["SCI2CL", "__version__"]


def __getattr__(name: str):
    if name == "SCI2CL":  # imported on first use: `import sci2cl` stays light (no torch)
        from sci2cl.api import SCI2CL

        return SCI2CL
    raise AttributeError(f"module 'sci2cl' has no attribute {name!r}")
