"""Enrollment requests (``POST /v1/enroll``): any bytes as the request body.

The body is parsed by the endpoint's model (``EnrollRequest``) and handed to
``ClinicServer.enroll`` (device name checks, code lookup, CSR parsing and signing) of a
real server on its embedded store, called directly rather than over HTTP. The text
``@CODE@`` in an input stands for a valid, unused code of the clinic (the corpus uses it,
so inputs reach the CSR parsing behind the code check).

Contract: a body is refused with pydantic's ValidationError (the endpoint's 422) or
ServerError (its 400), nothing else; a refused enrollment leaves its code unused.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from pydantic import ValidationError

from core.server.api import EnrollRequest
from core.server.service import ServerError
from tests.integration.server_fixtures import make_server

PLACEHOLDER = b"@CODE@"


class Target:
    """A server with one clinic and a live enrollment code."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="careline-fuzz-server-")
        self.server = make_server(Path(self._dir.name))
        self.clinic = self.server.create_clinic("Fuzz Clinic")
        self._new_code()

    def _new_code(self) -> None:
        self.code, _ = self.server.registry.issue_enroll_code(self.clinic.id, 60)

    def close(self) -> None:
        """Remove the temporary folder (and stop what uses it)."""
        self.server.close()
        self._dir.cleanup()

    def __call__(self, data: bytes) -> None:
        body = data.replace(PLACEHOLDER, self.code.encode())
        try:
            request = EnrollRequest.model_validate_json(body)
        except ValidationError:
            return
        try:
            self.server.enroll(request.code, request.device_name, request.csr)
        except ServerError:
            # Refused: the clinic's code must still work.
            self.server.registry.code_clinic(self.code)
            return
        self._new_code()  # this input used it
