"""Embedded Zanzibar-style authorization: an OpenFGA-DSL model, relation tuples and a checker.

The engine runs inside every replica (workstation and server) so a workstation can decide who
may do what without reaching any server. See README, "Authorization engine".
"""

from .engine import Engine, UsersetTree
from .errors import AuthzError, ModelError, StaleReplicaError, UnknownRelationError
from .model import AuthorizationModel, load_clinic_model, parse_model
from .tuples import MemoryTuples, ObjectIndex, RelationTuple, TupleReader

__all__ = [
    "AuthorizationModel",
    "AuthzError",
    "Engine",
    "MemoryTuples",
    "ModelError",
    "ObjectIndex",
    "RelationTuple",
    "StaleReplicaError",
    "TupleReader",
    "UnknownRelationError",
    "UsersetTree",
    "load_clinic_model",
    "parse_model",
]
