"""Fine-tune the active model on the reader's own confirmed nodules, on this workstation, offline.

Choose the data (the local library, optionally mixed with the phantom train split), adjust the few
settings that matter (plain words first, the rest under "Advanced"), start / pause / cancel, watch
the loss parts and the held-out AUC and attribute error per epoch, then compare the new model with
the active one on the same held-out studies (with the change's bootstrap interval) and activate it,
keep it, or discard it. Activating a model whose reserved-split AUC or ECE is worse than the active
one's, or not measured, asks first with both numbers (default No). The active model and the library
are never touched until the reader chooses.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from app.models_page import insisted
from app.training_worker import TrainingWorker
from core.model.registry import ModelRegistry
from core.reading.finetune.comparison import describe_effect
from core.reading.finetune.matrix import QUICK_NODULES, matrix_events
from core.reading.finetune.options import FinetuneOptions
from core.reading.finetune.run import keep, run_finetune
from core.reading.library import Library
from core.training.state import RunFiles, claim_run, remove_abandoned

LOSS_PARTS = ("total", "classification", "ranking", "attributes")
COLOURS = {"total": "k", "classification": "b", "ranking": "m", "attributes": "g"}
ROWS = [
    ("AUC", lambda m: m["auc"]),
    ("Accuracy", lambda m: m["accuracy"]),
    ("Sensitivity", lambda m: m["sensitivity"]),
    ("Specificity", lambda m: m["specificity"]),
    ("Attribute MAE", lambda m: m["attributes"]["mean_mae"]),
    ("ECE (15 bins)", lambda m: m["ece"]),
]


STEM = "finetune-dialog"  # the dialog's runs keep their state in finetune-dialog[-N].state.safetensors


class TrainerDialog(QDialog):
    model_changed = Signal(object)  # the Version activated

    def __init__(self, registry: ModelRegistry, library: Library, state_folder, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Fine-tune the model on your confirmed nodules")
        self.registry, self.library = registry, library
        self.state_folder = state_folder
        self.run: RunFiles | None = None  # this dialog's own state file while a run needs it
        self.worker: TrainingWorker | None = None
        self.finished: dict | None = None
        self.epochs: list[dict] = []

        entries = library.entries()
        studies = len({e.nodule.study_uid or e.nodule.series_uid for e in entries})
        self.use_library = QCheckBox(f"My confirmed nodules: {len(entries)} from {studies} studies")
        self.use_library.setChecked(True)
        self.use_library.setEnabled(False)  # the library is the point of fine-tuning
        self.with_phantoms = QCheckBox("Mix in the phantom training nodules (keeps what the model knew)")
        self.randomise = QCheckBox(
            "Render the phantom nodules under random scanners (slice thickness 0.625-5 mm, kernel, dose, "
            "HU offset), so the model holds across scanners (rendered once, then cached)"
        )
        self.randomise.setChecked(FinetuneOptions().randomise)
        self.with_phantoms.toggled.connect(self.randomise.setEnabled)
        lidc = QCheckBox("A LIDC-IDRI folder (once the LIDC-IDRI importer exists)")
        lidc.setEnabled(False)
        self.split_text = QLabel("A part of your studies is held out for validation automatically.")
        self.split_text.setWordWrap(True)
        if studies < 2:  # nothing of the reader's own to hold out: the phantom validation split is
            self.with_phantoms.setChecked(True)
            self.split_text.setText(
                "Your nodules come from a single study, so the phantom nodules are mixed in and the "
                "phantom validation split is held out to check the new model."
            )
        self.randomise.setEnabled(self.with_phantoms.isChecked())
        data = QGroupBox("Data")
        box = QVBoxLayout(data)
        for widget in (self.use_library, self.with_phantoms, self.randomise, lidc, self.split_text):
            box.addWidget(widget)

        defaults = FinetuneOptions()
        self.epochs_box = _spin(1, 100, defaults.epochs)
        self.lr_box = _double(1e-5, 1e-1, defaults.lr, 5)
        self.freeze = QCheckBox("Keep the image features as they are (train only the heads)")
        self.freeze.setChecked(defaults.freeze_trunk)
        self.augment = QCheckBox(
            "Vary the images while learning (flips, turns, small rotations and scaling, blur/sharpen, "
            "HU shifts): the model learns what does not change the diagnosis"
        )
        self.augment.setChecked(defaults.augment)
        basic = QFormLayout()
        basic.addRow("Passes over the data (epochs)", self.epochs_box)
        basic.addRow("Learning rate (lower changes the model less)", self.lr_box)
        basic.addRow(self.freeze)
        basic.addRow(self.augment)
        self.trunk_factor = _double(0.0, 1.0, defaults.trunk_lr_factor, 3)
        self.batch = _spin(2, 512, defaults.batch_size)
        self.val_fraction = _double(0.05, 0.5, defaults.val_fraction, 2)
        self.seed = _spin(0, 10**6, defaults.seed)
        self.patience = _spin(1, 100, defaults.patience)
        advanced = QGroupBox("Advanced")
        advanced.setCheckable(True)
        advanced.setChecked(False)
        form = QFormLayout(advanced)
        form.addRow("Image-feature learning rate (x the rate above)", self.trunk_factor)
        form.addRow("Batch size", self.batch)
        form.addRow("Share of studies held out", self.val_fraction)
        form.addRow("Random seed", self.seed)
        form.addRow("Stop after this many epochs without improvement", self.patience)
        settings = QGroupBox("Settings")
        settings_box = QVBoxLayout(settings)
        settings_box.addLayout(basic)
        settings_box.addWidget(advanced)

        self.start = QPushButton("Start")
        self.start.clicked.connect(self.start_training)
        self.pause = QPushButton("Pause")
        self.pause.setCheckable(True)
        self.pause.setEnabled(False)
        self.pause.toggled.connect(self._paused)
        self.cancel_button = QPushButton("Cancel training")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.status = QLabel("Ready. The active model stays in use until you choose otherwise.")
        self.status.setWordWrap(True)
        controls = QHBoxLayout()
        for widget in (self.start, self.pause, self.cancel_button, self.progress):
            controls.addWidget(widget)

        self.loss_plot = pg.PlotWidget(background="w", title="Training loss (per epoch)")
        self.loss_plot.addLegend(offset=(-5, 5))
        self.loss_curves = {
            name: self.loss_plot.plot([], [], pen=pg.mkPen(COLOURS[name], width=2), name=name)
            for name in LOSS_PARTS
        }
        self.val_plot = pg.PlotWidget(
            background="w", title="Held-out studies: AUC (blue), attribute MAE (red)"
        )
        self.auc_curve = self.val_plot.plot([], [], pen=pg.mkPen("b", width=2), symbol="o", symbolSize=6)
        self.mae_curve = self.val_plot.plot([], [], pen=pg.mkPen("r", width=2), symbol="s", symbolSize=6)
        plots = QHBoxLayout()
        plots.addWidget(self.loss_plot)
        plots.addWidget(self.val_plot)

        self.comparison = QTableWidget(len(ROWS), 2)
        self.comparison.setHorizontalHeaderLabels(["Active model", "New model"])
        self.comparison.setVerticalHeaderLabels([name for name, _ in ROWS])
        self.comparison.setMaximumHeight(220)
        self.verdict = QLabel()
        self.verdict.setWordWrap(True)
        self.effect = QLabel()
        self.effect.setWordWrap(True)
        self.matrix_button = QPushButton(
            f"Protocol matrix: AUC per scanner on {QUICK_NODULES} reserved-split nodules, new model beside "
            "the one it started from (takes minutes)"
        )
        self.matrix_button.setEnabled(False)
        self.matrix_button.clicked.connect(self.start_matrix)
        self.matrix_table = QTableWidget(0, 3)
        self.matrix_table.setHorizontalHeaderLabels(["Started from", "New model", "Diameter alone"])
        self.matrix_table.setMaximumHeight(260)
        self.matrix_worker: TrainingWorker | None = None
        self.matrix_settings: dict = {}  # run_matrix's cells / nodules / chest_size (smaller in tests)
        self.activate_button = QPushButton("Activate the new model")
        self.keep_button = QPushButton("Keep it without activating")
        self.discard_button = QPushButton("Discard it")
        self.activate_button.clicked.connect(lambda: self._choose("activate"))
        self.keep_button.clicked.connect(lambda: self._choose("keep"))
        self.discard_button.clicked.connect(lambda: self._choose("discard"))
        choice = QHBoxLayout()
        for button in (self.activate_button, self.keep_button, self.discard_button):
            button.setEnabled(False)
            choice.addWidget(button)

        layout = QVBoxLayout(self)
        layout.addWidget(data)
        layout.addWidget(settings)
        layout.addLayout(controls)
        layout.addWidget(self.status)
        layout.addLayout(plots)
        layout.addWidget(self.comparison)
        layout.addWidget(self.verdict)
        layout.addWidget(self.effect)
        layout.addWidget(self.matrix_button)
        layout.addWidget(self.matrix_table)
        layout.addLayout(choice)
        self.resize(900, 900)

    # -- options ---------------------------------------------------------------------------------------
    def options(self) -> FinetuneOptions:
        return replace(
            FinetuneOptions(),
            epochs=self.epochs_box.value(),
            lr=self.lr_box.value(),
            freeze_trunk=self.freeze.isChecked(),
            augment=self.augment.isChecked(),
            trunk_lr_factor=self.trunk_factor.value(),
            batch_size=self.batch.value(),
            with_phantoms=self.with_phantoms.isChecked(),
            randomise=self.randomise.isChecked(),
            val_fraction=self.val_fraction.value(),
            seed=self.seed.value(),
            patience=self.patience.value(),
        )

    # -- running ---------------------------------------------------------------------------------------
    def start_training(self) -> None:
        if self.worker is not None:
            return
        self.epochs, self.finished = [], None
        for curve in (*self.loss_curves.values(), self.auc_curve, self.mae_curve):
            curve.setData([], [])
        options = self.options()
        self._end_run()
        remove_abandoned(self.state_folder, STEM)  # runs of windows that closed or died are not continued
        self.run = claim_run(self.state_folder, STEM)  # its own: another window's run is never resumed
        if self.run is None:
            self.status.setText(f"Too many fine-tune runs at once in {self.state_folder}.")
            return
        state_path = self.run.state
        self.worker = TrainingWorker(
            lambda cancelled: run_finetune(
                self.registry, self.library, options, state_path=state_path, cancelled=cancelled
            )
        )
        self.worker.event.connect(self._event)
        self.worker.failed.connect(self._failed)
        self.worker.cancelled.connect(self._cancelled)
        self.worker.finished.connect(self._thread_ended)
        self._running(True)
        self.progress.setRange(0, 0)
        self.status.setText("Preparing the data...")
        self.worker.start()

    def _paused(self, paused: bool) -> None:
        if self.worker is not None:
            self.worker.pause(paused)
            self.pause.setText("Resume" if paused else "Pause")
            self.status.setText("Paused (the app stays usable)" if paused else "Training...")

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.status.setText("Cancelling at the next step...")

    def _running(self, running: bool) -> None:
        self.start.setEnabled(not running)
        self.pause.setEnabled(running)
        self.cancel_button.setEnabled(running)
        if not running:
            self.pause.setChecked(False)

    def _event(self, event: dict) -> None:
        kind = event["event"]
        if kind == "parent":
            self.status.setText(f"Starting from {event['version'].label}. {event.get('note') or ''}".strip())
        elif kind == "data":
            self.split_text.setText(event["text"])
        elif kind == "step":
            total = event["steps"] * self.epochs_box.value()
            done = (event["epoch"] - 1) * event["steps"] + event["step"]
            self.progress.setRange(0, total)
            self.progress.setValue(done)
            self.status.setText(
                f"Epoch {event['epoch']}, step {event['step']}/{event['steps']}; about "
                f"{_duration(event['eta_s'])} left; {self._device()}"
            )
        elif kind == "epoch":
            self.epochs.append(event)
            xs = [e["epoch"] for e in self.epochs]
            for name, curve in self.loss_curves.items():
                curve.setData(xs, [e["loss"].get(name, math.nan) for e in self.epochs])
            self.auc_curve.setData(xs, [_finite(e["val"]["auc"]) for e in self.epochs])
            self.mae_curve.setData(xs, [_finite(e["val"]["attributes"]["mean_mae"]) for e in self.epochs])
        elif kind == "finished":
            self.finished = event
            self._show_comparison(event)

    def _show_comparison(self, event: dict) -> None:
        for column, name in enumerate(("active", "new")):
            metrics = event["comparison"][name]
            for row, (_, get) in enumerate(ROWS):
                try:
                    value = get(metrics)
                    text = "n/a" if value is None or not math.isfinite(value) else f"{value:.3f}"
                except (KeyError, TypeError):
                    text = "n/a"
                self.comparison.setItem(row, column, QTableWidgetItem(text))
        ok, why = event["verdict"]
        self.verdict.setText(
            "On the held-out studies the new model is at least as good as the active one."
            if ok
            else f"Careful: on the held-out studies the new model is worse ({why})."
        )
        self.effect.setText(describe_effect(event["effect"]))
        self.matrix_table.setRowCount(0)
        self.matrix_button.setEnabled(True)
        for button in (self.activate_button, self.keep_button, self.discard_button):
            button.setEnabled(True)
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.status.setText("Finished. Choose what to do with the new model.")

    def _choose(self, what: str) -> None:
        if self.finished is None:
            return
        if what == "discard":
            self.status.setText("Discarded; the active model is unchanged.")
        elif what == "activate" and not insisted(
            self, self.finished["card"], "the new model", self.registry.active()
        ):
            self.status.setText("Not activated; the active model is unchanged (you may still keep it).")
            return
        else:
            version = keep(self.registry, self.finished, activate=what == "activate")
            if what == "activate":
                self.status.setText(f"{version.label} is now active (roll back in Models).")
                self.model_changed.emit(version)
            else:
                self.status.setText(f"Kept as {version.label}; the active model is unchanged.")
        self.finished = None
        self.matrix_button.setEnabled(False)
        if self.run is not None:
            self.run.state.unlink(missing_ok=True)
        self._end_run()
        for button in (self.activate_button, self.keep_button, self.discard_button):
            button.setEnabled(False)

    # -- protocol matrix -------------------------------------------------------------------------------
    def start_matrix(self) -> None:
        """Both models' AUC per scan protocol, computed off the GUI thread (``matrix_events``)."""
        if self.finished is None or self.matrix_worker is not None:
            return
        finished, registry, settings = self.finished, self.registry, dict(self.matrix_settings)
        device = self.options().device

        def events(cancelled):
            from core.model.device import pick_device

            parent = registry.load(finished["parent"].id)
            models = {"started from": parent, "new": (finished["model"], finished["card"])}
            yield from matrix_events(models, device=pick_device(device), **settings)

        self.matrix_worker = TrainingWorker(events)
        self.matrix_worker.event.connect(self._matrix_event)
        self.matrix_worker.failed.connect(lambda text: self.status.setText(f"Protocol matrix failed: {text}"))
        self.matrix_worker.finished.connect(self._matrix_ended)
        self.matrix_button.setEnabled(False)
        self.status.setText("Rendering the reserved-split nodules under each scan protocol...")
        self.matrix_worker.start()

    def _matrix_event(self, event: dict) -> None:
        if event["event"] == "matrix-model":
            self.status.setText(f"Protocol matrix: scoring the {event['model']} model...")
            return
        rows = event["rows"]
        self.matrix_table.setRowCount(len(rows))
        self.matrix_table.setVerticalHeaderLabels([row["cell"] for row in rows])
        for r, row in enumerate(rows):
            for c, key in enumerate(("started from", "new", "diameter")):
                value = row[key]
                self.matrix_table.setItem(r, c, QTableWidgetItem("n/a" if value is None else f"{value:.3f}"))
        self.status.setText(
            f"Protocol matrix on {event['nodules']} labelled reserved-split nodules (rough: few nodules; "
            "bench/bench_robustness.py gives the full figures). Choose what to do with the new model."
        )

    def _matrix_ended(self) -> None:
        self.matrix_worker = None
        self.matrix_button.setEnabled(self.finished is not None)

    def _failed(self, text: str) -> None:
        self.status.setText(f"Training stopped: {text}. The active model and the library are unchanged.")

    def _cancelled(self) -> None:
        self.status.setText("Cancelled. The active model and the library are unchanged.")

    def _thread_ended(self) -> None:
        self.worker = None
        self._running(False)
        if self.finished is None:
            self.progress.setRange(0, 1)
            self._end_run()  # failed or cancelled: its state is abandoned, removed at the next start

    def _end_run(self) -> None:
        if self.run is not None:
            self.run.release()
            self.run = None
            self.progress.setValue(0)

    def _device(self) -> str:
        from core.model.device import pick_device

        return f"on {pick_device(self.options().device).upper()}"

    def closeEvent(self, event) -> None:
        for worker in (self.worker, self.matrix_worker):
            if worker is not None:
                worker.cancel()
                worker.wait(30_000)
        super().closeEvent(event)


def _spin(low: int, high: int, value: int) -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setValue(value)
    return box


def _double(low: float, high: float, value: float, decimals: int) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setDecimals(decimals)
    box.setRange(low, high)
    box.setValue(value)
    box.setSingleStep(10 ** -(decimals - 1))
    return box


def _finite(value) -> float:
    return float(value) if value is not None and math.isfinite(value) else math.nan


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"
