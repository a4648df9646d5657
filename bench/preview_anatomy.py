"""Preview the phantom chest: PNGs of axial, coronal and sagittal planes at lung and mediastinal windows.

Builds one chest (``core.phantom.anatomy.build_chest``), adds noise, and writes to ``--out``:

    axial_<level>_{lung,mediastinal}.png    axial slices from the lung bases to the apices
    coronal_{lung,mediastinal}.png          through the hila
    sagittal_{right,midline}_{lung,...}.png through the right lung and the midline
    sheet_{lung,mediastinal}.png            all axial levels on one sheet

Reformats are resampled to square pixels (slices are usually thicker than pixels). Run from the
repository root::

    .venv/bin/python bench/preview_anatomy.py [--out /tmp/phantom_preview] [--seed 0] [--size 512]
        [--pixel 0.7] [--slice 1.0] [--slices N] [--noise 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtGui import QImage

from core.phantom.anatomy import ChestConfig, add_noise, build_chest

WINDOWS = {"lung": (1500.0, -600.0), "mediastinal": (350.0, 50.0)}


def to_grey(hu: np.ndarray, width: float, level: float) -> np.ndarray:
    low = level - width / 2
    return np.clip((hu.astype(np.float32) - low) * (255.0 / width), 0, 255).astype(np.uint8)


def save_png(grey: np.ndarray, path: Path) -> None:
    grey = np.ascontiguousarray(grey)
    image = QImage(grey.data, grey.shape[1], grey.shape[0], grey.strides[0], QImage.Format.Format_Grayscale8)
    if not image.save(str(path)):
        raise OSError(f"{path}: could not write the PNG")


def square_pixels(plane: np.ndarray, slice_mm: float, pixel_mm: float) -> np.ndarray:
    """Resample a reformat ``(z, in-plane)`` to square pixels, superior at the top."""
    plane = plane[::-1].astype(np.float32)
    rows = max(2, round(plane.shape[0] * slice_mm / pixel_mm))
    pos = np.linspace(0, plane.shape[0] - 1, rows)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, plane.shape[0] - 1)
    frac = (pos - lo)[:, None]
    return plane[lo] * (1 - frac) + plane[hi] * frac


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/phantom_preview"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--pixel", type=float, default=0.7)
    parser.add_argument("--slice", type=float, default=1.0)
    parser.add_argument("--slices", type=int, default=None, help="default: 300 mm of scan")
    parser.add_argument("--noise", type=float, default=20.0)
    args = parser.parse_args(argv)
    slices = args.slices or round(300.0 / args.slice)
    config = ChestConfig(
        rows=args.size, columns=args.size, slices=slices, pixel_spacing=args.pixel,
        slice_spacing=args.slice, noise_sigma=args.noise, seed=args.seed,
    )  # fmt: skip
    start = time.perf_counter()
    chest = build_chest(config)
    hu = add_noise(chest.hu, config.noise_sigma, chest.spacing, np.random.default_rng([args.seed, 3]))
    print(f"built {chest!r} with noise in {time.perf_counter() - start:.2f} s")
    args.out.mkdir(parents=True, exist_ok=True)

    lung_z = np.nonzero(chest.lung_mask.any(axis=(1, 2)))[0]
    base, apex = int(lung_z.min()), int(lung_z.max())
    levels = {
        f"{round(100 * f):02d}": int(base + f * (apex - base)) for f in (0.05, 0.25, 0.45, 0.6, 0.75, 0.92)
    }
    sheets: dict[str, list[np.ndarray]] = {name: [] for name in WINDOWS}
    for tag, k in levels.items():
        for name, (width, level) in WINDOWS.items():
            grey = to_grey(hu[k], width, level)
            save_png(grey, args.out / f"axial_{tag}_{name}.png")
            sheets[name].append(grey)
    for name, tiles in sheets.items():
        rows = [np.concatenate(tiles[i : i + 3], axis=1) for i in range(0, len(tiles), 3)]
        save_png(np.concatenate(rows, axis=0), args.out / f"sheet_{name}.png")

    lung_rows = np.nonzero(chest.lung_mask.any(axis=(0, 2)))[0]
    hilum_row = int(np.median(lung_rows))
    half = chest.lung_mask[..., : args.size // 2]
    right_col = int(np.median(np.nonzero(half.any(axis=(0, 1)))[0]))
    planes = {
        "coronal": hu[:, hilum_row, :],
        "sagittal_right": hu[:, :, right_col],
        "sagittal_midline": hu[:, :, args.size // 2],
    }
    for plane_name, plane in planes.items():
        square = square_pixels(plane, args.slice, args.pixel)
        for name, (width, level) in WINDOWS.items():
            save_png(to_grey(square, width, level), args.out / f"{plane_name}_{name}.png")
    print(f"wrote {len(list(args.out.glob('*.png')))} PNGs to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
