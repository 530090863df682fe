"""Device certificate requests from outside (enrollment and LAN pairing) are refused by
name when malformed, never with the parser's own error."""

from __future__ import annotations

import pytest

from core.crypto import certs

# A real request with one bit of its public key flipped (found by fuzzing:
# tests/fuzz/corpus/pairing_request/crash-csr-with-invalid-key): it parses, but its key is
# not a point on the curve, which the signature check only finds when decoding it.
OFF_CURVE_CSR = (
    "-----BEGIN CERTIFICATE REQUEST-----\n"
    "MIHdMIGEAgEAMCIxIDAeBgNVBAMMF2NhcmVsaW5lLWRldmljZS1wZW5kaW5nMFkw\n"
    "EwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEVFz8wLJkdBrVMO9qu7c2lFCixVcd5xkq\n"
    "fJqjxEI6M149jvLIsfdRIOd05T3JjWtWcUmP4IfvLh1JrWnku3kHmqAAMAoGCCqG\n"
    "SM49BAMCA0gAMEUCIQD4mkwVbVcfF5XmMVrOHmN60tO755MVxCMeX8mItL1XmQIg\n"
    "fRsUcH2ztCBXyuwANpcoVNLcHUU8PzbVq6bX/TWrh2Q=\n"
    "-----END CERTIFICATE REQUEST-----\n"
)

# The same request naming a curve that does not exist (.../crash-csr-unsupported-curve).
UNKNOWN_CURVE_CSR = OFF_CURVE_CSR.replace("KoZIzj0DAQcDQgAEVFz8wLJk", "KnZIzj0DAQcDQgAEVFz8wLJo")


@pytest.mark.parametrize("csr", [OFF_CURVE_CSR, UNKNOWN_CURVE_CSR], ids=["off-curve", "no-curve"])
def test_a_request_whose_key_cannot_be_decoded_is_refused_by_name(csr: str) -> None:
    ca_key, ca_pem = certs.create_ca("clinic")
    with pytest.raises(certs.CertificateError, match="request's key is malformed"):
        certs.sign_device(ca_key, ca_pem, csr, "device")


# A request claiming version 3 of the format (.../crash-csr-invalid-version).
BAD_VERSION_CSR = OFF_CURVE_CSR.replace("MIHdMIGEAgEA", "MIHdMIGEAgEC")


def test_a_request_of_an_unknown_version_is_refused_by_name() -> None:
    ca_key, ca_pem = certs.create_ca("clinic")
    with pytest.raises(certs.CertificateError, match="request is malformed"):
        certs.sign_device(ca_key, ca_pem, BAD_VERSION_CSR, "device")


def test_a_valid_request_is_signed() -> None:
    ca_key, ca_pem = certs.create_ca("clinic")
    csr = certs.make_csr(certs.new_private_key(), "pending")
    cert = certs.sign_device(ca_key, ca_pem, csr, "device")
    assert certs.verify_device(cert, ca_pem, set()) > 0
