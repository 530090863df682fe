"""A workstation joining the clinic server: enrollment, and the device credential it keeps.

The credential (device id, bearer token, certificate, private key, the server's pinned CA)
is stored inside the encrypted clinic database, never in a plain file. The TLS trust for
the server is either the system CAs or a CA certificate pinned at enrollment.
"""

from __future__ import annotations

import json
import platform
import ssl
from dataclasses import asdict, dataclass, field

import httpx

from core.crypto import certs
from core.errors import CarelineError
from core.records import op_trust
from core.records.demo import refuse_if_demo
from core.store.database import Database
from core.sync.clock import clock_hint
from core.sync.http_transport import HttpTransport, require_https
from core.sync.reach import is_certificate_problem, unreachable
from core.sync.transport import TransportError

_META_KEY = "server_credential"
# The longest device name the server keeps (core.server.service: 1-64 printable characters).
DEVICE_NAME_LIMIT = 64
_UNPRINTABLE_NAMES = {"\t": "a tab", "\n": "a line break", "\r": "a line break"}


class EnrollmentError(CarelineError):
    """Enrollment was refused or failed; the message says why. ``field`` names what was
    typed that it is about, where one is ("server_url", "enroll_code", "ca_path",
    "device_name"), for a form to say it there; None: no one field."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ServerUnreachableError(EnrollmentError):
    """The server did not answer (down, or the network): trying again later may work, and
    the code was not used."""


def _not_reached(server_url: str, exc: httpx.HTTPError) -> EnrollmentError:
    # A TLS refusal (the pin does not match) will not mend by waiting; a dead server may.
    # The person reads what went wrong in words; the socket's own text is logged.
    if is_certificate_problem(exc):
        # Refused for its dates: this computer's clock may be what is wrong, not the CA.
        return EnrollmentError(unreachable(server_url, exc), None if clock_hint(exc) else "ca_path")
    return ServerUnreachableError(unreachable(server_url, exc), "server_url")


def _refused(detail: object, status: int) -> EnrollmentError:
    # The server's own words: why the code is unusable, or how long to wait. Its refusals
    # of the code say "enrollment code" (core/server/registry.py, core/server/api.py).
    words = detail or status
    about_code = isinstance(detail, str) and "enrollment code" in detail
    return EnrollmentError(
        f"the server refused enrollment: {words}", "enroll_code" if about_code else None
    )


@dataclass(frozen=True)
class ServerCredential:
    """What this device needs to sync with the server."""

    server_url: str
    device_id: str
    clinic_id: str
    clinic_name: str
    token: str
    certificate: str
    private_key_pem: str
    ca_certificate: str  # the clinic CA (for LAN peers)
    server_ca_pem: str | None  # pinned TLS trust for the server, None: system CAs

    def transport(self) -> HttpTransport:
        """An HTTPS transport to the server with this device's token."""
        return HttpTransport(self.server_url, self.token, verify=tls_trust(self.server_ca_pem))


def default_device_name() -> str:
    """How the server lists this workstation unless it is given a name: the computer's host
    name (many computers share one, e.g. a cloned image's), cut to the server's limit."""
    return (platform.node().strip() or "workstation")[:DEVICE_NAME_LIMIT]


def device_name_problem(name: str) -> str | None:
    """What the server would refuse in ``name`` as a device name, in words, or None: it keeps
    1-64 printable characters once the spaces around them are dropped. The server checks
    with this same function, so a name accepted here is accepted there."""
    name = name.strip()
    if not name:
        return f"enter a name for this workstation (1-{DEVICE_NAME_LIMIT} characters)"
    if len(name) > DEVICE_NAME_LIMIT:
        return (
            f"the workstation name is {len(name)} characters long; use at most {DEVICE_NAME_LIMIT}"
        )
    for place, char in enumerate(name, 1):
        if not char.isprintable():
            what = _UNPRINTABLE_NAMES.get(char, f"the control character U+{ord(char):04X}")
            return (
                f"the workstation name holds {what} (character {place}), which cannot be "
                "shown; use letters, digits, spaces and punctuation only"
            )
    return None


# OpenSSL's X509_V_FLAG_NO_CHECK_TIME, which Python's ssl module has no name for.
_NO_CHECK_TIME = 0x200000


def tls_trust(server_ca_pem: str | None) -> ssl.SSLContext | bool:
    """TLS verification: the pinned CA if there is one, else the system's CAs.

    With a pinned certificate, the dates on the server's certificates are not checked
    against this computer's clock: the pin, not the calendar, says this is the clinic's
    server, and a workstation whose clock is wrong (a flat CMOS battery resets it to years
    ago) would otherwise refuse its own server and keep every change made on it to itself.
    The server must still prove it holds a key certified by the pinned certificate, for its
    host name. The cost: a certificate issued under the pinned CA and since expired is
    still accepted (change the pin to retire one). With the system's CAs (a public
    certificate) OpenSSL checks the dates as usual.
    """
    if server_ca_pem is None:
        return True
    context = ssl.create_default_context(cadata=server_ca_pem)
    # Python 3.13 turns on OpenSSL's strict mode, which wants a CA that issues to carry a
    # key usage the certificates servers generated before lack; a server now issues itself
    # certificates under the one pinned (core/server/tls_certificate.py). Cleared first:
    # ``&= ~VERIFY_X509_STRICT`` keeps only the flags ssl.VerifyFlags names, and it names
    # no NO_CHECK_TIME, so clearing it after would drop the clock tolerance above.
    context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    context.verify_flags |= _NO_CHECK_TIME
    return context


def enroll(
    server_url: str,
    code: str,
    server_ca_pem: str | None,
    device_name: str | None = None,
    binding: certs.ReplicaBinding | None = None,
) -> ServerCredential:
    """Redeem a one-time code at the server; returns the new device credential.

    ``binding`` names the replica that will sign its ops with the certificate
    (``op_trust.binding_for(db)``); the server refuses a replica another device is bound
    to. Without it the certificate is unbound, as Careline 0.1.0's were."""
    try:
        require_https(server_url)
    except TransportError as exc:
        raise EnrollmentError(str(exc), "server_url") from None
    name = default_device_name() if device_name is None else device_name.strip()
    problem = device_name_problem(name)
    if problem is not None:
        # Refused here, before the code is sent.
        raise EnrollmentError(problem, "device_name")
    key = certs.new_private_key()
    csr = certs.make_csr(key, "pending", binding)
    body = {
        "code": code,
        "device_name": name,
        "csr": csr,
    }
    try:
        with httpx.Client(verify=tls_trust(server_ca_pem), timeout=30) as client:
            response = client.post(server_url.rstrip("/") + "/v1/enroll", json=body)
    except httpx.HTTPError as exc:
        raise _not_reached(server_url, exc) from exc
    if response.status_code != 201:
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = None
        raise _refused(detail, response.status_code)
    data = response.json()
    return ServerCredential(
        server_url=server_url.rstrip("/"),
        device_id=data["device_id"],
        clinic_id=data["clinic_id"],
        clinic_name=data["clinic_name"],
        token=data["token"],
        certificate=data["certificate"],
        private_key_pem=certs.private_key_pem(key).decode("ascii"),
        ca_certificate=data["ca_certificate"],
        server_ca_pem=server_ca_pem,
    )


@dataclass(frozen=True)
class EnrollingAccount:
    """The account a joining person named, as the server holds it before the code is
    spent: its password verifier (None: no account has the name) and whether it is
    active."""

    verifier: str | None = field(repr=False)
    active: bool


def account_before_enrollment(
    server_url: str, code: str, server_ca_pem: str | None, username: str
) -> EnrollingAccount | None:
    """Ask the server, with the code and without spending it, for the account ``username``
    (``POST /v1/enroll/account``), so that the caller checks the person's password here
    before enrolling (the password is never sent). None from a server that predates the
    question: the caller enrolls and checks the account once the records arrived, as
    before. Raises :class:`EnrollmentError` for a refused code or pin (the code was not
    used either way) and :class:`ServerUnreachableError` when the server does not answer."""
    try:
        require_https(server_url)
    except TransportError as exc:
        raise EnrollmentError(str(exc), "server_url") from None
    try:
        with httpx.Client(verify=tls_trust(server_ca_pem), timeout=30) as client:
            response = client.post(
                server_url.rstrip("/") + "/v1/enroll/account",
                json={"code": code, "username": username},
            )
    except httpx.HTTPError as exc:
        raise _not_reached(server_url, exc) from exc
    if response.status_code in (404, 405):  # an older server: no such route
        return None
    if response.status_code >= 500:  # a proxy with no server behind it, or the server down
        raise ServerUnreachableError(
            f"the clinic server at {server_url} did not answer (HTTP {response.status_code}); "
            "try again later: the code was not used",
            "server_url",
        )
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.status_code != 200 or not isinstance(data, dict):
        detail = data.get("detail") if isinstance(data, dict) else None
        raise _refused(detail, response.status_code)
    verifier = data.get("verifier")
    if not (verifier is None or isinstance(verifier, str)) or not isinstance(
        data.get("active"), bool
    ):
        raise EnrollmentError(
            "the server's answer about the account is malformed (a verifier and an active "
            "flag were expected); the code was not used"
        )
    return EnrollingAccount(verifier, data["active"])


def save_credential(db: Database, credential: ServerCredential) -> None:
    """Keep the credential in the encrypted database (audited)."""
    refuse_if_demo("enroll with a clinic server", db=db)
    with db.write("device", "device.enroll", "device", credential.device_id) as tx:
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (_META_KEY, json.dumps(asdict(credential))),
        )


def adopt_credential(db: Database, credential: ServerCredential, actor: str) -> int:
    """Keep the credential (:func:`save_credential`), then make this replica a device of
    the clinic (op_trust.install_device): it trusts the clinic CA and, if the certificate
    is bound to it, signs its ops from now on, its pending own ops included (returns how
    many were signed)."""
    save_credential(db, credential)
    return op_trust.install_device(
        db, credential.certificate, credential.private_key_pem, credential.ca_certificate, actor
    )


def load_credential(db: Database) -> ServerCredential | None:
    """The stored credential, if this workstation is enrolled."""
    rows = db.query("SELECT value FROM meta WHERE key = ?", (_META_KEY,))
    return ServerCredential(**json.loads(rows[0][0])) if rows else None
