"""Silent enrollment: the first start of a workstation whose machine-wide configuration
(core.config.machine) names the clinic server, its CA and an enrollment code joins the
clinic with no wizard and no person (:func:`core.sync.join.join_unattended`).

Order matters for the code: the server's CA is pinned (file read, or fingerprint matched
against what the server presents) and the OS keyring checked before the code is sent, so
a wrong fingerprint, a server that is down or a computer without a keyring never uses up
one of the code's uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.keys.errors import KeyringUnavailableError
from core.records.workstation import Workstation
from core.sync.ca_pin import ca_for_fingerprint, pem_fingerprint
from core.sync.enroll import DEVICE_NAME_LIMIT, EnrollmentError, default_device_name
from core.sync.join import JoinRequest, JoinResult, Progress, join_unattended


@dataclass(frozen=True)
class MachineEnrollment:
    """What the machine-wide configuration says about joining the clinic server."""

    server_url: str
    enroll_code: str = field(repr=False)  # never printed (logs, error reports)
    ca_file: Path | None
    ca_fingerprint: str | None
    device_name: str | None
    source: str  # where the settings came from, for messages

    @classmethod
    def from_settings(
        cls, settings: Mapping[str, Any], source: str = "the machine-wide configuration"
    ) -> MachineEnrollment | None:
        """The enrollment the resolved desktop settings describe, or None if they name no
        server and code (the person sets the workstation up in the wizard then)."""
        if not settings.get("server_url") or not settings.get("enroll_code"):
            return None
        return cls(
            str(settings["server_url"]),
            str(settings["enroll_code"]),
            settings.get("server_ca_file"),
            settings.get("server_ca_fingerprint"),
            settings.get("device_name"),
            source,
        )

    def ca_pem(self) -> str:
        """The server's CA to pin: the file (checked against the fingerprint if both are
        given), else the certificate the server presents with the configured fingerprint."""
        if self.ca_file is not None:
            try:
                pem = self.ca_file.read_text(encoding="ascii")
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or "not a PEM file"
                raise EnrollmentError(
                    f"server_ca_file: cannot read {self.ca_file}: {reason}"
                ) from None
            if self.ca_fingerprint and pem_fingerprint(pem) != self.ca_fingerprint:
                raise EnrollmentError(
                    f"server_ca_file {self.ca_file} does not have the SHA-256 fingerprint "
                    "given as server_ca_fingerprint; one of them is wrong"
                )
            return pem
        if self.ca_fingerprint is None:
            raise EnrollmentError(
                "give server_ca_fingerprint or server_ca_file to trust the server"
            )
        return ca_for_fingerprint(self.server_url, self.ca_fingerprint)

    def request(self) -> JoinRequest:
        """The join request, with the CA pinned (nothing is sent to the server before)."""
        return JoinRequest(
            "",
            server_url=self.server_url,
            enroll_code=self.enroll_code,
            ca_pem=self.ca_pem(),
            device_name=(self.device_name or default_device_name())[:DEVICE_NAME_LIMIT],
        )


def join_silently(
    ws: Workstation, enrollment: MachineEnrollment, on_progress: Progress | None = None
) -> JoinResult:
    """Join the configured clinic into the empty data folder of ``ws`` (left locked), or
    finish the first sync of an earlier join there that was enrolled (no code needed).

    Without an OS keyring this refuses, after pinning the CA and before sending the code:
    the new database key would have nothing to keep it but a plaintext file (never), or
    memory that is gone when the app closes before anyone signed in."""
    request = enrollment.request()
    try:
        return join_unattended(ws, request, on_progress)
    except KeyringUnavailableError as exc:
        raise EnrollmentError(
            f"silent enrollment needs the OS keyring to keep this workstation's database key "
            f"until a staff member first signs in, and here {exc}; the enrollment code was "
            "not used. Join from the app's first-run wizard, or with 'careline --user NAME "
            "--password-stdin enroll --server URL --code-stdin', instead"
        ) from None
