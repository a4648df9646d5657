"""A small DICOM header scanner for the common case: Part 10 files in native little-endian syntax.

pydicom builds a full ``Dataset`` and converts every value it is asked for; for a 300-slice load that
costs more than reading the pixels. This scanner walks the top-level elements once, keeps the raw
bytes of the few tags the loader needs, skips everything else (sequences included), and stops at
Pixel Data. Anything unusual (no preamble, another transfer syntax, enhanced multi-frame, a DICOMDIR,
a malformed element) returns ``None`` and the caller falls back to pydicom, which then judges the file.
"""

from __future__ import annotations

import struct
from pathlib import Path

from core.dicom.slice_header import NATIVE_LITTLE_ENDIAN, SliceHeader

IMPLICIT = "1.2.840.10008.1.2"
_LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UN", b"UC", b"UR", b"UT"}
_CHUNK = 16384
_PIXEL_DATA = 0x7FE00010
_UNDEFINED = 0xFFFFFFFF

# Tags kept (as raw bytes), by the keyword used below. US tags are decoded as binary.
_TAGS = {
    0x00080016: "sop_class", 0x00080018: "sop_uid", 0x00080060: "modality",
    0x0020000D: "study_uid", 0x0020000E: "series_uid", 0x00200013: "instance",
    0x00200032: "position", 0x00200037: "orientation", 0x00280030: "spacing",
    0x00180050: "thickness", 0x00280002: "samples", 0x00280008: "frames",
    0x00280010: "rows", 0x00280011: "columns", 0x00280100: "bits_allocated",
    0x00280101: "bits_stored", 0x00280103: "representation", 0x00281052: "intercept",
    0x00281053: "slope", 0x00280120: "padding",
}  # fmt: skip
_BAIL = {0x52009229, 0x52009230, 0x00041220}  # shared / per-frame functional groups, DICOMDIR records


class _Unusual(Exception):
    """Anything the scanner does not handle: the caller uses pydicom instead."""


class _Buffer:
    """The start of a file, read further on demand."""

    def __init__(self, fp) -> None:
        self.fp = fp
        self.data = fp.read(_CHUNK)

    def need(self, end: int) -> None:
        while len(self.data) < end:
            more = self.fp.read(max(_CHUNK, end - len(self.data)))
            if not more:
                raise _Unusual("end of file inside the header")
            self.data += more


def scan_header(path: Path) -> SliceHeader | None:
    """The loader's header fields of ``path``, or ``None`` when pydicom must read it."""
    try:
        with open(path, "rb") as fp:
            return _scan(path, _Buffer(fp))
    except (_Unusual, struct.error, ValueError, UnicodeDecodeError, OSError):
        return None


def _scan(path: Path, buf: _Buffer) -> SliceHeader | None:
    buf.need(132)
    if buf.data[128:132] != b"DICM":
        raise _Unusual("no preamble")
    values: dict[str, bytes] = {}
    pos, meta = 132, {}
    while True:  # file meta group: always explicit VR little endian
        buf.need(pos + 8)
        group = struct.unpack_from("<H", buf.data, pos)[0]
        if group != 0x0002:
            break
        tag, pos, length = _element_header(buf, pos, explicit=True)
        buf.need(pos + length)
        meta[tag] = buf.data[pos : pos + length]
        pos += length
    ts = meta.get(0x00020010, b"").rstrip(b"\x00 ").decode("ascii")
    if ts not in NATIVE_LITTLE_ENDIAN:
        raise _Unusual("transfer syntax")
    explicit = ts != IMPLICIT
    while True:
        if not _has(buf, pos + 8):
            raise _Unusual("no pixel data")  # pydicom will say what the file is
        tag, value_pos, length = _element_header(buf, pos, explicit)
        if tag == _PIXEL_DATA:
            if length == _UNDEFINED:
                raise _Unusual("encapsulated")
            return _header(path, values, ts, value_pos, length)
        if tag in _BAIL or tag > _PIXEL_DATA:
            raise _Unusual("enhanced, directory or no pixels")
        if length == _UNDEFINED:
            pos = _skip_undefined(buf, value_pos, explicit)
            continue
        name = _TAGS.get(tag)
        if name is not None:
            buf.need(value_pos + length)
            values[name] = buf.data[value_pos : value_pos + length]
        pos = value_pos + length


def _has(buf: _Buffer, end: int) -> bool:
    try:
        buf.need(end)
    except _Unusual:
        return False
    return True


def _element_header(buf: _Buffer, pos: int, explicit: bool) -> tuple[int, int, int]:
    buf.need(pos + 12)
    group, element = struct.unpack_from("<HH", buf.data, pos)
    tag = group << 16 | element
    if group == 0xFFFE or not explicit:  # item tags never carry a VR
        return tag, pos + 8, struct.unpack_from("<I", buf.data, pos + 4)[0]
    vr = buf.data[pos + 4 : pos + 6]
    if vr in _LONG_VRS:
        return tag, pos + 12, struct.unpack_from("<I", buf.data, pos + 8)[0]
    if not vr.isalpha():
        raise _Unusual("bad VR")
    return tag, pos + 8, struct.unpack_from("<H", buf.data, pos + 6)[0]


def _skip_undefined(buf: _Buffer, pos: int, explicit: bool) -> int:
    """Skip a sequence of undefined length: its items, each defined or delimited."""
    while True:
        tag, value_pos, length = _element_header(buf, pos, explicit)
        if tag == 0xFFFEE0DD:  # sequence delimiter
            return value_pos
        if tag != 0xFFFEE000:
            raise _Unusual("not an item")
        pos = value_pos + length if length != _UNDEFINED else _skip_item(buf, value_pos, explicit)


def _skip_item(buf: _Buffer, pos: int, explicit: bool) -> int:
    while True:
        tag, value_pos, length = _element_header(buf, pos, explicit)
        if tag == 0xFFFEE00D:  # item delimiter
            return value_pos
        pos = _skip_undefined(buf, value_pos, explicit) if length == _UNDEFINED else value_pos + length


def _text(values: dict[str, bytes], name: str) -> str:
    return values.get(name, b"").rstrip(b"\x00 ").decode("ascii").strip()


def _numbers(values: dict[str, bytes], name: str, n: int) -> tuple[float, ...] | None:
    text = _text(values, name)
    if not text:
        return None
    parts = tuple(float(v) for v in text.split("\\"))
    return parts if len(parts) == n else None


def _number(values: dict[str, bytes], name: str, default: float | None) -> float | None:
    text = _text(values, name)
    return float(text) if text else default


def _us(values: dict[str, bytes], name: str, default: int | None) -> int | None:
    raw = values.get(name)
    return struct.unpack("<H", raw[:2])[0] if raw and len(raw) >= 2 else default


def _header(path: Path, values: dict[str, bytes], ts: str, offset: int, length: int) -> SliceHeader:
    rows, columns = _us(values, "rows", None), _us(values, "columns", None)
    frames = _text(values, "frames")
    if rows is None or columns is None or (frames and int(frames) != 1):
        raise _Unusual("no size, or multi-frame")
    representation = _us(values, "representation", 0)
    padding = values.get("padding")
    padding_value = None
    if padding is not None and len(padding) >= 2:
        padding_value = struct.unpack("<h" if representation == 1 else "<H", padding[:2])[0]
    instance = _text(values, "instance")
    return SliceHeader(
        path=path,
        sop_uid=_text(values, "sop_uid"),
        series_uid=_text(values, "series_uid"),
        study_uid=_text(values, "study_uid"),
        modality=_text(values, "modality"),
        rows=rows,
        columns=columns,
        n_frames=1,
        instance_number=int(instance) if instance else None,
        position=_numbers(values, "position", 3),
        orientation=_numbers(values, "orientation", 6),
        pixel_spacing=_numbers(values, "spacing", 2),
        slice_thickness=_number(values, "thickness", None),
        bits_allocated=_us(values, "bits_allocated", 16),
        bits_stored=_us(values, "bits_stored", 16),
        pixel_representation=representation,
        samples_per_pixel=_us(values, "samples", 1),
        slope=_number(values, "slope", 1.0),
        intercept=_number(values, "intercept", 0.0),
        padding_value=padding_value,
        transfer_syntax=ts,
        pixel_offset=offset,
        pixel_bytes=length,
    )
