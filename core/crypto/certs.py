"""Clinic certificate authority and device certificates (X.509, ECDSA P-256).

A device's identity is its certificate, signed by its clinic's CA (Syncthing's model:
discovery is never trust). Subjects carry ids only, never clinic, user or patient names.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from core.errors import CarelineError

CA_YEARS = 10
DEVICE_DAYS = 825


class CertificateError(CarelineError, ValueError):
    """A certificate or request is malformed, or does not chain to the expected CA."""


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def new_private_key() -> ec.EllipticCurvePrivateKey:
    """A fresh P-256 key."""
    return ec.generate_private_key(ec.SECP256R1())


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted: callers encrypt it before storing it anywhere."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    """Parse a PEM private key produced by :func:`private_key_pem`."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError("the private key is not an elliptic-curve key")
    return key


def create_ca(clinic_id: str) -> tuple[ec.EllipticCurvePrivateKey, str]:
    """A new clinic CA: (private key, self-signed certificate PEM)."""
    key = new_private_key()
    now = dt.datetime.now(dt.UTC)
    name = _name(f"careline-clinic-ca-{clinic_id}")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365 * CA_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


@dataclass(frozen=True)
class ReplicaBinding:
    """The replica a device certificate speaks for: the origin of the ops it signs, and
    the Yjs client id those ops' document changes are made under."""

    replica_id: str
    yjs_client: int

    def uris(self) -> list[x509.GeneralName]:
        """As subject-alternative-name URIs."""
        return [
            x509.UniformResourceIdentifier(f"{_REPLICA_URI}{self.replica_id}"),
            x509.UniformResourceIdentifier(f"{_YJS_URI}{self.yjs_client}"),
        ]


_REPLICA_URI = "urn:careline:replica:"
_YJS_URI = "urn:careline:yjs:"
_REPLICA_ID = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)


def _binding(extensions: x509.Extensions) -> ReplicaBinding | None:
    try:
        san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    replicas = [u.removeprefix(_REPLICA_URI) for u in uris if u.startswith(_REPLICA_URI)]
    clients = [u.removeprefix(_YJS_URI) for u in uris if u.startswith(_YJS_URI)]
    if not replicas and not clients:
        return None
    if len(replicas) != 1 or len(clients) != 1:
        raise CertificateError("the certificate must name exactly one replica and Yjs client")
    if _REPLICA_ID.fullmatch(replicas[0]) is None or not clients[0].isdigit():
        raise CertificateError("the certificate names a malformed replica or Yjs client")
    client = int(clients[0])
    if not 0 < client < 2**53:
        raise CertificateError("the certificate names a Yjs client id out of range")
    return ReplicaBinding(replicas[0], client)


def make_csr(
    key: ec.EllipticCurvePrivateKey, device_id: str, binding: ReplicaBinding | None = None
) -> str:
    """A certificate signing request for a device key, naming the replica it will sign for."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        _name(f"careline-device-{device_id}")
    )
    if binding is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(binding.uris()), False)
    csr = builder.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


def csr_binding(csr_pem: str) -> ReplicaBinding | None:
    """The replica a certificate request asks to be bound to (None: an older Careline's
    request, which names none); CertificateError if malformed."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode("ascii"))
        return _binding(csr.extensions)
    except (ValueError, UnicodeEncodeError, x509.InvalidVersion) as exc:
        raise CertificateError(f"the certificate request is malformed: {exc}") from None


def binding_of(cert: x509.Certificate) -> ReplicaBinding | None:
    """The replica a device certificate is bound to (None: issued before op signing)."""
    return _binding(cert.extensions)


def load_certificate(cert_pem: str) -> x509.Certificate:
    """Parse a PEM certificate; CertificateError if malformed."""
    try:
        return x509.load_pem_x509_certificate(cert_pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError, x509.InvalidVersion) as exc:
        raise CertificateError(f"the certificate is malformed: {exc}") from None


def sign_device(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert_pem: str,
    csr_pem: str,
    device_id: str,
    issued_at: dt.datetime | None = None,
) -> str:
    """Issue a device certificate (client and server auth) for a valid CSR, valid from
    ``issued_at`` (default: now, by the CA's clock) for DEVICE_DAYS."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError, x509.InvalidVersion) as exc:
        raise CertificateError(f"the certificate request is malformed: {exc}") from None
    try:
        # Both decode the request's key, which parsing the request did not check.
        signed = csr.is_signature_valid
        key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CertificateError(f"the certificate request's key is malformed: {exc}") from None
    if not signed:
        raise CertificateError("the certificate request's signature is not valid")
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise CertificateError("the certificate request must carry an elliptic-curve key")
    binding = _binding(csr.extensions)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem.encode("ascii"))
    now = issued_at or dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(f"careline-device-{device_id}"))
        .issuer_name(ca_cert.subject)
        .public_key(key)
        .serial_number(int.from_bytes(secrets.token_bytes(16), "big") >> 1)
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=DEVICE_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
    )
    if binding is not None:
        # The replica whose ops this key signs (core.crypto.op_signature); the CA checks
        # that no other device is bound to it before calling this.
        builder = builder.add_extension(x509.SubjectAlternativeName(binding.uris()), False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def verify_device(cert_pem: str, ca_cert_pem: str, revoked_serials: set[int]) -> int:
    """Check that a device certificate was issued by this CA, is in date and not revoked.

    Returns its serial number; raises CertificateError naming the problem.
    """
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode("ascii"))
        ca = x509.load_pem_x509_certificate(ca_cert_pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError, x509.InvalidVersion) as exc:
        raise CertificateError(f"the certificate is malformed: {exc}") from None
    if cert.issuer != ca.subject:
        raise CertificateError("the certificate was not issued by this clinic's CA")
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise CertificateError(
            "the certificate's signature does not verify against this CA"
        ) from exc
    # Only expiry is checked. "Not yet valid" would mean this computer's clock is behind the
    # CA's (a flat CMOS battery): refusing would leave its clinical writes behind, while a
    # certificate dated ahead can only come from the clinic CA, which is trusted anyway.
    now = dt.datetime.now(dt.UTC)
    if now > cert.not_valid_after_utc:
        raise CertificateError(
            f"the certificate expired on {cert.not_valid_after_utc:%Y-%m-%d} (this computer's "
            f"clock reads {now:%Y-%m-%d %H:%M} UTC)"
        )
    if cert.serial_number in revoked_serials:
        raise CertificateError("the certificate has been revoked")
    return int(cert.serial_number)


def serial_of(cert_pem: str) -> int:
    """Serial number of a PEM certificate."""
    return int(x509.load_pem_x509_certificate(cert_pem.encode("ascii")).serial_number)


def self_signed_server(hostnames: list[str]) -> tuple[bytes, str]:
    """A TLS server key and self-signed certificate for ``hostnames`` (DNS names or IPs).

    Devices pin this certificate at enrollment (``--ca-file``) when the server has no
    certificate from a public CA.
    """
    key = new_private_key()
    now = dt.datetime.now(dt.UTC)
    names = _general_names(hostnames)
    subject = _name(f"careline-server-{hostnames[0]}")
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=DEVICE_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        # What RFC 5280 (and OpenSSL's strict mode) asks of a CA that issues: the server
        # issues itself a new certificate under this one when its names change.
        .add_extension(_server_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return private_key_pem(key), cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _general_names(hostnames: list[str]) -> list[x509.GeneralName]:
    import ipaddress

    names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _server_usage(ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def server_names(cert_pem: str) -> list[str]:
    """The DNS names and IP addresses a server certificate is valid for (its first
    certificate's subject alternative names), as text."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode("ascii"))
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return [*san.get_values_for_type(x509.DNSName), *ips]


def issue_server(ca_key_pem: bytes, ca_cert_pem: str, hostnames: list[str]) -> tuple[bytes, str]:
    """A new TLS server key and certificate for ``hostnames``, issued under the server's
    own generated certificate (``ca_cert_pem``, whose key is ``ca_key_pem``); the PEM holds
    the new certificate then ``ca_cert_pem``, the chain a TLS server presents.

    Workstations pin the generated certificate, so one issued under it is trusted by every
    enrolled workstation: the server's names change without a new pin. Valid until the
    generated certificate itself expires.
    """
    ca_key = load_private_key(ca_key_pem)
    ca_cert = load_certificate(ca_cert_pem)
    key = new_private_key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"careline-server-tls-{hostnames[0]}"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(ca_cert.not_valid_after_utc)
        .add_extension(x509.SubjectAlternativeName(_general_names(hostnames)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_server_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    leaf = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
    return private_key_pem(key), leaf + ca_cert_pem.strip() + "\n"


def fingerprint(cert_pem: str) -> str:
    """SHA-256 fingerprint, colon-separated hex, as operators compare them."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode("ascii"))
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


# ----- revocation lists ------------------------------------------------------------------

CRL_DAYS = 3650  # a clinic CRL is replaced at every revocation, not on a schedule


@dataclass(frozen=True)
class Revocations:
    """A clinic CA's signed list of revoked device certificates: serial -> revoked at."""

    number: int
    revoked: dict[int, dt.datetime]
    pem: str


def make_crl(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert_pem: str,
    revoked: dict[int, dt.datetime],
    number: int,
) -> str:
    """An X.509 CRL signed by the clinic CA, numbered so a newer one replaces an older one.

    Relays pass it on unchanged; every replica checks the CA's signature, so a relay can
    neither forge a revocation nor hide one it passed on.
    """
    ca = load_certificate(ca_cert_pem)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.subject)
        .last_update(now - dt.timedelta(minutes=5))
        .next_update(now + dt.timedelta(days=CRL_DAYS))
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    for serial, when in sorted(revoked.items()):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
        )
    crl = builder.sign(ca_key, hashes.SHA256())
    return crl.public_bytes(serialization.Encoding.PEM).decode("ascii")


def read_crl(crl_pem: str, ca_cert_pem: str) -> Revocations:
    """Check a CRL's signature against the clinic CA and read it; CertificateError if it is
    malformed or was not signed by this CA."""
    ca = load_certificate(ca_cert_pem)
    try:
        crl = x509.load_pem_x509_crl(crl_pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise CertificateError(f"the revocation list is malformed: {exc}") from None
    key = ca.public_key()
    if crl.issuer != ca.subject or not isinstance(key, ec.EllipticCurvePublicKey):
        raise CertificateError("the revocation list was not issued by this clinic's CA")
    try:
        signed = crl.is_signature_valid(key)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        signed = False
    if not signed:
        raise CertificateError("the revocation list's signature does not verify against this CA")
    try:
        number = int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    except x509.ExtensionNotFound:
        raise CertificateError("the revocation list carries no number") from None
    revoked = {int(r.serial_number): r.revocation_date_utc for r in crl}
    return Revocations(number, revoked, crl_pem)
