"""LlamaIndex ``MetadataFilters`` to the core filter language (LangChain operator syntax).

Only a translation: the core's filter compiler (``qwen_pg_integrations.pg``) turns the result
into parameterised SQL, for the LangChain store and this one alike.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from ..errors import FilterError

__all__ = ["to_core_filter"]

_SIMPLE = {
    FilterOperator.EQ: "$eq",
    FilterOperator.NE: "$ne",
    FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt",
    FilterOperator.LTE: "$lte",
    FilterOperator.IN: "$in",
    FilterOperator.NIN: "$nin",
    FilterOperator.CONTAINS: "$contains",
}


def _like_literal(value: Any, operator: FilterOperator) -> str:
    if not isinstance(value, str):
        raise FilterError(f"{operator.name} needs a string value, got {value!r}.")
    # LIKE's own wildcards in the value are matched literally (backslash is PG's escape).
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _as_list(value: Any, operator: FilterOperator) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise FilterError(f"{operator.name} needs a non-empty list value, got {value!r}.")
    return value


def _one(flt: MetadataFilter) -> dict[str, Any]:
    key, op, value = flt.key, flt.operator, flt.value
    if op in _SIMPLE:
        return {key: {_SIMPLE[op]: value}}
    if op == FilterOperator.TEXT_MATCH:
        return {key: {"$like": _like_literal(value, op)}}
    if op == FilterOperator.TEXT_MATCH_INSENSITIVE:
        return {key: {"$ilike": _like_literal(value, op)}}
    if op == FilterOperator.ANY:
        return {"$or": [{key: {"$contains": v}} for v in _as_list(value, op)]}
    if op == FilterOperator.ALL:
        return {"$and": [{key: {"$contains": v}} for v in _as_list(value, op)]}
    if op == FilterOperator.IS_EMPTY:
        # LlamaIndex: the key is missing, null, "" or [].
        return {
            "$or": [
                {key: {"$exists": False}},
                {key: {"$eq": None}},
                {key: {"$eq": ""}},
                {key: {"$eq": []}},
            ]
        }
    raise FilterError(f"Unsupported filter operator {op!r}.")


def to_core_filter(filters: MetadataFilters | None) -> dict[str, Any] | None:
    """The core filter for ``filters`` (``None`` when there is nothing to filter on).

    ``NOT`` follows LlamaIndex's own reference semantics (``build_metadata_filter_fn``): a row
    matches when none of the listed filters match, i.e. ``NOT (f1 OR f2 ...)``.
    """
    if filters is None or not filters.filters:
        return None
    parts = [
        sub
        for f in filters.filters
        if (sub := (to_core_filter(f) if isinstance(f, MetadataFilters) else _one(f))) is not None
    ]
    if not parts:
        return None
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.NOT:
        return {"$not": parts[0] if len(parts) == 1 else {"$or": parts}}
    if len(parts) == 1:
        return parts[0]
    if condition == FilterCondition.OR:
        return {"$or": parts}
    if condition == FilterCondition.AND:
        return {"$and": parts}
    raise FilterError(f"Unsupported filter condition {condition!r}.")
