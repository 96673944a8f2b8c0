"""An exponential moving average of a model's weights, and the module under its wrappers."""

from __future__ import annotations

import copy

import torch
from torch.nn.parallel import DistributedDataParallel


class WeightAverage:
    """Exponential moving average of a model's weights and buffers, with a warm-up so that
    early updates are not swamped by the random initial weights (decay grows to `decay`)."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(unwrap(model)).eval().requires_grad_(False)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        pairs = [(a, b) for a, b in zip(self.module.state_dict().values(),
                                        unwrap(model).state_dict().values(), strict=True)]
        floats = [(a, b) for a, b in pairs if a.is_floating_point()]
        torch._foreach_lerp_([a for a, _ in floats], [b for _, b in floats], 1 - decay)
        for a, b in pairs:
            if not a.is_floating_point():
                a.copy_(b)

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = state["updates"]


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    model = getattr(model, "_orig_mod", model)  # torch.compile wraps the module
    return model.module if isinstance(model, DistributedDataParallel) else model
