"""Pick the torch device: cuda, then mps, then cpu, unless the user asks for one."""

from __future__ import annotations

import torch

from training.errors import SettingsError


def pick_device(requested: str | None = None) -> torch.device:
    """Return `requested` if it is usable, else the best available device.

    A requested device that is not available is an error, not a silent fallback: a user who
    asked for `cuda` and gets the CPU would wait hours without knowing why.
    """
    if requested:
        try:
            device = torch.device(requested)
        except RuntimeError:
            raise SettingsError(f"--device {requested}: not a device; give cuda, cuda:1, mps or cpu.") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise SettingsError(f"--device {requested}: CUDA is not available on this machine "
                                "(no NVIDIA GPU or a CPU-only torch build). Leave --device out to use the CPU.")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise SettingsError(f"--device {requested}: Apple MPS is not available on this machine.")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def describe(device: torch.device) -> str:
    """A short human name for the device, for logs and the demo's model panel."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type
