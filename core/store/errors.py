"""Errors from opening and using the store. Each message names the file and the problem."""

from core.errors import CarelineError


class StoreError(CarelineError):
    """Base class for store failures."""

    plain_template = "the clinic database reported a problem: {detail}"


class DatabaseMissingError(StoreError):
    """No database file where one was expected."""

    plain_template = "{detail}"


class WrongKeyError(StoreError):
    """The key does not decrypt the database."""

    plain_template = "cannot unlock: {detail}"


class NotCarelineDatabaseError(StoreError):
    """The file is not an encrypted Careline database (e.g. plain SQLite or another file)."""


class DamagedDatabaseError(StoreError):
    """The file is truncated or corrupted."""


class SchemaTooNewError(StoreError):
    """The database was written by a newer Careline."""


class MigrationError(StoreError):
    """A schema migration failed; it was rolled back and the file keeps its old schema."""


class StoreEnvironmentError(StoreError):
    """The computer, not the database, is the problem: a read-only folder, a full disk,
    missing permission. The file itself may be perfectly healthy."""

    plain_template = "{detail}"
