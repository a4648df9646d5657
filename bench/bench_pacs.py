"""Benchmark: retrieving a CT study from a local Orthanc, our C-GET and WADO-RS beside dcmtk's getscu.

Starts a real Orthanc (``tests/core/pacs/orthanc_server.py``: loopback ports, temporary storage),
uploads a synthetic study of ``--slices`` 512x512 16-bit slices (REST ``POST /instances``), then, in
each of ``--rounds`` rounds and in a rotating order, retrieves the whole study into an empty folder with

    getscu       dcmtk ``getscu -S`` (study root C-GET) with its defaults, the reference
    getscu-128k  the same with dcmtk's largest PDU (``-pdu 131072``; its default is 16 kB)
    c-get        core.pacs.client.get on the DIMSE node (pynetdicom)
    wado-rs      core.pacs.client.get on the DICOMweb node (dicomweb-client)

and prints each method's median wall time and, last, the ratios ours / getscu measured in this run.
Needs ``orthanc``, ``orthanc-dicomweb`` and ``dcmtk`` (``sh scripts/system-packages.sh``).

Run from the repository root::

    .venv/bin/python bench/bench_pacs.py [--slices 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.pacs import client  # noqa: E402
from core.pacs.nodes import Settings, resolve  # noqa: E402
from tests.core.pacs.orthanc_server import OrthancServer, missing_reason  # noqa: E402
from tests.dicom_factory import ct_dataset  # noqa: E402

METHODS = ("getscu", "getscu-128k", "c-get", "wado-rs")


def write_study(folder: Path, slices: int) -> tuple[str, list[Path]]:
    from pydicom.uid import generate_uid

    folder.mkdir(parents=True)
    study, series = generate_uid(), generate_uid()
    rng = np.random.default_rng(0)
    paths = []
    for k in range(slices):
        hu = rng.integers(-1000, 1500, size=(512, 512), dtype=np.int16)
        path = folder / f"{k:04d}.dcm"
        ct_dataset(k, series, study, hu=hu).save_as(path, enforce_file_format=True)
        paths.append(path)
    return study, paths


def retrieve(method: str, server: OrthancServer, study: str, out: Path) -> float:
    out.mkdir(parents=True)
    started = time.perf_counter()
    if method.startswith("getscu"):
        pdu = ["-pdu", "131072"] if method == "getscu-128k" else []
        keys = ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}"]
        command = ["getscu", "-aec", "ORTHANC", "-S", *pdu, *keys, "-od", str(out)]
        subprocess.run([*command, "127.0.0.1", str(server.dicom_port)], check=True, capture_output=True)
    else:
        node = resolve(server.inline if method == "c-get" else server.web_url, Settings())
        client.get(node, study, out)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    reason = missing_reason() or ("" if shutil.which("getscu") else "dcmtk's getscu is not installed")
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-pacs-") as tmp:
        tmp = Path(tmp)
        server = OrthancServer(tmp / "orthanc").start()
        try:
            study, paths = write_study(tmp / "study", args.slices)
            started = time.perf_counter()
            server.upload(paths)
            mb = sum(p.stat().st_size for p in paths) / 1e6
            upload = time.perf_counter() - started
            print(f"study: {args.slices} slices 512x512, {mb:.0f} MB; upload {upload:.1f} s")
            times: dict[str, list[float]] = {m: [] for m in METHODS}
            for round_ in range(args.rounds):
                order = METHODS[round_ % len(METHODS) :] + METHODS[: round_ % len(METHODS)]
                for method in order:
                    out = tmp / f"out-{method}-{round_}"
                    times[method].append(retrieve(method, server, study, out))
                    count = len([p for p in out.rglob("*") if p.is_file()])
                    if count != args.slices:
                        print(
                            f"error: {method} retrieved {count} of {args.slices} instances", file=sys.stderr
                        )
                        return 1
                    shutil.rmtree(out)
        finally:
            server.kill()
    for method in METHODS:
        runs = ", ".join(f"{t:.2f}" for t in times[method])
        print(f"{method:11} median {statistics.median(times[method]):6.2f} s  ({runs})")
    reference = statistics.median(times["getscu"])
    ratios = "  ".join(f"{m} {statistics.median(times[m]) / reference:.2f}x" for m in METHODS[2:])
    large = statistics.median(times["getscu-128k"])
    print(f"ratio ours / getscu-128k: c-get {statistics.median(times['c-get']) / large:.2f}x")
    print(f"ratio ours / getscu: {ratios}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
