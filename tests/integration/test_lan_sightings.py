"""The clinic's LAN CA holder knows where it last saw each workstation it let join: where
it paired from, then the address of its latest sync connection, kept in its audit log a
few times an hour at most. Real pairing and sync over mutual TLS on 127.0.0.1, and the
data the previous release made."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from core.crypto.kdf import FAST_PARAMS
from core.records import op_trust
from core.records.workstation import Workstation
from core.sync.lan import identity as lan_id
from core.sync.lan import sightings
from core.sync.lan.pairing import join
from core.sync.lan.server import PeerServer
from core.sync.lan.transport import LanTransport
from core.sync.session import sync
from tests.conftest import PASSWORD
from tests.integration.test_cli import careline
from tests.integration.test_lan_peers import clinic
from tests.integration.test_release_upgrade import OldData, old

__all__ = ["clinic", "old"]  # the fixtures, shared with test_lan_peers and test_release_upgrade


def _seen_entries(ws: Workstation) -> int:
    rows = ws.database.query(
        "SELECT count(*) FROM audit_log WHERE action = ?", (sightings.SEEN_ACTION,)
    )
    return int(rows[0][0])


def _listed(ws: Workstation, device_id: str) -> lan_id.IssuedDevice:
    return next(d for d in lan_id.issued_devices(ws.database) if d.device_id == device_id)


def test_the_ca_holder_lists_where_a_workstation_paired_from_and_was_last_seen(
    clinic: tuple[Workstation, PeerServer], tmp_path: Path
) -> None:
    ws_a, server = clinic
    code = lan_id.new_pair_code(ws_a.database, "admin")
    ws_b = Workstation(tmp_path / "b", kdf_params=FAST_PARAMS)
    ws_b.prepare_join("admin", PASSWORD)
    assert server.pairing_port is not None
    identity = join("127.0.0.1", server.pairing_port, code, op_trust.binding_for(ws_b.database))
    lan_id.save_identity(ws_b.database, identity, "admin")
    try:
        # Before any sync: where it paired from, at the time it joined.
        device = _listed(ws_a, identity.device_id)
        assert device.last_seen == sightings.Sighting("127.0.0.1", device.first_issued, True)
        mine = next(d for d in lan_id.issued_devices(ws_a.database) if d.this_device)
        assert mine.last_seen is None  # this computer itself

        with LanTransport(f"127.0.0.1:{server.port}", identity) as transport:
            sync(ws_b.database, transport, "admin")
        seen = _listed(ws_a, identity.device_id).last_seen
        assert seen is not None and seen.address == "127.0.0.1" and not seen.pairing
        assert seen.at > device.first_issued
        assert _seen_entries(ws_a) == 1

        # Syncing again from the same address soon after adds nothing to the log.
        with LanTransport(f"127.0.0.1:{server.port}", identity) as transport:
            sync(ws_b.database, transport, "admin")
        assert _seen_entries(ws_a) == 1

        # The workstation that joined is no CA holder: it keeps no such record.
        with (
            PeerServer(ws_b.database, identity) as b_server,
            LanTransport(f"127.0.0.1:{b_server.port}", server.identity) as transport,
        ):
            sync(ws_a.database, transport, "admin")
        assert _seen_entries(ws_b) == 0
    finally:
        ws_b.lock()


def test_a_sighting_is_written_again_when_stale_or_from_another_address(
    workstation: Workstation,
) -> None:
    db, device = workstation.database, "d1"

    def latest() -> tuple[str, dt.datetime]:
        seen = sightings.last_seen(db, device)
        assert seen is not None and not seen.pairing
        return seen.address, dt.datetime.fromisoformat(seen.at)

    def after(stamp: dt.datetime, seconds: float) -> dt.datetime:
        return stamp + dt.timedelta(seconds=seconds)

    assert sightings.note_seen(db, device, "10.0.0.7:50123")
    address, at = latest()
    assert address == "10.0.0.7"  # the computer, not the connection's port
    same, moved = sightings.SAME_ADDRESS_SECONDS, sightings.MIN_SECONDS
    assert not sightings.note_seen(db, device, "10.0.0.7:50999", after(at, same - 1))
    assert not sightings.note_seen(db, device, "10.0.0.9:40000", after(at, moved - 1))
    assert sightings.note_seen(db, device, "10.0.0.9:40000", after(at, moved))
    address, at = latest()
    assert address == "10.0.0.9"
    assert sightings.note_seen(db, device, "10.0.0.9:40001", after(at, same))  # stale
    assert sightings.note_seen(db, device, "[fe80::1]:40000", after(latest()[1], moved))
    assert latest()[0] == "fe80::1"
    assert _seen_entries(workstation) == 4


def test_workstations_paired_by_the_previous_release_are_listed_as_not_recorded(
    old: OldData, no_keyring: None
) -> None:
    """No schema change: on the CA holder the previous release made (it paired a second
    workstation over the LAN, recording no address), the list reads as before, and says
    where each was last seen is not recorded rather than guessing."""
    desk = old.folder / "workstation"
    env = {"CARELINE_PASSWORD_FILE": str(old.folder / "password.txt")}
    (old.folder / "password.txt").write_text(old.password + "\n", encoding="utf-8")
    listed = careline(desk, "--json", "--user", "admin", "pair", "devices", env=env)
    assert listed.returncode == 0, listed.stderr
    [paired] = [d for d in json.loads(listed.stdout) if not d["this_workstation"]]
    assert paired["state"] == "active" and paired["last_seen"] is None
    text = careline(desk, "--user", "admin", "pair", "devices", env=env)
    line = next(x for x in text.stdout.splitlines() if x.startswith(paired["device_id"]))
    assert "last seen: not recorded" in line
