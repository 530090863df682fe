"""Embedded Zanzibar-style authorization: an OpenFGA-DSL model, relation tuples and a checker.

The engine runs inside every replica (workstation and server) so a workstation can decide who
may do what without reaching any server. See README, "Authorization engine".
"""
