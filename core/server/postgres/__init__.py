"""The server's PostgreSQL store (``DATABASE_URL``): registry, and clinic replicas kept as
application-encrypted rows behind row-level security.

* :mod:`.connection` -- the connection pool, schema migrations, tenant-scoped transactions.
* :mod:`.columns` -- per-column AES-256-GCM ("TDE") and blind indexes.
* :mod:`.registry_db` -- the registry's unit-of-work interface on PostgreSQL.
* :mod:`.replica` -- a clinic's op log and record states, encrypted, serving sync.
"""
