"""The nodule detail panel in the window at the sizes readers use: thumbnails with their titles beside
the image, not over it, the attribute words in full, nothing cut on the right; and the Grad-CAM tile
saying plainly when the model looked elsewhere."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QRect
from PySide6.QtWidgets import QApplication, QLabel, QWidget

from app.main_window import MainWindow
from core.model.explain import Explanation
from core.nodule.markers import NoduleMarker
from core.nodule.meanings import meaning
from core.nodule.prediction import NoduleResult
from tests.core.model.test_patches import sphere_volume

# Scores whose words are among the longest on their scales ("between no lobulation and ...").
SCORES = {
    "subtlety": 3.4,
    "internal_structure": 1.0,
    "calcification": 3.6,
    "sphericity": 2.2,
    "margin": 2.6,
    "lobulation": 2.6,
    "spiculation": 2.6,
    "texture": 1.4,
}
TITLES = ("Axial", "Coronal", "Sagittal", "Model input")


def explanation(centre_px: tuple[float, float]) -> Explanation:
    rows, cols = np.indices((64, 64))
    heat = np.exp(-((rows - centre_px[0]) ** 2 + (cols - centre_px[1]) ** 2) / 50.0).astype(np.float32)
    patch = np.zeros((64, 64), np.float32)
    return Explanation(patch, heat, "malignancy", 1, "the note", 15.0, "benign", 20.0, centre_px)


def in_panel(widget, panel) -> QRect:
    return QRect(widget.mapTo(panel, QPoint(0, 0)), widget.size())


@pytest.fixture
def shown(qtbot, request):
    window = MainWindow()
    qtbot.addWidget(window)
    window.resize(*request.param)
    window.show()
    qtbot.waitExposed(window)
    panel = window.review.detail
    marker = NoduleMarker("m1", "N1", (0.0, 0.0, 0.0), 12.0)
    result = NoduleResult("m1", 0.4, 0.05, dict(SCORES), rank=1)
    panel.show_nodule(sphere_volume(6.0), marker, result, None, "model text", "right upper zone")
    panel.set_explanation("m1", explanation((31.5, 31.5)))
    QApplication.processEvents()
    return window, panel


@pytest.mark.parametrize("shown", [(1600, 1000), (1280, 800)], indirect=True)
def test_the_panel_fits_its_dock_with_titles_off_the_images_and_words_in_full(shown):
    window, panel = shown
    area = window.docks["Nodule detail"].widget()
    assert area.horizontalScrollBar().maximum() == 0  # nothing cut off on the right
    right = area.viewport().width()
    labels = [label for label in panel.findChildren(QLabel) if label.isVisible()]
    for title, view in zip(TITLES, (*panel.patches.values(), panel.cam), strict=True):
        [label] = [label for label in labels if label.text() == title]
        image = in_panel(view, panel)
        assert not in_panel(label, panel).intersects(image), f"{title}: its title lies on the image"
    for name, value in SCORES.items():
        words = meaning(name, value)
        [label] = [label for label in labels if words in label.text()]
        box = in_panel(label, panel)
        assert box.right() < right, f"{name}: '{words}' runs past the panel's edge"
        needed = label.heightForWidth(label.width()) if label.wordWrap() else label.sizeHint().height()
        assert label.height() >= needed, f"{name}: '{words}' is cut"
        assert label.fontMetrics().horizontalAdvance(words) <= label.width() or label.wordWrap()


@pytest.mark.parametrize("shown", [(1280, 800)], indirect=True)
def test_the_model_input_says_when_the_model_looked_elsewhere(shown):
    _, panel = shown
    assert "looked elsewhere" not in panel.cam_note.text()
    assert panel.cam.circle.isVisible() and panel.cam.circle.rect().width() == pytest.approx(40.0)
    panel.set_explanation("m1", explanation((4.0, 60.0)))  # the heat sits in a corner, off the marker
    assert "The model looked elsewhere, not at the nodule" in panel.cam_note.text()
    panel.cam_toggle.setChecked(False)  # no map shown: nothing to warn about
    assert "looked elsewhere" not in panel.cam_note.text()


@pytest.mark.parametrize("shown", [(1280, 800)], indirect=True)
def test_a_thumbnail_shows_its_image_whole_after_a_larger_nodule(shown):
    """The previous nodule's larger circle used to widen the view, leaving the image in a corner."""
    _, panel = shown
    volume = sphere_volume(6.0)
    panel.show_nodule(volume, NoduleMarker("m2", "N2", (0.0, 0.0, 0.0), 30.0), None, None, "")
    panel.show_nodule(volume, NoduleMarker("m3", "N3", (0.0, 0.0, 0.0), 6.0), None, None, "")
    view = panel.patches["axial"].box.viewRect()
    image = panel.patches["axial"].image.mapRectToParent(panel.patches["axial"].image.boundingRect())
    assert image.width() == pytest.approx(40.0, abs=1.5)  # 20 mm each side of a small nodule
    assert view.width() == pytest.approx(image.width(), rel=0.02)
    assert view.height() == pytest.approx(image.height(), rel=0.02)


@pytest.mark.parametrize("shown", [(1280, 800)], indirect=True)
def test_the_location_says_it_is_a_zone_not_a_lobe(shown):
    window, panel = shown
    assert "right upper zone" in panel.title.text() and "not a lobe" in panel.where_note.text()
    assert panel.where_note.isVisible()
    table = window.review.table
    table.fill([panel.marker], {}, {}, {"m1": "right upper zone, slice 3"}, {})
    assert (
        "not a lobe" in table.item(0, 2).toolTip() and "not a lobe" in table.horizontalHeaderItem(2).toolTip()
    )


@pytest.mark.parametrize("shown", [(1280, 800)], indirect=True)
def test_a_nodule_not_yet_analysed_says_what_the_empty_model_input_will_show(shown):
    _, panel = shown
    panel.show_nodule(sphere_volume(6.0), NoduleMarker("m2", "N2", (0.0, 0.0, 0.0), 8.0), None, None, "")
    assert "press Analyse" in panel.cam_note.text() and not panel.cam.circle.isVisible()
    assert panel.cam.image.image is None  # the previous nodule's map is gone
    result = NoduleResult("m2", 0.4, 0.05, dict(SCORES), rank=1)
    panel.show_nodule(sphere_volume(6.0), NoduleMarker("m2", "N2", (0.0, 0.0, 0.0), 8.0), result, None, "")
    assert panel.cam_note.text() == ""  # analysed: its map is on the way


@pytest.mark.parametrize("shown", [(1280, 800)], indirect=True)
def test_the_same_nodule_shown_again_keeps_its_slices_and_a_moved_one_or_another_study_gets_new_ones(shown):
    _, panel = shown
    volume, marker = sphere_volume(6.0), NoduleMarker("m2", "N2", (0.0, 0.0, 0.0), 8.0)
    panel.show_nodule(volume, marker, None, None, "")
    before = panel.patches["axial"].image.image
    panel.show_nodule(
        volume, marker, None, None, "", "right upper zone"
    )  # its lungs found: cut again (~2 ms)
    assert panel.patches["axial"].image.image is before and "right upper zone" in panel.title.text()
    panel.show_nodule(volume, NoduleMarker("m2", "N2", (1.0, 0.0, 0.0), 8.0), None, None, "")  # moved
    moved = panel.patches["axial"].image.image
    assert moved is not before
    panel.show_nodule(sphere_volume(6.0), NoduleMarker("m2", "N2", (1.0, 0.0, 0.0), 8.0), None, None, "")
    assert panel.patches["axial"].image.image is not moved  # the same marker in another study


@pytest.mark.parametrize("shown", [(1600, 1000)], indirect=True)
def test_clearing_then_showing_a_nodule_moves_nothing_below_its_title(shown):
    """Opening a study clears the panel, then shows its nodule: each change of the texts' heights
    moved every widget below them and repainted the whole panel, twice, while the study was shown."""
    from tests.measurement_factory import measurement

    _window, panel = shown
    panel.show_size(None, measurement(), "", "")
    QApplication.processEvents()
    below = [w for w in panel.findChildren(QWidget) if w.isVisible() and in_panel(w, panel).y() > 40]

    def places():
        QApplication.processEvents()
        return [in_panel(w, panel) for w in below]

    before = places()
    panel.show_nodule(None, None, None, None, "model text")  # the study being left
    assert places() == before
    marker = NoduleMarker("m2", "N2", (0.0, 0.0, 0.0), 12.0)
    result = NoduleResult("m2", 0.4, 0.05, dict(SCORES), rank=1)
    panel.show_nodule(sphere_volume(6.0), marker, result, None, "model text", "right upper zone")
    panel.show_size(None, measurement(), "", "")
    assert places() == before
    panel.show_nodule(sphere_volume(6.0), marker, None, None, "model text", "right upper zone")
    panel.show_size(None, None, "", "")  # a shorter nodule's texts take only their own height
    assert places()[below.index(panel.cam_toggle)].y() < before[below.index(panel.cam_toggle)].y()
