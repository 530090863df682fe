"""A measured time a person types on this workstation is not ahead of its clock.

A time typed more than ``FUTURE_SLACK`` ahead of this workstation's clock is refused: the
default "now" comes from the same clock, so a time ahead of it is a typo (23:59 for 21:59,
2027 for 2026), not a clock that is wrong. The few minutes allow for a watch a little ahead.

Checked wherever a person writes a vital's time here (``VitalSigns.record``: the form and
``vitals add --at``; a reading's time changed later or typed to settle a conflict: the
``at_entry`` check of its field in ``core/records/types.py``), never at remote apply:
another workstation's clock may run ahead of this one (README, "Clocks").
"""

from __future__ import annotations

import datetime as dt

from core.records.errors import ValidationError
from core.store import clinic_time

FUTURE_SLACK = dt.timedelta(minutes=5)


def this_computer_now() -> dt.datetime:
    """This computer's clock as it says (local time, naive, as a typed time is read)."""
    return dt.datetime.fromtimestamp(clinic_time.wall_ms() / 1000)


def not_ahead(field: str, when: str, now: dt.datetime | None = None) -> None:
    """Refuse ``when`` (a checked local time, ``2026-12-06T09:30``) if it is more than
    ``FUTURE_SLACK`` ahead of ``now`` (default: this computer's clock), naming the clock's
    time: "2026-12-06 23:59 is in the future: this computer's clock says 2026-12-06 21:14"."""
    now = now or this_computer_now()
    if dt.datetime.fromisoformat(when) > now + FUTURE_SLACK:
        raise ValidationError(
            field,
            f"{when.replace('T', ' ')} is in the future: this computer's clock says "
            f"{now:%Y-%m-%d %H:%M}",
        )
