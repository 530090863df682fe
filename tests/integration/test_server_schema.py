"""The live server against its own OpenAPI document (schemathesis): every operation, with a
valid device token and without one, positive and negative inputs. No answer may be a 5xx,
and every answer must be one the document declares, with the declared content type and
body schema."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from core.sync.enroll import enroll
from tests.integration.server_fixtures import add_clinic, join_clinic, live_server, sync_at
from tests.services import create_postgres_database, drop_postgres_database

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
MAX_EXAMPLES = {
    schemathesis.GenerationMode.POSITIVE: 50,
    schemathesis.GenerationMode.NEGATIVE: 30,
}
BUDGET_SECONDS = 60
EXPECTED = {"GET /health", "GET /ready", "GET /metrics", "POST /v1/enroll", "POST /v1/sync"}


@dataclass
class Target:
    """The live server, its schema as schemathesis loaded it, and a device token."""

    url: str
    ca_file: str
    schema: Any
    token: str


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """The server in its production shape (PostgreSQL store), holding a clinic's records."""
    folder = tmp_path_factory.mktemp("schema")
    data = folder / "server"
    url = create_postgres_database()
    with live_server(
        data, {"DATABASE_URL": url, "METRICS_TOKEN": "prometheus-scrape-token"}
    ) as live:
        clinic = add_clinic(live.server, "Schema Clinic")
        desk, desk_credential = join_clinic(
            live.server, live.url, live.ca_pem, clinic, folder / "desk"
        )
        desk.records.add_patient("Fuzz", "Target", "1980-02-03")
        sync_at(desk, desk_credential)
        desk.lock()
        code, _ = live.server.registry.issue_enroll_code(clinic, 10)
        credential = enroll(live.url, code, live.ca_pem, "fuzzer")
        ca_file = str(data / "tls" / "server.pem")
        # The real TLS server, verified against its generated certificate.
        schema = schemathesis.openapi.from_url(live.url + "/openapi.json", verify=ca_file)
        yield Target(live.url, ca_file, schema, credential.token)
    drop_postgres_database(url)


def _takes_input(operation: Any) -> bool:
    definition = operation.definition.raw
    return bool(definition.get("parameters") or definition.get("requestBody"))


def _declares(operation: Any, status: int) -> bool:
    return str(status) in operation.definition.raw.get("responses", {})


def _unrouted(response: Any) -> bool:
    """The router's own 404 (a generated path no route matches): no handler ran."""
    return bool(response.status_code == 404 and response.content == b'{"detail":"Not Found"}')


def _fuzz(
    target: Target,
    operation: Any,
    mode: schemathesis.GenerationMode,
    examples: int,
    headers: dict[str, str],
    calls: dict[str, int],
    label: str,
) -> str | None:
    """Run ``examples`` generated cases; the failure hypothesis reports, if any."""
    refuses_strangers = not headers and _declares(operation, 401)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: keep the run bounded
        suppress_health_check=list(HealthCheck),
    )
    def exercise(case: schemathesis.Case[Any]) -> None:
        calls[label] += 1
        response = case.call(base_url=target.url, headers=headers, verify=target.ca_file)
        case.validate_response(response, checks=CHECKS)
        if refuses_strangers and not _unrouted(response):
            # An operation that can refuse a device serves nobody without a token.
            assert response.status_code == 401, (
                f"{response.status_code} without a token: {case.formatted_path!r} "
                f"-> {response.content[:200]!r}"
            )

    try:
        exercise()
    except (AssertionError, FailureGroup) as exc:
        return str(exc)
    except Unsatisfiable:
        # Schemathesis rejects every negative case that negates nothing: some operations
        # (an unconstrained string path parameter, a binary body) have no invalid input.
        if mode is not schemathesis.GenerationMode.NEGATIVE or calls[label]:
            raise
        del calls[label]
    return None


@pytest.mark.parametrize("authenticated", [True, False], ids=["with-token", "without-token"])
def test_every_operation_conforms_to_the_openapi_document(
    target: Target, authenticated: bool
) -> None:
    headers = {"Authorization": f"Bearer {target.token}"} if authenticated else {}
    operations = [result.ok() for result in target.schema.get_all_operations()]
    assert {op.label for op in operations} >= EXPECTED
    failures: list[str] = []
    calls: dict[str, int] = {}
    started = time.monotonic()

    for operation in operations:
        for mode, examples in MAX_EXAMPLES.items():
            if mode is schemathesis.GenerationMode.NEGATIVE and not _takes_input(operation):
                continue  # nothing to mutate
            label = f"{operation.label} ({mode.value})"
            calls[label] = 0
            failure = _fuzz(target, operation, mode, examples, headers, calls, label)
            if failure is not None:
                failures.append(f"{label}:\n{failure}")

    elapsed = time.monotonic() - started
    assert not failures, "\n\n".join(failures)
    assert all(count > 0 for count in calls.values()), calls
    assert elapsed < BUDGET_SECONDS, f"schema run took {elapsed:.1f} s"
