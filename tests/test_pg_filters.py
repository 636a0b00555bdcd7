"""Metadata filters: the LangChain operator set as parameterised SQL, on a real server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from qwen_pg_integrations.errors import FilterError
from qwen_pg_integrations.pg import PGStore, Record
from qwen_pg_integrations.pg.filters import Params, compile_filter

# --- pure builders (no server) -------------------------------------------------------------


def _render(filter: Any) -> tuple[str, dict[str, Any]]:
    params = Params()
    cond = compile_filter(filter, params)
    assert cond is not None
    return cond.as_string(), params.values


def test_values_and_keys_are_bound_parameters_never_sql_text() -> None:
    evil_value = "x' OR '1'='1"
    evil_key = "a') OR true --"
    text, values = _render({evil_key: evil_value, "n": {"$gt": 5}})
    assert evil_value not in text and "OR '1'" not in text
    assert evil_key not in text and "OR true" not in text
    assert "%(p" in text
    assert values["p0"].obj == {evil_key: evil_value}  # bound as a jsonb parameter


def test_scalar_equality_uses_gin_friendly_containment() -> None:
    text, values = _render({"lang": "zh"})
    assert text == '("metadata" @> %(p0)s::jsonb)'
    assert values["p0"].obj == {"lang": "zh"}


def test_nested_key_becomes_a_path_and_nested_containment() -> None:
    text, values = _render({"a.b.c": 1})
    assert "@>" in text
    assert values["p0"].obj == {"a": {"b": {"c": 1}}}
    text, values = _render({"a.b": {"$gte": 2}})
    assert values["p0"] == ["a", "b"]


def test_range_operators_guard_on_json_type() -> None:
    text, _ = _render({"year": {"$gt": 2020}})
    assert "jsonb_typeof" in text and "'number'" in text and "ELSE false" in text
    text, _ = _render({"name": {"$lt": "m"}})
    assert "'string'" in text


@pytest.mark.parametrize(
    "bad",
    [
        {"a": {"$regex": "x"}},
        {"$nor": [{"a": 1}]},
        {"": 1},
        {"a..b": 1},
        {"a": {"$in": "notalist"}},
        {"a": {"$between": [1]}},
        {"a": {"$exists": "yes"}},
        {"a": {"$gt": None}},
        {"a": {"$gt": True}},
        {"a": {"$like": 3}},
        {"a": {"$eq": 1, "b": 2}},
        {"a": {"$in": [[1]]}},
        {"a": float("nan")},
        {"$and": "x"},
        {"$not": []},
        {1: 2},
        "not a mapping",
        {"a\x00": 1},
    ],
)
def test_unknown_operators_and_bad_keys_raise_filter_error(bad: Any) -> None:
    with pytest.raises(FilterError):
        compile_filter(bad, Params())


def test_empty_filter_is_no_condition() -> None:
    assert compile_filter(None, Params()) is None
    assert compile_filter({}, Params()) is None


# --- on the real server --------------------------------------------------------------------

ROWS: list[dict[str, Any]] = [
    {"name": "alpha", "year": 2019, "lang": "en", "tags": ["a", "b"], "meta": {"pages": 10}},
    {"name": "beta", "year": 2021, "lang": "zh", "tags": ["b"], "meta": {"pages": 250}},
    {"name": "gamma", "year": 2023, "lang": "zh", "meta": {"pages": 40}, "draft": True},
    {"name": "delta", "year": "unknown", "lang": "en"},  # non-numeric year in an unrelated row
    {"name": "Epsilon", "year": 2020.5, "lang": None},
    {"name": "x' OR '1'='1 and more"},
]


@pytest.fixture(scope="module")
def fstore(pg_dsn: str) -> Iterator[PGStore]:
    store = PGStore(pg_dsn, table_name="t_filters_module")
    store.drop()
    store = PGStore(pg_dsn, table_name="t_filters_module")
    rng = np.random.default_rng(1)
    store.add(Record(r["name"], r["name"], r, rng.standard_normal(4)) for r in ROWS)
    yield store
    store.drop()


def _names(store: PGStore, filter: Any) -> set[str]:
    return {r.id for r in store.get(filter=filter) if r.id is not None}


def test_injection_attempt_x_or_1_eq_1_returns_nothing(fstore: PGStore) -> None:
    # llama-index pastes values into SQL: this filter returns every row there.
    assert _names(fstore, {"name": "x' OR '1'='1"}) == set()
    assert _names(fstore, {"name": {"$in": ["x' OR '1'='1"]}}) == set()
    assert _names(fstore, {"name": {"$like": "x' OR '1'='1"}}) == set()
    assert _names(fstore, {"name') OR ('1'='1": "alpha"}) == set()
    hits = fstore.search(np.ones(4), k=10, filter={"name": "x' OR '1'='1"})
    assert hits == []
    assert fstore.count() == len(ROWS)


def test_gt_is_not_broken_by_a_non_numeric_value_in_an_unrelated_row(fstore: PGStore) -> None:
    # both anchors fail the whole query with "invalid input syntax for type double precision"
    assert _names(fstore, {"year": {"$gt": 2020}}) == {"beta", "gamma", "Epsilon"}
    assert _names(fstore, {"year": {"$lte": 2020}}) == {"alpha"}
    hits = fstore.search(np.ones(4), k=10, filter={"year": {"$gte": 2021}})
    assert {h.record.id for h in hits} == {"beta", "gamma"}


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ({"lang": "zh"}, {"beta", "gamma"}),
        ({"lang": {"$eq": "en"}}, {"alpha", "delta"}),
        ({"lang": {"$ne": "en"}}, {"beta", "gamma", "Epsilon", "x' OR '1'='1 and more"}),
        ({"lang": None}, {"Epsilon"}),
        ({"year": {"$lt": 2020}}, {"alpha"}),
        ({"year": {"$between": [2020, 2022]}}, {"beta", "Epsilon"}),
        ({"year": {"$gt": 2019, "$lt": 2023}}, {"beta", "Epsilon"}),
        ({"lang": {"$gt": "en"}}, {"beta", "gamma"}),
        ({"lang": {"$lte": "en"}}, {"alpha", "delta"}),
        ({"year": "unknown"}, {"delta"}),
        ({"name": {"$in": ["alpha", "gamma", "nope"]}}, {"alpha", "gamma"}),
        (
            {"name": {"$nin": ["alpha", "gamma"]}},
            {"beta", "delta", "Epsilon", "x' OR '1'='1 and more"},
        ),
        ({"name": {"$in": []}}, set()),
        ({"name": {"$like": "%eta"}}, {"beta"}),
        ({"name": {"$like": "epsilon"}}, set()),
        ({"name": {"$ilike": "epsilon"}}, {"Epsilon"}),
        ({"draft": {"$exists": True}}, {"gamma"}),
        ({"meta": {"$exists": False}}, {"delta", "Epsilon", "x' OR '1'='1 and more"}),
        ({"meta.pages": {"$gt": 30}}, {"beta", "gamma"}),
        ({"meta.pages": 10}, {"alpha"}),
        ({"draft": True}, {"gamma"}),
        ({"tags": {"$contains": "b"}}, {"alpha", "beta"}),
        ({"tags": ["b"]}, {"beta"}),
        ({"$or": [{"lang": "zh"}, {"year": {"$lt": 2020}}]}, {"alpha", "beta", "gamma"}),
        ({"$and": [{"lang": "zh"}, {"year": {"$gt": 2022}}]}, {"gamma"}),
        ({"$not": {"lang": "en"}}, {"beta", "gamma", "Epsilon", "x' OR '1'='1 and more"}),
        ({"year": {"$not": {"$gt": 2020}}}, {"alpha", "delta", "x' OR '1'='1 and more"}),
        ({"lang": "zh", "year": 2021}, {"beta"}),
    ],
)
def test_operator_semantics(fstore: PGStore, filter: Any, expected: set[str]) -> None:
    assert _names(fstore, filter) == expected


def test_equality_filter_can_use_the_gin_index(fstore: PGStore, pg_dsn: str) -> None:
    import psycopg

    from qwen_pg_integrations.pg.queries import get_sql

    assert fstore.spec is not None
    params = Params()
    query = get_sql(fstore.spec, params, None, filter={"lang": "zh"})
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(
            r[0] for r in conn.execute(b"EXPLAIN " + query.as_bytes(conn), params.values)
        )
    assert "metadata_gin" in plan
