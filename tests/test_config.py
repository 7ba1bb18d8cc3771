"""Configuration: strict TOML decoding with field paths, env overrides, shipped defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchsvc.config import Config, ConfigError, load_config, parse_config
from tests.helpers.service import SHIPPED_CONFIG


class TestShippedConfig:
    """config/default.toml states the built-in defaults."""

    def test_default_file_equals_defaults(self) -> None:
        assert load_config(SHIPPED_CONFIG, env={}) == Config()


class TestStrictDecoding:
    """No silent coercion, unknown keys rejected, each with the path of the bad field."""

    @pytest.mark.parametrize(
        ("raw", "path"),
        [
            ({"server": {"port": "8080"}}, "$.server.port"),
            ({"limits": {"max_operations": True}}, "$.limits.max_operations"),
            ({"limits": {"max_operation": 5}}, "$.limits"),
            ({"storage": {"options": 3}}, "$.storage.options"),
            ({"limits": {"max_operations": 0}}, "$.limits.max_operations"),
            ({"server": {"port": 70000}}, "$.server.port"),
            ({"logging": {"level": "loud"}}, "$.logging.level"),
        ],
    )
    def test_bad_field_is_named(self, raw: dict[str, object], path: str) -> None:
        with pytest.raises(ConfigError) as error:
            parse_config(raw, "svc.toml", env={})
        assert path in str(error.value) and "svc.toml" in str(error.value)

    def test_bad_toml_names_the_file(self, tmp_path: Path) -> None:
        path = tmp_path / "x.toml"
        path.write_text("[server\n", encoding="utf-8")
        with pytest.raises(ConfigError, match="not valid TOML"):
            load_config(path, env={})


class TestEnvironment:
    """Secrets and ports come from the environment when set."""

    def test_overrides(self) -> None:
        config = parse_config(
            {"server": {"port": 1}},
            "f",
            env={"BATCHSVC_PORT": "9999", "BATCHSVC_KEYS_FILE": "/k.json", "BATCHSVC_HOST": "::1"},
        )
        assert (config.server.port, config.server.host) == (9999, "::1")
        assert config.auth.keys_file == "/k.json"

    def test_bad_override_is_an_error(self) -> None:
        with pytest.raises(ConfigError, match="BATCHSVC_PORT"):
            parse_config({}, "f", env={"BATCHSVC_PORT": "eighty"})

    def test_config_path_from_environment(self, tmp_path: Path) -> None:
        path = tmp_path / "c.toml"
        path.write_text("[server]\nport = 1234\n", encoding="utf-8")
        assert load_config(env={"BATCHSVC_CONFIG": str(path)}).server.port == 1234
