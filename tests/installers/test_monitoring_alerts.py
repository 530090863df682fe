"""The example Prometheus alert rules (installers/monitoring/careline-alerts.yml) watch
metrics a real ``careline-server run`` process exports, with the labels the rules select."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from core.sync.enroll import enroll, tls_trust
from tests.integration.server_process import REPO, clinic_server, server_admin

RULES = REPO / "installers" / "monitoring" / "careline-alerts.yml"
# A metric name with an optional {label matchers} block.
SELECTOR = re.compile(r"\b(careline_[a-z_]+)(?:\{([^}]*)\})?")
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    rules: list[dict[str, Any]] = [r for g in document["groups"] for r in g["rules"]]
    return rules


def test_every_rule_is_complete() -> None:
    rules = _rules()
    names = [r["alert"] for r in rules]
    assert {"CarelineSyncRefused", "CarelineOpsQuarantined"} <= set(names)
    assert len(names) == len(set(names))
    for rule in rules:
        assert rule["expr"].strip(), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


def _exported(tmp_path: Path) -> list[tuple[str, dict[str, str]]]:
    """(name, labels) of every sample a real server process exports after a refused sync
    request (a malformed message from an enrolled device)."""
    with clinic_server(tmp_path / "server", "Watched Clinic") as (running, clinic):
        code = server_admin(running.data, {}, "enroll-code", clinic)["code"]
        credential = enroll(running.url, code, running.ca_pem, "desk")
        trust = tls_trust(running.ca_pem)
        refused = httpx.post(
            running.url + "/v1/sync", content=b"{}", verify=trust,
            headers={"Authorization": f"Bearer {credential.token}"},
        )  # fmt: skip
        assert refused.status_code == 400, refused.text
        # From 127.0.0.1 (no METRICS_TOKEN set): served to this machine.
        text = httpx.get(running.url + "/metrics", verify=trust).text
    return [
        (sample.name, dict(sample.labels))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def test_the_rules_select_series_a_real_server_exports(tmp_path: Path) -> None:
    samples = _exported(tmp_path)
    selectors = [s for r in _rules() for s in SELECTOR.findall(r["expr"])]
    assert {name for name, _ in selectors} >= {
        "careline_sync_requests_total", "careline_sync_ops_quarantined_total",
        "careline_http_requests_total", "careline_http_request_seconds_bucket",
    }  # fmt: skip
    for name, matchers in selectors:
        wanted = MATCHER.findall(matchers)
        found = [
            labels for sample, labels in samples
            if sample == name and all(
                (op != "=" or labels.get(key) == value) and key in labels
                for key, op, value in wanted
            )
        ]  # fmt: skip
        assert found, f"{name}{{{matchers}}}: no such series in /metrics"
    # The quarantine counter exists from the start, at 0 (an alert on increase() then
    # fires on the first quarantined op, not only on the second).
    assert ("careline_sync_ops_quarantined_total", {}) in samples
