"""One page per nodule of the printable report: the key axial image, the malignancy with its
uncertainty, the Lung-RADS category, the axial/coronal/sagittal views (and the Grad-CAM panel), and the
attribute chart (``ReportCanvas.attribute_chart``)."""

from __future__ import annotations

import numpy as np

from core.nodule.meanings import meaning
from core.report import images
from core.report.content import NoduleReport
from core.report.pdf_parts import CONTENT_W, MARGIN, MUTED, TEXT, ReportCanvas
from core.volume import CTVolume

EXPLANATION_CAPTION = "Grad-CAM (colour): where the model looked, not why"


class NodulePage(ReportCanvas):
    """One nodule's page: ``nodule_page`` draws it from its blocks."""

    def nodule_page(self, volume: CTVolume, nodule: NoduleReport, explanation: np.ndarray | None) -> None:
        report = self.report
        marker, result = nodule.marker, nodule.result
        analysed = sum(1 for n in report.nodules if n.result is not None)
        self.add_page()
        y = 14.0
        self.font(15, "B")
        self.put(MARGIN, y, 80, 8, f"Nodule {marker.name or marker.id}")
        self.font(10)
        rank = f"rank {nodule.rank} of {analysed} by malignancy" if result is not None else "not analysed"
        self.put(MARGIN + 80, y + 1, CONTENT_W - 80, 7, rank, align="R")
        self.font(9)
        centre = ", ".join(f"{v:.1f}" for v in marker.centre_mm)
        where = nodule.location or f"slice {nodule.slice_number}"
        self.put(
            MARGIN, y + 8, CONTENT_W, 5,
            f"{where}   |   diameter {marker.diameter_mm:.1f} mm (marker)   |   centre ({centre}) mm LPS",
        )  # fmt: skip
        below = self.para(MARGIN, y + 12.6, CONTENT_W, measurement_line(nodule), 8, max_lines=2)
        if marker.notes:
            self.set_text_color(*MUTED)
            self.font(9)
            self.put(MARGIN, below + 0.3, CONTENT_W, 4, f"Notes: {marker.notes}")
            self.set_text_color(*TEXT)
            below += 4.5
        top = max(y + 17.5, below + 1.5)

        # key image, left
        side = 92.0
        self.picture(images.key_image(volume, nodule), MARGIN, top, side, side)
        self.orientation_letters(volume, "axial", MARGIN, top, side)
        self.scale_bar(
            MARGIN, top + side + 1.2, side, images.KEY_CROP_MM, f"axial slice {nodule.slice_number}"
        )

        # malignancy and Lung-RADS, right
        x, w = MARGIN + side + 6, CONTENT_W - side - 6
        yy = self.malignancy_block(nodule, x, top, w)
        self.lung_rads_block(nodule, x, yy + 3, w, top + side + 7.5)

        # triptych (and Grad-CAM)
        self.views_row(volume, nodule, explanation, top + side + 9)

    def malignancy_block(self, nodule: NoduleReport, x: float, y: float, w: float) -> float:
        result, reader = nodule.result, nodule.reader
        self.font(10, "B")
        self.put(x, y, w, 5, "Malignancy (model)")
        y += 5.5
        if result is None:
            y = self.para(x, y, w, "Not analysed: the model has not scored this nodule.", 9)
        elif result.warnings:  # a warning instead of a confident score
            self.font(14, "B")
            self.put(x, y, w, 8, "Out of distribution")
            y = self.para(x, y + 8.5, w, "; ".join(result.warnings), 8.5)
            y = self.para(x, y + 1, w, f"The model's score ({result.score_text}) is not reliable here.", 8)
        else:
            p, u = result.malignancy, result.uncertainty
            self.font(20, "B")
            text = f"{100 * p:.0f}%"
            self.put(x, y, self.get_string_width(text) + 3, 9, text)
            offset = self.get_string_width(text) + 3
            self.font(10)
            low, high = result.interval or (p, p)
            spread = f"interval {100 * low:.0f}-{100 * high:.0f}%, ± {100 * u:.1f}%"
            self.put(x + offset, y + 1.6, w - offset, 7, spread)
            y += 10
            self.gauge(x, y, w - 4, p, u)
            y += 8.5
            note = (
                "Probability of malignancy (calibrated); the interval is its range over eight orientations "
                "of the nodule (not a confidence interval with a guaranteed coverage); ± is the spread over "
                "its slices and their mirror images."
            )
            if result.indeterminate:
                note += " Indeterminate: the interval crosses the 10 % / 70 % decision band."
            y = self.para(x, y, w, note, 7)
        if reader is not None and reader.malignancy is not None:
            y = self.para(
                x, y + 1.2, w,
                f"Reader-confirmed malignancy: {reader.malignancy:g} of 5 "
                f"({meaning('malignancy', reader.malignancy)})" + _by(reader),
                8.5, "B",
            )  # fmt: skip
        return y

    def lung_rads_block(self, nodule: NoduleReport, x: float, y: float, w: float, bottom: float) -> None:
        rads, reader = nodule.lung_rads, nodule.reader
        self.font(10, "B")
        measured = rads is not None and rads.inputs.get("size_basis") == "measured"
        self.put(x, y, w, 5, f"Lung-RADS v2022 ({'measured sizes' if measured else 'estimate'})")
        y += 6
        if rads is None:
            why = "the model has not scored this nodule" if nodule.result is None else "ratings missing"
            self.para(x, y, w, f"Not assessed: {why}.", 9)
            return
        box = 17.0
        self.set_line_width(0.4)
        self.rect(x, y, box, 13, style="D")
        self.font(16, "B")
        self.put(x, y + 1, box, 11, rads.category, align="C")
        self.para(x + box + 2.5, y, w - box - 2.5, f"Follow-up: {rads.follow_up}", 9, "B", max_lines=3)
        y += 14.5
        used = [
            name
            for name in ("texture", "calcification", "spiculation")
            if reader and name in reader.attributes
        ]
        rule = f"Rule: {rads.rule}"
        y = self.para(x, y, w, rule, 7.5, max_lines=7)
        if used:
            y = self.para(
                x, y + 0.8, w, f"Reader-confirmed {', '.join(used)} used instead of the model's.", 7.5, "B"
            )
        self.set_text_color(*MUTED)
        lines = max(1, int((bottom - y - 0.8) / (6.5 * 0.42)))
        self.para(x, y + 0.8, w, rads.basis, 6.5, max_lines=lines)
        self.set_text_color(*TEXT)

    def views_row(
        self, volume: CTVolume, nodule: NoduleReport, explanation: np.ndarray | None, y: float
    ) -> None:
        """The triptych (and the Grad-CAM panel) with titles and orientation letters, then the chart."""
        panels = 3 + (explanation is not None)
        gap_mm = 3.0
        side = (CONTENT_W - gap_mm * (panels - 1)) / panels
        if explanation is None:
            side = min(side, 57.0)  # leaves room for the chart
        size, gap_px = images.TRIPTYCH_SIZE_PX, images.TRIPTYCH_GAP_PX
        strip = images.triptych(volume, nodule, size_px=size, gap_px=gap_px)
        titles = {
            "axial": f"Axial (slice {nodule.slice_number})",
            "coronal": "Coronal",
            "sagittal": "Sagittal",
        }
        self.font(8.5, "B")
        for i, view in enumerate(images.TRIPTYCH_VIEWS):
            px = MARGIN + i * (side + gap_mm)
            self.put(px, y, side, 4.5, titles[view])
            panel = strip[:, i * (size + gap_px) : i * (size + gap_px) + size]
            self.picture(panel, px, y + 4.8, side, side)
            self.orientation_letters(volume, view, px, y + 4.8, side)
        if explanation is not None:
            px = MARGIN + 3 * (side + gap_mm)
            self.put(px, y, side, 4.5, "Grad-CAM (colour)")
            height = side * explanation.shape[0] / explanation.shape[1]
            self.picture(explanation, px, y + 4.8, side, min(height, side))
        y_cap = y + 4.8 + side + 1.2
        self.scale_bar(
            MARGIN, y_cap, 3 * side + 2 * gap_mm, images.TRIPTYCH_CROP_MM, "through the marker centre"
        )
        if explanation is not None:
            self.set_text_color(*MUTED)
            self.para(
                MARGIN + 3 * (side + gap_mm),
                y + 4.8 + side + 1.0,
                side,
                EXPLANATION_CAPTION,
                6.5,
                max_lines=3,
            )
            self.set_text_color(*TEXT)
        self.attribute_chart(nodule, y_cap + 6)


def measurement_line(nodule: NoduleReport) -> str:
    """The nodule's measured numbers in one line, or why there are none."""
    m = nodule.measurement
    if m is None:
        why = nodule.measurement_error or "no 3D mask"
        return f"Not measured: {why}; sizes below are the marker's."
    solid = f", solid part {m.solid_diameter_mm:.1f} mm" if m.solid_diameter_mm is not None else ""
    pleura = "touches the pleura" if m.touches_pleura else "free of the pleura"
    mask = f"{m.method}, reader-edited" if m.edited else m.method
    axes = f"long {m.long_axis_mm:.1f} × short {m.short_axis_mm:.1f} mm ({m.plane} slice {m.slice_index + 1})"
    return (
        f"Measured: volume {m.volume_mm3:.0f} mm³ | {axes}, mean {m.mean_diameter_mm:.1f} mm | "
        f"{m.texture}{solid} | {pleura} | mask: {mask}"
    )


def _by(reader) -> str:
    who = f" by {reader.reader}" if reader.reader else ""
    when = f" on {reader.confirmed_at[:10]}" if reader.confirmed_at else ""
    return who + when
