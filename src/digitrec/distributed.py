"""This process's place in a torchrun job, and its share of each epoch."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Cluster:
    """This process's place in a torchrun job; a plain run is rank 0 of 1."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def leader(self) -> bool:
        """Rank 0 alone logs, evaluates and writes the run directory."""
        return self.rank == 0

    @classmethod
    def from_env(cls) -> Cluster:
        """Read torchrun's RANK, WORLD_SIZE and LOCAL_RANK."""
        env = os.environ
        return cls(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))

    def start(self, device: torch.device) -> torch.device:
        """Join the process group (nccl on CUDA, gloo elsewhere); the device this rank uses."""
        if self.world == 1:
            return device
        if device.type == "cuda":
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return device

    def stop(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def rank_slice(order: torch.Tensor, cluster: Cluster) -> torch.Tensor:
    """This rank's share of an epoch's permutation: every world-th index from its rank on,
    all shares the same length (the at most world - 1 left-over images wait for the next
    epoch's permutation)."""
    if cluster.world == 1:
        return order
    return order[cluster.rank::cluster.world][:len(order) // cluster.world]
