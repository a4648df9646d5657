"""Test-time augmentation: the malignancy interval from six views of a nodule's central slice.

The Predictor feeds every nodule as its slices, their mirror images, then four more views of the
central slice (``view_stack``), all nodules in one forward pass. The six views of the central slice
are, with 3 channels (2.5D: below, at, above), the in-plane identity, mirror image, quarter turn and
mirrored quarter turn, and the first two upside down along z (the channels reversed); with one
channel, the four turns and the mirror image of the first two. Six, not all eight symmetries: the
extra views cost forward passes, and eight took the end-to-end time to 2.0-2.3x that without them
on 2 cores (``bench/bench_inference.py``; target <= 2x), six to ~1.7x. ``tta_interval`` moves the
nodule's logit (that of the mean over its slices and mirror images, the score) by the lowest and the
highest of the six views' logits about their mean, and calibrates both ends like the score. It says
how much the score depends on how the nodule is oriented, not where its true probability lies: it
is not a confidence interval with a guaranteed coverage. ``bench/bench_interval.py`` measures it on
the validation and test renderings.
"""

from __future__ import annotations

import numpy as np

from core.model.calibration import apply_temperature, logit

# The central slice's views besides itself and its mirror image: (quarter turns, mirror, z flip).
EXTRA_VIEWS = {
    3: ((1, False, False), (1, True, False), (0, False, True), (0, True, True)),
    1: ((1, False, False), (2, False, False), (3, False, False), (1, True, False)),
}


def _view(patch: np.ndarray, turns: int, mirror: bool, z_flip: bool) -> np.ndarray:
    """``patch`` (channels, size, size) mirrored (last axis), then turned, then reversed along z."""
    out = patch[..., ::-1] if mirror else patch
    out = np.rot90(out, turns, axes=(1, 2))
    return np.ascontiguousarray(out[::-1] if z_flip else out)


def view_stack(stack: np.ndarray, tta: bool = True) -> np.ndarray:
    """A nodule's model input: its slices ``(k, channels, size, size)``, their mirror images, and with
    ``tta`` four more views of the central slice (``EXTRA_VIEWS``)."""
    extra = [_view(stack[len(stack) // 2], *v)[None] for v in EXTRA_VIEWS[stack.shape[1]]] if tta else []
    return np.concatenate([stack, stack[..., ::-1], *extra])


def tta_interval(
    probabilities: np.ndarray, count: int, temperature: float = 1.0, bias: float = 0.0
) -> tuple[float, float] | None:
    """The interval from the model's probabilities for one ``view_stack`` of ``count`` slices; ``None``
    when it was built without the extra views."""
    if len(probabilities) == 2 * count:
        return None
    probs, centre = probabilities[: 2 * count], count // 2
    z = logit(np.asarray([probs[centre], probs[count + centre], *probabilities[2 * count :]]))
    score = float(logit(probs.mean()))
    ends = np.array([score + z.min() - z.mean(), score + z.max() - z.mean()])
    low, high = apply_temperature(1 / (1 + np.exp(-ends)), temperature, bias)
    return float(low), float(high)
