"""Command-line interface: a thin click layer over the library."""

from __future__ import annotations

import click
import mudata

from sci2cl import __version__

mudata.set_options(pull_on_update=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sci2cl")
def main() -> None:
    """scI2CL joint embeddings from paired scRNA + scATAC (10x Multiome) data."""


def _register() -> None:
    from sci2cl.cli import embed, evaluate, multiqc, prepare, run, train

    for module in (prepare, train, embed, evaluate, run, multiqc):
        main.add_command(module.command)


_register()
