"""Who recorded each item of a patient's problem or medication list, and when; who ended it
(a problem resolved, a medication stopped) and whether a "stopped" medication was in fact
changed to another dose; who prescribed a medication, when the clinician starting it said
they did.

No column holds any of it (that would be a schema change): it is read from the list's
history in the patient's record document (``crdt`` set history), where every change names
its author and time. An item is never edited in place (``chart_lists``): resolving or
stopping replaces it by a copy, so the copy's "recorded" is the first item of its line's,
and its "ended" the change that added the copy. A dose change removes the old item and adds
its stopped copy and the new dose in one change (``Medications.change_dose``): the copy is
the old dose, changed (not stopped), and the new dose is recorded by that change.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

from core.records import crdt
from core.records.merged import Reader
from core.records.rows import hlc_time
from core.records.types import MEDICATIONS, PROBLEMS
from core.store.state_codec import unpack_state

# How an item of each list ends, by the list's field: its status, and the word its own
# fields (``resolved_at``, ``stopped_by``) and its history line (``Stopped ...``) use.
ENDED_AS = {PROBLEMS.name: "resolved", MEDICATIONS.name: "stopped"}
ENDED = frozenset(ENDED_AS.values())


@dataclass(frozen=True)
class ItemHistory:
    """What the list's history says of one item (None: it does not say)."""

    recorded_at: str | None = None  # UTC, ISO-8601: when the item (its line) was recorded
    recorded_by: str | None = None  # user name
    ended_at: str | None = None  # when it was resolved or stopped (or its dose changed)
    ended_by: str | None = None
    prescribed_by: str | None = None  # the clinician who started it, saying they prescribed it
    # An old dose: the item id of the dose it was changed to (its stopped copy, if since
    # stopped); a new dose: the item id of the old dose it replaced.
    changed_to: str | None = None
    changed_from: str | None = None


def dose_changes(history: Iterable[crdt.SetChange]) -> dict[str, str]:
    """The stopped old dose's item id by the new dose's, for every dose change the history
    holds: the one change that removed an item and added its stopped copy and one active
    item (``Medications.change_dose``; a stop adds one item, a start removes none)."""
    changes: dict[str, str] = {}
    for c in history:
        if c.resolution or len(c.removed) != 1 or len(c.added) != 2:
            continue
        stopped = [i for i, v in c.added.items() if v.get("status") == "stopped"]
        started = [i for i, v in c.added.items() if v.get("status") != "stopped"]
        if len(stopped) == 1 and len(started) == 1:
            changes[started[0]] = stopped[0]
    return changes


def _successors(history: list[crdt.SetChange]) -> dict[str, str]:
    """The item each replacing copy continues (copy id -> the item it replaced): a stop's,
    a resolution's or an edit's one added item, a dose change's stopped copy."""
    continues: dict[str, str] = {}
    new_doses = dose_changes(history)
    for c in history:
        if c.resolution or len(c.removed) != 1:
            continue
        [old] = c.removed
        kept = [i for i in c.added if i not in new_doses]
        if len(kept) == 1:
            continues[kept[0]] = old
    return continues


def item_histories(
    history: list[crdt.SetChange], elements: Iterable[crdt.SetElement]
) -> dict[str, ItemHistory]:
    """Each element's ``ItemHistory``, from its list's ``history`` (oldest first). An
    element no change added (a document the history does not cover) is recorded as its
    own stamp says."""
    added_by: dict[str, crdt.SetChange] = {}
    for c in history:
        if not c.resolution:  # a resolution puts an item back: its line began before
            for item_id in c.added:
                added_by.setdefault(item_id, c)
    continues = _successors(history)
    following = {old: copy for copy, old in continues.items()}
    new_doses = dose_changes(history)
    changed_to = {old: new for new, old in new_doses.items()}

    def latest(item_id: str) -> str:
        """The copy an item's line ends in now (a new dose since stopped: its copy)."""
        seen = {item_id}
        while item_id in following and following[item_id] not in seen:
            item_id = following[item_id]
            seen.add(item_id)
        return item_id

    found: dict[str, ItemHistory] = {}
    for element in elements:
        first, seen = element.element_id, {element.element_id}
        while first in continues and continues[first] not in seen:
            first = continues[first]
            seen.add(first)
        origin = added_by.get(first)
        own = added_by.get(element.element_id)
        ended = (
            own
            if own is not None
            and element.value.get("status") in ENDED
            and first != element.element_id
            else None
        )
        found[element.element_id] = ItemHistory(
            recorded_at=hlc_time(origin.hlc if origin else element.hlc),
            recorded_by=origin.author if origin else element.author,
            ended_at=hlc_time(ended.hlc) if ended else None,
            ended_by=ended.author if ended else None,
            prescribed_by=origin.author if origin is not None and origin.prescribed else None,
            changed_to=(
                latest(changed_to[element.element_id]) if element.element_id in changed_to else None
            ),
            changed_from=new_doses.get(first),
        )
    return found


def list_histories(db: Reader, field: str, patient_ids: Iterable[str]) -> dict[str, ItemHistory]:
    """``item_histories`` of the ``field`` list ("problems", "medications") of each of
    ``patient_ids`` (a merged chart's registrations), by item id."""
    found: dict[str, ItemHistory] = {}
    for patient_id in sorted(set(patient_ids)):
        rows = db.query("SELECT state FROM record_states WHERE id = ?", (patient_id,))
        if not rows:
            continue
        doc = crdt.load(unpack_state(rows[0][0]), 1)
        history = crdt.all_history(doc).get(field, [])
        found |= item_histories(history, crdt.elements(doc, field))
    return found


class _Item(Protocol):
    """A list item as the chart shows it (``Problem``, ``Medication``): a dataclass."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def id(self) -> str: ...

    @property
    def patient_id(self) -> str: ...


_ItemT = TypeVar("_ItemT", bound=_Item)


def with_history(db: Reader, field: str, items: list[_ItemT]) -> list[_ItemT]:
    """``items`` of the ``field`` list with what its history says of each (``ItemHistory``):
    who recorded it and when; who ended it and when, as the item's own words say it
    (``ENDED_AS``: ``resolved_at``/``resolved_by``, ``stopped_at``/``stopped_by``); and
    whichever of the other attributes (``prescribed_by``, ``changed_to``...) it has."""
    found = list_histories(db, field, {item.patient_id for item in items})
    ended = ENDED_AS[field]
    stamped = []
    for item in items:
        said = dataclasses.asdict(found.get(item.id, ItemHistory()))
        renamed = {
            f"{ended}_{name.removeprefix('ended_')}" if name.startswith("ended_") else name: value
            for name, value in said.items()
        }
        has = item.__dataclass_fields__
        stamped.append(dataclasses.replace(item, **{k: v for k, v in renamed.items() if k in has}))
    return stamped


def ended_line(
    field: str, date: str | None, at: str | None, by: str | None, names: Mapping[str, str]
) -> str:
    """``Resolved 2027-01-10 (recorded 2027-01-12 08:30 by Dr M Chen)``: an item of the
    ``field`` list ended (``ENDED_AS``) on ``date`` and, when the history says (``at``),
    by whom that was recorded when (``when_by``)."""
    said = when_by(at, by, names) if at else ""
    return f"{ENDED_AS[field].capitalize()} {date or '(date not recorded)'}" + (
        f" (recorded {said})" if said else ""
    )


def when_by(at: str | None, by: str | None, names: Mapping[str, str]) -> str:
    """``2026-12-04 09:12 by Dr Amara Okafor``: a stamp (UTC) in this computer's local
    time, to the minute, and the person by full name (``names``; else the user name)."""
    when = ""
    if at:
        try:
            when = dt.datetime.fromisoformat(at).astimezone().strftime("%Y-%m-%d %H:%M")
        except ValueError:
            when = at
    who = f"by {names.get(by, by)}" if by else "by someone unknown"
    return f"{when} {who}".strip()


def people(items: Iterable[object]) -> set[str]:
    """The user names an item's history names (to look their full names up once)."""
    found: set[str] = set()
    for item in items:
        for attribute in ("recorded_by", *(f"{e}_by" for e in ENDED_AS.values()), "prescribed_by"):
            name = getattr(item, attribute, None)
            if name:
                found.add(name)
    return found
