"""Plugin options: every backend and embedder refuses a bad option in one style, the config
file's own (`$.<table>.options.<option>: <problem>`), through `batchsvc.plugins.options`."""

from __future__ import annotations

from typing import Any

import pytest

from batchsvc.errors import ConfigError, OptionError
from batchsvc.plugins import load_backend, load_embedder
from batchsvc.plugins.options import Option, read_options

KNOWN = {
    "path": Option(str, "x.db", empty=False),
    "size": Option(int, 5, minimum=1, maximum=9),
    "ratio": Option(float, 0.5, minimum=0),
    "mode": Option(str, "a", choices=("a", "b")),
}


class TestReadOptions:
    """The values with their defaults, or the first bad option by name."""

    def test_defaults_fill_in(self) -> None:
        values = read_options({"size": 2, "ratio": 1}, KNOWN, "the test plugin")
        assert values == {"path": "x.db", "size": 2, "ratio": 1, "mode": "a"}

    @pytest.mark.parametrize(
        ("options", "option", "problem"),
        [
            ({"zeta": 1, "alpha": 2}, "alpha", "unknown option; the test plugin takes "),
            ({"path": 5}, "path", "expected str, got int 5"),
            ({"path": ""}, "path", "must not be empty"),
            ({"size": True}, "size", "expected int, got bool True"),
            ({"size": "5"}, "size", "expected int, got str '5'"),
            ({"size": 1.0}, "size", "expected int, got float 1.0"),
            ({"size": 0}, "size", "must be from 1 to 9, got 0"),
            ({"ratio": -1}, "ratio", "must be at least 0, got -1"),
            ({"mode": "c"}, "mode", "must be one of a, b, got 'c'"),
        ],
    )
    def test_a_bad_option_is_named(
        self, options: dict[str, Any], option: str, problem: str
    ) -> None:
        with pytest.raises(OptionError) as error:
            read_options(options, KNOWN, "the test plugin")
        assert error.value.option == option
        assert error.value.problem.startswith(problem)
        assert str(error.value) == f"{option}: {error.value.problem}"
        assert isinstance(error.value, ValueError)  # what the plugin contracts ask for

    def test_a_plugin_without_options_says_so(self) -> None:
        with pytest.raises(OptionError, match=r"^x: unknown option; the bare plugin takes none$"):
            read_options({"x": 1}, {}, "the bare plugin")


@pytest.mark.parametrize(
    ("load", "name", "options", "message"),
    [
        (
            load_backend,
            "sqlite",
            {"colour": "red"},
            "$.storage.options.colour: unknown option; the sqlite backend takes path, "
            "busy_timeout_ms",
        ),
        (load_backend, "sqlite", {"path": 5}, "$.storage.options.path: expected str, got int 5"),
        (load_backend, "sqlite", {"path": ""}, "$.storage.options.path: must not be empty"),
        (
            load_backend,
            "sqlite",
            {"busy_timeout_ms": -1},
            "$.storage.options.busy_timeout_ms: must be at least 0, got -1",
        ),
        (
            load_backend,
            "memory",
            {"path": "x"},
            "$.storage.options.path: unknown option; the memory backend takes none",
        ),
        (
            load_embedder,
            "wordllama",
            {"dimensions": 100},
            "$.embedder.options.dimensions: must be one of 64, 128, 256, got 100",
        ),
        (
            load_embedder,
            "minilm",
            {"max_tokens": 8},
            "$.embedder.options.max_tokens: must be from 16 to 512, got 8",
        ),
        (
            load_embedder,
            "none",
            {"dimensions": 64},
            "$.embedder.options.dimensions: unknown option; the 'none' embedder takes none",
        ),
    ],
)
def test_every_shipped_plugin_refuses_in_one_style(
    load: Any, name: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load(name, options)
    assert str(error.value) == message


def test_a_plain_value_error_names_the_table() -> None:
    """A third-party plugin may raise any ValueError: it is reported at the table's path."""
    from batchsvc import plugins

    assert str(plugins._option_error("storage", ValueError("bad"))) == "$.storage.options: bad"
