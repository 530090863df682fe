"""Errors from opening and using the store. Each message names the file and the problem."""


class StoreError(Exception):
    """Base class for store failures."""


class DatabaseMissingError(StoreError):
    """No database file where one was expected."""


class WrongKeyError(StoreError):
    """The key does not decrypt the database."""


class NotCarelineDatabaseError(StoreError):
    """The file is not an encrypted Careline database (e.g. plain SQLite or another file)."""


class DamagedDatabaseError(StoreError):
    """The file is truncated or corrupted."""


class SchemaTooNewError(StoreError):
    """The database was written by a newer Careline."""


class MigrationError(StoreError):
    """A schema migration failed; it was rolled back and the file keeps its old schema."""
