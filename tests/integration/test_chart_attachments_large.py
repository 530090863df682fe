"""A 200 MB attachment's whole trip (issue #16), marked slow (about 10 s here): added
offline, upload cut half-way and resumed, opened intact on a second workstation, and no
plaintext on the server's disk. The 20 MB version runs in the suite
(test_chart_attachments.py); ``make bench`` reports the timings."""

from __future__ import annotations

import pytest

from tests.bench import chart_attachment_bench


@pytest.mark.slow
def test_a_200_mb_file_cut_mid_upload_opens_intact_elsewhere_and_never_in_plaintext() -> None:
    result = chart_attachment_bench.run()
    assert 0 < result["resumed_from_byte"] < chart_attachment_bench.SIZE
    assert result["opened_intact"] is True
    assert result["plaintext_on_server"] is False
