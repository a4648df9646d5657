"""The built-in demo study: one phantom chest CT of the reserved test split with a handful of
nodules of different kinds, generated on first use into the user cache, with its prior.

The demo is a phantom follow-up (``core.phantom.followup``): the study opened is the current one
(``CT/``, ``markers.json`` and ``ground_truth.json`` at the top of the folder, as any phantom study),
and the same patient's prior, a year earlier with thicker slices, lies in ``prior/`` beside it, so a
new user presses the compare key and sees follow-up at once (the pair's truth in
``follow_up_truth.json``). The current study has the thinner slices, so it is the folder's largest
CT series: the one opened.

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
from core.phantom.study import PhantomOptions
from core.util.paths import user_dir

DEMO_VERSION = 2  # 2: a follow-up pair (the prior in prior/)
DEMO_OPTIONS = PhantomOptions(seed=2026, split="test", pixel_spacing=0.7, slice_thickness=1.25, noise=18.0)
PRIOR_SLICE_THICKNESS = 2.0  # mm; thicker than the current study's
INTERVAL_DAYS = 365

# One nodule of each kind a reader should see, by rule on the mean ratings (first match by id).
_KINDS: list[tuple[str, Callable[[LidcNodule, dict], bool]]] = [
    ("solid, spiculated", lambda n, r: r["texture"] >= 4.5 and r["spiculation"] >= 3 and n.diameter_mm >= 12),
    ("solid, small", lambda n, r: r["texture"] >= 4.5 and n.diameter_mm <= 7 and r["calcification"] >= 5.5),
    ("ground glass", lambda n, r: r["texture"] <= 2.0),
    ("part-solid", lambda n, r: 2.5 <= r["texture"] <= 3.5),
    ("calcified", lambda n, r: r["calcification"] <= 4.5),
    ("large", lambda n, r: n.diameter_mm >= 18),
]


def _candidates(pool: Sequence[LidcNodule]) -> list[LidcNodule]:
    """Test-split nodules seen by at least three readers, 4-28 mm, by id."""
    return sorted(
        (n for n in pool if n.split == "test" and n.n_readers >= 3 and 4 <= n.diameter_mm <= 28),
        key=lambda n: n.nodule_id,
    )


def choose_demo_nodules(pool: Sequence[LidcNodule]) -> list[LidcNodule]:
    """Test-split nodules seen by at least three readers, one per kind in ``_KINDS``."""
    candidates = _candidates(pool)
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
    """The demo study folder, generating it first if needed (about 20 s, once: both studies)."""
    folder = demo_study_dir()
    if (folder / "ground_truth.json").is_file():
        return folder
    if pool is None:
        from core.lidc.table import load_nodules

        pool = load_nodules()
    nodules = choose_demo_nodules(pool)
    spare = [n for n in _candidates(pool) if n not in nodules][:1]  # each study has six (one resolves)
    partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        _write_pair(partial, [*nodules, *spare])
        if not (folder / "ground_truth.json").is_file():  # another process may have won the race
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(partial, folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def _write_pair(out: Path, nodules: Sequence[LidcNodule]) -> None:
    """The follow-up pair laid out as the module docstring says (``out`` must not exist)."""
    from core.phantom.followup import FollowUpOptions, write_follow_up

    options = replace(DEMO_OPTIONS, nodules=len(nodules) - 1, slice_thickness=PRIOR_SLICE_THICKNESS)
    follow = FollowUpOptions(INTERVAL_DAYS, current_slice_thickness=DEMO_OPTIONS.slice_thickness)
    pair = out / "pair"
    write_follow_up(pair, options, follow, nodules)
    for item in (pair / "current").iterdir():
        os.replace(item, out / item.name)
    os.replace(pair / "prior", out / "prior")
    os.replace(pair / "ground_truth.json", out / "follow_up_truth.json")
    shutil.rmtree(pair)


def demo_markers(folder: Path | None = None) -> list[dict]:
    """The demo's ground-truth nodules as ready-placed markers: name, centre (LPS mm), diameter."""
    truth = json.loads(((folder or demo_study_dir()) / "ground_truth.json").read_text())
    return [
        {"name": n["id"], "centre_mm": n["centre_mm"], "diameter_mm": n["diameter_mm"]}
        for n in truth["nodules"]
    ]
