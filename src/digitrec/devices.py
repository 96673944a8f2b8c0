"""Which device trains, and in which precision."""

from __future__ import annotations

import torch

from .config import TrainConfig
from .errors import ConfigError


def select_device(name: str = "auto") -> torch.device:
    """The named device, checked to be usable here; for `auto`, the machine's accelerator
    (CUDA, MPS, XPU, ... as torch.accelerator finds it), else the CPU."""
    if name == "auto":
        if torch.accelerator.is_available():
            return torch.accelerator.current_accelerator()
        return torch.device("cpu")
    try:
        device = torch.device(name)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as e:
        raise ConfigError(f"device {name!r} is not usable here: {e}") from None
    return device


def autocast_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """bf16 where asked for, or with `auto` where the device computes it natively; else None."""
    if config.precision == "fp32" or device.type not in ("cpu", "cuda"):
        return None
    if config.precision == "bf16":
        return torch.bfloat16
    native = (torch.cuda.is_bf16_supported() if device.type == "cuda"
              else torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return torch.bfloat16 if native else None
