"""Sections of docs/benchmarks.md that their own benchmark writes between two markers, so a
page rebuilt on a machine without those results keeps them."""

from __future__ import annotations

from pathlib import Path


def block_in(doc: Path, begin: str, end: str) -> list[str]:
    """The marked block of ``doc`` (markers included), or nothing."""
    text = doc.read_text().splitlines() if doc.exists() else []
    if begin in text and end in text:
        return text[text.index(begin) : text.index(end) + 1]
    return []


def section_or_doc(lines: list[str], doc: Path, begin: str, end: str) -> list[str]:
    """For ``write_report``: a freshly rendered section, else the one already in ``doc``,
    after a blank line."""
    lines = lines or block_in(doc, begin, end)
    return ["", *lines] if lines else []


def write_block(doc: Path, lines: list[str], begin: str, end: str) -> None:
    """Replace the marked block of ``doc`` with ``lines`` (append them when absent)."""
    text = doc.read_text().splitlines()
    if begin in text and end in text:
        text[text.index(begin) : text.index(end) + 1] = lines
    else:
        text += ["", *lines]
    doc.write_text("\n".join(text) + "\n")
