"""An edit's base: what each field held when the person began, so that saving never
silently replaces what someone else saved since.

A form that edits an existing record is opened on the record's values (its base) and saved
later, sometimes much later (a form kept as a draft across a sign-out). Meanwhile a
colleague, the command line or a sync from another workstation may have saved another
value of a field the person changed. The register sees nothing wrong: this workstation's
write comes causally after the other one (it has seen it), so it supersedes it, and the
other value would be gone without anyone having chosen that. The CRDT cannot know what
the person saw; the form can. So a save names its base (``based_on``), and the write
refuses (``ChangedSinceOpened``, nothing written) when a field it changes no longer holds
its base: the person, still at the form, chooses which value stays.

A field whose base is not known (missing from ``based_on``: a draft kept before forms
remembered it) is treated as changed whenever its current value is not the one being
saved: without a base nobody can say it was not.

Fields the save does not change are never compared (nor written): a colleague's change
of another field simply stays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from core.records import crdt
from core.records.crdt import RecordDoc, Value
from core.records.errors import RecordError
from core.records.rows import hlc_time
from core.records.spec import RecordType


@dataclass(frozen=True)
class ChangedField:
    """A field someone else changed since the edit began: what it held then (``base``,
    when ``base_known``), what it holds now (``current``), and who wrote that and when."""

    field: str
    label: str  # as forms name it: "Phone"
    base: Value
    base_known: bool
    current: Value
    author: str  # user name of who wrote the current value ("" if unknown)
    replica: str  # the workstation it was written on
    time: str  # when (ISO 8601, UTC)
    here: bool  # written on this workstation
    author_name: str = ""  # their full name, when known (``named``)
    replica_name: str = ""  # the workstation's enrolled name, when known (``named``)


class ChangedSinceOpened(RecordError):
    """Nothing was saved: fields this save changes were changed by someone else since the
    form was opened (``fields``, in the order given). Save again with a base that names
    their current values (the person chose to keep their own), or without those fields
    (the person kept the other values)."""

    def __init__(self, fields: tuple[ChangedField, ...]) -> None:
        names = ", ".join(f.label for f in fields)
        super().__init__(f"changed by someone else since this form was opened: {names}")
        self.fields = fields

    def named(
        self, names: Mapping[str, str], desks: Mapping[str, str] | None = None
    ) -> ChangedSinceOpened:
        """The same refusal with each author's full name (``names``: user name -> name)
        and each workstation's name (``desks``: replica -> name,
        core/records/workstation_names.py)."""
        desks = desks or {}
        return ChangedSinceOpened(
            tuple(
                replace(
                    f, author_name=names.get(f.author, ""), replica_name=desks.get(f.replica, "")
                )
                for f in self.fields
            )
        )


def changed_since(
    doc: RecordDoc,
    rtype: RecordType,
    saving: Mapping[str, Value],
    based_on: Mapping[str, Value],
    this_replica: str,
) -> tuple[ChangedField, ...]:
    """The fields of ``saving`` (field -> the value about to be written) whose current
    value is neither their base (``based_on``) nor the value being saved; a field missing
    from ``based_on`` has an unknown base (see the module). In the order of ``saving``."""
    found: list[ChangedField] = []
    live = crdt.all_live(doc)
    for field, value in saving.items():
        entries = live.get(field, [])
        winner = entries[0] if entries else None
        current = winner.value if winner is not None else None
        if current == value:
            continue  # the same value either way (someone typed the same fix): no choice
        known = field in based_on
        if known and current == based_on[field]:
            continue  # unchanged since the form was opened
        found.append(
            ChangedField(
                field=field,
                label=rtype.label(field),
                base=based_on.get(field),
                base_known=known,
                current=current,
                author=winner.author if winner is not None else "",
                replica=winner.replica if winner is not None else "",
                time=hlc_time(winner.hlc) if winner is not None else "",
                here=winner is not None and winner.replica == this_replica,
            )
        )
    return tuple(found)
