"""The server's PostgreSQL store (``DATABASE_URL``): registry, and clinic replicas kept as
application-encrypted rows behind row-level security.

* :mod:`.connection` -- the connection pool, migrating on open, tenant-scoped transactions.
* :mod:`.schema` -- the migrations, and which release's code may run on which schema.
* :mod:`.nodes` -- the live server processes sharing the database (rolling upgrades).
* :mod:`.columns` -- per-column AES-256-GCM ("TDE") and blind indexes.
* :mod:`.registry_db` -- the registry's unit-of-work interface on PostgreSQL.
* :mod:`.replica` -- a clinic's op log and record states, encrypted, serving sync.
"""
