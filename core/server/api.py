"""The server's HTTP API (FastAPI): health, readiness, metrics, enrollment, sync and
attachments.

Every sync request is authenticated by the device's bearer token, checked against the
registry on each request, so a revoked device is refused at once. A device only ever
reaches its own clinic's replica and attachments: no endpoint takes a clinic id from the
client.

Attachments stream both ways: an upload is encrypted as its body arrives (only ciphertext
is spooled, on the data disk) and a download is decrypted chunk by chunk into the response,
so no whole file is ever held in memory.

Every endpoint has a body limit fitting what it takes (:data:`ENROLL_MAX_BODY` for
enrollment, the sync protocol's message limit for sync, the attachment limit for uploads,
nothing for the rest), enforced while the body arrives: a declared length far past it is
refused with 413 before a byte is read (one only a little past it is read and dropped first,
so the client sees the 413), a body that runs past it as soon as it does. Error replies
name the field and the problem, never the input. Failed enrollments are counted per source
address (:data:`ENROLL_FAILURES` in :data:`ENROLL_WINDOW` seconds, then 429 for unknown
codes; a correct code is always accepted) and logged.
Logs are structured (one JSON object a line) and carry ids, never request bodies or names.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, BinaryIO, cast

import anyio.from_thread
import anyio.to_thread
import psycopg
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, Field, ValidationError
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.crypto.errors import DecryptionError
from core.keys.errors import KeyError_
from core.server import security_log
from core.server.blob_uploads import UploadOffsetError, UploadRefusedError, UploadState
from core.server.postgres.columns import SealedValueError
from core.server.registry import Device, normalize_code
from core.server.service import AccountChecksSpent, ClinicServer, ServerError
from core.store.blobs import (
    BlobNotFoundError,
    BlobStoreError,
    InvalidBlobIdError,
    validate_blob_id,
)
from core.sync import protocol
from core.sync.lan.server import AttemptLimiter
from core.sync.snapshot_image import ImageStream, is_image_id

log = logging.getLogger("careline.server")

# An enrollment request: a code, a device name and a CSR of at most 8 KiB, as JSON.
ENROLL_MAX_BODY = 16 * 1024
# Endpoints that take no body (health, metrics, downloads) accept at most this.
NO_BODY = 1024
# A declared body past its limit by no more than this is read and dropped before the 413.
LINGER_BYTES = 1024 * 1024
ENROLL_FAILURES = 5  # failed enrollments per source address ...
ENROLL_WINDOW = 60.0  # ... in any this many seconds; then 429 until the window passes

_ERROR_STATUS = {"malformed": 400, "version": 400, "too_large": 413, "refused": 409}


class EnrollRequest(BaseModel):
    """A device asking to join a clinic with a one-time code."""

    code: str = Field(min_length=8, max_length=64)
    device_name: str = Field(min_length=1, max_length=64)
    csr: str = Field(min_length=100, max_length=8192, description="PEM certificate request")


class AccountCheckRequest(BaseModel):
    """A joining workstation asking, before it spends its code, for the account its person
    named."""

    code: str = Field(min_length=8, max_length=64)
    username: str = Field(min_length=1, max_length=128)


class AccountCheckResponse(BaseModel):
    """The account's password verifier (null: the clinic has no account by that name), for
    the workstation to check the password typed there; it never leaves the workstation."""

    verifier: str | None
    active: bool


class EnrollResponse(BaseModel):
    """The device's credentials (the token is shown only now)."""

    device_id: str
    clinic_id: str
    clinic_name: str
    token: str
    certificate: str
    ca_certificate: str


class ValidationProblem(BaseModel):
    """One problem with a request body: where and what (never the value sent)."""

    loc: list[str]
    msg: str
    type: str


class ValidationProblems(BaseModel):
    """A request body that does not match its schema."""

    detail: list[ValidationProblem]


class CertifyRequest(BaseModel):
    """An enrolled device asking for a certificate bound to its replica."""

    csr: str = Field(
        min_length=100, max_length=8192,
        description="PEM certificate request naming the replica (urn:careline:replica:...)",
    )  # fmt: skip


class CertifyResponse(BaseModel):
    """The device's new certificate, bound to its replica."""

    certificate: str
    ca_certificate: str


class SyncErrorReply(BaseModel):
    """A refused sync request: the protocol's ``error`` message (nothing was changed)."""

    protocol: str = Field(description="careline-sync")
    v: int = Field(description="protocol version")
    type: str = Field(pattern="^error$")
    code: str = Field(description="malformed, version, too_large or refused")
    message: str = Field(description="what was wrong, in words")


class Problem(BaseModel):
    """An error: what was wrong, in words."""

    detail: str


class AttachmentStored(BaseModel):
    """An uploaded attachment; record ``id`` (and ``digest``) in an attachment record."""

    id: str = Field(pattern="^[0-9a-f]{64}$", description="Blob id: the clinic's keyed content id")
    size: int = Field(ge=0, description="Plaintext size in bytes")
    digest: str = Field(
        pattern="^[0-9a-f]{64}$",
        description="BLAKE3 of the plaintext, hex (keep it only inside encrypted records)",
    )
    deduplicated: bool = Field(description="The clinic already stored this content")


_BINARY = {"schema": {"type": "string", "format": "binary"}}
_NO_ATTACHMENT = "no attachment with this id in this clinic"
_RANGE = re.compile(r"bytes=(\d+)-")


class BlobUploadState(BaseModel):
    """How far an upload of a client-encrypted blob got."""

    offset: int = Field(description="Bytes the server holds; the next piece starts here")
    size: int | None = Field(description="The declared total size, if an upload is under way")
    complete: bool = Field(description="The blob is stored and verified")
    sha256: str | None = Field(
        default=None, description="SHA-256 of the stored ciphertext, once complete"
    )


class _TooLarge(Exception):
    """The request body went past the attachment size limit."""


class _BodyReader(io.RawIOBase):
    """The request body as a blocking raw stream, for a worker thread.

    Each ``readinto`` pulls the next body chunk from the event loop (so the body is read
    only as fast as it is encrypted, never buffered whole) and counts bytes against
    ``limit``.
    """

    def __init__(self, chunks: AsyncIterator[bytes], limit: int) -> None:
        super().__init__()
        self._chunks = chunks
        self._limit = limit
        self._pending = memoryview(b"")
        self._total = 0
        self._done = False

    def readable(self) -> bool:
        return True

    async def _next(self) -> bytes | None:
        try:
            return await self._chunks.__anext__()
        except StopAsyncIteration:
            return None

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._pending and not self._done:
            chunk = anyio.from_thread.run(self._next)
            if chunk is None:
                self._done = True
                break
            self._total += len(chunk)
            if self._total > self._limit:
                raise _TooLarge
            self._pending = memoryview(chunk)
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def _too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"the attachment is larger than the limit of {limit} bytes")


def _body_too_large(path: str, limit: int) -> HTTPException:
    # Connection: close, so that the server stops reading the rest of the body.
    return HTTPException(
        413,
        f"the request body of {path} is larger than the limit of {limit} bytes",
        headers={"Connection": "close"},
    )


async def _discard_body(receive: Receive) -> None:
    """Read a request body to its end (or the client's disconnect), keeping none of it."""
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


class _ImageDownload(StreamingResponse):
    """A snapshot image's bytes, logging how the download ended once it has: all of the
    image sent (``sync.image_sent``), or cut off (``sync.image_cut_off``: the client went
    away, or the body failed part-way), with the bytes sent and the bytes expected.

    Without it a cut-off download reached the log as a plain status 200 (the status goes
    out before the body). Bytes sent are those handed to the HTTP server, which may hold
    up to a chunk that never reached a client already gone.
    """

    def __init__(self, image: ImageStream, device_id: str, image_id: str, route: str) -> None:
        super().__init__(
            image.chunks,
            media_type="application/octet-stream",
            # The length told: a client sees a body cut short for what it is, and knows
            # the size from the response as well as from the offer.
            headers={
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
                "Content-Length": str(image.size),
            },
        )
        self._image = image
        self._fields = {"route": route, "device": device_id, "image": image_id}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sent, ended, failure = 0, False, None

        async def counted(message: Message) -> None:
            nonlocal sent, ended
            if message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
                ended = not message.get("more_body", False)
            await send(message)

        try:
            await super().__call__(scope, receive, counted)
        except BaseException as exc:
            failure = type(exc).__name__
            raise
        finally:
            # A client gone stops the response without an error (Starlette cancels the
            # body); the file is closed now rather than whenever the generator is collected.
            with contextlib.suppress(ValueError):
                self._image.chunks.close()
            expected = self._image.size
            whole = ended and failure is None and sent == expected
            why = None if whole else failure or ("client_gone" if not ended else "short")
            fields = {**self._fields, "bytes_sent": sent, "bytes_expected": expected}
            if whole:
                log.info(json.dumps({"event": "sync.image_sent", **fields}))
            else:
                log.warning(json.dumps({"event": "sync.image_cut_off", **fields, "reason": why}))


class BodyLimit:
    """Plain ASGI middleware refusing a request body past its endpoint's limit.

    A ``Content-Length`` past the limit (by more than :data:`LINGER_BYTES`) gets 413 at
    once, before any of the body is read; one closer to it is read and dropped first;
    a body (chunked, or longer than declared) that runs past it raises 413 from ``receive``
    the moment it does, so no more than the limit is ever read. ``limit_of(method, path)``
    gives the limit.
    """

    def __init__(self, app: ASGIApp, limit_of: Callable[[str, str], int]) -> None:
        self.app = app
        self.limit_of = limit_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        limit = self.limit_of(str(scope.get("method", "")), path)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            if declared.isdigit() and int(declared) <= limit + LINGER_BYTES:
                # A body only a little too large is read and dropped first: answering
                # while the client is still sending closes the connection under it, and it
                # sees a reset instead of the 413 that names the limit (nginx's lingering
                # close, bounded). A larger one is refused before a byte is read.
                await _discard_body(receive)
            problem = _body_too_large(path, limit)
            reply = JSONResponse({"detail": problem.detail}, 413, problem.headers)
            await reply(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _body_too_large(path, limit)
            return message

        await self.app(scope, limited, send)


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
    responses_cut_off = Counter(
        "careline_http_responses_cut_off_total",
        "Responses whose status was sent but whose body did not end (the client went away, "
        "or the body failed part-way); also counted in careline_http_requests_total",
        ["route", "status"],
        registry=metrics,
    )
    quarantined_ops = Counter(
        "careline_sync_ops_quarantined_total",
        "Pushed ops the server refused (failed signature or permission check) and kept aside",
        registry=metrics,
    )

    class Observe:
        """Metrics and one log line per request, as plain ASGI middleware.

        (Not ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware ends a streamed
        body cleanly when the app fails mid-stream, so a download stopped for a failed
        integrity check would reach the client as a complete, truncated file. Here the
        error propagates and the server drops the connection instead.)
        """

        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await self.app(scope, receive, send)
                return
            started = time.perf_counter()
            status = 500
            began = ended = False
            sent = 0

            async def observed_send(message: Message) -> None:
                nonlocal status, began, ended, sent
                if message["type"] == "http.response.start":
                    status, began = int(message["status"]), True
                elif message["type"] == "http.response.body":
                    sent += len(message.get("body", b""))
                    ended = not message.get("more_body", False)
                await send(message)

            try:
                await self.app(scope, receive, observed_send)
            finally:
                path = getattr(scope.get("route"), "path", "unmatched")
                elapsed = time.perf_counter() - started
                requests.labels(path, str(status)).inc()
                latency.labels(path).observe(elapsed)
                # A status went out but the body did not end (client gone, or the body
                # failed part-way): the status alone would read as a success.
                cut_off = began and not ended
                if cut_off:
                    responses_cut_off.labels(path, str(status)).inc()
                state = scope.get("state") or {}
                line: dict[str, Any] = {
                    "event": "http",
                    "method": scope.get("method"),
                    "route": path,
                    "status": status,
                    "ms": round(elapsed * 1000, 1),
                    "device": state.get("device_id"),
                    "bytes": sent,
                }
                if cut_off:
                    line["completed"] = False
                log.info(json.dumps(line))

    def limit_of(method: str, path: str) -> int:
        if method == "PUT" and path.startswith("/v1/blobs/"):
            return server.max_attachment_bytes
        if method == "PUT" and path.startswith("/v1/attachment-keys/grants/"):
            return 4096
        if method != "POST":
            return NO_BODY
        if path == "/v1/enroll":
            return ENROLL_MAX_BODY
        if path in ("/v1/sync", "/v1/certify"):
            # Both read their body only after the device token checked out (a caller without
            # one gets 401 and nothing is read); certify's model bounds its CSR to 8 KiB.
            return protocol.MAX_MESSAGE_BYTES
        if path == "/v1/attachments":
            return server.max_attachment_bytes
        return NO_BODY

    app.add_middleware(BodyLimit, limit_of=limit_of)
    app.add_middleware(Observe)  # outermost: refusals are counted and logged too

    async def keys_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # The key service (KMS, Vault, the local key file) could not give a clinic's keys.
        # The device can retry later; the administrator gets the cause in the log.
        log.error(json.dumps({"event": "keys.unavailable", "error": type(exc).__name__,
                              "detail": str(exc)[:300]}))  # fmt: skip
        return JSONResponse(
            {"detail": "the server cannot use this clinic's encryption keys right now "
             f"({type(exc).__name__}); nothing was changed. Try again later; if this "
             "persists the server's administrator must check its key provider"},
            503,
        )  # fmt: skip

    async def store_unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.error(json.dumps({"event": "store.unavailable", "error": type(exc).__name__}))
        return JSONResponse(
            {"detail": "the server's database is unavailable; nothing was changed. Try again"},
            503,
        )

    async def sealed_value_damaged(request: Request, exc: Exception) -> JSONResponse:
        log.error(json.dumps({"event": "store.integrity", "detail": str(exc)[:300]}))
        return JSONResponse(
            {"detail": "stored clinic data failed its integrity check; the server's "
             "administrator has been told (see the server log)"},
            500,
        )  # fmt: skip

    async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
        # FastAPI's own reply echoes each invalid value back ("input"): a 5 MB field would
        # come back whole, and a code or a name would reach whatever logs the reply. Name
        # the field and the problem only.
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        # FastAPI's documented shape (loc, msg, type) without ``input`` or ``ctx``: the
        # OpenAPI document stays true and nothing a client sent is echoed back.
        problems = [
            {
                "loc": [str(part)[:64] for part in error.get("loc", ())][:8],
                "msg": str(error.get("msg", "invalid"))[:200],
                "type": str(error.get("type", "invalid"))[:64],
            }
            for error in errors[:20]
        ]
        return JSONResponse({"detail": problems}, 422)

    async def client_gone(request: Request, exc: Exception) -> Response:
        # The client dropped the connection mid-body: nobody reads a reply, nothing was
        # changed (bodies are read whole before anything acts on them). Not a server error.
        log.info(json.dumps({"event": "http.client_disconnected", "route": request.url.path}))
        return Response(status_code=400)

    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(ClientDisconnect, client_gone)
    app.add_exception_handler(KeyError_, keys_unavailable)
    app.add_exception_handler(psycopg.OperationalError, store_unavailable)
    app.add_exception_handler(PoolTimeout, store_unavailable)
    app.add_exception_handler(SealedValueError, sealed_value_damaged)

    def device_of(request: Request) -> Device:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(401, "a device token is required (Authorization: Bearer ...)")
        device = server.authenticate(token.strip())
        if device is None:
            # A failed device sign-in (a wrong token, or a revoked device's).
            client = request.client.host if request.client else None
            security_log.event("device.sign_in_refused", failed=True, client=client)
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

    metrics_token: str | None = server.settings.get("METRICS_TOKEN")
    enroll_failures = AttemptLimiter(ENROLL_FAILURES, ENROLL_WINDOW)
    # When an address is refused, one security event per window, not one per request.
    limited_notes = AttemptLimiter(1, ENROLL_WINDOW)

    @app.get(
        "/metrics",
        response_class=Response,
        responses={
            200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}},
            401: {"model": Problem, "content": {"application/json": {}}},
            403: {"model": Problem, "content": {"application/json": {}}},
        },
    )
    def prometheus(request: Request) -> Response:
        """Prometheus metrics: with METRICS_TOKEN set, for the bearer of that token; else
        for clients on this machine only. (Request counts and latencies, no PHI.)"""
        if metrics_token:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            # compare_digest: no early exit on the first differing byte (Python gives no
            # stronger constant-time guarantee than that).
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), metrics_token.encode()
            ):
                raise HTTPException(401, "metrics need the METRICS_TOKEN bearer token")
        elif request.client is None or request.client.host not in ("127.0.0.1", "::1"):
            raise HTTPException(
                403, "metrics are served to this machine only; set METRICS_TOKEN for a scraper"
            )
        return Response(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    @app.post(
        "/v1/enroll",
        status_code=201,
        response_model=EnrollResponse,
        responses={
            400: {"model": Problem},
            413: {"model": Problem},
            429: {"model": Problem},
            503: {"model": Problem},
        },
    )
    def enroll(body: EnrollRequest, request: Request) -> EnrollResponse:
        """Join a clinic with a one-time code; returns the device token and certificate.
        Too many failed attempts from one address are refused (429) for a while."""
        address = request.client.host if request.client is not None else "unknown"
        # Codes carry 160 random bits: guessing one is hopeless at any rate, so the limit
        # guards the log and the CPU (certificate signing), not the codes. An address over
        # it (often one shared by a whole clinic: a NAT, a load balancer) may still use a
        # correct code; only unknown codes are refused, and that costs one digest of at
        # most 64 characters (EnrollRequest) and one indexed lookup.
        wait = enroll_failures.blocked(address)
        if wait is not None and not server.code_known(body.code):
            seconds = max(1, math.ceil(wait))
            if limited_notes.admit(address) is None:  # one line per address and window
                security_log.event(
                    "enroll.rate_limited", failed=True, client=address,
                    failures=ENROLL_FAILURES, window_s=int(ENROLL_WINDOW), retry_after_s=seconds,
                )  # fmt: skip
            raise HTTPException(
                429,
                "the enrollment code is not valid, and too many failed enrollment attempts "
                f"came from this address; try again in {seconds} s",
                headers={"Retry-After": str(seconds)},
            )
        try:
            result = server.enroll(body.code, body.device_name, body.csr, client=address)
        except ServerError as exc:
            enroll_failures.admit(address)  # only failures count
            log.warning(json.dumps({"event": "enroll.failed", "address": address,
                                    "reason": str(exc)[:200]}))  # fmt: skip
            raise HTTPException(400, str(exc)) from None
        return EnrollResponse(**result.__dict__)

    @app.post(
        "/v1/enroll/account",
        response_model=AccountCheckResponse,
        responses={
            400: {"model": Problem},
            413: {"model": Problem},
            429: {"model": Problem},
            503: {"model": Problem},
        },
    )
    def account_for_enrollment(body: AccountCheckRequest, request: Request) -> Any:
        """The account a person joining with a code names (its verifier), so that their
        workstation checks the password before spending the code. Refused (400) for a code
        that is not usable, which counts as a failed enrollment; at most
        ``registry.account_checks_allowed`` over the code's life (429), counted in
        the registry, so a restart or another server process does not reset it."""
        address = request.client.host if request.client is not None else "unknown"
        if not server.code_known(body.code):
            # Never counted per code: made-up codes must not crowd a real one's count out.
            security_log.event(
                "enroll.account_check_refused", failed=True, client=address,
                reason="the enrollment code is not valid",
            )  # fmt: skip
            wait = enroll_failures.blocked(address)
            enroll_failures.admit(address)
            if wait is not None:
                raise HTTPException(
                    429,
                    "the enrollment code is not valid, and too many failed enrollment attempts "
                    f"came from this address; try again in {max(1, math.ceil(wait))} s",
                    headers={"Retry-After": str(max(1, math.ceil(wait)))},
                )
            raise HTTPException(400, "the enrollment code is not valid")
        try:
            found = server.account_for_enrollment(body.code, body.username, client=address)
        except AccountChecksSpent as exc:
            # Per code, not per address (the registry counts): a code's holder may retry
            # a few names, not walk the clinic's staff list through it.
            key = hashlib.sha256(normalize_code(body.code).encode()).hexdigest()
            if limited_notes.admit("account:" + key) is None:  # once a minute per code
                security_log.event(
                    "enroll.account_check_limited", failed=True, client=address,
                )  # fmt: skip
            raise HTTPException(429, str(exc)) from None
        except ServerError as exc:
            enroll_failures.admit(address)
            raise HTTPException(400, str(exc)) from None
        return AccountCheckResponse(verifier=found.verifier, active=found.active)

    @app.post(
        "/v1/certify",
        response_model=CertifyResponse,
        responses={
            400: {"model": Problem},
            401: {"model": Problem},
            413: {"model": Problem},
            422: {"model": ValidationProblems},
            503: {"model": Problem},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": CertifyRequest.model_json_schema()}},
            }
        },
    )
    async def certify(request: Request) -> CertifyResponse:
        """Re-certify the calling device (enrolled before ops were signed): a certificate
        bound to the replica its request names. Refused (400) for a replica another device
        of the clinic is bound to, or one other than the device's own binding."""
        # The device first (401), then its body (422): like /v1/sync, a caller without a
        # token learns nothing about what a valid body looks like.
        device = device_of(request)
        try:
            body = CertifyRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            raise RequestValidationError(exc.errors()) from None
        try:
            result = server.certify(device, body.csr)
        except ServerError as exc:
            raise HTTPException(400, str(exc)) from None
        return CertifyResponse(certificate=result.certificate, ca_certificate=result.ca_certificate)

    @app.post(
        "/v1/sync",
        responses={
            200: {"description": "a sync reply (careline-sync/1)"},
            400: {"model": SyncErrorReply},
            401: {"model": Problem},
            409: {"model": SyncErrorReply},
            413: {"model": SyncErrorReply | Problem},
            503: {"model": Problem},
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
        body = bytearray()
        # BodyLimit stops the body at protocol.MAX_MESSAGE_BYTES; a client dropping
        # mid-body raises ClientDisconnect, answered by client_gone (no traceback).
        async for chunk in request.stream():
            body += chunk
        # The store work is blocking: run it on the thread pool, not on the event loop.
        reply = await run_in_threadpool(server.sync, device, bytes(body))
        parsed: dict[str, Any] = json.loads(reply)
        sync_ops.labels(str(parsed.get("type"))).inc()
        if parsed.get("type") == "ack":  # a pull's reply repeats old refusals: not counted
            quarantined_ops.inc(len(parsed.get("quarantined") or ()))
        status = 200
        if parsed.get("type") == "error":
            status = _ERROR_STATUS.get(str(parsed.get("code")), 400)
            # The code only: the message may quote the refused content.
            security_log.event(
                "sync.refused", failed=True, device=device.id, clinic=device.clinic_id,
                code=str(parsed.get("code")),
            )  # fmt: skip
        return Response(reply, status_code=status, media_type="application/json")

    @app.get(
        "/v1/sync/images/{image_id}",
        response_class=StreamingResponse,
        responses={
            200: {"description": "A snapshot image offered in a sync reply: a SQLCipher file "
                  "under the key given with the offer", "content": {
                "application/octet-stream": _BINARY}},
            400: {"model": Problem},
            401: {"model": Problem},
            404: {"model": Problem},
        },
    )  # fmt: skip
    def snapshot_image(image_id: str, request: Request) -> StreamingResponse:
        """Stream the snapshot image the calling device's clinic was offered (a first
        download as one file: core.sync.snapshot_image)."""
        device = device_of(request)
        if not is_image_id(image_id):
            raise HTTPException(400, "malformed image id: expected 32 lowercase hex digits")
        try:
            image = server.snapshot_image(device, image_id)
        except KeyError:
            raise HTTPException(
                404,
                "no such snapshot image here (replaced by a newer one, or offered by "
                "another server process): download the snapshot by pages",
            ) from None
        route = getattr(request.scope.get("route"), "path", request.url.path)
        return _ImageDownload(image, device.id, image_id, route)

    @app.post(
        "/v1/attachments",
        status_code=201,
        response_model=AttachmentStored,
        responses={
            400: {"model": Problem},
            401: {"model": Problem},
            413: {"model": Problem},
            503: {"model": Problem},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "The file's bytes, as they are (any content type).",
                "content": {"application/octet-stream": _BINARY},
            }
        },
    )
    async def upload_attachment(request: Request) -> AttachmentStored:
        """Store a file for the calling device's clinic: encrypted as it arrives, named by
        its keyed content id (equal content in the clinic is stored once)."""
        device = device_of(request)
        limit = server.max_attachment_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _too_large(limit)
        reader = _BodyReader(request.stream(), limit)
        try:
            stored = await anyio.to_thread.run_sync(
                server.put_attachment, device, cast(BinaryIO, reader)
            )
        except _TooLarge:
            raise _too_large(limit) from None
        except ClientDisconnect:
            raise HTTPException(400, "the upload was interrupted") from None
        except BlobStoreError as exc:
            log.error(json.dumps({"event": "attachment.store_failed", "error": str(exc)}))
            raise HTTPException(503, "attachment storage is unavailable; try again") from None
        log.info(
            json.dumps(
                {
                    "event": "attachment.upload",
                    "device": device.id,
                    "id": stored.blob_id,
                    "deduplicated": stored.deduplicated,
                }
            )
        )
        return AttachmentStored(
            id=stored.blob_id,
            size=stored.plaintext_size,
            digest=stored.plaintext_digest.hex(),
            deduplicated=stored.deduplicated,
        )

    @app.get(
        "/v1/attachments/{attachment_id:path}",
        response_class=StreamingResponse,
        responses={
            200: {"description": "The file's bytes, decrypted", "content": {
                "application/octet-stream": _BINARY}},
            400: {"model": Problem},
            401: {"model": Problem},
            404: {"model": Problem},
            500: {"model": Problem},
            503: {"model": Problem},
        },
    )  # fmt: skip
    def download_attachment(attachment_id: str, request: Request) -> StreamingResponse:
        """Stream one of the calling device's clinic's attachments back, decrypted.

        A failure after the first bytes (tampering found in a later chunk) aborts the
        response, so the client sees an incomplete body rather than a bad file.
        """
        device = device_of(request)
        try:
            validate_blob_id(attachment_id)
        except InvalidBlobIdError:
            raise HTTPException(
                400, "malformed attachment id: expected 64 lowercase hex digits"
            ) from None
        try:
            chunks = server.open_attachment(device, attachment_id)
        except BlobNotFoundError:
            raise HTTPException(404, _NO_ATTACHMENT) from None
        except BlobStoreError as exc:
            log.error(json.dumps({"event": "attachment.store_failed", "error": str(exc)}))
            raise HTTPException(503, "attachment storage is unavailable; try again") from None
        except DecryptionError as exc:
            log.error(
                json.dumps(
                    {"event": "attachment.integrity", "id": attachment_id, "error": str(exc)}
                )
            )
            raise HTTPException(500, "the stored attachment failed its integrity check") from None
        close = getattr(chunks, "close", None)
        return StreamingResponse(
            chunks,
            media_type="application/octet-stream",
            headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
            background=BackgroundTask(close) if close is not None else None,
        )

    # ----- client-encrypted attachments (issue #16): the server holds only ciphertext -----

    def _checked_blob_id(blob_id: str) -> str:
        try:
            return validate_blob_id(blob_id)
        except InvalidBlobIdError:
            raise HTTPException(
                400, "malformed attachment id: expected 64 lowercase hex digits"
            ) from None

    def _header_int(request: Request, name: str) -> int:
        value = request.headers.get(name, "")
        if not value.isdigit():
            raise HTTPException(400, f"the {name} header must be a whole number of bytes")
        return int(value)

    @app.get(
        "/v1/blobs/{blob_id}/upload",
        response_model=BlobUploadState,
        responses={400: {"model": Problem}, 401: {"model": Problem}},
    )
    def blob_upload_state(blob_id: str, request: Request) -> BlobUploadState:
        """How much of an upload the server holds, so a cut-off upload carries on there."""
        device = device_of(request)
        state = server.blob_uploads(device).offset(_checked_blob_id(blob_id))
        return BlobUploadState(
            offset=state.offset, size=state.size, complete=state.complete, sha256=state.sha256
        )

    @app.put(
        "/v1/blobs/{blob_id}",
        response_model=BlobUploadState,
        responses={
            400: {"model": Problem}, 401: {"model": Problem}, 409: {"model": Problem},
            413: {"model": Problem}, 422: {"model": Problem}, 503: {"model": Problem},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "Ciphertext bytes from Upload-Offset on (the workstation "
                "encrypted the file; Upload-Length and X-Ciphertext-SHA256 declare the "
                "whole ciphertext, which the server checks before storing it).",
                "content": {"application/octet-stream": _BINARY},
            }
        },
    )  # fmt: skip
    async def put_blob(blob_id: str, request: Request, response: Response) -> BlobUploadState:
        """Store (a piece of) a file the workstation encrypted, under its keyed content id.

        Answers 201 once the whole blob is stored and verified, 202 while more is expected,
        409 (with the offset to continue from) when the piece starts elsewhere.
        """
        device = device_of(request)
        blob_id = _checked_blob_id(blob_id)
        start = _header_int(request, "Upload-Offset")
        size = _header_int(request, "Upload-Length")
        if size > server.max_attachment_bytes:
            raise _too_large(server.max_attachment_bytes)
        sha256 = request.headers.get("X-Ciphertext-SHA256", "").lower()
        reader = _BodyReader(request.stream(), server.max_attachment_bytes)

        def append() -> UploadState:
            return server.append_blob(
                device, blob_id, start=start, size=size, sha256=sha256,
                src=cast(BinaryIO, reader),
            )  # fmt: skip

        try:
            state = await anyio.to_thread.run_sync(append)
        except UploadOffsetError as exc:
            raise HTTPException(409, str(exc), headers={"Upload-Offset": str(exc.offset)}) from None
        except UploadRefusedError as exc:
            security_log.event("attachment.refused", failed=True, device=device.id,
                               clinic=device.clinic_id)  # fmt: skip
            raise HTTPException(422, str(exc)) from None
        except _TooLarge:
            raise _too_large(server.max_attachment_bytes) from None
        except ClientDisconnect:
            raise HTTPException(400, "the upload was interrupted") from None
        except BlobStoreError as exc:
            log.error(json.dumps({"event": "attachment.store_failed", "error": str(exc)}))
            raise HTTPException(503, "attachment storage is unavailable; try again") from None
        response.status_code = 201 if state.complete else 202
        return BlobUploadState(
            offset=state.offset, size=state.size, complete=state.complete, sha256=state.sha256
        )

    @app.get("/v1/attachment-keys/devices", responses={401: {"model": Problem}})
    def key_grant_devices(request: Request) -> list[dict[str, Any]]:
        """The clinic's active devices, their certificates and the attachment key ids
        already sealed for each (a workstation seals the keys it holds for the others)."""
        device = device_of(request)
        return [
            {"device_id": d, "certificate": cert, "granted": granted}
            for d, cert, granted in server.key_grant_devices(device)
        ]

    @app.put(
        "/v1/attachment-keys/grants/{target}/{key_id}",
        status_code=204,
        responses={400: {"model": Problem}, 401: {"model": Problem}},
    )
    async def put_key_grant(target: str, key_id: str, request: Request) -> Response:
        """Keep a clinic attachment key sealed for another device of the clinic (the server
        cannot open it: only that device's private key can)."""
        device = device_of(request)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
        try:
            sealed = str(json.loads(bytes(body))["sealed"])
        except (ValueError, KeyError, TypeError):
            raise HTTPException(400, "expected a JSON object with the sealed grant") from None
        try:
            await run_in_threadpool(server.put_key_grant, device, target, key_id, sealed)
        except ServerError as exc:
            raise HTTPException(400, str(exc)) from None
        return Response(status_code=204)

    @app.delete(
        "/v1/attachment-keys/grants/{key_id}",
        status_code=204,
        responses={400: {"model": Problem}, 401: {"model": Problem}, 404: {"model": Problem}},
    )
    def drop_own_key_grant(key_id: str, request: Request) -> Response:
        """Give back a grant held for the calling device whose secret is not that key's
        (the devices holding the key then seal it for this one again)."""
        device = device_of(request)
        try:
            dropped = server.drop_own_key_grant(device, key_id)
        except ServerError as exc:
            raise HTTPException(400, str(exc)) from None
        if not dropped:
            raise HTTPException(404, f"no grant of key {key_id} is held for this device")
        return Response(status_code=204)

    @app.get("/v1/attachment-keys/grants", responses={401: {"model": Problem}})
    def my_key_grants(request: Request) -> dict[str, str]:
        """The attachment keys sealed for the calling device: key id -> sealed grant."""
        device = device_of(request)
        return server.key_grants_of(device.clinic_id, device.id)

    @app.get(
        "/v1/blobs/{blob_id}",
        response_class=StreamingResponse,
        responses={
            200: {"description": "The ciphertext, as the workstation encrypted it",
                  "content": {"application/octet-stream": _BINARY}},
            206: {"description": "The ciphertext from the Range start on"},
            400: {"model": Problem}, 401: {"model": Problem}, 404: {"model": Problem},
            503: {"model": Problem},
        },
    )  # fmt: skip
    def get_blob(blob_id: str, request: Request) -> StreamingResponse:
        """Stream a client-encrypted blob (from ``Range: bytes=N-`` on, to resume)."""
        device = device_of(request)
        blob_id = _checked_blob_id(blob_id)
        start = 0
        wanted = request.headers.get("Range")
        if wanted is not None:
            match = _RANGE.fullmatch(wanted.strip())
            if match is None:
                raise HTTPException(400, "only a Range of the form bytes=N- is supported")
            start = int(match.group(1))
        try:
            stream = server.open_blob(device, blob_id, start)
        except BlobNotFoundError:
            raise HTTPException(404, _NO_ATTACHMENT) from None
        except BlobStoreError as exc:
            log.error(json.dumps({"event": "attachment.store_failed", "error": str(exc)}))
            raise HTTPException(503, "attachment storage is unavailable; try again") from None

        def pieces() -> Iterator[bytes]:
            with stream:
                while piece := stream.read(1024 * 1024):
                    yield piece

        return StreamingResponse(
            pieces(),
            status_code=206 if start else 200,
            media_type="application/octet-stream",
            headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
            # A client that drops mid-download leaves the generator unfinished.
            background=BackgroundTask(stream.close),
        )

    return app
