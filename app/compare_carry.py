"""Carrying a prior nodule to the current study: for a prior nodule left unpaired ("resolved / not
found"), the pairing menu, and a right-click on it in the prior view, offer "Carry N to this study".
Its centre is carried through the saved registration (``core.followup.compare.carried``: refined, else
the registered point) in the background; the current study then centres on it and a proposed marker
(the prior's diameter, named "N? (proposed)") is shown there as the marker store's preview, with
Confirm / Discard beside the status line. Confirm adds it as a marker of the current study paired with
the prior nodule (compared again with the saved registration), one undoable step saved with the
session; Discard removes the proposal and changes nothing. A failed or cancelled job leaves the reading
as it was.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

from PySide6.QtGui import QCursor, QUndoCommand
from PySide6.QtWidgets import QHBoxLayout, QLabel, QMenu, QPushButton, QWidget

from app.compare_pairing import NO_PRIOR
from app.compare_prior import guarded
from core.followup.compare import FollowUp, carried


class Carrying:
    """A ``MainWindow`` mixin: carry a resolved prior nodule to the current study, proposed then
    confirmed or discarded."""

    proposal = None  # what Confirm does (a callable), None without a proposal
    carry_bar: QWidget | None = None

    def add_carry_actions(self, menu, reading: FollowUp, prior) -> None:
        """The action "Carry N to this study" for each prior nodule of ``reading`` left unpaired."""
        for m in prior.markers:
            if m.id in reading.resolved:
                menu.addAction(f"Carry the prior's {m.name} to this study", partial(self.carry, m.id))

    def prior_menu(self, prior_voxel) -> QMenu | None:
        """The menu of the prior nodule drawn at ``prior_voxel`` in the prior view: its carry action
        when it is left unpaired; None elsewhere."""
        hit = self.prior_view.markers.hit(prior_voxel) if self.prior_view.prior is not None else None
        try:
            reading = FollowUp.from_dict(self.follow_up) if hit and self.follow_up else None
        except ValueError:
            reading = None
        if reading is None or hit[0] not in reading.resolved:
            return None
        menu = QMenu(self)
        prior = self.prior_view.prior
        self.add_carry_actions(menu, replace(reading, resolved=(hit[0],)), prior)
        return menu

    def _prior_menu(self, prior_voxel) -> None:
        menu = self.prior_menu(prior_voxel)
        if menu is not None:
            menu.exec(QCursor.pos())

    def carry(self, prior_id: str) -> None:
        """Propose the prior nodule ``prior_id`` in the current study, where the registration puts it."""
        prior, volume, before = self.prior_view.prior, self.volume, dict(self.follow_up)
        if prior is None or volume is None or not before:
            self.statusBar().showMessage(NO_PRIOR, 8000)
            return
        marker = next((m for m in prior.markers if m.id == prior_id), None)
        try:
            registration = FollowUp.from_dict(before).registration
        except ValueError as exc:
            self.statusBar().showMessage(f"Not carried: {exc}", 8000)
            return
        if marker is None:
            return

        def job(progress, cancelled):
            return carried(prior.volume, volume, marker, registration)

        def done(result) -> None:
            if self.volume is not volume or self.follow_up != before:
                self._idle("Not carried: the reading changed meanwhile")
                return
            if isinstance(result, str):
                self._idle(f"Not carried: {result}")
                return
            fresh = self.markers.markers.new_marker(result, marker.diameter_mm)
            proposed = replace(fresh, name=f"{marker.name}? (proposed)")
            self.discard_carry()  # one proposal at a time
            self.proposal = partial(self._confirm_carried, prior_id, fresh)
            self.markers.set_preview(proposed)
            self.workspace.centre_on_mm(result)
            self._carry_bar(f"The prior's {marker.name} carried here: confirm as {fresh.name}?").show()
            self._idle(f"The prior's {marker.name} proposed at its registered place: Confirm or Discard")

        self.statusBar().showMessage("Carrying the prior nodule through the registration...")
        self._run(guarded(job), done, alongside=True)

    def discard_carry(self) -> None:
        """The proposal gone (in either study); nothing else changes."""
        self.proposal = None
        if self.markers.preview is not None:
            self.markers.set_preview(None)
        if self.prior_view.proposed is not None:
            self.prior_view.proposed = None
            self.prior_view.draw_markers()
        if self.carry_bar is not None:
            self.carry_bar.hide()

    def confirm_carry(self) -> None:
        """What the proposal shown proposes, done (compared again in the background)."""
        confirm = self.proposal
        self.discard_carry()
        if confirm is not None:
            confirm()

    def _confirm_carried(self, prior_id: str, marker) -> None:
        """The proposed marker added to the current study, paired with its prior nodule: one step."""

        def finish(prior, prior_markers, before, result) -> None:
            after = {**before, **result.to_dict()}
            self.markers.undo.push(_Carried(self, marker, before, after))
            self._idle(f"Carried: {marker.name} added, paired with the prior's nodule; compared again")

        self.compare_again(
            lambda overrides: overrides.pair(prior_id, marker.id),
            finish,
            failed="Not carried",
            busy="Adding the carried nodule and comparing again...",
            added_current=marker,
        )

    def _carry_bar(self, text: str) -> QWidget:
        if self.carry_bar is None:
            bar = QWidget()
            layout = QHBoxLayout(bar)
            layout.setContentsMargins(0, 0, 0, 0)
            bar.label = QLabel()
            confirm, discard = QPushButton("Confirm"), QPushButton("Discard")
            confirm.clicked.connect(self.confirm_carry)
            discard.clicked.connect(self.discard_carry)
            for widget in (bar.label, confirm, discard):
                layout.addWidget(widget)
            bar.confirm, bar.discard = confirm, discard
            self.statusBar().addPermanentWidget(bar)
            self.carry_bar = bar
        self.carry_bar.label.setText(text)
        return self.carry_bar


class _Carried(QUndoCommand):
    """The carried marker added and the reading that pairs it, or both taken back."""

    def __init__(self, window, marker, before: dict, after: dict) -> None:
        super().__init__(f"carry {marker.name} from the prior")
        self.window, self.marker, self.before, self.after = window, marker, before, after

    def redo(self) -> None:
        store = self.window.markers
        store.markers.add(self.marker)
        store.changed.emit()
        self.window.set_reading(self.after)
        store.select(self.marker.id)

    def undo(self) -> None:
        store = self.window.markers
        store.markers.remove(self.marker.id)
        if store.selected == self.marker.id:
            store.select("")
        store.changed.emit()
        self.window.set_reading(self.before)
