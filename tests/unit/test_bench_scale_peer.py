"""The scale and peer benchmarks' own logic (tests/bench/scale_bench.py, peer_bench.py): the
growth judgements their targets rest on, the sizes measured, and the PouchDB comparison's
skip when Node, npm or the packages are missing. Nothing here is timed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.bench import peer_bench, runner, scale_bench


def test_time_proportional_to_records_is_linear() -> None:
    judged = scale_bench.judge_growth([100, 300, 1000], [10.0, 31.0, 104.0], 1.3, True)
    assert judged["within"]
    assert judged["ratios_to_smallest"] == [1.0, 1.033, 1.04]


def test_time_growing_faster_than_records_is_not_linear() -> None:
    # n log n-like: 10x the records, 14x the time.
    judged = scale_bench.judge_growth([100, 1000], [10.0, 140.0], 1.3, True)
    assert not judged["within"]
    assert judged["ratio"] == 1.4


def test_flat_memory_passes_and_memory_growing_with_records_fails() -> None:
    assert scale_bench.judge_growth([1, 3, 10], [200.0, 210.0, 220.0], 1.25, False)["within"]
    grows = scale_bench.judge_growth([1, 3, 10], [200.0, 300.0, 900.0], 1.25, False)
    assert not grows["within"]
    assert grows["ratio"] == 4.5


def test_judgement_refuses_values_it_cannot_compare() -> None:
    with pytest.raises(ValueError, match="one value per size"):
        scale_bench.judge_growth([1, 2], [1.0], 1.3, True)
    with pytest.raises(ValueError, match="positive"):
        scale_bench.judge_growth([1, 2], [1.0, 0.0], 1.3, False)


def test_scale_sizes_lead_up_to_the_records_asked_for() -> None:
    assert scale_bench.scale_sizes(1_000_000) == [100_000, 300_000, 1_000_000]
    assert scale_bench.scale_sizes(2_000) == [1_000, 2_000]  # none under the minimum
    with pytest.raises(ValueError, match="--scale-records must be at least 1,000"):
        scale_bench.scale_sizes(999)


def test_pouchdb_over_careline_above_one_means_careline_leads() -> None:
    careline = [{"seconds": 10.0, "incremental_median_ms": 5.0, "disk_bytes": 100,
                 "peak_rss_kb": 50, "cpu_s": 6.0, "server_cpu_s": 2.0}] * 2  # fmt: skip
    pouch = [{"seconds": 20.0, "incremental_median_ms": 4.0, "disk_bytes": 100,
              "peak_rss_kb": 100, "cpu_s": 3.0, "server_cpu_s": 3.0}] * 2  # fmt: skip
    medians = peer_bench.summarize(careline, pouch)
    assert medians["first_download_s"]["pouchdb_over_careline"] == 2.0
    assert medians["incremental_sync_ms"]["pouchdb_over_careline"] == 0.8
    assert medians["first_download_cpu_s"] == {"careline": 8.0, "pouchdb": 6.0,
                                               "pouchdb_over_careline": 0.75}  # fmt: skip


def test_peer_part_is_skipped_with_the_reason_without_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no node, no npm
    result = peer_bench.run(records=10, runs=1)
    assert result["skipped"] is True
    assert "Node.js is not installed" in result["why"]
    assert runner.named_targets("peer", result) == []  # optional: no target


def _path_with(tmp_path: Path, **tools: str) -> str:
    """A PATH folder holding only ``tools`` (name -> shell script body, or a real tool's
    path to link)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name, body in tools.items():
        if body.startswith("/"):
            (folder / name).symlink_to(body)
        else:
            (folder / name).write_text(f"#!/bin/sh\n{body}\n")
            (folder / name).chmod(0o755)
    return str(folder)


def test_peer_part_is_skipped_without_npm_when_the_packages_are_not_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", _path_with(tmp_path, node="exit 0"))
    why = peer_bench.prepare(tmp_path / "home")
    assert isinstance(why, str)
    assert "npm is not installed" in why


def test_peer_part_is_skipped_with_npm_s_message_when_the_install_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing = "echo 'npm ERR! network request to registry.npmjs.org failed' >&2; exit 1"
    monkeypatch.setenv("PATH", _path_with(tmp_path, node="exit 0", npm=failing))
    home = tmp_path / "home"
    why = peer_bench.prepare(home)
    assert isinstance(why, str)
    assert "npm ci" in why and "failed (1)" in why and "network request" in why
    assert not (home / "installed.sha256").exists()  # tried again next time


@pytest.mark.skipif(shutil.which("node") is None, reason="no Node.js on this machine")
def test_installed_packages_are_found_without_npm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A complete install (stamp matching the lock, the packages' manifests) needs no npm."""
    home = tmp_path / "home"
    for package in peer_bench.PACKAGES:
        (home / "node_modules" / package).mkdir(parents=True)
        (home / "node_modules" / package / "package.json").write_text('{"version": "1.2.3"}')
    (home / "installed.sha256").write_text(peer_bench._lock_digest())
    node = shutil.which("node")
    assert node is not None
    monkeypatch.setenv("PATH", _path_with(tmp_path, node=os.path.realpath(node)))
    stack = peer_bench.prepare(home)
    assert isinstance(stack, peer_bench.NodeStack)
    assert stack.versions == dict.fromkeys(peer_bench.PACKAGES, "1.2.3")
