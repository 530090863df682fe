"""Careline's machine-wide settings in the Windows registry (the MSI and Group Policy).

String values (REG_SZ or REG_EXPAND_SZ; REG_MULTI_SZ for ``locked``) named like the
settings, under ``HKLM\\SOFTWARE\\Policies\\Careline`` (Group Policy, wins) and
``HKLM\\SOFTWARE\\Careline`` (written by the MSI from its SERVER_URL, SERVER_CA_FINGERPRINT
and ENROLL_CODE properties). Only this module touches ``winreg``.

Tested against a real registry by tests/unit/config/test_windows_registry.py, which the
Windows MSI workflow runs (skipped on Linux, where this module is never imported);
:func:`core.config.machine.load_machine_config` takes the values as a plain mapping, and
that part is tested.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

# Read in this order; the first key holding a value wins.
KEYS = (r"SOFTWARE\Policies\Careline", r"SOFTWARE\Careline")


def read_values(names: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Setting name -> (value, ``HKLM\\<key>``) for each of ``names`` found; ``{}`` off Windows."""
    found: dict[str, tuple[str, str]] = {}
    if sys.platform != "win32":
        return found
    import winreg

    wanted = list(names)
    for key_path in KEYS:
        try:
            key = winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, key_path)
        except OSError:
            continue  # no such key: nothing set there
        with key:
            for name in wanted:
                if name in found:
                    continue
                try:
                    value, kind = winreg.QueryValueEx(key, name)
                except OSError:
                    continue
                if kind == winreg.REG_MULTI_SZ:
                    value = ",".join(value)
                found[name] = (str(value), "HKLM\\" + key_path)
    return found
