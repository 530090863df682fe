"""Clinic time: a workstation whose clock is known (from its last server session) to be off
stamps its changes with the server's time, but only while that measurement still holds."""

from __future__ import annotations

from core.store import clinic_time
from core.store.clinic_time import Offset, correction_ms

HOUR = 3_600_000
T = 1_800_000_000_000  # the workstation's clock reading when the offset was measured


def test_a_fresh_offset_corrects_the_clock() -> None:
    assert correction_ms(Offset(2 * HOUR, T), T + HOUR) == 2 * HOUR
    assert correction_ms(Offset(-2 * HOUR, T), T) == -2 * HOUR


def test_an_offset_under_two_minutes_is_left_to_the_hybrid_logical_clock() -> None:
    assert correction_ms(Offset(clinic_time.CORRECT_FROM_MS - 1, T), T) == 0


def test_an_offset_no_longer_holds_once_the_clock_was_set_back_or_it_grew_old() -> None:
    # Someone set the clock right (or a flat battery reset it at boot): it reads earlier
    # than at the measurement, so the offset measured then says nothing about it now.
    assert correction_ms(Offset(2 * HOUR, T), T - 2 * HOUR) == 0
    assert correction_ms(Offset(2 * HOUR, T), T - 30_000) == 2 * HOUR  # NTP-sized: holds
    assert correction_ms(Offset(2 * HOUR, T), T + clinic_time.MAX_AGE_MS + 1) == 0
    assert correction_ms(None, T) == 0


def test_a_kept_offset_this_version_cannot_read_is_ignored() -> None:
    for value in ("not json", '{"offset_ms": "2h", "measured_at_ms": 1}', "[]", "{}"):
        assert clinic_time.parse(value) is None
    assert clinic_time.corrected(T, "not json") == T
    assert clinic_time.parse('{"offset_ms": 5, "measured_at_ms": 7}') == Offset(5, 7)
