"""core.sync.lan.pairing.pair_and_sync: the one LAN join used by `careline pair join` and
the first-run wizard, over real TLS sockets on 127.0.0.1 and real SQLCipher databases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.crypto.kdf import FAST_PARAMS
from core.records.workstation import Workstation
from core.sync.lan import identity as lan_id
from core.sync.lan.pairing import PairingError, pair_and_sync
from core.sync.lan.server import PeerServer
from core.sync.transport import TransportError
from tests.conftest import PASSWORD
from tests.services import free_port_pair


@pytest.fixture
def peer(workstation: Workstation) -> Iterator[tuple[Workstation, PeerServer]]:
    """A clinic's first workstation serving LAN peers (pairing on its sync port + 1)."""
    workstation.records.add_patient("Lovelace", "Ada", "1915-12-10")
    identity = lan_id.ensure_identity(workstation.database, "admin")
    with PeerServer(workstation.database, identity, "127.0.0.1", free_port_pair()) as server:
        yield workstation, server


@pytest.fixture
def joiner(tmp_path: Path) -> Iterator[Workstation]:
    """A new, empty replica prepared to join (as the CLI and the wizard make it)."""
    ws = Workstation(tmp_path / "joiner", kdf_params=FAST_PARAMS)
    ws.prepare_join("admin", PASSWORD)
    try:
        yield ws
    finally:
        ws.lock()


def test_pairs_keeps_the_identity_and_receives_the_clinic(
    peer: tuple[Workstation, PeerServer], joiner: Workstation
) -> None:
    ws, server = peer
    code = lan_id.new_pair_code(ws.database, "admin")
    joined = pair_and_sync(joiner.database, "127.0.0.1", server.port, code, "admin")
    assert joined.records == joined.report.snapshot_records + joined.report.pulled > 0
    assert lan_id.load_identity(joiner.database) == joined.identity
    clinic_identity = lan_id.load_identity(ws.database)
    assert clinic_identity is not None
    assert joined.identity.ca_certificate == clinic_identity.ca_certificate  # same clinic CA
    joiner.lock()
    joiner.sign_in("admin", PASSWORD)  # the account arrived with the first sync
    assert [p.family for p in joiner.records.search_patients("Lovelace")] == ["Lovelace"]


def test_a_refused_code_saves_nothing(
    peer: tuple[Workstation, PeerServer], joiner: Workstation
) -> None:
    _, server = peer
    with pytest.raises(PairingError, match="wrong, expired or already used"):
        pair_and_sync(joiner.database, "127.0.0.1", server.port, "AAAAA-BBBBB", "admin")
    assert lan_id.load_identity(joiner.database) is None


def test_a_failed_first_sync_keeps_the_identity(
    workstation: Workstation, joiner: Workstation
) -> None:
    # Only the pairing listener runs (on PORT+1); nothing answers on PORT itself.
    port = free_port_pair()
    identity = lan_id.ensure_identity(workstation.database, "admin")
    code = lan_id.new_pair_code(workstation.database, "admin")
    with (
        PeerServer(workstation.database, identity, "127.0.0.1", 0, pairing_port=port + 1),
        pytest.raises(TransportError),
    ):
        pair_and_sync(joiner.database, "127.0.0.1", port, code, "admin")
    kept = lan_id.load_identity(joiner.database)
    assert kept is not None and kept.ca_certificate == identity.ca_certificate
