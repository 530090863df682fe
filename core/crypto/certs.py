"""Clinic certificate authority and device certificates (X.509, ECDSA P-256).

A device's identity is its certificate, signed by its clinic's CA (Syncthing's model:
discovery is never trust). Subjects carry ids only, never clinic, user or patient names.
"""

from __future__ import annotations

import datetime as dt
import secrets

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


def make_csr(key: ec.EllipticCurvePrivateKey, device_id: str) -> str:
    """A certificate signing request for a device key."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_name(f"careline-device-{device_id}"))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


def sign_device(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert_pem: str, csr_pem: str, device_id: str
) -> str:
    """Issue a device certificate (client and server auth) for a valid CSR."""
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
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem.encode("ascii"))
    now = dt.datetime.now(dt.UTC)
    cert = (
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
        .sign(ca_key, hashes.SHA256())
    )
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
    now = dt.datetime.now(dt.UTC)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise CertificateError("the certificate is expired or not yet valid")
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
    import ipaddress

    key = new_private_key()
    now = dt.datetime.now(dt.UTC)
    names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
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
        .sign(key, hashes.SHA256())
    )
    return private_key_pem(key), cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def fingerprint(cert_pem: str) -> str:
    """SHA-256 fingerprint, colon-separated hex, as operators compare them."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode("ascii"))
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()
