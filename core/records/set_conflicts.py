"""Conflicts on list fields (allergies, problems, active medications).

Lists are add-wins sets, so concurrent changes never lose an item. But two people who
change the *same item* of a list before seeing each other's change can contradict each
other in a way the merge hides: one removes "Penicillin" (entered in error) while the
other records "Penicillin, anaphylaxis" again; both add the same allergy (a duplicate with
maybe different severities); each removes a different one of two duplicate entries (and
the allergy vanishes). Those raise a conflict. Changes to different items of a list do not:
nothing was overridden, and asking a person to "choose" between unrelated items would be
noise in a safety-relevant inbox.

Same item means the same logical key (allergy substance, problem code or description,
medication name; case-insensitive). Two changes are concurrent when neither had seen the
other, which the set history in the document records (``crdt.SetChange.parents``). Only
an explicit resolution settles a conflict: an ordinary later edit of the list does not
(the person making it may never have looked at the conflicting items).

A conflict has one side per workstation whose changes are involved, listing what it added
and removed (who, when); a workstation's own changes are always in causal order, so its net
effect is well defined. Applying a side puts the items in conflict back as that workstation
last left them; everything else on the list is untouched.

Everything here is a pure function of the document, so every replica holding the same
document derives the same conflict.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from core.records import crdt
from core.records.types import LISTS

# Per list field: the element columns naming "the same item", first non-empty wins (each
# list's spec declares them; a list without a key never conflicts).
KEY_COLUMNS: dict[str, tuple[str, ...]] = {name: s.key for name, s in LISTS.items() if s.key}

MERGED = "merged"


def item_key(list_field: str, value: dict[str, crdt.Value]) -> str | None:
    """The logical key of a list item ("penicillin"), or None if it has none."""
    for column in KEY_COLUMNS.get(list_field, ()):
        raw = value.get(column)
        if isinstance(raw, str) and raw.strip():
            return f"{column}:{' '.join(raw.split()).casefold()}"
    return None


@dataclass
class _Side:
    members: list[crdt.SetChange]
    latest: int  # index of its last change
    added: dict[str, tuple[dict[str, crdt.Value], crdt.SetChange]] = field(default_factory=dict)
    removed: dict[str, tuple[dict[str, crdt.Value], crdt.SetChange]] = field(default_factory=dict)


@dataclass(frozen=True)
class SetConflict:
    """What a list conflict shows: the items involved and each side's net changes."""

    items: dict[str, tuple[dict[str, crdt.Value], bool]]  # element id -> (value, on list now)
    sides: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        """The ``candidates`` document stored in the conflicts table."""
        return {
            "kind": "set",
            "items": [
                {"id": eid, "value": value, "present": present}
                for eid, (value, present) in self.items.items()
            ],
            "sides": self.sides,
        }

    def keep_for(self, choice: str) -> set[str] | None:
        """The items kept by a preset (``merged`` or a side id); None if unknown."""
        if choice == MERGED:
            return {eid for eid, (_, present) in self.items.items() if present}
        side = next((s for s in self.sides if s["id"] == choice), None)
        return None if side is None else set(side["keep"])


def _ancestors(changes: list[crdt.SetChange]) -> list[int]:
    """Per change (by index), a bitmask of itself and every change it had seen."""
    index = {c.change_id: i for i, c in enumerate(changes)}
    masks: list[int | None] = [None] * len(changes)
    for start in range(len(changes)):
        stack = [start]
        while stack:  # iterative: a long history must not hit the recursion limit
            i = stack[-1]
            if masks[i] is not None:
                stack.pop()
                continue
            parents = [index[p] for p in changes[i].parents if p in index]
            pending = [p for p in parents if masks[p] is None]
            if pending:
                stack.extend(pending)
                continue
            mask = 1 << i
            for p in parents:
                mask |= masks[p] or 0
            masks[i] = mask
            stack.pop()
    return [m or 0 for m in masks]


Touch = tuple[frozenset[str], frozenset[str]]


@functools.lru_cache(maxsize=32_768)
def _touches(list_field: str, change: crdt.SetChange) -> dict[str, Touch]:
    """Per logical key: (element ids added, element ids removed) by one change.

    Cached: changes are immutable and parsed once (``crdt`` caches them, so the same entry
    is the same object), and a record's whole history is re-read after each change."""
    touched: dict[str, tuple[set[str], set[str]]] = {}
    for part, items in ((0, change.added), (1, change.removed)):
        for eid, value in items.items():
            key = item_key(list_field, value)
            if key is not None:
                touched.setdefault(key, (set(), set()))[part].add(eid)
    return {k: (frozenset(a), frozenset(r)) for k, (a, r) in touched.items()}


Touching = list[list[tuple[int, Touch]]]


def _shared_keys(list_field: str, changes: list[crdt.SetChange]) -> Touching:
    """Per logical key touched by two or more changes: (change index, touch) pairs."""
    by_key: dict[str, list[tuple[int, Touch]]] = {}
    for i, change in enumerate(changes):
        for key, touch in _touches(list_field, change).items():
            by_key.setdefault(key, []).append((i, touch))
    return [touching for touching in by_key.values() if len(touching) > 1]


def _conflicting_pairs(
    changes: list[crdt.SetChange], anc: list[int], shared: Touching
) -> set[tuple[int, int]]:
    resolutions = [anc[i] for i, c in enumerate(changes) if c.resolution]
    pairs: set[tuple[int, int]] = set()
    for touching in shared:
        for n, (i, ti) in enumerate(touching):
            for j, tj in touching[n + 1 :]:
                if i == j or anc[i] >> j & 1 or anc[j] >> i & 1:
                    continue  # one saw the other: a later decision, not a conflict
                if not ti[0] and not tj[0] and ti[1] == tj[1]:
                    continue  # the same removal made twice: they agree
                both = (1 << i) | (1 << j)
                if any(r & both == both for r in resolutions):
                    continue  # a person already settled it
                pairs.add((min(i, j), max(i, j)))
    return pairs


def _sides(changes: list[crdt.SetChange], anc: list[int], involved: set[int]) -> list[_Side]:
    """One side per workstation that made involved changes (a replica's own changes are
    always in causal order), with its net additions and removals; oldest side first."""
    order = sorted(involved, key=lambda i: (anc[i].bit_count(), changes[i].hlc, i))
    groups: dict[str, list[int]] = {}
    for i in order:
        groups.setdefault(changes[i].replica, []).append(i)
    sides: list[_Side] = []
    for members in groups.values():
        side = _Side([changes[i] for i in members], latest=members[-1])
        for change in side.members:
            for eid, value in change.added.items():
                if side.removed.pop(eid, None) is None:  # a restore cancels a removal
                    side.added[eid] = (value, change)
            for eid, value in change.removed.items():
                if side.added.pop(eid, None) is None:  # added then removed: no net change
                    side.removed[eid] = (value, change)
        sides.append(side)
    return sorted(sides, key=lambda s: (s.members[0].hlc, s.members[0].change_id))


def _view(changes: list[crdt.SetChange], anc: list[int], at: int, items: set[str]) -> set[str]:
    """Which of ``items`` were on the list as the author of change ``at`` left it."""
    ever_added = {eid for c in changes for eid in c.added}
    # An item no recorded change added predates the history: it was there from the start.
    present = {eid for eid in items if eid not in ever_added}
    seen = [i for i in range(len(changes)) if anc[at] >> i & 1]
    for i in sorted(seen, key=lambda i: (anc[i].bit_count(), changes[i].hlc, i)):
        present |= items & changes[i].added.keys()
        present -= changes[i].removed.keys()
    return present


def _edit(eid: str, value: dict[str, crdt.Value], change: crdt.SetChange) -> dict[str, Any]:
    return {
        "id": eid,
        "value": value,
        "author": change.author,
        "replica": change.replica,
        "hlc": change.hlc,
        "change": change.change_id,
    }


def analyse(
    list_field: str, changes: list[crdt.SetChange], elements: list[crdt.SetElement]
) -> SetConflict | None:
    """The open conflict on one list field, or None."""
    if list_field not in KEY_COLUMNS or len(changes) < 2:
        return None
    shared = _shared_keys(list_field, changes)
    if not shared:  # the usual case: no item was touched twice, no graph walk needed
        return None
    anc = _ancestors(changes)
    pairs = _conflicting_pairs(changes, anc, shared)
    if not pairs:
        return None
    involved = {i for pair in pairs for i in pair}
    sides = _sides(changes, anc, involved)
    present = {e.element_id: e.value for e in elements}
    items: dict[str, tuple[dict[str, crdt.Value], bool]] = {}
    for i in involved:
        for eid, value in (*changes[i].added.items(), *changes[i].removed.items()):
            items[eid] = (present.get(eid, value), eid in present)
    side_docs: list[dict[str, Any]] = []
    for side in sides:
        # Applying a side: the items in conflict as that workstation last left them.
        keep = sorted(_view(changes, anc, side.latest, set(items)))
        side_docs.append(
            {
                "id": side.members[0].replica,
                "added": [_edit(e, v, c) for e, (v, c) in side.added.items()],
                "removed": [_edit(e, v, c) for e, (v, c) in side.removed.items()],
                "keep": keep,
            }
        )
    ordered = dict(sorted(items.items()))
    return SetConflict(ordered, side_docs)
