"""``careline`` with no command: why the desktop app cannot start, said plainly."""

from __future__ import annotations

import argparse
import builtins
from typing import Any

import pytest

from app import entry
from core.cli.workstation import EXIT_USAGE


def test_a_library_that_fails_to_load_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # As in a frozen build whose bundled library cannot load: the ImportError has no
    # module name, only the loader's message, which is what IT needs to see.
    real_import = builtins.__import__

    def failing_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "app.main":
            raise ImportError("libscipy_openblas64_.so: ELF load command address not aligned")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(entry, "display_problem", lambda: None)
    monkeypatch.setattr(builtins, "__import__", failing_import)
    assert entry._open_gui(argparse.Namespace()) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "libscipy_openblas64_.so: ELF load command address not aligned" in err
    assert "None" not in err
