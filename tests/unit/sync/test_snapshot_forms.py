"""Snapshot states in their stored (deflated) form on the wire: negotiated, checked, kept.

A receiver that says it reads a stored form (``state_forms``) may get each state as the
sender holds it; one that does not, or an older sender, keeps plain Yjs (core.sync.protocol).
A state that does not inflate, inflates to too much, or is in a form not asked for refuses
the whole page, naming it, and nothing of the page is stored.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import zlib
from typing import Any

import pytest

from core.records.replication import (
    ApplyError,
    RecordState,
    SnapshotPage,
    apply_snapshot_page,
    snapshot_page,
)
from core.store.state_codec import DEFLATED, StoredStateError, pack_state, unpack_state
from core.sync import protocol as p
from core.sync.responder import Responder
from tests.unit.sync.replicas import new_replica

_STORED = frozenset({"deflate1"})


def _source(patients: int = 3) -> Any:
    r = new_replica("admin")
    for i in range(patients):
        r.add_patient(f"Fam{i}", "Given", "1980-01-01")
    return r


def _snapshot_reply(responder: Responder, **fields: Any) -> dict[str, Any]:
    request = p.encode({"type": "snapshot", "after": None, "max_records": 100, **fields})
    reply: dict[str, Any] = json.loads(responder.handle(request))
    return reply


def _states(reply: dict[str, Any]) -> list[bytes]:
    return [base64.b64decode(r["state"]) for r in reply["records"]]


def test_states_go_deflated_only_to_a_receiver_that_asks() -> None:
    responder = Responder(_source().db)
    plain = _snapshot_reply(responder)
    assert "state_forms" not in plain
    assert not any(s.startswith(DEFLATED) for s in _states(plain))
    stored = _snapshot_reply(responder, state_forms=["deflate1"])
    assert stored["state_forms"] == ["deflate1"]
    assert any(s.startswith(DEFLATED) for s in _states(stored))
    assert [unpack_state(s) for s in _states(stored)] == _states(plain)
    # Forms the responder does not know (a newer receiver's) are not sent.
    assert _states(_snapshot_reply(responder, state_forms=["deflate9"])) == _states(plain)
    # Version 1 (Careline 0.1.0) never asks; a version-1 request that does gets plain too.
    v1 = json.loads(
        responder.handle(
            p.encode(
                {
                    "type": "snapshot",
                    "after": None,
                    "max_records": 100,
                    "state_forms": ["deflate1"],
                },
                1,
            )
        )
    )
    assert "state_forms" not in v1 and _states(v1) == _states(plain)


def test_a_page_in_a_form_not_asked_for_is_refused() -> None:
    with pytest.raises(p.ProtocolError, match="not asked for: deflate9"):
        p.page_forms_from_wire(["deflate9"], frozenset(p.STATE_FORMS))
    assert p.page_forms_from_wire(None, frozenset(p.STATE_FORMS)) == frozenset()
    assert p.forms_from_wire(["deflate1", "later"]) == _STORED
    with pytest.raises(p.ProtocolError):
        p.forms_from_wire("deflate1")


def _page_with(record_id: str, state: bytes, forms: frozenset[str] = _STORED) -> SnapshotPage:
    """A source's page (in ``forms``) with one more record carrying ``state``."""
    page = snapshot_page(_source(2).db, None, 100, forms)
    return dataclasses.replace(
        page, records=(*page.records, RecordState(record_id, "patient", state))
    )


def _bomb() -> bytes:
    """A few kilobytes of deflate that inflate to 16 MiB."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    return DEFLATED + deflate.compress(b"\x00" * (16 << 20)) + deflate.flush()


@pytest.mark.parametrize(
    ("state", "why"),
    [
        (DEFLATED + b"\xff\xff\xff\xff", "does not inflate"),
        (b"\x82\x00" + b"\x00" * 8, "newer version"),
        (_bomb(), "inflates to more than"),
    ],
)
def test_a_state_that_does_not_inflate_refuses_the_page_naming_it(state: bytes, why: str) -> None:
    target = new_replica("ws")
    before = target.db.query("SELECT count(*) FROM record_states")
    with pytest.raises(ApplyError, match=rf"'p-bad'.*{why}"):
        apply_snapshot_page(target.db, _page_with("p-bad", state), "test")
    assert target.db.query("SELECT count(*) FROM record_states") == before
    assert target.db.query("SELECT count(*) FROM patients") == [(0,)]


def test_a_plain_page_never_inflates_what_it_carries() -> None:
    """Without ``state_forms`` a state is a Yjs update: one that looks deflated is malformed."""
    target = new_replica("ws")
    packed = pack_state(snapshot_page(_source(1).db, None, 100).records[-1].state)
    page = _page_with("p-odd", packed, frozenset())
    with pytest.raises(ApplyError, match="'p-odd' is malformed"):
        apply_snapshot_page(target.db, page, "test")


def test_states_kept_as_received_are_the_bytes_the_sender_holds() -> None:
    source = _source(3)
    target = new_replica("ws")
    page = snapshot_page(source.db, None, 100, _STORED)
    assert apply_snapshot_page(target.db, page, "test") == len(page.records)
    held: dict[Any, Any] = dict(source.db.query("SELECT id, state FROM record_states"))
    got: dict[Any, Any] = dict(target.db.query("SELECT id, state FROM record_states"))
    assert got == held
    assert [p_.family for p_ in target.list_patients()] == ["Fam0", "Fam1", "Fam2"]


def test_the_bounded_inflate_reads_exactly_what_the_unbounded_one_does() -> None:
    packed = pack_state(b"\x01\x01" + b'{"a":"admin","h":"1","s":[],"v":null}' * 40)
    plain = unpack_state(packed)
    assert unpack_state(packed, len(plain)) == plain
    with pytest.raises(StoredStateError, match="more than"):
        unpack_state(packed, len(plain) - 1)
    with pytest.raises(StoredStateError, match="larger than"):
        unpack_state(plain, len(plain) - 1)


def test_a_deflated_page_is_cut_where_a_plain_one_is(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sender fits a page by what its states inflate to, so a page sent deflated holds no
    more plain state (hence no more memory at the receiver) than the same page sent plain."""
    responder = Responder(_source(6).db)
    full = _states(_snapshot_reply(responder))
    full_stored = _states(_snapshot_reply(responder, state_forms=["deflate1"]))
    monkeypatch.setattr(p, "BATCH_BYTES", sum(len(s) for s in full) // 2)
    plain = _states(_snapshot_reply(responder))
    stored = _states(_snapshot_reply(responder, state_forms=["deflate1"]))
    assert 0 < len(plain) < len(full)
    assert [unpack_state(s) for s in stored] == plain
    # Fitted by their deflated bytes, the same states would have filled more of the page.
    deflated = [RecordState(f"r{i}", "patient", s) for i, s in enumerate(full_stored)]
    assert len(p.fit(deflated, p.BATCH_BYTES)) > len(plain)


def test_a_page_that_inflates_to_more_than_its_bound_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each state within its own bound, the page's states together past the page's: refused
    whole, the record where the bound ran out named, nothing stored."""
    page = snapshot_page(_source(4).db, None, 100, _STORED)
    plain = [unpack_state(r.state) for r in page.records]
    monkeypatch.setattr(
        "core.records.replication.MAX_PAGE_PLAIN_BYTES", sum(len(s) for s in plain) - 1
    )
    target = new_replica("ws")
    with pytest.raises(ApplyError, match=rf"{page.records[-1].record_id!r}.*inflates to more"):
        apply_snapshot_page(target.db, page, "test")
    assert target.db.query("SELECT count(*) FROM patients") == [(0,)]
