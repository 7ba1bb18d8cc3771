"""Metadata filters: parse errors name the field and reason; `matches` is the reference."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchsvc.errors import FieldError
from batchsvc.filters import MAX_FILTER_DEPTH, And, Compare, Member, Or, matches, parse_filter


def parse_error(raw: Any) -> tuple[str, str]:
    with pytest.raises(FieldError) as caught:
        parse_filter(raw)
    return caught.value.field, caught.value.reason


def nested_and(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {"a": 1}
    for _ in range(levels):
        node = {"$and": [node]}
    return node


class TestParse:
    """A filter parses into a small tree; `{}` means no filter."""

    def test_empty_object_is_no_filter(self) -> None:
        assert parse_filter({}) is None

    def test_implicit_equality(self) -> None:
        assert parse_filter({"a.b": "x"}) == Compare(("a", "b"), "$eq", "x")

    def test_several_keys_and_operators_are_anded(self) -> None:
        assert parse_filter({"a": 1, "b": {"$gt": 2, "$lt": 5}}) == And(
            (
                Compare(("a",), "$eq", 1),
                And((Compare(("b",), "$gt", 2), Compare(("b",), "$lt", 5))),
            )
        )

    def test_membership_and_logic(self) -> None:
        assert parse_filter({"$or": [{"a": {"$nin": ["x", 2]}}, {"b": True}]}) == Or(
            (Member(("a",), ("x", 2), negate=True), Compare(("b",), "$eq", True))
        )

    def test_nesting_up_to_the_limit_is_accepted(self) -> None:
        assert parse_filter(nested_and(MAX_FILTER_DEPTH)) is not None

    def test_a_custom_path_prefixes_errors(self) -> None:
        with pytest.raises(FieldError) as caught:
            parse_filter({"a": None}, "filters")
        assert caught.value.field == "filters.a"


class TestParseErrors:
    """Each rejection names the offending field by its path and a stable reason."""

    @pytest.mark.parametrize(
        ("raw", "field", "reason"),
        [
            ({"age": {"$foo": 1}}, "options.filters.age.$foo", "unknown_operator"),
            ({"$not": {"a": 1}}, "options.filters.$not", "unknown_operator"),
            (
                {"$or": [{"a": 1}, {"b": {"$regex": "x"}}]},
                "options.filters.$or[1].b.$regex",
                "unknown_operator",
            ),
            ({"age": None}, "options.filters.age", "invalid_filter_value"),
            ({"age": [1, 2]}, "options.filters.age", "invalid_filter_value"),
            ({"age": {"$eq": {"x": 1}}}, "options.filters.age.$eq", "invalid_filter_value"),
            ({"age": {"$ne": None}}, "options.filters.age.$ne", "invalid_filter_value"),
            ({"age": {"$gt": [1]}}, "options.filters.age.$gt", "invalid_filter_value"),
            ({"age": {"$gt": True}}, "options.filters.age.$gt", "invalid_filter_value"),
            ({"age": {"$in": [1, None]}}, "options.filters.age.$in[1]", "invalid_filter_value"),
            ({"age": {"$nin": [{"a": 1}]}}, "options.filters.age.$nin[0]", "invalid_filter_value"),
            ({"age": {"$in": []}}, "options.filters.age.$in", "must_be_nonempty_array"),
            ({"age": {"$nin": "x"}}, "options.filters.age.$nin", "must_be_nonempty_array"),
            ({"$or": []}, "options.filters.$or", "must_be_nonempty_array"),
            ({"$and": {"a": 1}}, "options.filters.$and", "must_be_nonempty_array"),
            ({"$or": [{"a": 1}, 5]}, "options.filters.$or[1]", "must_be_object"),
            ([{"a": 1}], "options.filters", "must_be_object"),
            ({"a..b": 1}, "options.filters.a..b", "invalid_filter_key"),
            ({".a": 1}, "options.filters..a", "invalid_filter_key"),
            ({"": 1}, "options.filters.", "invalid_filter_key"),
            ({"a.": {"$eq": 1}}, "options.filters.a.", "invalid_filter_key"),
            ({"age": {}}, "options.filters.age", "empty_filter"),
        ],
    )
    def test_rejection(self, raw: Any, field: str, reason: str) -> None:
        assert parse_error(raw) == (field, reason)

    def test_too_deep(self) -> None:
        field, reason = parse_error(nested_and(MAX_FILTER_DEPTH + 1))
        assert reason == "too_deep"
        assert field == "options.filters" + ".$and[0]" * (MAX_FILTER_DEPTH + 1)

    def test_far_too_deep_is_still_a_field_error(self) -> None:
        assert parse_error(nested_and(5000))[1] == "too_deep"


def check(raw: Any, metadata: dict[str, Any]) -> bool:
    node = parse_filter(raw)
    assert node is not None
    return matches(node, metadata)


class TestMatches:
    """The reference semantics of the module docstring of `batchsvc.filters`."""

    def test_equality_implicit_and_explicit(self) -> None:
        assert check({"a": "x"}, {"a": "x"}) and check({"a": {"$eq": "x"}}, {"a": "x"})
        assert not check({"a": "x"}, {"a": "X"})

    def test_ints_and_floats_compare_as_numbers(self) -> None:
        assert check({"a": 5}, {"a": 5.0}) and check({"a": {"$gt": 4.5}}, {"a": 5})
        assert check({"a": {"$in": [5.0]}}, {"a": 5})

    def test_booleans_are_not_numbers(self) -> None:
        assert not check({"a": 1}, {"a": True}) and not check({"a": True}, {"a": 1})
        assert not check({"a": 0}, {"a": False}) and not check({"a": {"$gte": 0}}, {"a": True})
        assert check({"a": {"$ne": True}}, {"a": False})
        assert not check({"a": {"$ne": 1}}, {"a": True})

    def test_a_missing_key_matches_nothing_not_even_a_negation(self) -> None:
        for raw in ({"a": {"$ne": 1}}, {"a": {"$nin": [1]}}, {"a": 1}, {"a": {"$lt": 9}}):
            assert not check(raw, {"b": 1})

    def test_ne_and_nin_match_a_different_value_of_the_same_kind(self) -> None:
        assert check({"a": {"$ne": 1}}, {"a": 2}) and check({"a": {"$nin": [1, 3]}}, {"a": 2})
        assert not check({"a": {"$ne": 1}}, {"a": "2"})
        assert not check({"a": {"$nin": [1]}}, {"a": 1.0})
        assert not check({"a": {"$nin": [1]}}, {"a": "x"})
        assert not check({"a": {"$nin": [1, 2]}}, {"a": True})
        assert check({"a": {"$nin": [1, "y"]}}, {"a": "x"})

    @pytest.mark.parametrize(
        ("op", "left", "right", "expected"),
        [
            ("$gt", 3, 2, True),
            ("$gt", 2, 2, False),
            ("$gte", 2, 2.0, True),
            ("$lt", -1.5, -1, True),
            ("$lte", 2, 1.99, False),
            ("$gt", "b", "a", True),
            ("$lt", "Z", "a", True),
            ("$gt", "é", "z", True),
            ("$lte", "abc", "abc", True),
            ("$gt", "10", 9, False),
            ("$lt", 9, "10", False),
        ],
    )
    def test_order_comparisons(self, op: str, left: Any, right: Any, expected: bool) -> None:
        assert check({"a": {op: right}}, {"a": left}) is expected

    def test_arrays_and_objects_never_match(self) -> None:
        for value in ([1, 2], {"b": 1}, None):
            for raw in ({"a": 1}, {"a": {"$ne": 1}}, {"a": {"$nin": [3]}}, {"a": {"$gt": 0}}):
                assert not check(raw, {"a": value})

    def test_dotted_keys_reach_into_objects_only(self) -> None:
        assert check({"a.b.c": 1}, {"a": {"b": {"c": 1}}})
        assert not check({"a.b.c": 1}, {"a": {"b": [{"c": 1}]}})
        assert not check({"a.b": 1}, {"a.b": 1})
        assert not check({"a.b": 1}, {"a": "b"})

    def test_and_or_nesting(self) -> None:
        raw = {"$or": [{"a": 1}, {"$and": [{"b": {"$gte": 2}}, {"c": {"$in": ["x"]}}]}]}
        assert check(raw, {"a": 1}) and check(raw, {"b": 3, "c": "x"})
        assert not check(raw, {"b": 3, "c": "y"}) and not check(raw, {})

    def test_several_operators_on_a_key_all_apply(self) -> None:
        raw = {"a": {"$gt": 1, "$lt": 3}}
        assert check(raw, {"a": 2}) and not check(raw, {"a": 3})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$and"])
            | st.sampled_from(["$or", "$x", "a", "a.b", "", ".", "a..b", "b"])
            | st.text(max_size=4),
            children,
            max_size=4,
        )
    ),
    max_leaves=30,
)
metadata_values = st.dictionaries(st.sampled_from(["a", "b", ""]), json_values, max_size=3)


class TestProperties:
    @given(json_values, metadata_values)
    def test_parse_raises_only_field_errors_and_matches_never_raises(
        self, raw: Any, metadata: dict[str, Any]
    ) -> None:
        try:
            node = parse_filter(raw)
        except FieldError as error:
            assert error.field.startswith("options.filters") and error.reason
            return
        if node is not None:
            assert matches(node, metadata) in (True, False)
