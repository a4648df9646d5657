"""ECE before and after a temperature, and the reliability diagram (PNG, drawn with Pillow).

ECE is ``core.training.metrics.expected_calibration_error`` with 15 equal-width bins. The diagram
shows before and after side by side: per bin a bar up to the observed malignant fraction, a dot at
the bin's mean predicted probability, the diagonal (perfect calibration), and the ECE in each
panel's title.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from core.model.calibration import apply_temperature, nll
from core.training.metrics import ece_if_calibrated, expected_calibration_error

BINS = 15


def calibration_summary(labels, probabilities, temperature: float, bias: float = 0.0) -> dict:
    """ECE (15 bins) and NLL before and after ``temperature`` and ``bias``, for the card and the CLI."""
    after = apply_temperature(probabilities, temperature, bias)
    return {
        "ece_before": expected_calibration_error(labels, probabilities, BINS),
        "ece_after": expected_calibration_error(labels, after, BINS),
        "nll_before": nll(labels, probabilities),
        "nll_after": nll(labels, after),
        "bins": BINS,
    }


def reliability_bins(labels, probabilities, bins: int = BINS) -> list[tuple[int, float, float, int]]:
    """Per non-empty bin: (bin index, mean predicted probability, observed malignant fraction, count)."""
    y = np.asarray(labels, dtype=np.float64)
    p = np.asarray(probabilities, dtype=np.float64)
    which = np.minimum((p * bins).astype(int), bins - 1)
    return [
        (int(b), float(p[which == b].mean()), float(y[which == b].mean()), int((which == b).sum()))
        for b in np.unique(which)
    ]


def reliability_png(labels, before, after, title: str = "") -> bytes:
    """The reliability diagram, before | after calibration, as PNG bytes."""
    from PIL import Image, ImageDraw

    panel, margin = 360, 50
    axis_room = 30  # for the axis name
    image = Image.new("RGB", (axis_room + 2 * panel + 3 * margin, panel + 2 * margin + 20), "white")
    draw = ImageDraw.Draw(image)
    if title:
        draw.text((margin, 6), title, fill="black")
    for column, (name, probs) in enumerate((("before", before), ("after", after))):
        x0, y0 = axis_room + margin + column * (panel + margin), margin + 20
        ece = expected_calibration_error(labels, probs, BINS)
        draw.text((x0, y0 - 16), f"{name}: ECE {ece:.3f} (15 bins)", fill="black")

        def at(px: float, py: float, x0=x0, y0=y0) -> tuple[float, float]:
            return x0 + px * panel, y0 + (1 - py) * panel

        for b, mean_p, observed, _count in reliability_bins(labels, probs):
            left, top = at(b / BINS, observed)
            right, bottom = at((b + 1) / BINS, 0.0)
            draw.rectangle((left + 1, top, right - 1, bottom), fill=(120, 160, 220), outline=(40, 80, 160))
            cx, cy = at(mean_p, observed)
            draw.ellipse((cx - 3, cy - 3, cx + 3, cy + 3), fill=(200, 40, 40))
        draw.line((*at(0, 0), *at(1, 1)), fill=(90, 90, 90), width=1)  # perfect calibration
        draw.rectangle((*at(0, 1), *at(1, 0)), outline="black")
        for tick in (0.0, 0.5, 1.0):
            tx, ty = at(tick, 0)
            draw.text((tx - 8, ty + 4), f"{tick:.1f}", fill="black")
            lx, ly = at(0, tick)
            draw.text((lx - 28, ly - 6), f"{tick:.1f}", fill="black")
        draw.text((x0 + panel // 2 - 50, y0 + panel + 18), "mean predicted", fill="black")
    draw.text((4, margin + 20 + panel // 2), "observed", fill="black")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def diagram_title(card: dict, where: str, temperature: float, bias: float = 0.0) -> str:
    """The diagram's title: the model, where its nodules came from, and the calibration shown."""
    fitted = f"T = {temperature:.3f}" + (f", b = {bias:+.3f}" if bias else "")
    return f"{card.get('name', 'model')} {card.get('version', '')}: {where}, {fitted}"


def write_reliability_png(path: str | Path, labels, before, after, title: str = "") -> None:
    from core.util.atomic import atomic_write_bytes

    atomic_write_bytes(Path(path), reliability_png(labels, before, after, title))


RESERVED_ECE_FLOOR = 0.05  # issue 20's floor on the reserved split


def calibrated_ece(labels, probabilities, temperature: float, bias: float = 0.0) -> dict:
    """The ECE of the probabilities as shown (after the card's ``temperature`` and ``bias``) and as the
    network gives them, for ``evaluate``'s metrics, with what a perfectly calibrated model's ECE would
    be on the same nodules (``core.training.metrics.ece_if_calibrated``: its mean, 90 % range, how
    often it is within ``RESERVED_ECE_FLOOR``) and the p-value of the ECE seen."""
    shown = apply_temperature(probabilities, temperature, bias)
    reference = ece_if_calibrated(labels, shown, BINS, limit=RESERVED_ECE_FLOOR)
    return {
        "ece": expected_calibration_error(labels, shown, BINS),
        "ece_uncalibrated": expected_calibration_error(labels, probabilities, BINS),
        # what a perfectly calibrated model's ECE would be on these nodules, and how likely this one is
        "ece_if_calibrated": reference["mean"],
        "ece_if_calibrated_90": [reference["p05"], reference["p95"]],
        "ece_if_calibrated_within_floor": reference["share_within"],
        "ece_p_value": reference["p_value"],
        "temperature": temperature,
    } | ({"bias": bias} if bias else {})
