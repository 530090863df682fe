"""core.sync.lan.pairing.pair_and_sync: the one LAN join used by `careline pair join` and
the first-run wizard, over real TLS sockets on 127.0.0.1 and real SQLCipher databases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.crypto.kdf import FAST_PARAMS
from core.records import replication
from core.records.workstation import Workstation
from core.sync.lan import identity as lan_id
from core.sync.lan.pairing import PairingError, pair_and_sync, pair_and_sync_first
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
    # Each of the clinic's records once (the peer's snapshot, then any ops after it).
    assert joined.records == replication.records_held(ws.database) > 0
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


def test_each_peer_seen_is_asked_until_one_proves_it_knows_the_code(
    peer: tuple[Workstation, PeerServer], joiner: Workstation, tmp_path: Path
) -> None:
    ws, server = peer
    # Another workstation of the clinic: it serves sync, but only the CA holder listens
    # for pairing; and an address where nothing listens at all.
    other = Workstation(tmp_path / "other", kdf_params=FAST_PARAMS)
    other.prepare_join("admin", PASSWORD)
    paired = pair_and_sync(other.database, "127.0.0.1", server.port, _code(ws), "admin")
    nothing = f"127.0.0.1:{free_port_pair()}"
    skipped: list[str] = []
    with PeerServer(other.database, paired.identity, "127.0.0.1", free_port_pair()) as plain:
        assert plain.pairing_port is None
        seen = [f"127.0.0.1:{plain.port}", nothing, f"127.0.0.1:{server.port}"]
        joined = pair_and_sync_first(
            joiner.database, seen, _code(ws), "admin", on_skipped=skipped.append
        )
    other.lock()
    assert joined.records > 0
    assert lan_id.load_identity(joiner.database) == joined.identity
    assert [line.split(" skipped:")[0] for line in skipped] == [
        f"LAN peer 127.0.0.1:{plain.port}",
        f"LAN peer {nothing}",
    ]


def test_when_no_peer_seen_pairs_each_is_named_and_nothing_is_saved(
    peer: tuple[Workstation, PeerServer], joiner: Workstation
) -> None:
    ws, _ = peer
    seen = [f"127.0.0.1:{free_port_pair()}", f"127.0.0.1:{free_port_pair()}"]
    with pytest.raises(PairingError) as refused:
        pair_and_sync_first(joiner.database, seen, _code(ws), "admin")
    message = str(refused.value)
    assert "none of the 2 LAN peers seen pairs with this code" in message
    assert all(f"{address}: cannot reach the workstation at" in message for address in seen)
    assert "--peer HOST:PORT" in message
    assert lan_id.load_identity(joiner.database) is None


def _code(ws: Workstation) -> str:
    """A new pairing code from the CA holder ``ws``."""
    return lan_id.new_pair_code(ws.database, "admin")


def test_a_pairing_port_where_nothing_listens_is_said_in_words_naming_both_ports(
    joiner: Workstation,
) -> None:
    """The tester gave --peer with the sync port and read "[Errno 111] Connection refused"
    for another port it never typed: the message says which port pairing uses and why."""
    port = free_port_pair()
    with pytest.raises(PairingError) as refused:
        pair_and_sync(joiner.database, "127.0.0.1", port, "ABCD-EFGH", "admin")
    message = str(refused.value)
    assert message.startswith(
        f"cannot reach the workstation at 127.0.0.1, pairing port {port + 1} (the port given "
        "with --peer is its sync port; pairing uses the next one): nothing there accepted"
    )
    assert "Errno" not in message and "refused" not in message.lower()
