"""Nodule pairing across studies: registered distance, size-scaled gate, one-to-one, reader overrides."""

import pytest

from core.followup.matching import Candidate, Overrides, gate_mm, match, nearest


def shift(dx: float, dy: float = 0.0, dz: float = 0.0):
    return lambda p: (p[0] + dx, p[1] + dy, p[2] + dz)


def test_pairs_follow_the_registration_not_the_raw_coordinates():
    # the patient lies 40 mm further along x in the current study; the transform says so
    priors = [Candidate("a", (0, 0, 0), 6), Candidate("b", (0, 50, 0), 6)]
    currents = [Candidate("1", (40, 0, 0), 6), Candidate("2", (41, 50, 1), 6)]
    result = match(priors, currents, shift(40))
    assert {(p.prior_id, p.current_id) for p in result.pairs} == {("a", "1"), ("b", "2")}
    assert result.new == () and result.resolved == ()
    assert match(priors, currents).pairs == ()  # without the registration: all beyond the gate


def test_crossing_candidates_pair_as_a_whole_where_greedy_nearest_first_fails():
    # prior a at x=0 and b at x=10; registration is off by 6 mm, so current a' is at 6 and b' at 16.
    # Nearest-first would pair b with a' (4 mm) and leave a and b' 16 mm apart: beyond the gate.
    priors = [Candidate("a", (0, 0, 0), 4), Candidate("b", (10, 0, 0), 4)]
    currents = [Candidate("a'", (6, 0, 0), 4), Candidate("b'", (16, 0, 0), 4)]
    result = match(priors, currents)
    assert {(p.prior_id, p.current_id) for p in result.pairs} == {("a", "a'"), ("b", "b'")}
    assert [p.distance_mm for p in result.pairs] == pytest.approx([6.0, 6.0])


def test_the_gate_grows_with_size():
    assert gate_mm(Candidate("p", (0, 0, 0), 4), Candidate("c", (0, 0, 0), 4)) == pytest.approx(8.0)
    assert gate_mm(Candidate("p", (0, 0, 0), 20), Candidate("c", (0, 0, 0), 4)) == pytest.approx(20.0)
    # 12 mm apart: too far for two 4 mm nodules (gate 8), close enough for two 20 mm ones (gate 20)
    small = match([Candidate("p", (0, 0, 0), 4)], [Candidate("c", (12, 0, 0), 4)])
    assert small.pairs == () and small.new == ("c",) and small.resolved == ("p",)
    large = match([Candidate("p", (0, 0, 0), 20)], [Candidate("c", (12, 0, 0), 20)])
    assert [(p.prior_id, p.current_id) for p in large.pairs] == [("p", "c")]


def test_new_and_resolved_nodules_are_the_unpaired_ones():
    priors = [Candidate("kept", (0, 0, 0), 6), Candidate("gone", (100, 0, 0), 6)]
    currents = [Candidate("kept-now", (1, 0, 0), 7), Candidate("fresh", (0, 100, 0), 5)]
    result = match(priors, currents)
    assert [(p.prior_id, p.current_id) for p in result.pairs] == [("kept", "kept-now")]
    assert result.new == ("fresh",) and result.resolved == ("gone",)
    assert match([], currents).new == ("kept-now", "fresh")
    assert match(priors, []).resolved == ("kept", "gone")


def test_one_to_one_when_two_current_nodules_compete_for_one_prior():
    result = match(
        [Candidate("p", (0, 0, 0), 6)], [Candidate("c1", (2, 0, 0), 6), Candidate("c2", (1, 0, 0), 6)]
    )
    assert [(p.prior_id, p.current_id) for p in result.pairs] == [("p", "c2")]
    assert result.new == ("c1",)


def test_reader_overrides_win_over_the_assignment():
    priors = [Candidate("a", (0, 0, 0), 6), Candidate("b", (30, 0, 0), 6)]
    currents = [Candidate("1", (1, 0, 0), 6), Candidate("2", (31, 0, 0), 6)]
    # a manual pair beyond the gate is kept and marked manual; the rest is still assigned
    forced = match(priors, currents, overrides=Overrides(pairs=(("a", "2"),)))
    pairs = {(p.prior_id, p.current_id): p for p in forced.pairs}
    assert set(pairs) == {("a", "2")} and pairs[("a", "2")].manual
    assert pairs[("a", "2")].distance_mm == pytest.approx(31.0)
    assert forced.new == ("1",) and forced.resolved == ("b",)
    # an unpaired couple never pairs again automatically
    apart = match(priors, currents, overrides=Overrides(unpaired=(("a", "1"),)))
    assert {(p.prior_id, p.current_id) for p in apart.pairs} == {("b", "2")}
    assert apart.new == ("1",) and apart.resolved == ("a",)


def test_overrides_round_trip_and_bad_ones_say_why():
    overrides = Overrides(pairs=(("a", "1"),), unpaired=(("b", "2"),))
    assert Overrides.from_dict(overrides.to_dict()) == overrides
    for bad in ({"pairs": [["only-one"]]}, {"pairs": ["ab"]}, {"unpaired": "a"}, ["a", "1"]):
        with pytest.raises(ValueError, match="malformed"):
            Overrides.from_dict(bad)
    priors, currents = (
        [Candidate("a", (0, 0, 0), 6)],
        [Candidate("1", (0, 0, 0), 6), Candidate("2", (0, 0, 0), 6)],
    )
    with pytest.raises(ValueError, match="not in the studies"):
        match(priors, currents, overrides=Overrides(pairs=(("zz", "1"),)))
    with pytest.raises(ValueError, match="paired twice"):
        match(priors, currents, overrides=Overrides(pairs=(("a", "1"), ("a", "2"))))


def test_bad_candidates_and_transforms_say_why():
    with pytest.raises(ValueError, match="two prior nodules have the id a"):
        match([Candidate("a", (0, 0, 0), 6), Candidate("a", (5, 0, 0), 6)], [])
    with pytest.raises(ValueError, match="centre"):
        Candidate("x", (0, float("nan"), 0), 6)
    with pytest.raises(ValueError, match="diameter"):
        Candidate("x", (0, 0, 0), 0)
    with pytest.raises(ValueError, match="no finite point"):
        match([Candidate("a", (0, 0, 0), 6)], [], lambda p: (float("inf"), 0, 0))


def test_the_readers_pair_and_unpair_make_the_next_overrides():
    priors = [Candidate("a", (0, 0, 0), 6), Candidate("b", (30, 0, 0), 6)]
    currents = [Candidate("1", (1, 0, 0), 6), Candidate("2", (31, 0, 0), 6)]
    # unpairing an automatic pair: both sides unpaired, the other pair kept
    apart = Overrides().unpair("a", "1")
    result = match(priors, currents, overrides=apart)
    assert {(p.prior_id, p.current_id) for p in result.pairs} == {("b", "2")}
    assert result.new == ("1",) and result.resolved == ("a",)
    # pairing the unpaired current nodule with the far prior: a's old partner left, b's too
    moved = apart.pair("b", "1")
    assert moved == Overrides(pairs=(("b", "1"),), unpaired=(("a", "1"),))
    result = match(priors, currents, overrides=moved)
    assert {(p.prior_id, p.current_id, p.manual) for p in result.pairs} == {("b", "1", True)}
    assert result.new == ("2",) and result.resolved == ("a",)  # a and 2 are 31 mm apart
    # pairing again replaces the hand-made pair of either nodule; pairing an unpaired couple lifts it
    again = moved.pair("a", "1")
    assert again == Overrides(pairs=(("a", "1"),), unpaired=())
    # unpairing a hand-made pair takes it back and keeps the two apart
    assert again.unpair("a", "1") == Overrides(pairs=(), unpaired=(("a", "1"),))
    assert again.unpair("a", "1").unpair("a", "1") == Overrides(unpaired=(("a", "1"),))  # once


def test_nearest_lists_prior_nodules_by_registered_distance():
    priors = {"far": (40.0, 0.0, 0.0), "near": (10.0, 0.0, 0.0)}

    def shift(p):  # the registration: 10 mm to the right
        return (p[0] - 10.0, p[1], p[2])

    assert nearest(priors, (0.0, 0.0, 0.0), shift) == [("near", 0.0), ("far", 30.0)]
    assert nearest({}, (0.0, 0.0, 0.0), shift) == []
