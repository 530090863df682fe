"""Desktop sync benchmark (``python -m tests.bench --only desktop``).

1. First download: a clinic of ``records`` patients (100,000 by default) is written in bulk
   straight into the server's replica (1,000 ops per transaction) before the server starts;
   ``careline-server run`` then serves it from its own process (embedded SQLCipher store, TLS
   pinned to its generated certificate) and a brand-new workstation enrolls and runs its
   first sync session: the seconds of that session and the records per second.
2. Peer discovery on loopback: a peer announced with zeroconf on 127.0.0.1
   (:class:`core.sync.lan.discovery.Advertiser`); the time until a newly started browser on
   127.0.0.1 sees its instance, over a few rounds.
3. LAN edit to arrival: two paired workstations, one serving with
   :class:`core.sync.lan.server.PeerServer`; the other makes one edit, then syncs over a new
   :class:`core.sync.lan.transport.LanTransport` (mutual TLS); the time from the start of the
   edit until the serving workstation reads the new value.

Everything stays on 127.0.0.1 and in a temporary folder; the server process is stopped
whatever happens. Standalone: ``python -m tests.bench.desktop_sync_bench [records]``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import keyring
import keyring.backends.fail
from zeroconf import ServiceBrowser, ServiceListener, Zeroconf

from core.crypto.kdf import FAST_PARAMS
from core.keys.providers import provider_from_settings
from core.records import op_trust
from core.records.changes import change
from core.records.crdt import RecordDoc, write
from core.records.workstation import Workstation
from core.server.service import ClinicServer
from core.server.settings import load_server_settings
from core.store.database import Database
from core.sync import protocol as p
from core.sync.enroll import adopt_credential, enroll, tls_trust
from core.sync.http_transport import HttpTransport
from core.sync.lan import discovery
from core.sync.lan import identity as lan_id
from core.sync.lan.pairing import join
from core.sync.lan.server import PeerServer
from core.sync.lan.transport import LanTransport
from core.sync.session import sync
from core.sync.snapshot_image import ImageOffer, wants_image

from .disk_usage import breakdown
from .server_bench import ServerProcess, server_process

DEFAULT_RECORDS = 100_000
IMAGE_WAIT_S = 600.0  # a million records' image is built in a few minutes
# Issue #17: 100,000 records downloaded in 5 s or less (scaled linearly for other counts),
# into a database of at most 250 bytes per record, full-text index included.
FIRST_DOWNLOAD_TARGET_S_PER_100K = 5.0
DISK_TARGET_BYTES_PER_RECORD = 250.0
LAN_EDIT_TARGET_S = 2.0
DISCOVERY_ROUNDS = 3
LAN_EDITS = 10
PASSWORD = "bench horse battery staple"  # a throwaway account in a temporary folder


def _log(message: str) -> None:
    print(f"[desktop-bench] {message}", file=sys.stderr, flush=True)


def _bulk_patients(db: Database, count: int, first: int = 0) -> None:
    """``count`` new patients, one op each, 1,000 per transaction; numbered from ``first``
    (the scale benchmark grows one clinic: tests/bench/scale_bench.py)."""
    end = first + count
    for start in range(first, end, 1000):
        with db.write("bench", "patient.create", "patient", "many") as tx:
            for i in range(start, min(start + 1000, end)):

                def create(doc: RecordDoc, hlc: str, i: int = i) -> None:
                    for f, v in (
                        ("family", f"Fam{i:06d}"),
                        ("given", "G"),
                        ("birth_date", "1980-01-01"),
                    ):
                        write(doc, f, v, hlc, "bench")

                change(tx, "bench", f"p{i:07d}", "patient", create)


def _process_cpu_s(pid: int) -> float | None:
    """A process's CPU seconds so far (user + system, Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def first_download(folder: Path, records: int) -> dict[str, Any]:
    """A new workstation's first sync of a clinic of ``records`` patients."""
    data_dir = folder / "server"
    settings = load_server_settings(cli={"data_dir": data_dir}, env={})
    server = ClinicServer(data_dir, provider_from_settings(settings, data_dir), FAST_PARAMS)
    try:
        clinic = server.create_clinic("Download Bench Clinic").id
        server.add_user(clinic, "admin", "Ada Admin", "admin", PASSWORD)
        t0 = time.perf_counter()
        _bulk_patients(server.replica(clinic), records)
        seed_s = time.perf_counter() - t0
        code, _ = server.registry.issue_enroll_code(clinic, 30, uses=3)
    finally:
        server.close()
    _log(f"{records:,} patients written into the server replica in {seed_s:.1f} s")

    with server_process(data_dir) as running:
        # The server builds the clinic's snapshot image when it starts (core.sync.snapshot_image);
        # a workstation joining before it is ready downloads pages. Both are timed here, one
        # after the other on the same server: pages as an older workstation (or one joining
        # while the image is built) downloads them, then the image.
        t0 = time.perf_counter()
        image_cpu0 = _process_cpu_s(running.process.pid)
        offered = wait_for_image(running.url, running.ca_pem, code, folder / "probe")
        image_ready_s = time.perf_counter() - t0
        image_cpu1 = _process_cpu_s(running.process.pid)
        by_pages = _download(running, code, folder / "desk-pages", records, pages_only=True)
        by_image = _download(running, code, folder / "desk", records, pages_only=False)
        server_alive = running.process.poll() is None
    _log(
        f"first download: {by_image['records_received']:,} records in {by_image['seconds']:.1f} s "
        f"as an image, {by_pages['seconds']:.1f} s by pages"
    )
    disk = by_image.pop("disk")
    by_pages.pop("disk")
    return {
        "records_on_server": records,
        "seed_s": round(seed_s, 1),
        **by_image,
        "by_pages": by_pages,
        "pages_to_image_ratio": round(by_pages["seconds"] / by_image["seconds"], 2),
        "image": {
            "offered": offered is not None,
            "bytes": offered.size if offered is not None else None,
            # From the server's start to an image offered: built once, in the background,
            # for every workstation that joins after (server CPU, not the workstation's wait).
            "ready_after_start_s": round(image_ready_s, 2),
            "server_cpu_s": (
                round(image_cpu1 - image_cpu0, 2)
                if image_cpu0 is not None and image_cpu1 is not None
                else None
            ),
        },
        "disk": disk,
        "complete": by_image["complete"] and by_pages["complete"] and server_alive,
    }


class _PagesOnly:
    """The server's transport without its snapshot image: what a workstation joining
    before the image is ready (or an older one) downloads."""

    def __init__(self, transport: HttpTransport) -> None:
        self._transport = transport

    def request(self, message: bytes) -> bytes:
        """One sync request, as the wrapped transport sends it."""
        return self._transport.request(message)


def _enrolled(running: ServerProcess, code: str, folder: Path) -> tuple[Workstation, Any]:
    ws = Workstation(folder, FAST_PARAMS)
    ws.prepare_join("admin", PASSWORD)
    credential = enroll(
        running.url, code, running.ca_pem, folder.name, op_trust.binding_for(ws.database)
    )
    adopt_credential(ws.database, credential, "admin")
    return ws, credential


def wait_for_image(url: str, ca_pem: str, code: str, folder: Path) -> ImageOffer | None:
    """Enroll a probe workstation in ``folder`` (one use of ``code``) and ask for the first
    snapshot page, with an image, until the server offers one: the workstations timed after
    it get the image (None after IMAGE_WAIT_S: they get pages)."""
    ws = Workstation(folder, FAST_PARAMS)
    ws.prepare_join("admin", PASSWORD)
    credential = enroll(url, code, ca_pem, "probe", op_trust.binding_for(ws.database))
    transport = HttpTransport(url, credential.token, verify=tls_trust(ca_pem))
    message = {
        "type": "snapshot",
        "after": None,
        "max_records": 1,
        "image": wants_image(ws.database),
    }
    deadline = time.monotonic() + IMAGE_WAIT_S
    try:
        while time.monotonic() < deadline:
            reply = json.loads(transport.request(p.encode(message, p.VERSION)))
            if "image" in reply:
                return ImageOffer.from_wire(reply["image"])
            time.sleep(0.2)
    finally:
        transport.close()
        ws.lock()
    _log(f"no snapshot image offered within {IMAGE_WAIT_S} s")
    return None


def _download(
    running: ServerProcess, code: str, folder: Path, records: int, pages_only: bool
) -> dict[str, Any]:
    """One new workstation's first sync, timed (``pages_only``: not offered the image)."""
    ws, credential = _enrolled(running, code, folder)
    transport = HttpTransport(
        credential.server_url, credential.token, verify=tls_trust(credential.server_ca_pem)
    )
    progress: list[int] = []
    try:
        server_cpu0 = _process_cpu_s(running.process.pid)
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        report = sync(
            ws.database,
            _PagesOnly(transport) if pages_only else transport,
            "admin",
            on_progress=lambda r: progress.append(r.snapshot_records),
        )
        seconds = time.perf_counter() - t0
        client_cpu_s = time.process_time() - cpu0
        server_cpu1 = _process_cpu_s(running.process.pid)
    finally:
        transport.close()
    disk = breakdown(ws.database, records, folder)
    ws.lock()
    ws.sign_in("admin", PASSWORD)
    patients = ws.records.count_patients()
    ws.lock()
    received = report.snapshot_records + report.pulled
    return {
        "seconds": round(seconds, 2),
        "snapshot_image": report.snapshot_image,
        "records_received": received,
        "snapshot_records": report.snapshot_records,
        "ops_pulled": report.pulled,
        # Signed ops: record states of a snapshot are merged results, not signed changes,
        # so verification costs a first download nothing; every op pulled after it is
        # verified (figures with and without: sync.remote_apply).
        "verification": "snapshot trusted on the pinned TLS connection; later ops verified",
        "rounds": report.rounds,
        "records_per_s": round(received / seconds),
        # The client's own CPU time (this process; the server runs in another): on a
        # loaded machine, wall time also counts waiting for a core.
        "client_cpu_s": round(client_cpu_s, 2),
        "server_cpu_s": (
            round(server_cpu1 - server_cpu0, 2)
            if server_cpu0 is not None and server_cpu1 is not None
            else None
        ),
        "progress_reports": len(progress),
        # The download's work, client and server, spread over every core with nothing
        # lost: no wall time below this without doing less work.
        "cpu_bound_s": cpu_bound_s(client_cpu_s, server_cpu1, server_cpu0),
        "disk": disk,
        "patients_on_workstation": patients,
        "complete": patients == records,
    }


def cpu_bound_s(
    client_cpu_s: float, server_end: float | None, server_start: float | None
) -> dict[str, Any] | None:
    """The least wall time the download's CPU work allows on this machine's cores (None
    when the server's CPU time could not be read)."""
    if server_end is None or server_start is None:
        return None
    cores = os.cpu_count() or 1
    total = client_cpu_s + server_end - server_start
    return {"cpu_s": round(total, 2), "cores": cores, "seconds": round(total / cores, 2)}


class _Watcher(ServiceListener):
    def __init__(self, name: str) -> None:
        self.name = name
        self.seen = threading.Event()

    def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        if name == self.name:
            self.seen.set()

    def update_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self.add_service(zc, type_, name)

    def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        pass


def peer_discovery(rounds: int = DISCOVERY_ROUNDS) -> dict[str, Any]:
    """Seconds until a new browser on 127.0.0.1 sees an announced peer."""
    times: list[float] = []
    missed = 0
    for _ in range(rounds):
        advertiser = discovery.Advertiser(47390, "127.0.0.1", ["127.0.0.1"])
        try:
            watcher = _Watcher(f"{advertiser.instance}.{discovery.SERVICE_TYPE}")
            t0 = time.perf_counter()
            zc = Zeroconf(interfaces=["127.0.0.1"])
            try:
                browser = ServiceBrowser(zc, discovery.SERVICE_TYPE, watcher)
                if watcher.seen.wait(10):
                    times.append(time.perf_counter() - t0)
                else:
                    missed += 1
                browser.cancel()
            finally:
                zc.close()
        finally:
            advertiser.close()
    _log(f"discovery on loopback: {[round(t, 3) for t in times]} s, {missed} missed")
    return {
        "rounds": rounds,
        "missed": missed,
        "seconds": [round(t, 3) for t in times],
        "median_s": round(statistics.median(times), 3) if times else None,
        "max_s": round(max(times), 3) if times else None,
        "what": "new Zeroconf browser on 127.0.0.1 started after the announcement; time "
        "until its listener receives the peer's instance",
    }


def lan_edit_arrival(folder: Path, edits: int = LAN_EDITS) -> dict[str, Any]:
    """Seconds from a local edit to its arrival on a paired LAN peer."""
    ws_a = Workstation(folder / "lan-a", FAST_PARAMS)
    ws_a.init("LAN Bench Clinic", "admin", "Ada Admin", PASSWORD)
    ws_a.sign_in("admin", PASSWORD)
    patient = ws_a.records.add_patient("Lovelace", "Ada", "1915-12-10").id
    identity_a = lan_id.ensure_identity(ws_a.database, "admin")
    ws_b = Workstation(folder / "lan-b", FAST_PARAMS)
    with PeerServer(ws_a.database, identity_a, "127.0.0.1", 0) as server:
        assert server.pairing_port is not None
        code = lan_id.new_pair_code(ws_a.database, "admin")
        ws_b.prepare_join("admin", PASSWORD)
        # Bound to B's op-signing key, as pair_and_sync does: without the binding, A
        # quarantines B's edits as unsigned and none arrives.
        identity_b = join(
            "127.0.0.1", server.pairing_port, code, op_trust.binding_for(ws_b.database)
        )
        lan_id.save_identity(ws_b.database, identity_b, "admin")
        address = f"127.0.0.1:{server.port}"
        with LanTransport(address, identity_b) as transport:
            sync(ws_b.database, transport, "admin")
        ws_b.lock()
        ws_b.sign_in("admin", PASSWORD)
        times: list[float] = []
        arrived = 0
        for i in range(edits):
            phone = f"555-{i:04d}"
            t0 = time.perf_counter()
            ws_b.records.update_patient(patient, {"phone": phone})
            with LanTransport(address, identity_b) as transport:
                sync(ws_b.database, transport, "admin")
            if ws_a.records.get_patient(patient).phone == phone:
                arrived += 1
            times.append(time.perf_counter() - t0)
    ws_b.lock()
    ws_a.lock()
    _log(f"LAN edit to arrival: median {statistics.median(times) * 1000:.0f} ms")
    return {
        "edits": edits,
        "arrived": arrived,
        "median_s": round(statistics.median(times), 4),
        "max_s": round(max(times), 4),
        "what": "update_patient on B, then one sync session over a new mutual-TLS "
        "LanTransport to A's PeerServer on 127.0.0.1, then A reads the value",
    }


def run(records: int = DEFAULT_RECORDS) -> dict[str, Any]:
    """All desktop figures, as one JSON-able dict."""
    previous_keyring = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())  # type: ignore[no-untyped-call]
    try:
        with tempfile.TemporaryDirectory(prefix="careline-desktop-bench-") as tmp:
            folder = Path(tmp)
            _log(f"first download of a {records:,}-record clinic")
            download = first_download(folder, records)
            _log("peer discovery on loopback")
            found = peer_discovery()
            _log("LAN edit to arrival")
            lan = lan_edit_arrival(folder)
    finally:
        keyring.set_keyring(previous_keyring)
    limit_s = FIRST_DOWNLOAD_TARGET_S_PER_100K * records / 100_000
    disk_per_record = download["disk"]["bytes_per_record"]
    return {
        "store": "embedded SQLCipher on both sides",
        "first_download": download,
        "peer_discovery": found,
        "lan_edit_arrival": lan,
        "targets": {
            "first_download_s": {
                "target": f"first download of {records:,} records at most {limit_s:g} s "
                f"({FIRST_DOWNLOAD_TARGET_S_PER_100K:g} s per 100,000), complete, progress "
                "reported after every page",
                "value": download["seconds"],
                "limit": limit_s,
                "met": download["complete"]
                and download["progress_reports"] > 0
                and download["seconds"] <= limit_s,
                # Whether the CPU work done fits the target at all (first_download.cpu_bound_s).
                "cpu_bound_s": (download["cpu_bound_s"] or {}).get("seconds"),
            },
            "disk_bytes_per_record": {
                "target": "workstation database file after the first download, full-text "
                f"index included: at most {DISK_TARGET_BYTES_PER_RECORD:g} bytes per record",
                "value": disk_per_record,
                "limit": DISK_TARGET_BYTES_PER_RECORD,
                "met": disk_per_record <= DISK_TARGET_BYTES_PER_RECORD,
            },
            "lan_edit_arrival_s": {
                "target": f"local edit to arrival on a LAN peer under {LAN_EDIT_TARGET_S:g} s "
                "(worst of the edits), every edit arrived",
                "value": lan["max_s"],
                "limit": LAN_EDIT_TARGET_S,
                "met": lan["arrived"] == lan["edits"] and lan["max_s"] < LAN_EDIT_TARGET_S,
            },
        },
    }


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_RECORDS
    print(json.dumps(run(n), indent=2))
