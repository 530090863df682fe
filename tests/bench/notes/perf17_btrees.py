"""Throwaway (issue 17, branch perf17): ``tests.bench.write_pages`` (pages per local write by
b-tree, plain SQLite with dbstat) with record_states filled for the bulk patients as a first
download leaves it, and an optional schema variant from perf17_cipher_pages.SCHEMAS.

    python -m tests.bench.notes.perf17_btrees [--schema NAME] [write_pages options]
"""

from __future__ import annotations

import sys
from typing import Any

from tests.bench import store_bench, write_pages
from tests.bench.notes.perf17_cipher_pages import FILL_STATES, SCHEMAS

_bulk = store_bench.bulk_insert


def _bulk_and_fill(stores: Any, people: Any, batch: int) -> Any:
    out = _bulk(stores, people, batch)
    for store in stores:
        store.db._require().execute(FILL_STATES)
    return out


def main(argv: list[str]) -> int:
    schema = "base"
    if "--schema" in argv:
        i = argv.index("--schema")
        schema = argv[i + 1]
        argv = argv[:i] + argv[i + 2 :]
    write_pages.bulk_insert = _bulk_and_fill  # type: ignore[attr-defined,assignment]
    extra = ["--sql", SCHEMAS[schema]] if SCHEMAS[schema] else []
    return write_pages.main([*argv, *extra])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
