"""The desktop app as a LAN peer: two windows on two workstations in this process find each
other over mDNS on 127.0.0.1 and converge without a server."""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from app.main_window import MainWindow
from app.sync.controller import ERROR, NOT_ENROLLED, OFFLINE, PENDING, SYNCED, SyncStatus
from app.sync.lan_peer import LanOptions
from app.sync.status import SyncStatusWidget, describe_status
from core.crypto import certs
from core.crypto.kdf import FAST_PARAMS
from core.records import op_trust
from core.records.workstation import Workstation
from core.sync.enroll import (
    ServerCredential,
    adopt_credential,
    enroll,
    load_credential,
    save_credential,
    tls_trust,
)
from core.sync.http_transport import HttpTransport
from core.sync.lan import discovery
from core.sync.lan import identity as lan_id
from core.sync.lan import server as lan_server
from core.sync.lan.admission import SESSIONS_PER_DEVICE
from core.sync.lan.pairing import join
from core.sync.lan.server import PeerServer
from core.sync.lan.transport import LanTransport
from core.sync.session import sync
from tests.integration.server_fixtures import Live, add_clinic, join_clinic, sync_at
from tests.services import free_port_pair
from tests.ui.conftest import ADMIN, PASSWORD, PATIENTS, WindowFactory, new_clinic, sign_in

pytestmark = pytest.mark.mdns


def lan_options() -> LanOptions:
    """Loopback only, free ports, a short browse."""
    return LanOptions(
        host="127.0.0.1",
        port=free_port_pair(),
        announce_address="127.0.0.1",
        interfaces=["127.0.0.1"],
        browse_seconds=1.0,
        peer_timeout=5.0,
    )


def lan_sync_options() -> dict[str, object]:
    return {"debounce_ms": 300, "interval_ms": 2_000, "lan": lan_options()}


def paired_clinics(tmp_path: Path) -> tuple[Workstation, Workstation]:
    """Workstation A (the clinic and its LAN CA) and B, paired with A; both locked."""
    ws_a = new_clinic(tmp_path / "a")
    ws_a.sign_in(ADMIN, PASSWORD)
    identity = lan_id.ensure_identity(ws_a.database, ADMIN)
    code = lan_id.new_pair_code(ws_a.database, ADMIN)
    ws_b = Workstation(tmp_path / "b", kdf_params=FAST_PARAMS)
    with PeerServer(ws_a.database, identity) as server:
        assert server.pairing_port is not None
        ws_b.prepare_join(ADMIN, PASSWORD)
        joined = join("127.0.0.1", server.pairing_port, code, op_trust.binding_for(ws_b.database))
        lan_id.save_identity(ws_b.database, joined, ADMIN)
        with LanTransport(f"127.0.0.1:{server.port}", joined) as transport:
            sync(ws_b.database, transport, ADMIN)
    ws_a.lock()
    ws_b.lock()
    return ws_a, ws_b


def synced_with_peers(window: MainWindow, peers: int) -> bool:
    status = window.sync.status
    return status.state == SYNCED and status.lan_peers == peers


def names(window: MainWindow) -> set[str]:
    model = window.workspace.patient_list.model
    return {str(model.index(row, 0).data()) for row in range(model.rowCount())}


def test_two_app_instances_find_each_other_and_converge(
    qtbot: QtBot, tmp_path: Path, make_window: WindowFactory
) -> None:
    ws_a, ws_b = paired_clinics(tmp_path)
    window_a = make_window(ws_a, sync_options=lan_sync_options())
    window_b = make_window(ws_b, sync_options=lan_sync_options())
    sign_in(qtbot, window_a)
    sign_in(qtbot, window_b)
    assert window_a.sync.lan is not None and window_b.sync.lan is not None

    # Each serves, announces, and finds the other over mDNS.
    for window in (window_a, window_b):
        qtbot.waitUntil(partial(synced_with_peers, window, 1), timeout=20_000)
        assert window.sync_status.text.text().endswith("1 LAN peer in reach.")
    assert window_a.sync.lan.port and window_b.sync.lan.port

    # An edit on A appears on B, with no server anywhere.
    rows = window_b.workspace.patient_list.model.rowCount
    assert rows() == len(PATIENTS)
    window_a.worker.submit(lambda: ws_a.records.add_patient("Turing", "Alan", "1912-06-23"))
    qtbot.waitUntil(lambda: any("turing" in n.lower() for n in names(window_b)), timeout=20_000)
    assert rows() == len(PATIENTS) + 1

    # Signing out stops serving and announcing; B then finds no peer.
    window_a.sign_out()
    lan_a = window_a.sync.lan
    qtbot.waitUntil(lambda: not lan_a.serving, timeout=20_000)
    qtbot.waitUntil(lambda: window_b.sync.status.lan_peers == 0, timeout=20_000)

    # Signing in again serves again, and the two find each other once more.
    sign_in(qtbot, window_a)
    qtbot.waitUntil(lambda: lan_a.serving, timeout=20_000)
    qtbot.waitUntil(partial(synced_with_peers, window_b, 1), timeout=20_000)


def test_an_app_recertified_at_its_first_sync_serves_peers_with_its_new_certificate(
    qtbot: QtBot, live: Live, tmp_path: Path, make_window: WindowFactory
) -> None:
    # The server revokes the certificate a re-certification replaces, so the LAN server the
    # app starts in that same session must present the new one, or peers refuse it.
    clinic = add_clinic(live.server, "Upgrade Day Clinic")
    ws_b, cred_b = join_clinic(live.server, live.url, live.ca_pem, clinic, tmp_path / "b", "B")
    ws_b.records.add_patient("Lovelace", "Ada", "1915-12-10")
    sync_at(ws_b, cred_b)
    ws_m = Workstation(tmp_path / "m", kdf_params=FAST_PARAMS)
    ws_m.prepare_join(ADMIN, PASSWORD)
    code, _ = live.server.registry.issue_enroll_code(clinic, 10)
    first = enroll(live.url, code, live.ca_pem, "M")  # as Careline 0.1.0 enrolled: unbound
    adopt_credential(ws_m.database, first, ADMIN)
    sync_at(ws_m, first)
    ws_m.lock()

    options = lan_options()
    window = make_window(ws_m, sync_options={"debounce_ms": 300, "interval_ms": 2_000,
                                             "lan": options})  # fmt: skip
    sign_in(qtbot, window)
    lan = window.sync.lan
    assert lan is not None
    qtbot.waitUntil(lambda: window.sync.status.state == SYNCED and lan.serving, timeout=20_000)
    credential = load_credential(ws_m.database)
    assert credential is not None and credential.certificate != first.certificate

    revoked: set[int] = set()
    transport = HttpTransport(cred_b.server_url, cred_b.token, verify=tls_trust(live.ca_pem))
    try:
        sync(ws_b.database, transport, ADMIN, on_revoked=revoked.update)
    finally:
        transport.close()
    assert certs.serial_of(first.certificate) in revoked
    ident_b = lan_id.load_identity(ws_b.database)
    assert ident_b is not None
    with LanTransport(f"127.0.0.1:{lan.port}", ident_b, revoked) as peer:
        assert peer.hello()["device_id"] == first.device_id  # the new certificate: accepted
    ws_b.lock()


def test_a_revoked_workstation_says_the_clinics_workstations_refuse_it(
    qtbot: QtBot, tmp_path: Path, make_window: WindowFactory
) -> None:
    # A revoked workstation is never told why: its peers close on its certificate without a
    # word. Its status bar must say so, keep saying so, and count what it cannot send.
    ws_a, ws_b = paired_clinics(tmp_path)
    window_a = make_window(ws_a, sync_options=lan_sync_options())
    window_b = make_window(ws_b, sync_options=lan_sync_options())
    sign_in(qtbot, window_a)
    sign_in(qtbot, window_b)
    identity_b = lan_id.load_identity(ws_b.database)
    assert identity_b is not None
    device_b = identity_b.device_id
    qtbot.waitUntil(partial(synced_with_peers, window_b, 1), timeout=20_000)

    # On A, the administrator revokes B; then someone types a change on B.
    window_a.worker.submit(lambda: lan_id.revoke_device(ws_a.database, device_b, ADMIN))
    qtbot.waitUntil(lambda: bool(lan_id.revoked_serials(ws_a.database)), timeout=5_000)
    window_b.worker.submit(lambda: ws_b.records.add_patient("Hopper", "Grace", "1906-12-09"))

    refused = (
        "Not syncing: the clinic's workstations refuse this computer's certificate (it may "
        "have been revoked: ask the clinic's administrator). 1 change made here not sent."
    )

    def says_refused() -> bool:
        return window_b.sync_status.text.text().startswith(refused)

    qtbot.waitUntil(says_refused, timeout=30_000)
    status = window_b.sync.status
    assert status.state == ERROR and status.lan_refused == 1 and status.pending == 1
    assert "in reach" not in window_b.sync_status.text.text()
    assert window_b.sync_status.sync_button.isVisibleTo(window_b.sync_status)
    # It keeps saying so: a later session (Sync now) is refused the same way.
    sessions: list[SyncStatus] = []
    window_b.sync.status_changed.connect(sessions.append)
    window_b.sync_status.sync_button.click()
    qtbot.waitUntil(lambda: len(sessions) >= 2 and not window_b.sync.busy, timeout=30_000)
    assert says_refused()
    assert "Hopper" not in names(window_a)


def test_status_line_for_lan_peers() -> None:
    status = SyncStatus(state=NOT_ENROLLED, lan=True, lan_peers=0)
    assert describe_status(status) == (
        "No clinic server; syncing with LAN peers. 0 LAN peers in reach."
    )
    assert describe_status(SyncStatus(state=NOT_ENROLLED)).startswith("Not connected")
    # A clinic server syncs, but a LAN peer refuses this workstation.
    refused = SyncStatus(state=SYNCED, lan=True, lan_peers=1, lan_refused=1)
    assert describe_status(refused) == (
        "Synced. 1 LAN peer in reach. 1 other workstation refuses this computer's "
        "certificate (it may have been revoked: ask the clinic's administrator)."
    )
    # A clinic server syncs, and a LAN peer was only busy: no word of a refusal.
    busy = SyncStatus(state=SYNCED, lan=True, lan_peers=1, lan_unreachable=2)
    assert describe_status(busy) == (
        "Synced. 1 LAN peer in reach. 2 other workstations did not answer this time (busy "
        "or switched off); tried again."
    )


@pytest.mark.strict_authors
def test_the_status_bar_says_when_changes_were_refused_here_and_elsewhere(
    qtbot: QtBot, tmp_path: Path, make_window: WindowFactory
) -> None:
    ws_a, ws_b = paired_clinics(tmp_path)
    # B turns hostile: it changes the author of its newest op after signing it.
    ws_b.sign_in(ADMIN, PASSWORD)
    ws_b.records.add_patient("Hopper", "Grace", "1906-12-09")
    db = ws_b.database
    mine = str(db.query("SELECT value FROM meta WHERE key = 'replica_id'")[0][0])
    with db.write(ADMIN, "test.forge", "oplog", mine) as tx:
        tx.execute(
            "UPDATE oplog SET author = 'someone-else' WHERE origin = ? AND seq = "
            "(SELECT max(seq) FROM oplog WHERE origin = ?)",
            (mine, mine),
        )
    ws_b.lock()
    window_a = make_window(ws_a, sync_options=lan_sync_options())
    window_b = make_window(ws_b, sync_options=lan_sync_options())
    sign_in(qtbot, window_a)
    sign_in(qtbot, window_b)

    def says(window: MainWindow, text: str) -> bool:
        return text in window.sync_status.text.text()

    here = "1 change from another workstation was refused and not applied here: its signature"
    qtbot.waitUntil(lambda: says(window_a, here), timeout=30_000)
    assert says(window_a, "See 'careline quarantine list'.")
    elsewhere = "1 change made on this computer was refused by another workstation"
    qtbot.waitUntil(lambda: says(window_b, elsewhere), timeout=30_000)
    assert "Hopper" not in names(window_a)


def test_refusal_notice_wording() -> None:
    status = SyncStatus(
        state=SYNCED,
        quarantined=2,
        quarantine_reason="its origin x is not a device of this clinic (no certificate)",
        refused=(("me", 4, "its author 'bo' is not an active staff account of this clinic"),),
    )
    assert describe_status(status) == (
        "Synced. 2 changes from another workstation were refused and not applied here. "
        "Latest reason: its origin x is not a device of this clinic (no certificate). See "
        "'careline quarantine list'. 1 change made on this computer was refused by another "
        "workstation: its author 'bo' is not an active staff account of this clinic. Tell "
        "your administrator; see 'careline quarantine list'."
    )


def test_a_revoked_workstation_counts_what_waits_from_before_the_app_started(
    qtbot: QtBot, tmp_path: Path, make_window: WindowFactory
) -> None:
    # The count comes from the store, not from what this run of the app saw: changes made
    # before it started (an earlier run, the command line) are counted as not sent.
    ws_a, ws_b = paired_clinics(tmp_path)
    ws_b.sign_in(ADMIN, PASSWORD)
    identity_b = lan_id.load_identity(ws_b.database)
    assert identity_b is not None
    ws_a.sign_in(ADMIN, PASSWORD)
    lan_id.revoke_device(ws_a.database, identity_b.device_id, ADMIN)
    ws_a.lock()
    ws_b.records.add_patient("Hopper", "Grace", "1906-12-09")
    ws_b.records.add_patient("Franklin", "Rosalind", "1920-07-25")
    ws_b.lock()

    window_a = make_window(ws_a, sync_options=lan_sync_options())
    window_b = make_window(ws_b, sync_options=lan_sync_options())
    sign_in(qtbot, window_a)
    sign_in(qtbot, window_b)
    refused = (
        "Not syncing: the clinic's workstations refuse this computer's certificate (it may "
        "have been revoked: ask the clinic's administrator). 2 changes made here not sent."
    )
    qtbot.waitUntil(lambda: window_b.sync_status.text.text().startswith(refused), timeout=30_000)
    assert window_b.sync.status.lan_refused == 1
    # What is typed now is counted on top.
    window_b.worker.submit(lambda: ws_b.records.add_patient("Johnson", "Katherine", "1918-08-26"))
    qtbot.waitUntil(
        lambda: "3 changes made here not sent." in window_b.sync_status.text.text(),
        timeout=30_000,
    )


def test_a_busy_peer_is_tried_again_and_not_taken_for_a_refusal(
    qtbot: QtBot, tmp_path: Path, make_window: WindowFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A's listener already holds as many sessions of B's certificate as one device may
    # have: it closes on B's next one without a word. B must say its peer is busy (not
    # that it is shut out), try again with backoff, and sync once A has room.
    ws_a, ws_b = paired_clinics(tmp_path)
    ws_b.sign_in(ADMIN, PASSWORD)
    identity_b = lan_id.load_identity(ws_b.database)
    assert identity_b is not None
    ws_b.lock()
    monkeypatch.setattr(lan_server, "IDLE_TIMEOUT", 120.0)  # the held sessions stay open
    ws_a.sign_in(ADMIN, PASSWORD)
    identity_a = lan_id.load_identity(ws_a.database)
    assert identity_a is not None
    server = PeerServer(ws_a.database, identity_a).start()
    advertiser = discovery.Advertiser(server.port, "127.0.0.1", ["127.0.0.1"])
    address = f"127.0.0.1:{server.port}"
    held = [LanTransport(address, identity_b) for _ in range(SESSIONS_PER_DEVICE)]
    try:
        for transport in held:
            transport.hello()
        options = {**lan_sync_options(), "backoff_base_ms": 300, "backoff_cap_ms": 2_000}
        window_b = make_window(ws_b, sync_options=options)
        published: list[SyncStatus] = []
        retries: list[int] = []  # the retry timer, as each status was shown

        def shown(status: SyncStatus) -> None:
            published.append(status)
            retries.append(window_b.sync.retry_in_ms())

        window_b.sync.status_changed.connect(shown)
        sign_in(qtbot, window_b)
        busy = "Not syncing for now: 1 LAN peer is busy or not answering — retrying in "

        def offline() -> list[SyncStatus]:
            return [s for s in published if s.state == OFFLINE]

        # Tried again after the backoff's delay, as an unreachable server is.
        qtbot.waitUntil(lambda: len(offline()) >= 2, timeout=30_000)
        qtbot.waitUntil(lambda: window_b.sync_status.text.text().startswith(busy), timeout=30_000)
        assert all(s.lan_unreachable == 1 and not s.lan_refused for s in offline())
        assert all(
            s.retry_at is not None and wait > 0
            for s, wait in zip(published, retries, strict=True)
            if s.state == OFFLINE
        )
        assert not any(s.state == ERROR for s in published)
        assert "refuse" not in window_b.sync_status.text.text()
    finally:
        for transport in held:
            transport.close()
    try:
        qtbot.waitUntil(partial(synced_with_peers, window_b, 1), timeout=30_000)
    finally:
        advertiser.close()
        server.stop()
        ws_a.lock()


def test_syncing_with_a_peer_while_the_server_is_down_is_not_called_offline(
    qtbot: QtBot, tmp_path: Path, make_window: WindowFactory
) -> None:
    """The tester's report: B showed "Offline — …" in grey while it synced fine with A
    over the LAN, its clinic server out of reach; and once A's sharing stopped, "1 other
    workstation is busy or not answering" stayed for good, which a receptionist reads as
    a fault. Now it says what is true, and a peer gone for a few rounds is not counted."""
    ws_a, ws_b = paired_clinics(tmp_path)
    ws_b.sign_in(ADMIN, PASSWORD)
    dead = f"https://127.0.0.1:{free_port_pair()}"  # B's clinic server: nobody listens
    save_credential(
        ws_b.database,
        ServerCredential(dead, "dev-1", "clinic-1", "Riverside", "token", "", "", "", None),
    )
    ws_b.lock()
    quick = {**lan_sync_options(), "backoff_base_ms": 300, "backoff_cap_ms": 1_000}
    window_a = make_window(ws_a, sync_options=lan_sync_options())
    window_b = make_window(ws_b, sync_options=quick)
    sign_in(qtbot, window_a)
    sign_in(qtbot, window_b)

    def nearby() -> bool:
        status = window_b.sync.status
        return status.state == OFFLINE and status.lan_peers == 1

    qtbot.waitUntil(nearby, timeout=30_000)
    text = window_b.sync_status.text.text()
    assert re.fullmatch(
        r"Server not reachable — synced with 1 workstation nearby at \d\d:\d\d\. "
        r"Trying the server again in \d+ s\.",
        text,
    ), text
    amber = SyncStatusWidget.COLOURS[PENDING]
    assert amber in window_b.sync_status.dot.styleSheet()

    # A is signed out: its sharing stops. B says so calmly a few times, then no more.
    window_a.sign_out()
    after: list[tuple[int, str]] = []  # each session's end: A counted, and B's words

    def ended(status: SyncStatus) -> None:
        if status.state == OFFLINE:
            after.append((status.lan_unreachable, window_b.sync_status.text.text()))

    window_b.sync.status_changed.connect(ended)
    qtbot.waitUntil(lambda: any(n for n, _ in after), timeout=30_000)
    said = next(text for n, text in after if n)
    assert "1 other workstation did not answer this time (busy or switched off)" in said
    assert "busy or not answering" not in said
    qtbot.waitUntil(lambda: len(after) >= 6, timeout=60_000)
    assert [n for n, _ in after[-2:]] == [0, 0]
    assert "did not answer" not in after[-1][1]
