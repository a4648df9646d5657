"""End-to-end analysis speed: 20 nodules in a 300-slice study with the demo model on this machine.

    .venv/bin/python bench/bench_inference.py [--model PATH] [--nodules 20] [--repeats 5]

Prints the median end-to-end time (patch extraction + forward + aggregation) with the TTA interval
and without it (today's two views) measured in the same run, their ratio, the forward pass
alone in the channels-last layout the app uses (``core.model.device.conv_layout``) beside the
default layout, the FLOP-based floor at this machine's measured conv throughput, and the training
throughput of the compact configuration (samples/s, ``core.training.trainer.train``'s own loop)
without and with the training augmentation (``core.training.augment``), and with augmentation in the
default layout as the reference, interleaved in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def conv_flops(model, size: int) -> float:
    """Multiply-adds x 2 of every Conv2d and Linear layer for one input, counted with hooks."""
    import torch

    total = [0.0]

    def conv_hook(module, inputs, output):
        kernel = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
        total[0] += 2.0 * kernel * output.numel()

    def linear_hook(module, inputs, output):
        total[0] += 2.0 * module.in_features * output.numel()

    handles = []
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, torch.nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    with torch.no_grad():
        model(torch.zeros(1, model.config.in_channels, size, size))
    for handle in handles:
        handle.remove()
    return total[0]


def measured_gflops() -> float:
    """Sustained conv throughput of this machine: a 3x3 conv layer of the kind the trunk uses."""
    import torch

    conv = torch.nn.Conv2d(64, 64, 3, padding=1)
    x = torch.randn(64, 64, 32, 32)
    flops = 2.0 * 9 * 64 * 64 * 32 * 32 * 64
    with torch.no_grad():
        conv(x)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            conv(x)
            times.append(time.perf_counter() - start)
    return flops / min(times) / 1e9


def training_rate(
    patches: np.ndarray, nodules: int, model_config, augment: bool, steps: int = 8, plain: bool = False
) -> float:
    """Samples per second of ``core.training.trainer.train`` itself (augmentation, forward, loss,
    backward, optimiser step): a fresh model of ``model_config`` (the demo's), one epoch of
    ``steps`` + 2 batches of 64 made of these patches, timed from the end of the second step to the
    last (warm-up left out). ``plain``: in torch's default memory layout instead of channels-last."""
    from unittest import mock

    import torch

    from core.training.augment import AugmentConfig
    from core.training.data import NoduleDataset
    from core.training.trainer import TrainConfig, train
    from models.mtmr import MTMRNet

    rows = np.resize(np.arange(len(patches)), 64 * (steps + 2))
    index = (rows % nodules).astype(np.int32)
    rng = np.random.default_rng(0)
    data = NoduleDataset(
        patches=patches[rows].astype(np.float16),
        nodule_index=index,
        variant=np.zeros(len(rows), np.int16),
        labels=(np.arange(nodules) % 2).astype(np.int8),
        attributes=rng.random((nodules, 8)).astype(np.float32),
        diameters=np.full(nodules, 10.0, np.float32),
        nodule_ids=np.array([f"n{k}" for k in range(nodules)]),
        patient_ids=np.array([f"p{k}" for k in range(nodules)]),
    )
    small = NoduleDataset(
        **{
            **data.__dict__,
            "patches": data.patches[:nodules],
            "nodule_index": index[:nodules],
            "variant": data.variant[:nodules],
            "protocol_index": None,
        }
    )
    config = TrainConfig(epochs=1, device="cpu", augment=AugmentConfig().to_dict() if augment else None)
    layout = mock.patch("core.training.trainer.conv_layout", lambda device: torch.contiguous_format)
    with layout if plain else contextlib.nullcontext():
        times = [
            time.perf_counter()
            for event in train(config, data, small, MTMRNet(model_config))
            if event["event"] == "step"
        ]
    return 64 * (len(times) - 2) / (times[-1] - times[1])


def main() -> int:
    import torch

    from core.lidc.table import load_nodules
    from core.model.inference import Predictor
    from core.model.store import default_model_path
    from core.nodule.prediction import Marker
    from core.phantom.study import PhantomOptions, build_phantom, choose_nodules

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(default_model_path()))
    parser.add_argument("--nodules", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    options = PhantomOptions(seed=11, split="val", nodules=args.nodules)
    volume, placed = build_phantom(options, choose_nodules(load_nodules(), options))
    markers = [Marker(f"n{p.index + 1}", p.centre_mm, p.nodule.diameter_mm) for p in placed]
    predictor = Predictor(Path(args.model), device="cpu")
    plain = Predictor(Path(args.model), device="cpu", tta=False)  # today's two views, no interval
    predictor.predict(volume, markers)  # warm-up: first-call allocations
    plain.predict(volume, markers)
    end_to_end, without_tta = [], []
    for _ in range(args.repeats):  # interleaved, so both see the same machine load
        start = time.perf_counter()
        plain.predict(volume, markers)
        without_tta.append(time.perf_counter() - start)
        start = time.perf_counter()
        predictor.predict(volume, markers)
        end_to_end.append(time.perf_counter() - start)
    from core.model.patches import extract_patches

    patches = np.concatenate(
        [extract_patches(volume, m.centre_mm, m.diameter_mm, predictor.patch_config) for m in markers]
    )
    patches = np.concatenate([patches, patches[..., ::-1]])
    sizes = torch.full((len(patches),), 10.0)
    forward, forward_plain = [], []
    default = copy.deepcopy(predictor.model).to(memory_format=torch.contiguous_format)
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(patches))
        fast = x.contiguous(memory_format=torch.channels_last)
        default(x, sizes)
        for _ in range(args.repeats):
            start = time.perf_counter()
            predictor.model(fast, sizes)
            forward.append(time.perf_counter() - start)
            start = time.perf_counter()
            default(x, sizes)
            forward_plain.append(time.perf_counter() - start)
    flops = conv_flops(predictor.model, predictor.patch_config.size) * len(patches)
    gflops = measured_gflops()
    print(f"model: {predictor.description}")
    print(f"{volume.shape[0]}-slice study, {len(markers)} nodules, {len(patches)} patches")
    with_tta, without = statistics.median(end_to_end), statistics.median(without_tta)
    print(f"end to end without TTA (slices + mirrors, no interval): median {without:.3f} s")
    print(f"end to end with TTA (+ 4 views of each central slice, interval): median {with_tta:.3f} s")
    print(f"TTA / without TTA = {with_tta / without:.2f} (target <= 2)")
    alone, alone_plain = statistics.median(forward), statistics.median(forward_plain)
    print(
        f"forward alone: median {alone:.3f} s channels-last (the app's), {alone_plain:.3f} s default "
        f"layout ({alone_plain / alone:.2f}x)"
    )
    print(
        f"FLOP floor: {flops / 1e9:.2f} GFLOP at {gflops:.0f} GFLOP/s measured = {flops / 1e9 / gflops:.3f} s"
    )
    rates = {"off": [], "on": [], "plain": []}
    for _ in range(args.repeats):  # interleaved, so a busy moment of a shared machine hits all
        for key in rates:
            rates[key].append(
                training_rate(
                    patches, len(markers), predictor.model.config, augment=key != "off", plain=key == "plain"
                )
            )
    off, on, plain = (statistics.median(rates[k]) for k in ("off", "on", "plain"))
    label = "training throughput (compact, batch 64, the trainer's own loop), augmentation"
    print(f"{label} off: {off:.0f} samples/s")
    print(f"{label} on:  {on:.0f} samples/s ({on / off:.2f}x; floor 150 samples/s on)")
    print(f"{label} on, default layout: {plain:.0f} samples/s (channels-last {on / plain:.2f}x)")
    print(f"20-nodule analysis / 0.5 s floor = {statistics.median(end_to_end) / 0.5:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
