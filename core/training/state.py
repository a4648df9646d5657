"""Resumable training: everything a run needs to go on after an epoch, in one safetensors file.

After every epoch the trainer (rank 0) can write the model's weights, the EMA weights if any, the
best weights so far, Adam's state tensors, the learning-rate schedule, the epoch, the early-stopping
bookkeeping and the numpy and torch random states. A cancelled, crashed or paused run then continues
where it stopped and, in deterministic mode on one process, ends with the same weights as an
uninterrupted run.

The format is safetensors only: tensors by name (``model/…``, ``ema/…``, ``best/…``,
``optimiser/<param>/<key>``, ``rng/torch``, ``rng/cuda``) and one JSON document in the metadata
(schema, configs, the data's fingerprint, Adam's hyper-parameters, the schedule, the numpy random
state, the bookkeeping and a hash of every tensor). Nothing is ever unpickled. The file is written
to a temporary file and moved into place, so a failed write leaves the previous state intact; a
damaged file, or one written for another configuration, model or data set, is refused with a
message naming it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.training.data import NoduleDataset
from core.util.filelock import FileLock
from core.util.safetensors_io import (
    DocumentFormat,
    SafetensorsFileError,
    read_document_file,
    tensors_sha256,
    write_document_file,
)

STATE_SCHEMA = "mtmr-reader/training-state/1"
# TrainConfig fields a continued run may change: more epochs extend a run; the device may change
# (a run paused on a GPU can go on on a CPU, though not bit for bit).
FLEXIBLE = ("epochs", "device")
MAX_RUNS = 100  # runs at once in one folder


class TrainingStateError(SafetensorsFileError):
    """A training state refused: ``path`` and ``reason``, the message naming both."""


TRAINING_STATE = DocumentFormat(
    key="training_state",
    schema=STATE_SCHEMA,
    hash_key="tensors_sha256",
    no_file="no such training-state file",
    no_document="no training state in the file: not an MTMR Reader training state",
    not_json="the training state's metadata is not valid JSON",
    schema_name="training-state schema",
    unreadable="not a readable safetensors file",
    damaged="tensors do not match the hash in the file (damaged or edited file)",
    error=TrainingStateError,
)


def state_path_for(out: str | Path) -> Path:
    """Where a run writing the checkpoint ``out`` keeps its state: ``model.safetensors`` ->
    ``model.state.safetensors`` (any other name gets ``.state.safetensors`` appended)."""
    out = Path(out)
    if out.suffix == ".safetensors":
        return out.with_suffix(".state.safetensors")
    return out.with_name(out.name + ".state.safetensors")


@dataclass
class RunFiles:
    """One run's own files: its training state and its run record, and the lock that makes them its own."""

    state: Path
    record: Path
    lock: FileLock

    def release(self) -> None:
        self.lock.release(remove=True)


def run_files(folder: str | Path, name: str) -> RunFiles:
    """``name.state.safetensors`` and ``name.run.json`` in ``folder``, not locked."""
    folder = Path(folder)
    return RunFiles(
        folder / f"{name}.state.safetensors", folder / f"{name}.run.json", FileLock(folder / f".{name}.lock")
    )


def claim_run(
    folder: str | Path, stem: str, continuing: bool = False, slots: int = MAX_RUNS
) -> RunFiles | None:
    """Files of its own for a run in ``folder``, locked (``core.util.filelock``) until ``release`` or until
    the process ends: ``stem.*``, or ``stem-2.*``, ``stem-3.*``... while live runs hold the earlier
    ones, so two runs never share (or resume) one state. ``continuing``: the first files left by a run
    that died (its state is there, nobody holds it). None when there are none (or ``slots`` are busy).
    A half-written state of a killed run in the files claimed is removed.
    """
    if not continuing:
        Path(folder).mkdir(parents=True, exist_ok=True)
    for n in range(1, slots + 1):
        files = run_files(folder, stem if n == 1 else f"{stem}-{n}")
        if continuing and not files.state.is_file():
            continue
        if files.lock.acquire():
            for tmp in Path(folder).glob(f".{files.state.name}.*.tmp"):  # a save cut off by a kill
                tmp.unlink(missing_ok=True)
            return files
    return None


def remove_abandoned(folder: str | Path, stem: str) -> None:
    """Delete the state and record of every run of ``stem`` in ``folder`` whose process is gone."""
    for n in range(1, MAX_RUNS + 1):
        files = run_files(folder, stem if n == 1 else f"{stem}-{n}")
        if files.state.exists() and files.lock.acquire():
            try:
                files.state.unlink(missing_ok=True)
                files.record.unlink(missing_ok=True)
            finally:
                files.release()


@dataclass
class TrainingState:
    """A run after ``epoch`` complete epochs. Tensors are on the CPU."""

    epoch: int
    config: dict  # TrainConfig.to_dict()
    model_config: dict | None  # MTMRNetConfig.to_dict()
    data: dict  # data_fingerprint(train, val)
    model: dict  # name -> tensor
    optimiser: dict  # torch's optimiser.state_dict() form
    scheduler: dict  # torch's scheduler.state_dict() (plain values)
    numpy_rng: dict  # np.random.Generator.bit_generator.state
    torch_rng: object  # torch.get_rng_state()
    best_auc: float
    best_epoch: int
    stale: int
    best_metrics: dict | None
    best_state: dict | None  # name -> tensor
    ema: dict | None = None  # name -> tensor
    cuda_rng: object | None = None
    elapsed_s: float = 0.0
    world_size: int = 1


def data_fingerprint(train: NoduleDataset, val: NoduleDataset) -> dict:
    """Short digests of the training and validation data (labels, targets, ids and a sample of patches)."""
    return {"train": _digest(train), "val": _digest(val)}


def _digest(data: NoduleDataset) -> str:
    digest = hashlib.sha256()
    digest.update(f"{data.patches.shape}|{data.patches.dtype}|".encode())
    for array in (data.nodule_index, data.variant, data.labels, data.attributes, data.diameters):
        digest.update(np.ascontiguousarray(array).tobytes())
    for strings in (data.nodule_ids, data.patient_ids):
        digest.update("\n".join(str(s) for s in strings.tolist()).encode())
    step = max(1, len(data.patches) // 64)
    digest.update(np.ascontiguousarray(data.patches[::step]).tobytes())
    return digest.hexdigest()[:16]


def save_state(path: str | Path, state: TrainingState) -> None:
    """Write ``state`` atomically: a failure leaves any previous file at ``path`` as it was."""
    tensors = {f"model/{k}": v for k, v in state.model.items()}
    if state.ema is not None:
        tensors |= {f"ema/{k}": v for k, v in state.ema.items()}
    if state.best_state is not None:
        tensors |= {f"best/{k}": v for k, v in state.best_state.items()}
    plain_state: dict[str, dict] = {}
    for index, values in state.optimiser["state"].items():
        for key, value in values.items():
            if _is_tensor(value):
                tensors[f"optimiser/{index}/{key}"] = value
            else:
                plain_state.setdefault(str(index), {})[key] = value
    tensors["rng/torch"] = state.torch_rng
    if state.cuda_rng is not None:
        tensors["rng/cuda"] = state.cuda_rng
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = {
        "schema": STATE_SCHEMA,
        "epoch": state.epoch,
        "config": state.config,
        "model_config": state.model_config,
        "data": state.data,
        "optimiser": {"param_groups": state.optimiser["param_groups"], "state": plain_state},
        "scheduler": state.scheduler,
        "numpy_rng": state.numpy_rng,
        "best_auc": state.best_auc,
        "best_epoch": state.best_epoch,
        "stale": state.stale,
        "best_metrics": state.best_metrics,
        "elapsed_s": state.elapsed_s,
        "world_size": state.world_size,
        "ema": state.ema is not None,
        "best": state.best_state is not None,
        "tensors_sha256": tensors_sha256(tensors),
    }
    text = json.dumps(meta, sort_keys=True, default=_plain)
    write_document_file(path, tensors, TRAINING_STATE, text)


def load_state(path: str | Path) -> TrainingState:
    """Read a state file with safetensors; refuse anything damaged or foreign, naming the file."""
    path = Path(path)
    meta, tensors = read_document_file(path, TRAINING_STATE)
    try:
        optimiser_state: dict[int, dict] = {}
        for name, tensor in tensors.items():
            if name.startswith("optimiser/"):
                _, index, key = name.split("/", 2)
                optimiser_state.setdefault(int(index), {})[key] = tensor
        for index, values in meta["optimiser"]["state"].items():
            optimiser_state.setdefault(int(index), {}).update(values)
        groups = [
            {k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in group.items()}
            for group in meta["optimiser"]["param_groups"]
        ]
        return TrainingState(
            epoch=int(meta["epoch"]),
            config=meta["config"],
            model_config=meta["model_config"],
            data=meta["data"],
            model=_section(tensors, "model/"),
            optimiser={"state": optimiser_state, "param_groups": groups},
            scheduler=meta["scheduler"],
            numpy_rng=meta["numpy_rng"],
            torch_rng=tensors["rng/torch"],
            best_auc=float(meta["best_auc"]),
            best_epoch=int(meta["best_epoch"]),
            stale=int(meta["stale"]),
            best_metrics=meta["best_metrics"],
            best_state=_section(tensors, "best/") if meta["best"] else None,
            ema=_section(tensors, "ema/") if meta["ema"] else None,
            cuda_rng=tensors.get("rng/cuda"),
            elapsed_s=float(meta.get("elapsed_s", 0.0)),
            world_size=int(meta.get("world_size", 1)),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise TrainingStateError(
            path, f"incomplete training state ({exc.__class__.__name__}: {exc})"
        ) from exc


def check_compatible(
    state: TrainingState, path: str | Path, config: dict, model_config: dict | None, data: dict
) -> None:
    """Refuse a state written for another training configuration, model or data set."""
    differences = [
        f"{key}: {state.config.get(key)!r} in the file, {config.get(key)!r} now"
        for key in sorted(set(state.config) | set(config))
        if key not in FLEXIBLE and state.config.get(key) != _plain_json(config.get(key))
    ]
    if differences:
        raise TrainingStateError(
            path, "it was written for another training configuration (" + "; ".join(differences) + ")"
        )
    if model_config is not None and state.model_config is not None:
        model_config = _plain_json(model_config)
        differences = [
            f"{key}: {state.model_config.get(key)!r} in the file, {model_config.get(key)!r} now"
            for key in sorted(set(state.model_config) | set(model_config))
            if state.model_config.get(key) != model_config.get(key)
        ]
        if differences:
            raise TrainingStateError(
                path, "it was written for another model (" + "; ".join(differences) + ")"
            )
    for split in ("train", "val"):
        if state.data.get(split) != data.get(split):
            raise TrainingStateError(
                path, f"it was written for other {split} data (the data set has changed)"
            )


def load_weights(module, weights: Mapping, path: str | Path, what: str) -> None:
    """``module.load_state_dict(weights)`` strictly; a mismatch is refused naming the file."""
    try:
        module.load_state_dict(dict(weights), strict=True)
    except RuntimeError as exc:
        detail = next(
            (line.strip() for line in str(exc).splitlines() if "size mismatch" in line or "Missing" in line),
            str(exc).splitlines()[0] if str(exc) else "",
        )
        raise TrainingStateError(path, f"the {what} weights do not fit the model: {detail[:200]}") from exc


def _section(tensors: dict, prefix: str) -> dict:
    return {name[len(prefix) :]: t for name, t in tensors.items() if name.startswith(prefix)}


def _is_tensor(value) -> bool:
    import torch

    return isinstance(value, torch.Tensor)


def _plain(value):
    """JSON for numpy scalars and tuples inside metrics, configs and torch's scheduler state."""
    if isinstance(value, np.generic):
        return value.item()
    if _is_tensor(value) and value.numel() == 1:
        return value.item()
    raise TypeError(f"{type(value).__name__} cannot be stored in a training state")


def _plain_json(value):
    """A value as it reads back from JSON (tuples become lists), for comparisons with stored ones."""
    return json.loads(json.dumps(value, default=_plain))
