"""The windows the main window opens: the trainer, the labelled-nodule library, the model versions, the
report export, the worklist and the settings; and switching to another model."""

from __future__ import annotations

from PySide6.QtGui import QKeySequence

from app.menus import refresh_presets


class WindowDialogs:
    """A ``MainWindow`` mixin: ``open_trainer``, ``open_library``, ``open_models``, ``use_model``,
    ``open_export``, ``open_worklist``, ``open_settings``."""

    def open_trainer(self) -> None:
        from app.trainer_dialog import TrainerDialog
        from core.util.paths import user_dir

        self.trainer = TrainerDialog(self.registry, self.review.labelled_library(), user_dir("models"), self)
        self.trainer.model_changed.connect(self.use_model)
        self.trainer.show()  # not modal: reading goes on while it trains

    def open_library(self) -> None:
        from app.library_view import LibraryView

        self.library_view = LibraryView(self.review.labelled_library(), self)
        self.library_view.show()

    def open_models(self) -> None:
        from app.models_page import ModelsPage

        self.models_page = ModelsPage(self.registry, self)
        self.models_page.activated.connect(self.use_model)
        self.models_page.show()

    def use_model(self, version) -> None:
        """Analyse with ``version`` from now on; the open study's markers are analysed again."""
        self.review.analysis.set_model(version.path)
        self._show_model()
        self.statusBar().showMessage(f"Active model: {version.label}", 10000)
        if self.volume is not None and len(self.markers):
            self.review.analyse()
        else:
            self.review.analysis.preload()

    def open_export(self) -> None:
        from app.export_dialog import ExportDialog

        if self.volume is None:
            self.statusBar().showMessage("Open a study first: the report is of the study on screen")
            return
        self.save_session()
        ExportDialog(self).exec()

    def open_worklist(self) -> None:
        from app.worklist import Worklist

        self.save_session()
        self.worklist = Worklist(self.sessions, self)
        self.worklist.open_requested.connect(self._open_from_worklist)
        self.worklist.open()

    def _open_from_worklist(self, source: str, marker_id: str) -> None:
        self._select_on_open = marker_id
        self.open_path(source)

    def open_settings(self) -> None:
        from app.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.settings, self, current=self.workspace.window)
        if dialog.exec():
            for key, action in self.actions_by_key.items():
                action.setShortcut(QKeySequence(self.settings.shortcut(key)))
            refresh_presets(self)
