"""``careline-server`` from this code, playing a release that knows another PostgreSQL
schema: ``python -m tests.integration.pg_schema_launcher KNOWS [--heartbeat S] -- ARGS``.

KNOWS is ``older`` (schema version 1 only, as a release before the node table),
``current``, or ``additive`` / ``breaking`` (a newer release adding one test migration of
that kind). Everything else is the real command line, run in its own process.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from core.server.postgres import nodes, schema
from core.server.postgres.schema import MIGRATIONS, Migration

NEXT = MIGRATIONS[-1].version + 1
KNOWS: dict[str, tuple[Migration, ...]] = {
    "older": MIGRATIONS[:1],
    "current": MIGRATIONS,
    "additive": (*MIGRATIONS, Migration(NEXT, "CREATE TABLE test_expand (x INT)", False,
                                        "test: a new table")),
    "breaking": (*MIGRATIONS, Migration(NEXT, "CREATE TABLE test_contract (x INT)", True,
                                        "test: changes what old code reads")),
}  # fmt: skip


def command(knows: str, heartbeat: float | None = None) -> list[str]:
    """The program prefix that plays ``knows`` (for :class:`ServerProcess`)."""
    beat = [] if heartbeat is None else ["--heartbeat", str(heartbeat)]
    return [sys.executable, "-m", "tests.integration.pg_schema_launcher", knows, *beat, "--"]


def main(argv: Sequence[str]) -> int:
    """Set the schema this process knows (and its heartbeat), then run the real CLI."""
    split = list(argv).index("--")
    parser = argparse.ArgumentParser()
    parser.add_argument("knows", choices=sorted(KNOWS))
    parser.add_argument("--heartbeat", type=float)
    options = parser.parse_args(argv[:split])
    schema.MIGRATIONS = KNOWS[options.knows]  # PgStore reads both when it opens
    if options.heartbeat is not None:
        nodes.HEARTBEAT_S = options.heartbeat
    import core.cli.server as cli

    return cli.main(argv[split + 1 :])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
