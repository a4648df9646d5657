"""The Predictor: a checkpoint loaded once, every slice of every nodule in one batched pass.

Per nodule: malignancy = mean probability over its slices and their mirror images, calibrated by the
card's temperature and bias (``core.model.calibration``; none: as the network gives it); attributes = the
slice mean with the central slices counted double, on the original LIDC scales; uncertainty = the
standard deviation of those slice/mirror probabilities (disagreement between views of one nodule).

Interval: test-time augmentation, in the same forward pass (``core.model.tta``).
Out-of-distribution reasons: ``core.model.ood``.

On a CUDA out-of-memory error the batch is halved and retried, then the CPU takes over; the
``notes`` say so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.model.calibration import apply_temperature, card_calibration
from core.model.device import conv_layout
from core.model.ood import card_domain, marker_warnings, series_warnings
from core.model.patches import PatchConfig, extract_patches, slice_weights
from core.model.tta import tta_interval, view_stack
from core.nodule.prediction import Marker, NoduleResult
from core.nodule.ratings import ATTRIBUTES, to_rating_scale
from core.volume import CTVolume


@dataclass
class Predictor:
    checkpoint: Path
    device: str = "auto"
    batch_size: int = 256
    tta: bool = True  # the malignancy interval from six views (False: today's two, no interval)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        from core.model.checkpoints import load_checkpoint
        from core.model.device import pick_device

        self.device = pick_device(self.device)
        self.model, self.card = load_checkpoint(self.checkpoint, "cpu")
        self.model.to(self.device, memory_format=conv_layout(self.device))
        self.patch_config = PatchConfig.from_dict(self.card["preprocessing"])
        self.temperature, self.bias = card_calibration(self.card)  # 1, 0 for a card without calibration

    @property
    def description(self) -> str:
        """Model name, version and what it was trained on, for every place a score is shown."""
        from core.model.checkpoints import model_title

        return f"{model_title(self.card)} - trained on {self.card.get('trained_on', 'unknown data')}"

    @property
    def identity(self) -> str:
        """What a saved result was computed with: the weights' hash, with the temperature (and bias)
        when calibrated (calibrating a model changes its probabilities, not its weights)."""
        weights = str(self.card.get("weights_sha256", ""))
        if self.temperature == 1.0 and self.bias == 0.0:
            return weights
        return f"{weights}+T{self.temperature:.6g}" + (f"b{self.bias:+.6g}" if self.bias else "")

    def predict(
        self,
        volume: CTVolume,
        markers: Sequence[Marker],
        progress: Callable[[int, int], None] | None = None,
    ) -> list[NoduleResult]:
        """Results in the markers' order, each with its malignancy rank (1 = most suspicious)."""
        if not markers:
            return []
        stacks = []
        for m in markers:
            try:
                stacks.append(extract_patches(volume, m.centre_mm, m.diameter_mm, self.patch_config))
            except ValueError as exc:
                raise ValueError(f"marker {m.id}: {exc}") from exc
        groups = [view_stack(s, self.tta) for s in stacks]
        patches = np.concatenate(groups)  # one forward pass for every view of every nodule
        diameters = np.concatenate(
            [np.full(len(g), m.diameter_mm, np.float32) for m, g in zip(markers, groups, strict=True)]
        )
        probabilities, attributes = self._forward(patches, diameters, progress)
        domain = card_domain(self.card)
        shared = series_warnings(volume, domain)
        results, start = [], 0
        for marker, stack, group in zip(markers, stacks, groups, strict=True):
            count = len(stack)
            probs = probabilities[start : start + 2 * count]
            attrs = attributes[start : start + 2 * count]
            interval = tta_interval(
                probabilities[start : start + len(group)], count, self.temperature, self.bias
            )
            start += len(group)
            weights = np.concatenate([slice_weights(count), slice_weights(count)]) / 2
            ratings = to_rating_scale(weights @ attrs)
            results.append(
                NoduleResult(
                    id=marker.id,
                    malignancy=float(apply_temperature(probs.mean(), self.temperature, self.bias)),
                    uncertainty=float(probs.std()),
                    attributes={name: float(v) for name, v in zip(ATTRIBUTES, ratings, strict=True)},
                    interval=interval,
                    warnings=tuple(shared + marker_warnings(volume, marker.centre_mm, marker.diameter_mm)),
                )
            )
        order = sorted(range(len(results)), key=lambda i: -results[i].malignancy)
        ranks = {index: rank + 1 for rank, index in enumerate(order)}
        return [NoduleResult(**{**r.__dict__, "rank": ranks[i]}) for i, r in enumerate(results)]

    def _forward(self, patches: np.ndarray, diameters: np.ndarray, progress) -> tuple[np.ndarray, np.ndarray]:
        import torch

        batch = self.batch_size
        while True:
            try:
                return self._run(torch, patches, diameters, batch, progress)
            except torch.OutOfMemoryError:
                if self.device.startswith("cuda") and batch > 8:
                    batch //= 2
                    torch.cuda.empty_cache()
                    self.notes.append(f"GPU out of memory: retrying with batches of {batch}")
                    continue
                if self.device != "cpu":
                    self.notes.append("GPU out of memory at the smallest batch: running on the CPU instead")
                    self.device = "cpu"
                    self.model.to("cpu", memory_format=conv_layout("cpu"))
                    continue
                raise

    def _run(self, torch, patches, diameters, batch: int, progress) -> tuple[np.ndarray, np.ndarray]:
        layout = conv_layout(self.device)
        probabilities, attributes = [], []
        with torch.inference_mode():
            for start in range(0, len(patches), batch):
                x = torch.from_numpy(np.ascontiguousarray(patches[start : start + batch]))
                x = x.to(self.device, memory_format=layout)
                out = self.model(x, torch.from_numpy(diameters[start : start + batch]).to(self.device))
                probabilities.append(out["malignancy"].float().cpu().numpy())
                attributes.append(out["attributes"].float().cpu().numpy())
                if progress is not None:
                    progress(min(start + batch, len(patches)), len(patches))
        return np.concatenate(probabilities), np.concatenate(attributes)
