"""Distributed training set-up: PyTorch's own engine (``torchrun`` + DistributedDataParallel).

``torchrun`` sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT; ``init_from_environment`` joins
the group with NCCL on CUDA machines and gloo elsewhere. A 4-GPU machine:

    torchrun --standalone --nproc_per_node 4 main.py train --device cuda --out model.safetensors
"""

from __future__ import annotations

import os


def init_from_environment() -> tuple[int, int]:
    """Join the process group when launched by torchrun; returns (rank, world size)."""
    import torch
    import torch.distributed as dist

    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    return dist.get_rank(), dist.get_world_size()


def shutdown() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
