"""Command-line interface: a thin click layer over the library, with one error boundary that
ends every failure in one line and an exit code (listed in :func:`main`'s help)."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import click
import mudata

from sci2cl import __version__
from sci2cl.errors import Sci2clError, Sci2clWarning, one_line

mudata.set_options(pull_on_update=False)

COMMANDS = ("prepare", "train", "embed", "evaluate", "run", "multiqc")
EXIT_INTERNAL, EXIT_INPUT, EXIT_MEMORY = 1, 2, 3
MEMORY_HINT = "try a lower --batch-size, or --device cpu"
OUT_OF_MEMORY = ("out of memory", "can't allocate memory")  # CUDA's and torch CPU's words


class _Boundary(click.Group):
    """Runs a command; any failure ends in one line on stderr and a documented exit code, and
    each library warning (:class:`Sci2clWarning`) in one line. A command's module (and what it
    imports) loads only when that command runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return importlib.import_module(f"sci2cl.cli.{name}").command if name in COMMANDS else None

    def invoke(self, ctx: click.Context):
        with warnings.catch_warnings():
            warnings.simplefilter("always", Sci2clWarning)
            show = warnings.showwarning
            warnings.showwarning = lambda message, category, *args: (
                click.echo(f"sci2cl: warning: {message}", err=True)
                if issubclass(category, Sci2clWarning)
                else show(message, category, *args)
            )
            try:
                return super().invoke(ctx)
            except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
                raise
            except Exception as err:  # noqa: BLE001 - the one place every failure is reported
                code, message = _failure(err)
                click.echo(message, err=True)
                ctx.exit(code)


def _failure(err: Exception) -> tuple[int, str]:
    notes = "".join(f"; {note}" for note in getattr(err, "__notes__", ()))
    if isinstance(err, Sci2clError):  # TrainingInterrupted carries 143 (stopped by SIGTERM)
        code = getattr(err, "exit_code", EXIT_INPUT)
        return code, f"sci2cl: error: {one_line(err, limit=None)}{notes}"
    if isinstance(err, MemoryError) or any(s in str(err).lower() for s in OUT_OF_MEMORY):
        return EXIT_MEMORY, f"sci2cl: error: out of memory ({one_line(err)}){notes}; {MEMORY_HINT}"
    what = f"{type(err).__name__}: {one_line(err)}{notes}"
    return EXIT_INTERNAL, f"sci2cl: internal error: {what}; traceback in {_write_log(err)}"


def _write_log(err: Exception) -> str:
    """Write the traceback to ``sci2cl-error-<time>-<pid>.log`` (working folder, else temp)."""
    name = f"sci2cl-error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    text = "".join(
        [f"sci2cl {__version__}: {' '.join(sys.argv)}\n", *traceback.format_exception(err)]
    )
    for folder in (Path.cwd(), Path(tempfile.gettempdir())):
        with contextlib.suppress(OSError):
            (folder / name).write_text(text)
            return str(folder / name)
    return "(no writable folder for the log)"


@click.group(
    cls=_Boundary, context_settings={"help_option_names": ["-h", "--help"], "show_default": True}
)
@click.version_option(__version__, prog_name="sci2cl")
def main() -> None:
    """scI2CL joint embeddings from paired scRNA + scATAC (10x Multiome) data.

    Exit codes: 1 internal error (traceback in the log file named), 2 bad input or options,
    3 out of memory, 143 stopped by SIGTERM (progress saved when --checkpoint is given)."""
