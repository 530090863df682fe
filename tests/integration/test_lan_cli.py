"""``careline serve``, ``pair code``, ``pair join``, ``sync --peer`` and ``peers`` as processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from core.records.workstation import Workstation
from core.sync.lan import discovery
from core.sync.lan import identity as lan_id
from core.sync.lan.server import PeerServer
from tests.integration.test_cli import PASSWORD, as_admin, careline
from tests.services import free_port_pair

pytestmark = pytest.mark.mdns

NURSE_FIRST, NURSE = "first-time pass 4417", "nina's own words 7731"


def test_serve_pair_join_sync_and_peers(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    as_admin(a, "init", "--clinic", "Harbour Clinic", "--user", "admin")
    as_admin(a, "patient", "add", "--family", "Nightingale", "--given", "F", "--birth-date",
             "1920-05-12")  # fmt: skip
    port = free_port_pair()
    env = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    serve = subprocess.Popen(
        [sys.executable, "-m", "app.entry", "--data-dir", str(a), "--json", "--password-stdin",
         "serve", "--host", "127.0.0.1", "--port", str(port)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert serve.stdin is not None and serve.stdout is not None
        serve.stdin.write(PASSWORD + "\n")
        serve.stdin.flush()
        started = json.loads(serve.stdout.readline() or "null")
        assert started is not None, serve.stderr.read() if serve.stderr else ""
        assert started["port"] == port and started["pairing_port"] == port + 1

        code = as_admin(a, "pair", "code")["code"]
        peer = f"127.0.0.1:{port}"
        join = ("--password-stdin", "--user", "admin", "pair", "join", "--peer", peer, "--code")
        wrong = careline(b, *join, "ZZZZZ-ZZZZZ", stdin=PASSWORD + "\n")
        assert wrong.returncode != 0 and "refused pairing" in wrong.stderr
        assert not b.exists() or not any(b.iterdir())  # nothing left behind

        joined = careline(b, "--json", *join, code, stdin=PASSWORD + "\n")
        assert joined.returncode == 0, joined.stderr
        assert json.loads(joined.stdout)["records"] > 0

        found = as_admin(b, "patient", "search", "Nightingale")
        assert len(found) == 1
        as_admin(b, "patient", "add", "--family", "Seacole", "--given", "M", "--birth-date",
                 "1925-11-23")  # fmt: skip
        synced = as_admin(b, "sync", "--peer", f"127.0.0.1:{port}", "--once")
        assert synced["pushed"] > 0
        wanted = {"address": f"127.0.0.1:{port}", "trusted": True}
        seen: list[dict[str, object]] = []
        # Asked again while not seen: on a loaded machine (the suite runs on every core,
        # other tests multicasting too) one browse can miss it; mDNS is only ever a hint.
        for _ in range(4):
            peers = as_admin(b, "peers", "--interface", "127.0.0.1")
            seen = [{"address": p["address"], "trusted": p["trusted"]} for p in peers]
            if wanted in seen:
                break
        assert wanted in seen

        # The CA holder lists the workstations it let join, and an administrator revokes
        # one (a lost laptop): its next sync is refused while the clinic's goes on.
        devices = {d["device_id"]: d for d in as_admin(a, "pair", "devices")}
        b_device = json.loads(joined.stdout)["device_id"]
        assert devices[b_device]["state"] == "active" and devices[b_device]["replica"]
        # Where it was last seen: the address of its sync with 'careline serve' here.
        last = devices[b_device]["last_seen"]
        assert last["address"] == "127.0.0.1" and not last["pairing"]
        assert last["at"] > devices[b_device]["first_issued"]
        listed = careline(a, "--password-stdin", "pair", "devices", stdin=PASSWORD + "\n")
        assert f"last seen at 127.0.0.1 at {last['at'][:16].replace('T', ' ')} UTC" in next(
            line for line in listed.stdout.splitlines() if line.startswith(b_device)
        )
        assert [d["this_workstation"] for d in devices.values()].count(True) == 1
        revoked = as_admin(a, "pair", "revoke", b_device)
        assert revoked["revoked_serials"] == devices[b_device]["serials"]
        assert as_admin(a, "pair", "devices")[-1]["state"] == "revoked"
        shut_out = careline(b, "--password-stdin", "sync", "--peer", peer, "--once",
                            stdin=PASSWORD + "\n")  # fmt: skip
        assert shut_out.returncode != 0
        assert "refuses this workstation's certificate" in shut_out.stderr, shut_out.stderr
        mine = next(d for d, v in devices.items() if v["this_workstation"])
        itself = careline(a, "--password-stdin", "pair", "revoke", mine, stdin=PASSWORD + "\n")
        assert itself.returncode != 0 and "cannot revoke itself" in itself.stderr

        # Only an administrator lets a workstation join or sees which did.
        added = careline(
            a, "--password-stdin", "user", "add", "nina", "--full-name", "Nina N", "--role",
            "nurse", stdin=f"{PASSWORD}\n{NURSE_FIRST}\n",
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        careline(a, "--user", "nina", "--password-stdin", "password", "change",
                 stdin=f"{NURSE_FIRST}\n{NURSE}\n")  # fmt: skip
        for command in (("pair", "code"), ("pair", "devices"), ("pair", "revoke", b_device)):
            refused = careline(a, "--user", "nina", "--password-stdin", *command,
                               stdin=NURSE + "\n")  # fmt: skip
            assert refused.returncode != 0, command
            assert "Only an admin can" in refused.stderr, refused.stderr
    finally:
        serve.send_signal(signal.SIGTERM)
        _, err = serve.communicate(timeout=20)
    assert serve.returncode == 0, err
    assert "Harbour" not in err and "Nightingale" not in err
    # serve's log: one JSON object a line, the refused and the accepted pairing among them.
    logged = [json.loads(line) for line in err.splitlines()]
    lan = [(d["level"], d["message"]) for d in logged if d["logger"] == "core.sync.lan.server"]
    assert any(level == "warning" and m.startswith("refused pairing") for level, m in lan), err
    assert any(level == "info" and m.startswith("paired device") for level, m in lan), err
    assert len(as_admin(a, "patient", "search", "Seacole")) == 1


def test_pair_join_without_peer_asks_each_workstation_seen_until_one_pairs(
    workstation: Workstation, tmp_path: Path
) -> None:
    # Announced on this host: two addresses where nothing listens for pairing (as any
    # workstation but the clinic's LAN CA holder), and later the CA holder itself.
    fakes = [free_port_pair(), free_port_pair()]
    announced = [discovery.Advertiser(port, "127.0.0.1", ["127.0.0.1"]) for port in fakes]
    b = tmp_path / "b"
    identity = lan_id.ensure_identity(workstation.database, "admin")
    code = lan_id.new_pair_code(workstation.database, "admin")
    join = ("--password-stdin", "--user", "admin", "pair", "join", "--code", code)
    try:
        refused = careline(b, *join, stdin=PASSWORD + "\n")
        assert refused.returncode != 0
        assert "LAN peers seen pairs with this code" in refused.stderr
        assert all(f"127.0.0.1:{port}: cannot reach" in refused.stderr for port in fakes)
        assert "--peer HOST:PORT" in refused.stderr
        assert not b.exists() or not any(b.iterdir())  # nothing left behind

        with PeerServer(workstation.database, identity, "127.0.0.1", free_port_pair()) as ca:
            announced.append(discovery.Advertiser(ca.port, "127.0.0.1", ["127.0.0.1"]))
            joined = careline(b, "--json", *join, stdin=PASSWORD + "\n")
            assert joined.returncode == 0, joined.stderr
            assert json.loads(joined.stdout)["records"] > 0
            # Those asked before it (the order is random) are said to be skipped, never the
            # one that paired. (Other tests running beside this one may announce peers on
            # this host too, so a skipped address need not be one of the fakes.)
            skipped = [line for line in joined.stderr.splitlines() if " skipped: " in line]
            assert all(line.startswith("careline: LAN peer ") for line in skipped), skipped
            assert not any(f"127.0.0.1:{ca.port} skipped" in line for line in skipped)
    finally:
        for advertiser in announced:
            advertiser.close()
