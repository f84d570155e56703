"""Device and precision resolution."""

from __future__ import annotations

import contextlib
import ctypes

import torch

from sci2cl.errors import Sci2clError


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise Sci2clError(f"--device {name} was requested but no CUDA device is available")
    return device


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype, or None for full float32. Mixed precision only on CUDA."""
    if device.type != "cuda" or name == "32":
        return None
    if name == "16":
        return torch.float16
    if name == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def keep_freed_memory() -> None:
    """Let glibc's malloc reuse freed blocks of up to 1 GiB instead of handing them back to the
    kernel. By default every block over 32 MiB is mapped afresh, so each CPU training step
    page-faults its 100-MB-scale gradients (120k peaks x 256) back in, which costs more than
    the arithmetic on them. Process-wide; a no-op where the C library is not glibc."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD: blocks under 1 GiB come from the heap
    mallopt(-1, 1 << 31)  # M_TRIM_THRESHOLD: keep up to 2 GiB of free heap mapped
