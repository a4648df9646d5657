"""The MTMR-Net training loop as a generator of progress events (CLI, dialog and tests drive it).

Adam with two learning-rate groups (trunk and heads), step decay, early stopping on validation AUC,
seeds and an optional deterministic mode, cancel at any step, start from a checkpoint's weights, and
continue an interrupted run from its training state (``core.training.state``: written by rank 0 after
every epoch when a ``state_path`` is given, read back when the run starts again). Under ``torchrun``
the same loop runs with DistributedDataParallel (gloo on CPU, NCCL on GPUs): every rank trains on its
shard of each epoch, rank 0 validates, logs and writes the checkpoint.

Deviation from the paper, on purpose: the authors fine-tune an ImageNet trunk at 1% of the heads'
learning rate. No ImageNet weights can be had offline, so our trunk trains from scratch and its
learning-rate factor defaults to 1.0 (fine-tuning from our own checkpoints uses a lower one).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from core.model.device import conv_layout, pick_device
from core.model.patches import slice_weights
from core.nodule.ratings import to_rating_scale
from core.training.augment import AugmentConfig, augment
from core.training.data import LABELS, NoduleDataset
from core.training.metrics import attribute_metrics, classification_metrics
from core.util.cancellation import Cancelled


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 64  # 32 siamese pairs
    lr: float = 3e-3  # heads, as the paper
    trunk_lr_factor: float = 1.0  # the paper's 0.01 assumes an ImageNet trunk (see module docstring)
    weight_decay: float = 1e-4
    step_size: int = 20  # epochs between learning-rate drops
    gamma: float = 0.1
    patience: int = 8  # epochs without a better validation AUC before stopping
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"
    threshold: float = 0.5
    freeze_trunk: bool = False
    max_attribute_mae: float = 0.0  # > 0: an epoch counts as best only with attribute MAE within it
    ema: float = 0.0  # > 0: validate and keep an exponential moving average of the weights (e.g. 0.998)
    loss: dict = field(default_factory=dict)  # overrides of models.losses.LossConfig fields
    # per-sample augmentation (core.training.augment.AugmentConfig as a dict); None: none at all
    augment: dict | None = field(default_factory=lambda: AugmentConfig().to_dict())

    def to_dict(self) -> dict:
        return asdict(self)


class TrainingCancelled(Cancelled):
    """Raised inside the loop when the caller cancels; no checkpoint is written (a training state
    written after the last complete epoch, if any, stays, so the run can continue)."""


def _distributed() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def evaluate_model(model, data: NoduleDataset, device: str, threshold: float = 0.5, batch: int = 256) -> dict:
    """Per-nodule metrics: malignancy = mean slice probability; attributes = weighted slice mean."""
    return nodule_metrics(data, *slice_outputs(model, data, device, batch), threshold)


def slice_outputs(model, data: NoduleDataset, device: str, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Malignancy probability and attributes (0..1) of every slice of ``data``, each the mean of the
    slice and its mirror image: the views the Predictor uses, so evaluation measures what the app shows."""
    import torch

    model.eval()
    layout = conv_layout(device)
    probabilities, attributes = [], []
    diameters = torch.from_numpy(data.diameters[data.nodule_index])
    with torch.no_grad():
        for start in range(0, len(data.patches), batch):
            x = torch.from_numpy(data.patches[start : start + batch].astype(np.float32))
            x = x.to(device, memory_format=layout)
            d = diameters[start : start + batch].to(device)
            views = [model(x, d), model(torch.flip(x, dims=(3,)), d)]
            probabilities.append(sum(v["malignancy"].float() for v in views).cpu().numpy() / 2)
            attributes.append(sum(v["attributes"].float() for v in views).cpu().numpy() / 2)
    return np.concatenate(probabilities), np.concatenate(attributes)


def aggregate(data: NoduleDataset, slice_probs: np.ndarray, slice_attrs: np.ndarray):
    count = len(data.labels)
    probs = np.zeros(count)
    attrs = np.zeros((count, slice_attrs.shape[1]))
    for n in range(count):
        rows = np.nonzero(data.nodule_index == n)[0]
        probs[n] = slice_probs[rows].mean()
        attrs[n] = slice_weights(len(rows)) @ slice_attrs[rows]
    return probs, attrs


def nodule_metrics(data: NoduleDataset, slice_probs, slice_attrs, threshold: float) -> dict:
    probs, attrs = aggregate(data, slice_probs, slice_attrs)
    labelled = data.labels >= 0
    metrics = classification_metrics(data.labels[labelled], probs[labelled], threshold)
    metrics["attributes"] = attribute_metrics(to_rating_scale(attrs), to_rating_scale(data.attributes))
    return metrics


def train(
    config: TrainConfig,
    train_data: NoduleDataset,
    val_data: NoduleDataset,
    model=None,
    cancelled: Callable[[], bool] | None = None,
    state_path: Path | None = None,
) -> Iterator[dict]:
    """Yield ``{"event": "resumed" | "step" | "epoch" | "done", ...}``; the last event carries the best model.

    With ``state_path``, the training state is saved there (atomically, rank 0) after every epoch; if
    the file exists when the run starts, the run continues from it, after ``{"event": "resumed",
    "epoch": n}`` (n complete epochs). A state written for another configuration (``epochs`` and
    ``device`` may change), model or data raises ``TrainingStateError`` naming the file. Removing the
    file once the checkpoint is written is the caller's business.
    """
    import torch

    from core.training import state as training_state
    from models.losses import LossConfig, mtmr_loss
    from models.mtmr import MTMRNet, MTMRNetConfig

    rank, world = _distributed()
    torch.manual_seed(config.seed + rank)
    if config.deterministic:
        torch.use_deterministic_algorithms(True)
    device = pick_device(config.device)
    model = model or MTMRNet(MTMRNetConfig.compact())
    layout = conv_layout(device)
    model.to(device, memory_format=layout)
    core_model = model
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    trunk = list(core_model.trunk.parameters())
    for p in trunk:
        p.requires_grad_(not config.freeze_trunk)
    groups = [{"params": core_model.head_parameters(), "lr": config.lr}]
    if not config.freeze_trunk:
        groups.append({"params": trunk, "lr": config.lr * config.trunk_lr_factor})
    optimiser = torch.optim.Adam(groups, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimiser, config.step_size, config.gamma)
    loss_config = replace(LossConfig(), **config.loss)

    patches = torch.from_numpy(train_data.patches.astype(np.float32))
    labels = torch.from_numpy(train_data.slice_labels.astype(np.int64))
    targets = torch.from_numpy(train_data.attributes[train_data.nodule_index])
    diameters = torch.from_numpy(train_data.diameters[train_data.nodule_index])
    rng = np.random.default_rng(config.seed)
    augmentation = AugmentConfig.from_dict(config.augment) if config.augment is not None else None
    averaged = _copy_model(core_model) if config.ema > 0 else core_model
    steps = max(len(patches) // (config.batch_size * world), 1)
    best_auc, best_state, best_metrics, best_epoch, stale = -math.inf, None, None, 0, 0
    first_epoch, elapsed = 1, 0.0
    if state_path is not None:
        state_path = Path(state_path)
        fingerprint = training_state.data_fingerprint(train_data, val_data)
        model_config = core_model.config.to_dict() if hasattr(core_model, "config") else None
        if state_path.is_file():
            saved = training_state.load_state(state_path)
            training_state.check_compatible(saved, state_path, config.to_dict(), model_config, fingerprint)
            training_state.load_weights(core_model, saved.model, state_path, "model")
            if averaged is not core_model:
                if saved.ema is None:
                    raise training_state.TrainingStateError(state_path, "it holds no EMA weights")
                training_state.load_weights(averaged, saved.ema, state_path, "EMA")
            try:
                optimiser.load_state_dict(saved.optimiser)
                scheduler.load_state_dict(saved.scheduler)
                rng.bit_generator.state = saved.numpy_rng
            except (KeyError, TypeError, ValueError, RuntimeError) as exc:
                raise training_state.TrainingStateError(
                    state_path, f"the optimiser, schedule or random state does not fit ({exc})"
                ) from exc
            if rank == 0:
                torch.set_rng_state(saved.torch_rng)
                if saved.cuda_rng is not None and str(device).startswith("cuda"):
                    torch.cuda.set_rng_state(saved.cuda_rng)
            else:  # other ranks had their own streams: a fresh one per rank and epoch
                torch.manual_seed(config.seed + rank + 1000 * saved.epoch)
            best_auc, best_epoch, stale = saved.best_auc, saved.best_epoch, saved.stale
            best_metrics, best_state = saved.best_metrics, saved.best_state
            first_epoch, elapsed = saved.epoch + 1, saved.elapsed_s
            if stale >= config.patience:  # it had stopped early: nothing left but the result
                first_epoch = config.epochs + 1
            yield {"event": "resumed", "epoch": saved.epoch}
    started = time.perf_counter() - elapsed
    for epoch in range(first_epoch, config.epochs + 1):
        model.train()
        order = rng.permutation(len(patches))[rank::world]  # same permutation on every rank, own shard
        sums: dict[str, float] = {}
        for step in range(steps):
            if cancelled is not None and cancelled():
                raise TrainingCancelled()
            rows = torch.from_numpy(order[step * config.batch_size : (step + 1) * config.batch_size])
            x = _augment(patches[rows], rng, augmentation).to(device, memory_format=layout)
            out = model(x, diameters[rows].to(device))
            parts = mtmr_loss(out, labels[rows].to(device), targets[rows].to(device), loss_config)
            optimiser.zero_grad(set_to_none=True)
            parts["total"].backward()
            optimiser.step()
            if averaged is not core_model:
                _update_average(averaged, core_model, config.ema)
            for name, value in parts.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach())
            done = (epoch - 1) * steps + step + 1
            eta = (time.perf_counter() - started) / done * (config.epochs * steps - done)
            mean = {k: v / (step + 1) for k, v in sums.items()}
            yield {
                "event": "step",
                "epoch": epoch,
                "step": step + 1,
                "steps": steps,
                "eta_s": eta,
                "loss": mean,
            }
        scheduler.step()
        if rank != 0:
            if _stop_agreed(False, world, device):
                break
            continue
        metrics = evaluate_model(averaged, val_data, device, config.threshold)
        limit = config.max_attribute_mae
        acceptable = not limit or metrics["attributes"]["mean_mae"] <= limit
        improved = (metrics["auc"] > best_auc and acceptable) or best_state is None
        if improved:
            best_auc, best_metrics, best_epoch, stale = metrics["auc"], metrics, epoch, 0
            best_state = {k: v.detach().cpu().clone() for k, v in averaged.state_dict().items()}
        else:
            stale += 1
        if state_path is not None:
            training_state.save_state(
                state_path,
                training_state.TrainingState(
                    epoch=epoch,
                    config=config.to_dict(),
                    model_config=model_config,
                    data=fingerprint,
                    model=core_model.state_dict(),
                    optimiser=optimiser.state_dict(),
                    scheduler=scheduler.state_dict(),
                    numpy_rng=rng.bit_generator.state,
                    torch_rng=torch.get_rng_state(),
                    cuda_rng=torch.cuda.get_rng_state() if str(device).startswith("cuda") else None,
                    best_auc=best_auc,
                    best_epoch=best_epoch,
                    stale=stale,
                    best_metrics=best_metrics,
                    best_state=best_state,
                    ema=averaged.state_dict() if averaged is not core_model else None,
                    elapsed_s=time.perf_counter() - started,
                    world_size=world,
                ),
            )
        remaining = (time.perf_counter() - started) / epoch * (config.epochs - epoch)
        yield {
            "event": "epoch",
            "epoch": epoch,
            "epochs": config.epochs,
            "loss": {k: v / steps for k, v in sums.items()},
            "val": metrics,
            "best_epoch": best_epoch,
            "eta_s": remaining,
            "lr": scheduler.get_last_lr(),
        }
        if _stop_agreed(stale >= config.patience, world, device):
            break
    if rank == 0:
        core_model.to(memory_format=torch.contiguous_format)  # what inference and checkpoints expect
        core_model.load_state_dict(best_state)
        yield {
            "event": "done",
            "model": core_model.cpu().eval(),
            "val": best_metrics,
            "best_epoch": best_epoch,
            "seconds": time.perf_counter() - started,
            "device": device,
        }


def _stop_agreed(stop: bool, world: int, device) -> bool:
    """Rank 0 decides early stopping; every rank must leave the loop together or DDP hangs."""
    if world == 1:
        return stop
    import torch
    import torch.distributed as dist

    flag = torch.tensor([1.0 if stop else 0.0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def _copy_model(model):
    import copy

    twin = copy.deepcopy(model)
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin


def _update_average(averaged, model, decay: float) -> None:
    """Polyak/EMA weights. Batch-norm statistics are averaged the same way, so the averaged weights
    are never paired with statistics of the live weights (that pairing made attribute errors jump)."""
    import torch

    with torch.no_grad():
        for mine, theirs in zip(averaged.parameters(), model.parameters(), strict=True):
            mine.lerp_(theirs, 1.0 - decay)
        for mine, theirs in zip(averaged.buffers(), model.buffers(), strict=True):
            if mine.is_floating_point():
                mine.lerp_(theirs, 1.0 - decay)
            else:
                mine.copy_(theirs)


def _augment(batch, rng, config: AugmentConfig | None):
    """Each sample of the batch drawn anew (``core.training.augment``), or the batch as it is."""
    return batch if config is None else augment(batch, rng, config)


def init_attribute_bias(model, data: NoduleDataset) -> None:
    """Start each attribute head at the training mean instead of mid-scale: sigmoid(0) = 0.5 is far
    from, say, calcification's mean of 5.6 on its 1-6 scale, and the small unit-scale MSE takes many
    epochs to walk there (measured: a fresh model's attribute error starts above the median's)."""
    import torch

    means = np.nanmean(data.attributes, axis=0)
    with torch.no_grad():
        for head, mean in zip(model.attribute_heads, means, strict=True):
            p = float(np.clip(np.nan_to_num(mean, nan=0.5), 0.02, 0.98))
            head.bias.fill_(float(np.log(p / (1 - p))))


def manifest(data: NoduleDataset, split: str) -> dict:
    """What the model saw: which patients and nodules, from which split."""
    return {
        "split": split,
        "nodules": len(data.labels),
        "slices": len(data.patches),
        "patients": sorted(set(data.patient_ids.tolist())),
        "labels": {name: int((data.labels == v).sum()) for name, v in LABELS.items()},
    }
