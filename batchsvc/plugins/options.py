"""Plugin options: how a backend or an embedder reads its options table (`[storage.options]`,
`[embedder.options]`), so that every plugin takes and refuses options alike. Public: a
third-party plugin uses it too.

A plugin declares its options, each an `Option`, and its `from_options` calls `read_options`,
which returns the values with their defaults filled in, or raises `OptionError` (a ValueError)
for the first bad one: an unknown option (the given ones sorted), then the declared ones in
order. `batchsvc.plugins` reports it with the option's path, as the config file's own fields
are reported:

    $.storage.options.colour: unknown option; the sqlite backend takes path, busy_timeout_ms
    $.storage.options.path: expected str, got int 5
    $.embedder.options.threads: must be at least 1, got 0

Types are exact, as in the rest of the config file: no `"5"` for 5 and no `true` for 1 (an
integer is taken where a float is wanted).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attrs import frozen

from batchsvc.errors import OptionError


@frozen
class Option:
    """One option: its type, its default, and what its value must be besides."""

    kind: type[bool] | type[int] | type[float] | type[str]
    default: Any
    #: Numbers: the smallest and largest values allowed.
    minimum: float | None = None
    maximum: float | None = None
    #: The values allowed, when only a few are.
    choices: tuple[Any, ...] = ()
    #: Strings: whether the empty string is allowed.
    empty: bool = True

    def problem(self, value: Any) -> str | None:
        """What is wrong with `value`, as the message after the option's path; None if
        nothing is."""
        if type(value) is not self.kind and not (self.kind is float and type(value) is int):
            return f"expected {self.kind.__name__}, got {type(value).__name__} {value!r}"
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(map(str, self.choices))}, got {value!r}"
        if isinstance(value, int | float):
            return self._out_of_range(value)
        if not self.empty and value == "":
            return "must not be empty"
        return None

    def _out_of_range(self, value: float) -> str | None:
        low, high = self.minimum, self.maximum
        if (low is None or value >= low) and (high is None or value <= high):
            return None
        if high is None:
            return f"must be at least {low}, got {value!r}"
        if low is None:
            return f"must be at most {high}, got {value!r}"
        return f"must be from {low} to {high}, got {value!r}"


def read_options(
    options: Mapping[str, Any], known: Mapping[str, Option], plugin: str
) -> dict[str, Any]:
    """Every option of `known`, by name: its value in `options`, else its default. Raises
    `OptionError` for the first option that is unknown or whose value is not allowed.
    `plugin` names the plugin in messages: "the sqlite backend"."""
    unknown = sorted(set(options) - set(known))
    if unknown:
        takes = ", ".join(known) if known else "none"
        raise OptionError(unknown[0], f"unknown option; {plugin} takes {takes}")
    values: dict[str, Any] = {}
    for name, option in known.items():
        value = options.get(name, option.default)
        problem = option.problem(value) if name in options else None
        if problem is not None:
            raise OptionError(name, problem)
        values[name] = value
    return values


__all__ = ["Option", "OptionError", "read_options"]
