"""The demo clinic: where it lives, how it is recognised, and what it may never do.

The demo is a clinic of synthetic patients (``demo_data.py`` makes them) for new staff and
evaluators. It is kept apart from any real clinic's records:

- its own folder, beside the clinic's data folder: ``<data dir>-demo`` (by default
  ``~/.local/share/careline-demo`` next to ``~/.local/share/careline``), never inside it;
- it is marked twice: a plain-text file in its folder (readable before the database is
  unlocked, so the sign-in screen and the command line can say "demo" at once) and a flag in
  its encrypted database (which travels with the database file, wherever it is copied);
- a demo database never joins a sync relationship: enrolling with a server, pairing with a
  LAN peer or issuing a pairing code is refused (:func:`refuse_if_demo`), so sample data
  never reaches a real clinic's replicas and real records never reach the demo.

Its one account is ``demo`` with the published password :data:`DEMO_PASSWORD`: the
data is synthetic, so the password protects nothing, and anyone may sign in to learn.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.crypto.kdf import DEFAULT_PARAMS, Argon2Params
from core.errors import CarelineError
from core.records.demo_data import DEFAULT_PATIENTS as DEFAULT_PATIENTS
from core.records.demo_data import DEFAULT_SEED as DEFAULT_SEED
from core.records.demo_data import DemoCounts, generate
from core.records.workstation import Workstation
from core.store.database import Database

DEMO_CLINIC_NAME = "Demo clinic (sample data)"
DEMO_NOTICE = "DEMO — sample data, not real patients"
DEMO_USER = "demo"
DEMO_FULL_NAME = "Demo User"
DEMO_PASSWORD = "demo-sample-data"  # noqa: S105 (published on purpose: module docstring)
MARKER_FILE = "DEMO-SAMPLE-DATA.txt"
_META_KEY = "demo_clinic"
_MARKER_TEXT = (
    "This folder holds Careline's demo clinic: synthetic sample data, not real patients.\n"
    f"Sign in as '{DEMO_USER}' with the password '{DEMO_PASSWORD}'.\n"
    "Open it with 'careline --demo'. It never syncs with a real clinic. Delete the folder to "
    "remove the demo; 'careline init --demo' makes a new one.\n"
)

Progress = Callable[[int, int], object]  # (patients written, patients in all)


class DemoClinicError(CarelineError):
    """Something a demo clinic must not do (sync), or a demo folder problem."""


def demo_folder(data_dir: Path) -> Path:
    """The demo's own folder beside ``data_dir``: ``<data dir>-demo``."""
    return data_dir.with_name(data_dir.name + "-demo")


def is_demo_folder(folder: Path) -> bool:
    """True if ``folder`` holds a demo clinic (its marker file; no key needed)."""
    return (folder / MARKER_FILE).is_file()


def is_demo_database(db: Database) -> bool:
    """True if the open database is a demo clinic's (the flag inside the database)."""
    return bool(db.query("SELECT 1 FROM meta WHERE key = ?", (_META_KEY,)))


def refuse_if_demo(what: str, folder: Path | None = None, db: Database | None = None) -> None:
    """Raise :class:`DemoClinicError` if the folder or the database is a demo clinic's.

    ``what`` names the refused action ("enroll with a clinic server").
    """
    if (folder is not None and is_demo_folder(folder)) or (
        db is not None and not db.closed and is_demo_database(db)
    ):
        raise DemoClinicError(
            f"this is the demo clinic (sample data, not real patients): it cannot {what}. "
            "Set up or join your real clinic in its own data folder (careline without --demo)"
        )


@dataclass(frozen=True)
class DemoClinic:
    """A demo clinic made by :func:`create_demo`."""

    folder: Path
    username: str
    password: str
    counts: DemoCounts | None  # None: an existing demo, opened (open_demo)


def open_demo(data_dir: Path) -> DemoClinic | None:
    """The demo clinic beside ``data_dir`` if there is one (nothing is opened or written)."""
    folder = demo_folder(data_dir)
    return DemoClinic(folder, DEMO_USER, DEMO_PASSWORD, None) if is_demo_folder(folder) else None


def create_demo(
    data_dir: Path,
    seed: int = DEFAULT_SEED,
    patients: int = DEFAULT_PATIENTS,
    today: dt.date | None = None,
    on_progress: Progress | None = None,
    kdf_params: Argon2Params = DEFAULT_PARAMS,
) -> DemoClinic:
    """Make the demo clinic in :func:`demo_folder` of ``data_dir`` (which is not touched).

    The same ``seed`` (and ``today``) always gives the same clinic. A folder that already
    holds a clinic is refused; if generating fails, what this call made is removed.
    """
    folder = demo_folder(data_dir)
    ws = Workstation(folder, kdf_params)
    if ws.is_initialized():
        raise DemoClinicError(
            f"{folder} already holds a clinic; open it with 'careline --demo', or delete the "
            "folder to make a new demo"
        )
    folder_existed = folder.exists()
    try:
        ws.init(DEMO_CLINIC_NAME, DEMO_USER, DEMO_FULL_NAME, DEMO_PASSWORD, keyring=False)
        records = ws.records
        with records.db.write(records.actor, "demo.create", "clinic", "clinic") as tx:
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                (_META_KEY, f"seed={seed} patients={patients}"),
            )
        (folder / MARKER_FILE).write_text(_MARKER_TEXT, encoding="utf-8")
        counts = generate(records, seed, patients, today, on_progress)
    except BaseException:
        ws.lock()
        for made in (*folder.glob("clinic.db*"), folder / "keyslots.json", folder / MARKER_FILE):
            made.unlink(missing_ok=True)
        if not folder_existed:
            with contextlib.suppress(OSError):  # not empty: something else lives there
                folder.rmdir()
        raise
    ws.lock()
    return DemoClinic(folder, DEMO_USER, DEMO_PASSWORD, counts)
