"""The authorization engine's expected errors."""

from __future__ import annotations

from core.errors import CarelineError


class AuthzError(CarelineError):
    """A failure of the authorization engine; the message names the problem."""


class ModelError(AuthzError):
    """An authorization model that cannot be read: the message names the line and the fault."""

    plain_template = "authorization model: {detail}"


class UnknownRelationError(AuthzError):
    """A check or lookup that names a type, relation or subject the model does not define."""

    plain_template = "authorization: {detail}"


class StaleReplicaError(AuthzError):
    """This replica has not yet received the changes a consistency token asks for."""

    plain_template = "{detail}"
