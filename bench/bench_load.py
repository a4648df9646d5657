"""Benchmark: load time and peak memory of the project's CT series loader against alternatives.

Writes a synthetic CT series (512x512, ``--slices`` slices, 16-bit, shuffled uuid file names) and a
folder of ``--catalogue-files`` small 64x64 files in 10 series, then times each method as the median
of ``--repeats`` loads, every load in a fresh Python subprocess (this script in its hidden
``--worker`` mode), with the OS page cache dropped before each load where permitted. Listing the
folder is inside the timed region for every method. Methods:

    project    core.dicom.series.load_series(sorted(files))
    simpleitk  GDCM series sorting + ImageSeriesReader + GetArrayFromImage
    naive      pydicom dcmread of every file, sort by z, np.stack of pixel_array, rescale to int16
    headers    pydicom dcmread(stop_before_pixels=True) of every file: the floor for any loader
    catalogue  core.dicom.catalogue.catalogue(folder), on the series and on the many-files folder

Peak memory is the worker's peak RSS (ru_maxrss) after the load minus its RSS before it, after all
imports, also given as a ratio to the int16 volume (slices*512*512*2 bytes).

Run from the repository root::

    .venv/bin/python bench/bench_load.py [--slices 300] [--repeats 3] [--folder DIR] [--keep] [--warm]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SIZE = 512
METHODS = ("project", "simpleitk", "naive", "headers", "catalogue")


def write_series(folder: Path, slices: int, size: int, rng, study: str, series: str, patient: str) -> None:
    """Write one CT series of ``slices`` files with random (uuid) names into ``folder``."""
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    yy, xx = np.mgrid[:size, :size]
    c = size / 2
    body = ((xx - c) / (0.40 * size)) ** 2 + ((yy - c) / (0.30 * size)) ** 2 <= 1
    lungs = ((np.abs(xx - c) - 0.17 * size) / (0.12 * size)) ** 2 + ((yy - c) / (0.2 * size)) ** 2 <= 1
    base = np.where(body, 1040, 0) - np.where(lungs, 840, 0)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage
    ds.PatientName, ds.PatientID, ds.Modality = f"Bench^{patient}", patient, "CT"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, generate_uid()
    ds.Rows = ds.Columns = size
    ds.PixelSpacing, ds.SliceThickness = [0.7, 0.7], 1.0
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    for k in range(slices):
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.ImagePositionPatient = [-180, -180, k * 1.0]
        ds.InstanceNumber = k + 1
        noise = rng.normal(0, 20, (size, size)) * body
        ds.PixelData = np.clip(base + noise, 0, 4095).astype("<u2").tobytes()
        ds.save_as(folder / uuid.uuid4().hex, enforce_file_format=True)


def worker(method: str, folder: str) -> None:
    """Time one load in this (fresh) process and print one JSON line."""
    import resource

    import numpy as np
    import pydicom
    import SimpleITK as sitk

    sys.path.insert(0, str(REPO))
    from core.dicom.catalogue import catalogue
    from core.dicom.series import load_series

    with open("/proc/self/statm") as fp:
        rss_before = int(fp.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024  # KiB
    start = time.perf_counter()
    files = [os.path.join(folder, name) for name in os.listdir(folder)]
    if method == "project":
        result = load_series(sorted(files)).array
    elif method == "simpleitk":
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(folder))
        result = sitk.GetArrayFromImage(reader.Execute())
    elif method == "naive":
        datasets = sorted((pydicom.dcmread(f) for f in files), key=lambda d: float(d.ImagePositionPatient[2]))
        slope, intercept = float(datasets[0].RescaleSlope), float(datasets[0].RescaleIntercept)
        stack = np.stack([d.pixel_array for d in datasets])
        result = (stack * slope + intercept).astype(np.int16)
    elif method == "headers":
        result = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    else:
        result = catalogue(folder)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if method == "project":
        assert result.shape == (len(files), SIZE, SIZE) and result.dtype == np.int16, result.shape
    print(json.dumps({"seconds": seconds, "peak_mib": max(peak - rss_before, 0) / 1024}))


def drop_caches() -> bool:
    cmd = "sync; echo 3 > /proc/sys/vm/drop_caches"
    return subprocess.run(["sh", "-c", cmd], capture_output=True).returncode == 0


def run_worker(method: str, folder: Path) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", method, str(folder)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"worker {method} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--catalogue-files", type=int, default=3000)
    parser.add_argument("--folder", type=Path, help="reuse (or fill) this series folder; never deleted")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    parser.add_argument("--warm", action="store_true", help="do not drop the page cache")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return

    import numpy as np
    from pydicom.uid import generate_uid

    rng = np.random.default_rng(0)
    temps: list[Path] = []
    folder = args.folder
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="bench_series_"))
        temps.append(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        if not any(folder.iterdir()):
            t = time.perf_counter()
            write_series(folder, args.slices, SIZE, rng, generate_uid(), generate_uid(), "SERIES")
            print(f"wrote {args.slices} slices to {folder} in {time.perf_counter() - t:.1f} s")
        slices = len(os.listdir(folder))
        cat_folder = Path(tempfile.mkdtemp(prefix="bench_catalogue_"))
        temps.append(cat_folder)
        t, study, (q, r) = time.perf_counter(), generate_uid(), divmod(args.catalogue_files, 10)
        per = [q + (i < r) for i in range(10)]  # 10 series
        for i, count in enumerate(per):
            write_series(cat_folder, count, 64, rng, study, generate_uid(), f"CAT{i}")
        print(f"wrote {args.catalogue_files} 64x64 files to {cat_folder} in {time.perf_counter() - t:.1f} s")
        if args.keep:
            print("kept after the run: " + ", ".join(map(str, temps)))

        cold = not args.warm and drop_caches()
        print("page cache: cold (dropped before each load)" if cold else "page cache: warm (not dropped)")
        jobs = [(m, m, folder) for m in METHODS]
        jobs.append((f"catalogue {args.catalogue_files} files", "catalogue", cat_folder))
        runs: dict[str, list[dict]] = {label: [] for label, _, _ in jobs}
        for _ in range(args.repeats):  # interleaved so drift affects every method alike
            for label, method, where in jobs:
                if cold:
                    drop_caches()
                runs[label].append(run_worker(method, where))

        volume_mib = slices * SIZE * SIZE * 2 / 2**20
        print(f"\n{slices} slices {SIZE}x{SIZE}; int16 volume {volume_mib:.1f} MiB; {args.repeats} repeats")
        print(f"{'method':<24}{'median s':>10}{'min s':>10}{'peak MiB':>10}{'peak/vol':>10}")
        medians = {}
        for label, results in runs.items():
            seconds = [r["seconds"] for r in results]
            peak = statistics.median(r["peak_mib"] for r in results)
            medians[label] = statistics.median(seconds)
            row = f"{medians[label]:>10.3f}{min(seconds):>10.3f}{peak:>10.1f}{peak / volume_mib:>10.2f}"
            print(f"{label:<24}{row}")
        print()
        print(f"load/naive = {medians['project'] / medians['naive']:.2f}")
        print(f"load/headers = {medians['project'] / medians['headers']:.2f}")
        print(f"load/SimpleITK = {medians['project'] / medians['simpleitk']:.2f}")
    finally:
        if not args.keep:
            for path in temps:
                shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
