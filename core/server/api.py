"""The server's HTTP API (FastAPI): health, readiness, metrics, enrollment and sync.

Every sync request is authenticated by the device's bearer token, checked against the
registry on each request, so a revoked device is refused at once. A device only ever
reaches its own clinic's replica: no endpoint takes a clinic id from the client.
Logs are structured (one JSON object a line) and carry ids, never request bodies or names.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field

from core.server.registry import Device
from core.server.service import ClinicServer, ServerError
from core.sync import protocol

log = logging.getLogger("careline.server")

_ERROR_STATUS = {"malformed": 400, "version": 400, "too_large": 413, "refused": 409}


class EnrollRequest(BaseModel):
    """A device asking to join a clinic with a one-time code."""

    code: str = Field(min_length=8, max_length=64)
    device_name: str = Field(min_length=1, max_length=64)
    csr: str = Field(min_length=100, max_length=8192, description="PEM certificate request")


class EnrollResponse(BaseModel):
    """The device's credentials (the token is shown only now)."""

    device_id: str
    clinic_id: str
    clinic_name: str
    token: str
    certificate: str
    ca_certificate: str


class Problem(BaseModel):
    """An error: what was wrong, in words."""

    detail: str


def create_app(server: ClinicServer) -> FastAPI:
    """The ASGI application serving ``server``."""
    app = FastAPI(
        title="Careline clinic server",
        version="1",
        description="Sync and enrollment API for Careline workstations.",
    )
    metrics = CollectorRegistry()
    requests = Counter(
        "careline_http_requests_total", "HTTP requests", ["route", "status"], registry=metrics
    )
    latency = Histogram(
        "careline_http_request_seconds", "HTTP request latency", ["route"], registry=metrics
    )
    sync_ops = Counter(
        "careline_sync_requests_total", "Sync requests by type", ["type"], registry=metrics
    )

    @app.middleware("http")
    async def observe(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        elapsed = time.perf_counter() - started
        requests.labels(path, str(response.status_code)).inc()
        latency.labels(path).observe(elapsed)
        log.info(
            json.dumps(
                {
                    "event": "http",
                    "method": request.method,
                    "route": path,
                    "status": response.status_code,
                    "ms": round(elapsed * 1000, 1),
                    "device": getattr(request.state, "device_id", None),
                }
            )
        )
        return response

    def device_of(request: Request) -> Device:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(401, "a device token is required (Authorization: Bearer ...)")
        device = server.authenticate(token.strip())
        if device is None:
            raise HTTPException(401, "the device token is not valid, or the device was revoked")
        request.state.device_id = device.id
        return device

    @app.get("/health", responses={200: {"model": dict[str, str]}})
    def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", responses={503: {"model": Problem}})
    def ready() -> JSONResponse:
        """Readiness: the registry database answers."""
        try:
            server.registry.clinics()
        except Exception as exc:  # any failure means not ready; say which
            return JSONResponse({"detail": f"registry unavailable: {type(exc).__name__}"}, 503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", response_class=PlainTextResponse)
    def prometheus() -> Response:
        """Prometheus metrics."""
        return Response(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    @app.post(
        "/v1/enroll",
        status_code=201,
        response_model=EnrollResponse,
        responses={400: {"model": Problem}},
    )
    def enroll(body: EnrollRequest) -> EnrollResponse:
        """Join a clinic with a one-time code; returns the device token and certificate."""
        try:
            result = server.enroll(body.code, body.device_name, body.csr)
        except ServerError as exc:
            raise HTTPException(400, str(exc)) from None
        return EnrollResponse(**result.__dict__)

    @app.post(
        "/v1/sync",
        responses={
            200: {"description": "a sync reply (careline-sync/1)"},
            400: {"model": Problem},
            401: {"model": Problem},
            409: {"model": Problem},
            413: {"model": Problem},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        },
    )
    async def sync(request: Request) -> Response:
        """One request of the sync protocol, for the calling device's own clinic."""
        device = device_of(request)
        declared = request.headers.get("content-length")
        if (
            declared is not None
            and declared.isdigit()
            and int(declared) > protocol.MAX_MESSAGE_BYTES
        ):
            raise HTTPException(413, "sync message exceeds the size limit")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > protocol.MAX_MESSAGE_BYTES:
                raise HTTPException(413, "sync message exceeds the size limit")
        reply = server.sync(device, bytes(body))
        parsed: dict[str, Any] = json.loads(reply)
        sync_ops.labels(str(parsed.get("type"))).inc()
        status = 200
        if parsed.get("type") == "error":
            status = _ERROR_STATUS.get(str(parsed.get("code")), 400)
        return Response(reply, status_code=status, media_type="application/json")

    return app
