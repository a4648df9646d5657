"""Running MTMR-Net from the window: in a background worker, the model loaded once, only new or
changed markers analysed, and every failure a message (the markers are never touched).

Results are kept per marker together with the marker's position and size and the model's weights
hash they were computed for; a marker that moved, was resized or a model that changed makes them
stale, and the next analysis recomputes exactly those.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.workers import FunctionWorker
from core.model.inference import Predictor
from core.nodule.analysed import Analysed, current_results, stale_markers
from core.nodule.markers import NoduleMarker
from core.nodule.prediction import NoduleResult
from core.util.cancellation import Cancelled
from core.volume import CTVolume


class Analysis(QObject):
    """The app's side of the Predictor. ``finished`` carries nothing: read ``results``."""

    started = Signal(int)  # number of markers to analyse
    loaded = Signal()  # the model is loaded (or failed to): its name can be shown
    progress = Signal(int, int)
    finished = Signal()
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, model_path: Path, device: str = "auto", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.model_path = Path(model_path)
        self.device = device
        self.predictor: Predictor | None = None
        self.results: dict[str, Analysed] = {}
        self._worker: FunctionWorker | None = None
        self._workers: list[FunctionWorker] = []
        self._generation = 0  # bumped by reset(): a run for the previous study is ignored
        self._preloading: FunctionWorker | None = None
        self._pending: tuple | None = None  # a run asked for while the model was still loading

    # -- state -------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._worker is not None or self._preloading is not None

    @property
    def running(self) -> bool:
        """An analysis the reader asked for is under way (a silent model preload is not)."""
        return self._worker is not None or self._pending is not None

    def preload(self) -> None:
        """Load the model in the background now (importing torch and reading the checkpoint take
        seconds and hold the interpreter), so pressing Analyse later costs only the analysis."""
        if self.predictor is not None or self._preloading is not None or self._worker is not None:
            return
        worker = FunctionWorker(lambda progress, cancelled: Predictor(self.model_path, device=self.device))
        worker.signals.finished.connect(self._preloaded)
        worker.signals.errored.connect(lambda error: self._preloaded(None))
        self._preloading = worker
        self._workers = [w for w in self._workers if not w.done] + [worker]
        worker.start()

    def _preloaded(self, predictor: Predictor | None) -> None:
        self._preloading = None
        if predictor is not None and self.predictor is None and predictor.checkpoint == self.model_path:
            self.predictor = predictor
        self.loaded.emit()
        pending, self._pending = self._pending, None
        if pending is not None:  # a failed preload is retried here and reported like any failure
            self.run(*pending)

    @property
    def weights(self) -> str:
        return self.predictor.identity if self.predictor else ""

    def model_text(self) -> str:
        """Which model on which device, for the status bar and every place scores appear."""
        if self.predictor is None:
            return f"model {self.title()} (not loaded yet)"
        return f"{self.predictor.description} | on {self.device_name()}"

    def title(self) -> str:
        """The model's name and version as every command prints them (the file's name if unreadable)."""
        from core.model.checkpoints import CheckpointError, model_title, read_card

        if self.predictor is not None:
            return model_title(self.predictor.card)
        try:
            return model_title(read_card(self.model_path))
        except (CheckpointError, OSError):
            return self.model_path.stem

    def model_name(self) -> str:
        """The shortest: name and version, device (the status bar's corner; the rest in its tooltip)."""
        if self.predictor is None:
            return f"Model {self.title()}"
        return f"Model {self.title()} on {self.device_name()}"

    def short_text(self) -> str:
        """One line for the status bar and the table's title: name, version, what it was trained on,
        its intended use (unless the training data already says it), device."""
        if self.predictor is None:
            return f"Model {self.title()} (loads on first analysis)"
        card = self.predictor.card
        trained = str(card.get("trained_on", "unknown data"))
        use = str(card.get("intended_use", ""))
        if use and "clinical" not in trained:
            trained += f" ({use})"
        return f"Model {self.title()}, trained on {trained}, on {self.device_name()}"

    def patch_config(self):
        """The active model's preprocessing (from its card when it is not loaded yet)."""
        from core.model.checkpoints import read_card
        from core.model.patches import PatchConfig

        if self.predictor is not None:
            return self.predictor.patch_config
        return PatchConfig.from_dict(read_card(self.model_path)["preprocessing"])

    def device_name(self) -> str:
        device = self.predictor.device if self.predictor else self.device
        if str(device).startswith("cuda"):
            import torch

            return f"CUDA GPU {torch.cuda.get_device_name(torch.device(device))}"
        return {"mps": "Apple GPU (MPS)", "cpu": "CPU"}.get(str(device), str(device))

    def set_model(self, path: Path) -> None:
        """Use another checkpoint: it loads on the next analysis; earlier results no longer fit."""
        self.cancel()
        self.model_path = Path(path)
        self.predictor = None
        self._worker = None
        self._generation += 1

    def reset(self, saved: dict[str, dict]) -> None:
        """Another study: its saved results (kept only while they still fit their markers)."""
        self.cancel()
        self._worker = None
        self._generation += 1
        self.results = {k: a for k, v in saved.items() if (a := Analysed.from_dict(k, v)) is not None}

    def current(self, markers) -> dict[str, NoduleResult]:
        """Results that still fit the markers, re-ranked among themselves (1 = most suspicious)."""
        weights = self.weights or next(iter({a.weights for a in self.results.values()}), "")
        return current_results(self.results, markers, weights)

    def stale(self, markers) -> list[NoduleMarker]:
        return stale_markers(self.results, markers, self.weights)

    # -- running -----------------------------------------------------------------------------------
    def run(self, volume: CTVolume, markers: list[NoduleMarker]) -> bool:
        """Analyse the markers whose results are missing or stale; False if a run is already going."""
        if self._worker is not None:
            return False
        if self._preloading is not None:
            self._pending = (volume, list(markers))
            self.started.emit(len(markers))
            return True
        todo = self.stale(markers) if self.predictor is not None else list(markers)
        if self.predictor is not None and not todo:
            self.finished.emit()
            return True
        self.started.emit(len(todo))
        worker = FunctionWorker(lambda progress, cancelled: self._job(volume, todo, progress, cancelled))
        generation = self._generation
        worker.signals.progress.connect(self.progress)
        worker.signals.finished.connect(lambda outcome: self._done(outcome, generation))
        worker.signals.errored.connect(lambda error: self._errored(error, generation))
        worker.signals.cancelled.connect(lambda: self._cancelled(generation))
        self._worker = worker
        self._workers = [w for w in self._workers if not w.done] + [worker]
        worker.start()
        return True

    def cancel(self) -> None:
        if self._pending is not None:
            self._pending = None
            self.cancelled.emit()
        if self._worker is not None:
            self._worker.cancel()

    def _job(self, volume, todo, progress, cancelled):
        predictor = self.predictor or Predictor(self.model_path, device=self.device)
        weights = predictor.identity  # the weights' hash (+ the calibration when calibrated)
        todo = stale_markers(self.results, todo, weights)

        def report(done: int, total: int) -> None:
            if cancelled():
                raise Cancelled()
            progress(done, total)

        results = predictor.predict(volume, [m.to_inference() for m in todo], report) if todo else []
        if cancelled():
            raise Cancelled()
        return predictor, todo, results

    def _done(self, outcome, generation: int) -> None:
        predictor, todo, results = outcome
        self.predictor = predictor  # loaded once, whichever study it ran for
        if generation != self._generation:
            return
        self._worker = None
        weights = self.weights
        for marker, result in zip(todo, results, strict=True):
            self.results[marker.id] = Analysed(result, marker.centre_mm, marker.diameter_mm, weights)
        self.finished.emit()

    def _errored(self, error: Exception, generation: int) -> None:
        if generation == self._generation:
            self._worker = None
            self.failed.emit(_explain(error, self.model_path))

    def _cancelled(self, generation: int) -> None:
        if generation == self._generation:
            self._worker = None
            self.cancelled.emit()


def _explain(error: Exception, model_path: Path) -> str:
    from core.model.checkpoints import CheckpointError

    if isinstance(error, CheckpointError):
        return f"The model could not be loaded: {error}"
    if type(error).__name__ == "OutOfMemoryError":
        return "The GPU ran out of memory even at the smallest batch; analysis stopped, markers unchanged."
    if isinstance(error, ValueError):
        return f"Analysis stopped: {error}"
    return f"Analysis failed ({type(error).__name__}: {error}); markers unchanged. Model: {model_path.name}"
