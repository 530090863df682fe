"""``careline print ...`` as operators script it: real processes, real SQLCipher, and the
PDF read back."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from pypdf import PdfReader

from core.crypto.kdf import FAST_PARAMS
from core.records.workstation import Workstation
from tests.integration.test_cli import PASSWORD, as_admin, careline
from tests.unit.reports.sample import DAY, SampleChart, sample_chart


@pytest.fixture(scope="module")
def charted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SampleChart]:
    """A clinic whose sample chart was written through the ordinary write path."""
    data = tmp_path_factory.mktemp("print") / "data"
    ws = Workstation(data, kdf_params=FAST_PARAMS)
    ws.init("Harbour Clinic", "admin", "Ada Admin", PASSWORD)
    ws.sign_in("admin", PASSWORD)
    try:
        chart = sample_chart(ws.records)
    finally:
        ws.lock()
    return data, chart


def text_of(path: Path) -> str:
    return "\n".join(p.extract_text() for p in PdfReader(path).pages)


def test_print_summary_visit_and_day(charted: tuple[Path, SampleChart], tmp_path: Path) -> None:
    data, chart = charted
    summary = tmp_path / "summary.pdf"
    done = as_admin(data, "print", "summary", chart.patient_id, "-o", str(summary))
    assert done == {"report": "summary", "file": str(summary), "bytes": summary.stat().st_size}
    assert summary.stat().st_mode & 0o777 == 0o600
    text = text_of(summary)
    assert "ÑÚÑEZ-ØDEGÅRD, Zoë" in text and "Penicillin" in text and "154 lb" in text
    assert "Harbour Clinic" in text

    visit = tmp_path / "visit.pdf"
    as_admin(data, "print", "visit", chart.visit_id, "-o", str(visit))
    assert "HbA1c came back at 6.8 %." in text_of(visit)

    day = tmp_path / "day.pdf"
    plain = careline(
        data, "--password-stdin", "print", "day", DAY, "-o", str(day), stdin=PASSWORD + "\n"
    )
    assert plain.returncode == 0, plain.stderr
    assert f"Wrote {day}" in plain.stdout
    text = text_of(day)
    assert text.index("ПЕТРОВ, Иван") < text.index("ÑÚÑEZ-ØDEGÅRD, Zoë") < text.index("O'BRIEN")

    today = tmp_path / "today.pdf"  # no DATE: today's list
    as_admin(data, "print", "day", "-o", str(today))
    assert f"Appointments on {datetime.date.today().isoformat()}" in text_of(today)

    audit = careline(data, "--password-stdin", "audit", "verify", stdin=PASSWORD + "\n")
    assert audit.returncode == 0, audit.stderr


def test_print_refusals_name_the_problem(charted: tuple[Path, SampleChart], tmp_path: Path) -> None:
    data, chart = charted
    existing = tmp_path / "there.pdf"
    existing.write_bytes(b"keep me")

    def fails(*args: str) -> tuple[int, str]:
        r = careline(data, "--password-stdin", "print", *args, stdin=PASSWORD + "\n")
        return r.returncode, r.stderr

    code, err = fails("summary", chart.patient_id, "-o", str(existing))
    assert code == 2 and "already exists; add --force" in err
    assert existing.read_bytes() == b"keep me"
    code, err = fails("summary", "no-such-patient", "-o", str(tmp_path / "x.pdf"))
    assert code == 1 and "no patient with id 'no-such-patient'" in err
    assert not (tmp_path / "x.pdf").exists()
    code, err = fails("day", "30/11/2026", "-o", str(tmp_path / "d.pdf"))
    assert code == 1 and "30/11/2026" in err
    code, err = fails("visit", "v", "-o", str(tmp_path / "nofolder" / "v.pdf"))
    assert code == 2 and "does not exist" in err
    existing.chmod(0o644)
    assert fails("summary", chart.patient_id, "-o", str(existing), "--force")[0] == 0
    assert "Penicillin" in text_of(existing)
    assert existing.stat().st_mode & 0o777 == 0o600  # the replaced file's 0644 is not kept
