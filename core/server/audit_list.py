"""``careline-server admin audit list``: the audit entries the server holds for a clinic.

Two kinds: the server's own entries about the clinic (syncs, enrollments, admin actions;
``source`` "server"), and the entries of the clinic's workstations that each proved, at
sync, to extend the audit head the server had recorded for it (``source`` the device id;
see README "Audit review"). A workstation's entries made before its first sync with the
server are not among them: nothing proves them, and they were never sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from core.records.audit_review import AuditFilter, bound, describe
from core.records.break_glass_audit import worked_under


@dataclass(frozen=True)
class HeldEntry:
    """One audit entry the server holds."""

    source: str  # "server" or the device id
    seq: int
    ts: str
    actor: str
    action: str
    entity: str
    entity_id: str
    details: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return {**self.__dict__, "break_glass": worked_under(self.action, self.details)}

    def line(self) -> str:
        """One line for people."""
        grant = worked_under(self.action, self.details)
        extra = f"  [break-glass {grant}]" if grant else ""
        return (
            f"{self.ts}  {self.source:<18} {self.actor:<14} {describe(self.action):<34} "
            f"{self.entity} {self.entity_id}{extra}"
        )


def _details(text: Any) -> dict[str, Any]:
    try:
        doc = json.loads(str(text))
    except ValueError:
        return {"unreadable": str(text)}
    return doc if isinstance(doc, dict) else {"value": doc}


def _held(source: str, r: tuple[Any, ...]) -> HeldEntry:
    """From (seq, ts, actor, action, entity, entity_id, details)."""
    ts, actor, action, entity, entity_id = (str(v) for v in r[1:6])
    return HeldEntry(source, int(r[0]), ts, actor, action, entity, entity_id, _details(r[6]))


def held_entries(
    own: list[tuple[Any, ...]],
    devices: list[tuple[Any, ...]],
    wanted: AuditFilter,
    device: str | None = None,
) -> list[HeldEntry]:
    """The entries matching ``wanted`` (and ``device``), newest first. ``own`` rows are
    (seq, ts, actor, action, entity, entity_id, details); ``devices`` rows start with the
    device id. A patient matches entries naming them (not, as on a workstation, entries
    about a record on their chart: the server's PostgreSQL replica holds no chart rows)."""
    rows = [_held("server", r) for r in own]
    rows += [_held(str(r[0]), r[1:]) for r in devices]
    since = bound("since", wanted.since, end=False) if wanted.since else None
    until = bound("until", wanted.until, end=True) if wanted.until else None

    def keep(e: HeldEntry) -> bool:
        if device and e.source != device:
            return False
        if (
            wanted.user
            and e.actor != wanted.user
            and not (e.action == "user.sign_in_failed" and e.entity_id == wanted.user)
        ):
            return False
        if wanted.action and not (
            e.action == wanted.action
            or ("." not in wanted.action and e.action.startswith(wanted.action + "."))
        ):
            return False
        if wanted.patient and not (
            (e.entity == "patient" and e.entity_id == wanted.patient)
            or e.details.get("patient") == wanted.patient
            # A chart's restriction or care team, from before entries named the patient.
            or (e.entity == "relation" and e.details.get("object") == "patient:" + wanted.patient)
        ):
            return False
        return (since is None or e.ts >= since) and (until is None or e.ts < until)

    found = sorted(
        (e for e in rows if keep(e)), key=lambda e: (e.ts, e.source, e.seq), reverse=True
    )
    return found[: wanted.limit] if wanted.limit else found
