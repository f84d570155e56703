"""Paths of the committed fixtures (importable from test modules)."""

from conftest import DATA, PBMC_OUTS, SNARE_H5MU, SNARE_LABELS

__all__ = ["DATA", "PBMC_OUTS", "SNARE_H5MU", "SNARE_LABELS"]
