"""Reader settings kept with QSettings: window/level presets and keyboard shortcuts."""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor

from PySide6.QtCore import QSettings

# name -> (width, level) in HU; number keys 1.. pick them in this order, the reader's own after these.
MAX_PRESETS = 9
DEFAULT_PRESETS: dict[str, tuple[float, float]] = {
    "Lung": (1500.0, -600.0),
    "Mediastinum": (350.0, 50.0),
    "Soft tissue": (400.0, 40.0),
    "Bone": (2000.0, 500.0),
}

# action -> (default shortcut, what it does): the help overlay and the settings dialog list these.
DEFAULT_SHORTCUTS: dict[str, tuple[str, str]] = {
    "next_slice": ("Down", "next slice (also the mouse wheel)"),
    "previous_slice": ("Up", "previous slice"),
    "next_10": ("PgDown", "10 slices on"),
    "previous_10": ("PgUp", "10 slices back"),
    "first_slice": ("Home", "first slice"),
    "last_slice": ("End", "last slice"),
    "preset_1": ("1", "lung window 1500/-600"),
    "preset_2": ("2", "mediastinum window 350/50"),
    "preset_3": ("3", "soft tissue window 400/40"),
    "preset_4": ("4", "bone window 2000/500"),
    **{f"preset_{n}": (str(n), f"window preset {n} (your own, from Edit > Settings)") for n in range(5, 10)},
    "invert": ("I", "invert the greyscale"),
    "marker_tool": ("N", "mark nodules (click to place, drag to size)"),
    "analyse": ("A", "analyse the markers with the model"),
    "delete_marker": ("Delete", "delete the selected marker"),
    "next_marker": ("Ctrl+Down", "select the next marker"),
    "previous_marker": ("Ctrl+Up", "select the previous marker"),
    "mip": ("M", "MIP slab (thickness in the toolbar)"),
    "cine": ("Space", "cine on/off"),
    "reset_view": ("R", "reset zoom and pan"),
    "crosshair": ("C", "crosshair lines on/off"),
    "layout_1x1": ("F2", "one view (the active one)"),
    "layout_1x3": ("F3", "axial, coronal, sagittal side by side"),
    "layout_2x2": ("F4", "two by two"),
    "layout_1+2": ("F5", "a large axial view, coronal and sagittal beside it"),
    "outlines": ("O", "nodule outlines and calipers on/off"),
    "ruler_tool": ("L", "ruler (drag in any view to measure in mm)"),
    "clear_rulers": ("Esc", "clear the rulers"),
    "brush_tool": ("B", "brush: add to the selected nodule's mask (radius in the toolbar)"),
    "eraser_tool": ("E", "eraser: take away from the selected nodule's mask"),
    "grow_mask": ("]", "grow the selected nodule's mask by a voxel"),
    "shrink_mask": ("[", "shrink the selected nodule's mask by a voxel"),
    "threshold_mask": ("T", "re-threshold the selected nodule's mask at the toolbar's HU, near its edge"),
    "resegment": ("S", "segment the selected nodule again (discards its edits; undoable)"),
    "compare_prior": ("P", "compare with the prior study (found, registered, nodules paired, side by side)"),
    "help": ("F1", "help: keys and mouse"),
}
MOUSE_HELP = (
    ("Wheel", "scroll slices"),
    ("Ctrl+wheel", "zoom"),
    ("Right-drag", "window (left-right) and level (up-down)"),
    ("Middle-drag / Shift+left-drag", "pan"),
    ("Left-click", "move the crosshair, or place a marker with the marker tool"),
    ("Left-drag on a marker", "move it; on its rim: resize it"),
    ("Left-drag with the ruler (L)", "measure a distance in mm"),
    ("Right-click on a ruler", "remove that ruler (Esc removes them all)"),
    ("Left-drag with the brush (B) / eraser (E)", "paint into / erase from the selected nodule's mask"),
    ("Ctrl+Z / Ctrl+Shift+Z", "undo / redo"),
)


# One thread, so that writes land in the order they were made; joined at exit, so none is lost.
_WRITER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="settings-writer")


def _write(file_name: str, file_format: QSettings.Format, key: str, value) -> None:
    """``key`` set in the settings file and the file written (with its fdatasyncs), on the writer
    thread: QSettings instances in different threads may share one file."""
    store = QSettings(file_name, file_format)
    store.setValue(key, value)
    store.sync()


class Settings:
    """Typed access to QSettings; values the reader changed override the defaults."""

    def __init__(self, store: QSettings | None = None) -> None:
        if store is None:
            from core.util.paths import user_dir

            store = QSettings(str(user_dir("config") / "settings.ini"), QSettings.Format.IniFormat)
        self.store = store
        self._recent: list[str] | None = None  # as last set here; the file may not hold it yet

    def presets(self) -> dict[str, tuple[float, float]]:
        raw = self.store.value("window/presets", "")
        try:
            data = json.loads(raw) if raw else {}
            presets = {str(k): (float(v[0]), float(v[1])) for k, v in data.items()}
            # json reads NaN and 1e999 (infinity): such a preset would stop every session save
            presets = {k: v for k, v in presets.items() if all(math.isfinite(x) for x in v)}
        except (ValueError, TypeError, IndexError, AttributeError):
            presets = {}
        return presets or dict(DEFAULT_PRESETS)

    def set_presets(self, presets: dict[str, tuple[float, float]]) -> None:
        self.store.setValue(
            "window/presets", json.dumps({k: list(v) for k, v in presets.items()}, allow_nan=False)
        )

    def shortcut(self, action: str) -> str:
        return str(self.store.value(f"shortcuts/{action}", DEFAULT_SHORTCUTS[action][0]))

    def set_shortcut(self, action: str, keys: str) -> None:
        self.store.setValue(f"shortcuts/{action}", keys)

    def recent(self) -> list[str]:
        if self._recent is not None:
            return list(self._recent)
        value = self.store.value("recent", [])
        return [str(v) for v in (value if isinstance(value, list) else [value] if value else [])]

    def add_recent(self, path: str, keep: int = 10) -> None:
        """``path`` first in the recent list, which is written off the window's thread (written on
        it, as each study was opened, its fdatasyncs held the window 13-35 ms); unchanged, not at all."""
        items = ([path] + [p for p in self.recent() if p != path])[:keep]
        if items != self.recent():
            self._recent = items
            _WRITER.submit(_write, self.store.fileName(), self.store.format(), "recent", items)

    def value(self, key: str, default):
        value = self.store.value(key, default)
        return type(default)(value) if default is not None and value is not None else value

    def set_value(self, key: str, value) -> None:
        self.store.setValue(key, value)
