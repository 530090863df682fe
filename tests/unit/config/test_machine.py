"""The machine-wide configuration IT deploys, and what a person's own settings may change."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from core.config.desktop import ignored_own_settings, load_desktop_settings, resolve_data_dir
from core.config.machine import MACHINE_CONFIG_ENV, load_machine_config, machine_config_path
from core.config.settings import ConfigError, IgnoredValue

FINGERPRINT = "AB:" * 31 + "AB"


def machine_env(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "machine.toml"
    path.write_text(text)
    return {MACHINE_CONFIG_ENV: str(path)}


def own_file(data_dir: Path, text: str) -> Path:
    data_dir.mkdir(exist_ok=True)
    (data_dir / "careline.toml").write_text(text)
    return data_dir


def test_the_platform_file_and_the_override(tmp_path: Path) -> None:
    assert machine_config_path({}) == Path("/etc/careline/careline.toml")
    assert (
        machine_config_path({MACHINE_CONFIG_ENV: str(tmp_path / "m.toml")}) == tmp_path / "m.toml"
    )
    # No file: nothing set, nothing locked.
    empty = load_machine_config({MACHINE_CONFIG_ENV: str(tmp_path / "none.toml")})
    assert not empty.values and not empty.locked


def test_machine_file_is_a_default_the_person_may_change_unless_locked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env = machine_env(
        tmp_path,
        "auto_lock_minutes = 5\nbreak_glass_minutes = 30\nclose_after_idle_hours = 4\n"
        'locked = ["break_glass_minutes"]\n',
    )
    data = own_file(tmp_path / "data", "auto_lock_minutes = 15\nbreak_glass_minutes = 600\n")
    settings = load_desktop_settings(data, env=env)
    assert settings["auto_lock_minutes"] == 15  # not locked: the person's own value
    assert settings["close_after_idle_hours"] == 4  # the machine's default
    assert settings["break_glass_minutes"] == 30  # locked: the machine's value
    # The person is told why their value has no effect, naming the setting and the file.
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "break_glass_minutes" in w and "ignored" in w and "machine.toml" in w for w in warnings
    ), warnings
    # The environment cannot change a locked setting either, but may change the others.
    env_too = {**env, "CARELINE_BREAK_GLASS_MINUTES": "700", "CARELINE_AUTO_LOCK_MINUTES": "2"}
    settings = load_desktop_settings(data, env=env_too)
    assert (settings["break_glass_minutes"], settings["auto_lock_minutes"]) == (30, 2)
    # What the app's status bar tells the person: each ignored value, where it was given.
    machine_file = env[MACHINE_CONFIG_ENV]
    assert ignored_own_settings(data, env=env_too) == [
        IgnoredValue("break_glass_minutes", "700", "environment CARELINE_BREAK_GLASS_MINUTES",
                     machine_file),
        IgnoredValue("break_glass_minutes", 600, str(data / "careline.toml"), machine_file),
    ]  # fmt: skip
    assert ignored_own_settings(own_file(tmp_path / "d2", "auto_lock_minutes = 1\n"), env) == []


def test_enrollment_settings_are_locked_as_a_group(tmp_path: Path) -> None:
    env = machine_env(
        tmp_path,
        'server_url = "https://careline.clinic.lan:8443/"\n'
        f'server_ca_fingerprint = "{FINGERPRINT}"\nenroll_code = "ABCD-EFGH"\n',
    )
    data = own_file(
        tmp_path / "data",
        'server_url = "https://elsewhere.example"\nserver_ca_file = "/tmp/other.pem"\n',
    )
    settings = load_desktop_settings(data, env=env)
    assert settings["server_url"] == "https://careline.clinic.lan:8443"
    assert settings["server_ca_file"] is None  # the machine's pin alone decides the trust
    assert settings["server_ca_fingerprint"] == "ab" * 32
    # Without a machine configuration, the person's own file may name a server.
    assert (
        load_desktop_settings(data, env={MACHINE_CONFIG_ENV: str(tmp_path / "no.toml")})[
            "server_url"
        ]
        == "https://elsewhere.example"
    )


def test_machine_data_dir_is_a_default(tmp_path: Path) -> None:
    env = machine_env(tmp_path, f'data_dir = "{tmp_path / "shared"}"\n')
    assert resolve_data_dir(None, env=env) == tmp_path / "shared"
    assert resolve_data_dir(tmp_path / "mine", env=env) == tmp_path / "mine"
    with pytest.raises(ConfigError, match="data_dir cannot be locked"):
        load_machine_config(machine_env(tmp_path, 'locked = ["data_dir"]\n'))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("auto_lock = 5\n", r"machine.toml: unknown setting 'auto_lock'"),
        ('server_url = "http://clinic.lan"\n', r"server_url \(.*machine.toml\): .*not an https"),
        ('server_ca_fingerprint = "12:34"\n', r"server_ca_fingerprint \(.*machine.toml\).*64 hex"),
        ("auto_lock_minutes = 0\n", r"auto_lock_minutes \(.*machine.toml\).*below the minimum"),
        ('locked = ["auto_lok_minutes"]\n', r"locked \(.*machine.toml\): 'auto_lok_minutes'"),
        ('enroll_code = "X"\n', r"server_url \(.*machine.toml\): missing"),
        (
            'enroll_code = "X"\nserver_url = "https://a.lan"\n',
            r"server_ca_fingerprint \(.*machine.toml\): missing",
        ),
        ("auto_lock_minutes = [", r"machine.toml is not valid TOML"),
    ],
)
def test_bad_machine_config_names_the_setting_and_the_file(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_machine_config(machine_env(tmp_path, text))


def test_registry_values_beat_the_file(tmp_path: Path) -> None:
    # What windows_registry.read_values returns on Windows (untested there), fed in directly.
    env = machine_env(tmp_path, "auto_lock_minutes = 5\n")
    policy = r"HKLM\SOFTWARE\Policies\Careline"
    layer = load_machine_config(
        env,
        registry={"auto_lock_minutes": ("7", policy), "locked": ("auto_lock_minutes", policy)},
    )
    assert layer.values["auto_lock_minutes"] == 7 and layer.locked == {"auto_lock_minutes"}
    with pytest.raises(ConfigError, match=r"auto_lock_minutes \(HKLM.*Policies.*\)"):
        load_machine_config(env, registry={"auto_lock_minutes": ("soon", policy)})


def test_a_relative_ca_file_is_read_beside_the_machine_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = machine_env(
        tmp_path,
        'server_url = "https://clinic.example:8443"\n'
        'server_ca_file = "clinic-ca.pem"\n'
        'enroll_code = "ABCD-EFGH"\n',
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    layer = load_machine_config(env)
    assert layer.values["server_ca_file"] == tmp_path / "clinic-ca.pem"


def test_a_person_cannot_swap_the_machine_file_through_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # IT's file exists where the platform keeps it: CARELINE_MACHINE_CONFIG (which anyone
    # can set in their own environment) must not replace it and its locks.
    it_file = tmp_path / "etc" / "careline.toml"
    it_file.parent.mkdir()
    it_file.write_text('auto_lock_minutes = 2\nlocked = ["auto_lock_minutes"]\n')
    monkeypatch.setattr("core.config.machine.platform_config_path", lambda env: it_file)
    env = machine_env(tmp_path, "auto_lock_minutes = 600\n")
    own = own_file(tmp_path / "data", "auto_lock_minutes = 600\n")

    with caplog.at_level(logging.WARNING):
        assert machine_config_path(env) == it_file
        layer = load_machine_config(env)
    assert layer.values["auto_lock_minutes"] == 2 and "auto_lock_minutes" in layer.locked
    assert load_desktop_settings(own, env=env)["auto_lock_minutes"] == 2
    assert "CARELINE_MACHINE_CONFIG" in caplog.text and str(it_file) in caplog.text


def test_the_environment_names_the_machine_file_where_the_platform_has_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Trial runs and tests on a computer IT does not manage.
    monkeypatch.setattr(
        "core.config.machine.platform_config_path", lambda env: tmp_path / "absent.toml"
    )
    env = machine_env(tmp_path, "auto_lock_minutes = 7\n")
    assert load_machine_config(env).values["auto_lock_minutes"] == 7
