"""Export the open study's report: DICOM SR, PDF, CSV and JSON into a folder of the reader's choice.

The report is built from what the window holds (the volume, the markers, the model's current results,
the reader's labels, the lung locations and the model card) with ``core.report.content.build_report``
and written by ``core.report.export.write_report``, the writer the headless ``main.py report`` uses:
every file atomically, a failing format reported while the others are written. Existing files are
never replaced without asking. "Anonymise" removes names, IDs, dates and descriptions and remaps
every UID consistently within the export. "Preview" renders the PDF's first page with ``pdftoppm``
(poppler-utils) when it is installed.

Wiring: ``ExportDialog(window).exec()`` from a File > Export menu item.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.pacs_send import SendPanel
from core.report.export import FORMATS, TITLES, Export, existing, unavailable, write_report

READER_KEY = "reader/name"
FOLDER_KEY = "export/folder"
FORMATS_KEY = "export/formats"
PREVIEW_WIDTH = 420
NEEDS_POPPLER = "preview needs poppler-utils (pdftoppm)"


class ExportDialog(QDialog):
    """The Export dialog of ``window`` (a ``MainWindow``, or anything with its ``volume``,
    ``markers``, ``review`` and ``settings``)."""

    def __init__(self, window, parent: QWidget | None = None) -> None:
        if parent is None and isinstance(window, QWidget):
            parent = window
        super().__init__(parent)
        self.setWindowTitle("Export report")
        self.source = window
        self.settings = getattr(window, "settings", None)
        self.last: Export | None = None
        self._preview_dir: tempfile.TemporaryDirectory | None = None

        chosen = str(self._setting(FORMATS_KEY, ",".join(FORMATS))).split(",")
        self.checks: dict[str, QCheckBox] = {}
        formats_row = QHBoxLayout()
        for fmt in FORMATS:
            box = QCheckBox(TITLES[fmt])
            reason = unavailable(fmt)
            box.setChecked(fmt in chosen and not reason)
            box.setEnabled(not reason)
            if reason:
                box.setToolTip(reason)
            self.checks[fmt] = box
            formats_row.addWidget(box)
        formats_row.addStretch(1)

        self.folder = QLineEdit(str(self._setting(FOLDER_KEY, str(Path.home() / "MTMR reports"))))
        choose = QPushButton("Choose...")
        choose.clicked.connect(self._choose_folder)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(choose)

        self.send_panel = SendPanel(self.settings)
        self.anonymise = QCheckBox("Anonymise: remove names, IDs, dates; keep UIDs remapped consistently")
        self.reader = QLineEdit(str(self._setting(READER_KEY, "")))
        self.reader.setPlaceholderText("your name, as the report's reader")

        form = QFormLayout()
        form.addRow("Formats", formats_row)
        form.addRow("Folder", folder_row)
        form.addRow("Reader", self.reader)
        form.addRow("", self.anonymise)
        form.addRow("PACS", self.send_panel)

        self.preview_button = QPushButton("Preview PDF")
        self.preview_button.clicked.connect(self.preview)
        self.preview_label = QLabel("The PDF's first page shows here after Preview.")
        self.preview_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview_label.setMinimumSize(PREVIEW_WIDTH, 200)
        self.preview_label.setWordWrap(True)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.export_button = QPushButton("Export")
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self._export_clicked)
        close = QPushButton("Close")
        close.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        buttons.addWidget(self.preview_button)
        buttons.addStretch(1)
        buttons.addWidget(self.export_button)
        buttons.addWidget(close)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.preview_label, 1)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        if getattr(window, "volume", None) is None:
            self.status.setText("Open a study first: there is nothing to export.")
            self.export_button.setEnabled(False)
            self.preview_button.setEnabled(False)

    # -- the report --------------------------------------------------------------------------------------
    def build_report(self):
        """The open study's report (``None`` without a study), the reader's name from the field."""
        from core.report.content import build_report

        window = self.source
        volume = getattr(window, "volume", None)
        if volume is None:
            return None
        markers = list(window.markers.markers)
        review = window.review
        return build_report(
            volume,
            markers,
            review.analysis.current(markers),
            dict(review.labels),
            self._model_card(),
            reader_name=self.reader.text().strip(),
            locations={m.id: review.location(m) for m in markers},
            masks=review.segmentation.current(),
            measurements=review.segmentation.measurements(),
            follow_up=self.follow_up(),
        )

    def follow_up(self):
        """The window's follow-up reading (the prior view's, else the saved one), or None."""
        from core.followup.compare import FollowUp

        shown = getattr(getattr(self.source, "prior_view", None), "reading", None)
        if shown is not None:
            return shown
        saved = getattr(self.source, "follow_up", None) or {}
        try:
            return FollowUp.from_dict(saved) if saved else None
        except ValueError:
            return None

    def prior_images(self):
        """The prior volume shown beside the study with its reading (``PriorImages``), for the PDF's
        prior/current key images; None when no prior is shown."""
        from core.report.pdf_follow_up import PriorImages

        view = getattr(self.source, "prior_view", None)
        if view is None or view.volume is None or view.reading is None:
            return None
        return PriorImages(view.volume, view.reading)

    def _model_card(self) -> dict:
        analysis = self.source.review.analysis
        predictor = getattr(analysis, "predictor", None)
        if predictor is not None:
            return dict(predictor.card)
        path = getattr(analysis, "model_path", None)
        if path is None:
            return {}
        from core.model.checkpoints import CheckpointError, read_card

        try:
            return read_card(path)
        except (CheckpointError, OSError, ValueError):
            return {"name": Path(path).stem}

    def source_files(self) -> list[Path]:
        """The DICOM files of the shown series (the SR's evidence); [] when it came from a volume file."""
        from core.dicom.catalogue import catalogue
        from core.dicom.errors import StudyLoadError
        from core.imaging.volume_files import is_volume_file

        volume = self.source.volume
        series_uid = volume.metadata.series_uid
        if not series_uid:
            return []
        places = [volume.source, getattr(self.source, "source", "") or None]
        for place in places:
            if place is None or not Path(place).exists() or is_volume_file(place):
                continue
            try:
                return list(catalogue(place).find_series(series_uid).files)
            except (StudyLoadError, OSError):
                continue
        return []

    # -- exporting ---------------------------------------------------------------------------------------
    def export(
        self,
        folder: str | Path,
        formats: Sequence[str],
        anonymise: bool,
        confirm_overwrite: Callable[[list[Path]], bool] | None = None,
    ) -> Export | None:
        """Write ``formats`` into ``folder``; files already there are replaced only when
        ``confirm_overwrite(paths)`` says yes (by default a question box). ``None``: nothing written."""
        report = self.build_report()
        if report is None:
            self.status.setText("Open a study first: there is nothing to export.")
            return None
        if not formats:
            self.status.setText("Choose at least one format.")
            return None
        folder = Path(folder).expanduser()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.status.setText(f"The folder {folder} cannot be used: {exc.strerror or exc}")
            return None
        present = existing(folder, formats)
        if present:
            ask = confirm_overwrite or self._ask_overwrite
            if not ask(present):
                self.status.setText("Nothing written: the existing files were kept.")
                return None
        QGuiApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            sources = self.source_files() if "sr" in formats else []
            done = write_report(
                report,
                folder,
                formats,
                volume=self.source.volume,
                source_files=sources,
                anonymise=anonymise,
                overwrite=bool(present),
                measure=True,  # a nodule never analysed is segmented for the report, as `report` does
                prior_images=self.prior_images() if "pdf" in formats else None,
            )
        finally:
            QGuiApplication.restoreOverrideCursor()
        self.last = done
        lines = [f"Wrote {o.path.name}" for o in done.outcomes if o.written]
        lines += [o.text for o in done.failed]
        where = f" in {folder}" if done.written else ""
        self.status.setText(("; ".join(lines) or "Nothing written") + where)
        self._remember(folder, formats)
        self.send_panel.after_export(done, lambda: sources or self.source_files(), anonymise)
        return done

    def _ask_overwrite(self, paths: list[Path]) -> bool:
        names = "\n".join(p.name for p in paths)
        answer = QMessageBox.question(
            self,
            "Replace files?",
            f"These files are already in {paths[0].parent}:\n{names}\n\nReplace them?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def chosen_formats(self) -> list[str]:
        return [fmt for fmt, box in self.checks.items() if box.isChecked() and box.isEnabled()]

    def _export_clicked(self) -> None:
        self.export(self.folder.text().strip(), self.chosen_formats(), self.anonymise.isChecked())

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export into", self.folder.text())
        if folder:
            self.folder.setText(folder)

    # -- the preview -------------------------------------------------------------------------------------
    def preview(self) -> Path | None:
        """Render the PDF's first page (as it would be exported) and show it; the PNG, or None."""
        reason = unavailable("pdf")
        if reason:
            self.preview_label.setText(f"No PDF preview: the PDF is {reason}")
            return None
        if shutil.which("pdftoppm") is None:
            self.preview_label.setText(NEEDS_POPPLER)
            return None
        report = self.build_report()
        if report is None:
            return None
        if self._preview_dir is not None:
            self._preview_dir.cleanup()
        self._preview_dir = tempfile.TemporaryDirectory(prefix="mtmr-preview-")
        folder = Path(self._preview_dir.name)
        QGuiApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            done = write_report(
                report,
                folder,
                ["pdf"],
                volume=self.source.volume,
                anonymise=self.anonymise.isChecked(),
                measure=True,  # the preview shows what Export writes
                prior_images=self.prior_images(),
            )
            if done.failed:
                self.preview_label.setText(f"No preview: {done.failed[0].error}")
                return None
            page = folder / "page"
            command = ["pdftoppm", "-png", "-f", "1", "-l", "1", "-singlefile"]
            command += ["-scale-to", str(PREVIEW_WIDTH * 2), str(done.written[0]), str(page)]
            try:
                subprocess.run(command, check=True, capture_output=True, timeout=60)
            except (OSError, subprocess.SubprocessError) as exc:
                self.preview_label.setText(f"No preview: pdftoppm failed ({exc.__class__.__name__})")
                return None
        finally:
            QGuiApplication.restoreOverrideCursor()
        png = page.with_suffix(".png")
        pixmap = QPixmap(str(png))
        if pixmap.isNull():
            self.preview_label.setText("No preview: the page could not be rendered")
            return None
        self.preview_label.setPixmap(
            pixmap.scaledToWidth(PREVIEW_WIDTH, Qt.TransformationMode.SmoothTransformation)
        )
        return png

    # -- settings and clean-up ---------------------------------------------------------------------------
    def _setting(self, key: str, default: str) -> str:
        if self.settings is None:
            return default
        value = self.settings.value(key, default)
        return default if value is None else str(value)

    def _remember(self, folder: Path, formats: Sequence[str]) -> None:
        if self.settings is None:
            return
        self.settings.set_value(READER_KEY, self.reader.text().strip())
        self.settings.set_value(FOLDER_KEY, str(folder))
        self.settings.set_value(FORMATS_KEY, ",".join(formats))

    def done(self, result: int) -> None:
        if self._preview_dir is not None:
            self._preview_dir.cleanup()
            self._preview_dir = None
        super().done(result)
