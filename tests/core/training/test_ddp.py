"""The trainer under DistributedDataParallel: 2 CPU processes, gloo, loopback only."""

from __future__ import annotations

import os
import socket
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from core.training.trainer import TrainConfig, train
from models.mtmr import MTMRNet, MTMRNetConfig
from tests.core.training.fake_data import fake_dataset


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    # A rank left waiting for the others fails after a minute instead of hanging the suite.
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=60))
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = MTMRNet(MTMRNetConfig(depth=18, width=8, input_size=32))
    events = list(
        # patience 0: rank 0 stops after the first of three epochs; rank 1 must stop with it.
        train(
            TrainConfig(epochs=3, batch_size=8, seed=0, patience=0),
            fake_dataset(),
            fake_dataset(seed=1),
            model,
        )
    )
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    torch.save({"weights": weights, "events": [e["event"] for e in events]}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def test_two_gloo_processes_stay_in_sync(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    # One epoch ran, so rank 0's best model is its last: equal weights mean gradients were averaged
    # and both ranks stopped after the same epoch.
    assert torch.allclose(rank0["weights"], rank1["weights"])
    assert rank0["events"][-1] == "done" and rank0["events"].count("epoch") == 1
    assert "epoch" not in rank1["events"] and "done" not in rank1["events"]  # rank 0 alone validates
