"""Shared CLI plumbing: messages and progress on stderr, thread settings."""

from __future__ import annotations

import sys
from pathlib import Path

import click


def input_option(help: str, dest: str = "input_path", **kwargs):
    """The required ``--input PATH`` of a command."""
    path = click.Path(path_type=Path)
    return click.option("--input", dest, required=True, type=path, help=help, **kwargs)


def info(message: str) -> None:
    """Progress / summary messages go to stderr so stdout stays clean."""
    click.echo(message, err=True)


def set_threads(threads: int | None) -> None:
    """Limit torch's CPU threads (Nextflow passes task.cpus)."""
    if threads:
        import torch

        torch.set_num_threads(threads)


class EpochProgress:
    """A tqdm bar over epochs showing the latest losses (on stderr)."""

    KEYS = ("train_loss", "val_loss", "val_zinb_rna", "val_zinb_atac", "val_moc", "val_mom")

    def __init__(self, total: int) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc="epochs", unit="epoch", file=sys.stderr, leave=True)

    def __call__(self, record: dict) -> None:
        shown = {k.replace("val_", "v_"): f"{record[k]:.3f}" for k in self.KEYS if k in record}
        self.bar.set_postfix(stage=record.get("stage"), **shown, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
