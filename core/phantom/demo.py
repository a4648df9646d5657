"""The built-in demo study: one phantom chest CT of the reserved test split with a handful of
nodules of different kinds, generated on first use into the user cache.

It uses test-split nodules on purpose: whatever model the app shows on it has never seen them.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from core.lidc.records import LidcNodule
from core.phantom.study import PhantomOptions, write_phantom
from core.util.paths import user_dir

DEMO_VERSION = 1
DEMO_OPTIONS = PhantomOptions(seed=2026, split="test", pixel_spacing=0.7, slice_thickness=1.25, noise=18.0)

# One nodule of each kind a reader should see, by rule on the mean ratings (first match by id).
_KINDS: list[tuple[str, Callable[[LidcNodule, dict], bool]]] = [
    ("solid, spiculated", lambda n, r: r["texture"] >= 4.5 and r["spiculation"] >= 3 and n.diameter_mm >= 12),
    ("solid, small", lambda n, r: r["texture"] >= 4.5 and n.diameter_mm <= 7 and r["calcification"] >= 5.5),
    ("ground glass", lambda n, r: r["texture"] <= 2.0),
    ("part-solid", lambda n, r: 2.5 <= r["texture"] <= 3.5),
    ("calcified", lambda n, r: r["calcification"] <= 4.5),
    ("large", lambda n, r: n.diameter_mm >= 18),
]


def choose_demo_nodules(pool: Sequence[LidcNodule]) -> list[LidcNodule]:
    """Test-split nodules seen by at least three readers, one per kind in ``_KINDS``."""
    candidates = sorted(
        (n for n in pool if n.split == "test" and n.n_readers >= 3 and 4 <= n.diameter_mm <= 28),
        key=lambda n: n.nodule_id,
    )
    chosen: list[LidcNodule] = []
    for _, rule in _KINDS:
        for nodule in candidates:
            if nodule not in chosen and rule(nodule, nodule.mean_ratings):
                chosen.append(nodule)
                break
    return chosen


def demo_study_dir() -> Path:
    return user_dir("cache") / f"demo-study-v{DEMO_VERSION}"


def demo_study(pool: Sequence[LidcNodule] | None = None) -> Path:
    """The demo study folder, generating it first if needed (about 10 s, once)."""
    folder = demo_study_dir()
    if (folder / "ground_truth.json").is_file():
        return folder
    if pool is None:
        from core.lidc.table import load_nodules

        pool = load_nodules()
    nodules = choose_demo_nodules(pool)
    partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        write_phantom(partial, replace(DEMO_OPTIONS, nodules=len(nodules)), nodules)
        if not (folder / "ground_truth.json").is_file():  # another process may have won the race
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(partial, folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def demo_markers(folder: Path | None = None) -> list[dict]:
    """The demo's ground-truth nodules as ready-placed markers: name, centre (LPS mm), diameter."""
    truth = json.loads(((folder or demo_study_dir()) / "ground_truth.json").read_text())
    return [
        {"name": n["id"], "centre_mm": n["centre_mm"], "diameter_mm": n["diameter_mm"]}
        for n in truth["nodules"]
    ]
