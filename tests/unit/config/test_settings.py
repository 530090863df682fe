from __future__ import annotations

from pathlib import Path

import pytest

from core.config.settings import DESKTOP_SCHEMA, ConfigError, load_settings


def test_precedence_cli_env_file_default(tmp_path: Path) -> None:
    cfg = tmp_path / "careline.toml"
    cfg.write_text("auto_lock_minutes = 7\n")
    assert load_settings(DESKTOP_SCHEMA, env={})["auto_lock_minutes"] == 10
    assert load_settings(DESKTOP_SCHEMA, env={}, config_file=cfg)["auto_lock_minutes"] == 7
    env = {"CARELINE_AUTO_LOCK_MINUTES": "5"}
    assert load_settings(DESKTOP_SCHEMA, env=env, config_file=cfg)["auto_lock_minutes"] == 5
    cli = {"auto_lock_minutes": 3}
    assert load_settings(DESKTOP_SCHEMA, cli, env, cfg)["auto_lock_minutes"] == 3


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CARELINE_AUTO_LOCK_MINUTES": "soon"}, "auto_lock_minutes .*'soon' is not a valid int"),
        ({"CARELINE_AUTO_LOCK_MINUTES": "0"}, "auto_lock_minutes .*below the minimum 1"),
        ({"CARELINE_AUTO_LOCK_MINUTES": "999"}, "above the maximum 240"),
        (
            {"CARELINE_ATTACHMENT_PREFETCH_PERCENT": "half"},
            "attachment_prefetch_percent .*'half' is not a valid int",
        ),
        ({"CARELINE_ATTACHMENT_PREFETCH_PERCENT": "95"}, "prefetch_percent .*above the maximum 90"),
        ({"CARELINE_ATTACHMENT_PREFETCH_PERCENT": "-5"}, "prefetch_percent .*below the minimum 0"),
    ],
)
def test_bad_values_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(DESKTOP_SCHEMA, env=env)


def test_bad_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "careline.toml"
    cfg.write_text("auto_lock = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(DESKTOP_SCHEMA, env={}, config_file=cfg)
    cfg.write_text("auto_lok_minutes = 3\n")
    with pytest.raises(ConfigError, match="unknown setting 'auto_lok_minutes'"):
        load_settings(DESKTOP_SCHEMA, env={}, config_file=cfg)


def test_attachment_prefetch_share(tmp_path: Path) -> None:
    assert load_settings(DESKTOP_SCHEMA, env={})["attachment_prefetch_percent"] == 50
    cfg = tmp_path / "careline.toml"
    cfg.write_text("attachment_prefetch_percent = 0\n")  # off
    assert (
        load_settings(DESKTOP_SCHEMA, env={}, config_file=cfg)["attachment_prefetch_percent"] == 0
    )
    cfg.write_text('attachment_prefetch_percent = "lots"\n')
    with pytest.raises(ConfigError, match=f"attachment_prefetch_percent \\({cfg}\\): 'lots'"):
        load_settings(DESKTOP_SCHEMA, env={}, config_file=cfg)
