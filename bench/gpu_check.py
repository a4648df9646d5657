"""GPU check: the paper configuration's inference speed and a short DDP training on CUDA.

    .venv/bin/python bench/gpu_check.py                      # one GPU: inference + a few training steps
    torchrun --standalone --nproc_per_node 2 bench/gpu_check.py --ddp   # several GPUs: DDP steps

Prints what it measured; on a machine without CUDA it says so and exits 0.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    import torch

    from models.losses import LossConfig, mtmr_loss
    from models.mtmr import MTMRNet, MTMRNetConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ddp", action="store_true")
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check here")
        return 0
    rank, world = 0, 1
    if args.ddp:
        from core.training.distributed import init_from_environment

        rank, world = init_from_environment()
    device = f"cuda:{torch.cuda.current_device()}"
    model = MTMRNet(MTMRNetConfig.paper()).to(device)
    x = torch.randn(args.batch, 3, 224, 224, device=device)
    model.eval()
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        for _ in range(3):
            model(x)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(10):
            model(x)
        torch.cuda.synchronize()
    per_image = (time.perf_counter() - start) / (10 * args.batch)
    if rank == 0:
        print(f"{torch.cuda.get_device_name()}: paper config inference {per_image * 1e3:.3f} ms/image (bf16)")
    model.train()
    trained = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    optimiser = torch.optim.Adam(trained.parameters(), 1e-4)
    labels = torch.randint(0, 2, (args.batch,), device=device)
    targets = torch.rand(args.batch, 8, device=device)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(10):
        parts = mtmr_loss(trained(x), labels, targets, LossConfig())
        optimiser.zero_grad()
        parts["total"].backward()
        optimiser.step()
    torch.cuda.synchronize()
    if rank == 0:
        rate = 10 * args.batch * world / (time.perf_counter() - start)
        print(f"paper config training: {rate:.0f} samples/s over {world} process(es)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
