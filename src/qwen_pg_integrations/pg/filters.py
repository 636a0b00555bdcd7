"""Metadata filters (LangChain operator set) compiled to parameterised SQL over a jsonb column.

Keys and values never become SQL text: a key is split on dots into a ``text[]`` path bound as
a parameter (``metadata #> %(p)s``), and every value is a parameter. Equality of scalars uses
containment (``metadata @> %(p)s``) so the GIN ``jsonb_path_ops`` index can serve it. Range
operators guard on ``jsonb_typeof`` so one row with a non-numeric value never makes a numeric
comparison fail.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from ..errors import FilterError

__all__ = [
    "FALSE",
    "FIELD_OPERATORS",
    "LOGICAL_OPERATORS",
    "TRUE",
    "Filter",
    "Params",
    "compile_delete_filter",
    "compile_filter",
]

Filter = Mapping[str, Any]

FIELD_OPERATORS = frozenset(
    {
        "$eq",
        "$ne",
        "$lt",
        "$lte",
        "$gt",
        "$gte",
        "$in",
        "$nin",
        "$like",
        "$ilike",
        "$between",
        "$exists",
        "$contains",
        "$not",
    }
)
LOGICAL_OPERATORS = frozenset({"$and", "$or", "$not"})
_RANGE_SQL = {"$lt": "<", "$lte": "<=", "$gt": ">", "$gte": ">="}
_MAX_KEY_LEN = 255
_MAX_DEPTH = 32


class Params:
    """Collects bound values and hands out named placeholders for them."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, value: Any) -> sql.Placeholder:
        """Bind ``value`` and return its placeholder."""
        name = f"p{len(self.values)}"
        self.values[name] = value
        return sql.Placeholder(name)


def _path(key: Any) -> list[str]:
    if not isinstance(key, str):
        raise FilterError(f"filter keys must be strings, got {type(key).__name__}")
    if not key or len(key) > _MAX_KEY_LEN:
        raise FilterError(f"filter key must have 1 to {_MAX_KEY_LEN} characters, got {key!r}")
    if key.startswith("$"):
        raise FilterError(
            f"unknown operator {key!r} at field level; operators are "
            + ", ".join(sorted(LOGICAL_OPERATORS))
        )
    if "\x00" in key or any(ord(c) < 32 for c in key):
        raise FilterError(f"filter key {key!r} contains control characters")
    _text(key)
    parts = key.split(".")
    if any(not p for p in parts):
        raise FilterError(f"filter key {key!r} has an empty path segment")
    return parts


def _nest(path: list[str], value: Any) -> dict[str, Any]:
    out: Any = value
    for part in reversed(path):
        out = {part: out}
    assert isinstance(out, dict)
    return out


def _text(value: str) -> str:
    """A filter string as it is stored (NUL removed, see ``records.check_text``)."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise FilterError(
                f"filter value {value!r} holds a lone surrogate, which UTF-8 cannot encode "
                "(no stored text can contain one)"
            ) from None
    return value


def _is_scalar(value: Any) -> bool:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FilterError("filter values must be finite numbers (no NaN or Infinity)")
        return True
    return value is None or isinstance(value, (str, bool, int))


def _normalise(value: Any) -> Any:
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, dict):
        return {_key(k): _normalise(v) for k, v in value.items()}
    return value


def _key(key: Any) -> str:
    if not isinstance(key, str):
        raise FilterError(f"keys inside filter values must be strings, got {key!r}")
    return _text(key)


class _Compiler:
    def __init__(self, params: Params, column: sql.Composable) -> None:
        self.params = params
        self.column = column

    # -- helpers -----------------------------------------------------------------------------

    def _at(self, path: list[str]) -> sql.Composable:
        return sql.SQL("({} #> {}::text[])").format(self.column, self.params.add(path))

    def _at_text(self, path: list[str]) -> sql.Composable:
        return sql.SQL("({} #>> {}::text[])").format(self.column, self.params.add(path))

    def _contains(self, path: list[str], value: Any) -> sql.Composable:
        return sql.SQL("({} @> {}::jsonb)").format(
            self.column, self.params.add(Jsonb(_nest(path, value)))
        )

    # -- operators ---------------------------------------------------------------------------

    def eq(self, path: list[str], value: Any) -> sql.Composable:
        value = _normalise(value)
        if _is_scalar(value):
            return self._contains(path, value)
        if isinstance(value, (list, dict)):
            return sql.SQL("({} = {}::jsonb)").format(self._at(path), self.params.add(Jsonb(value)))
        raise FilterError(
            f"$eq value must be JSON (scalar, list or object), got {type(value).__name__}"
        )

    def ne(self, path: list[str], value: Any) -> sql.Composable:
        value = _normalise(value)
        if _is_scalar(value):
            return sql.SQL("(NOT {})").format(self._contains(path, value))
        if isinstance(value, (list, dict)):
            return sql.SQL("({} IS DISTINCT FROM {}::jsonb)").format(
                self._at(path), self.params.add(Jsonb(value))
            )
        raise FilterError(
            f"$ne value must be JSON (scalar, list or object), got {type(value).__name__}"
        )

    def range(self, op: str, path: list[str], value: Any) -> sql.Composable:
        value = _normalise(value)
        sym = sql.SQL(_RANGE_SQL[op])
        if isinstance(value, bool) or value is None:
            raise FilterError(f"{op} needs a number or a string, got {value!r}")
        if isinstance(value, (int, float)):
            _is_scalar(value)
            at = self._at(path)
            return sql.SQL(
                "(CASE WHEN jsonb_typeof({at}) = 'number' THEN ({at})::numeric {sym} {v}::numeric "
                "ELSE false END)"
            ).format(at=at, sym=sym, v=self.params.add(value))
        if isinstance(value, str):
            at = self._at(path)
            return sql.SQL(
                "(CASE WHEN jsonb_typeof({at}) = 'string' THEN ({at} #>> '{{}}') {sym} {v}::text "
                "ELSE false END)"
            ).format(at=at, sym=sym, v=self.params.add(value))
        raise FilterError(f"{op} needs a number or a string, got {type(value).__name__}")

    def in_(self, path: list[str], value: Any, negate: bool) -> sql.Composable:
        op = "$nin" if negate else "$in"
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise FilterError(f"{op} needs a list of values, got {type(value).__name__}")
        items = [_normalise(v) for v in value]
        for v in items:
            if not _is_scalar(v):
                raise FilterError(
                    f"{op} values must be scalars (str, number, bool, null), got {v!r}"
                )
        if not items:
            return TRUE if negate else FALSE
        docs = [Jsonb(_nest(path, v)) for v in items]
        cond = sql.SQL("({} @> ANY({}::jsonb[]))").format(self.column, self.params.add(docs))
        return _negate(cond) if negate else cond

    def like(self, op: str, path: list[str], value: Any) -> sql.Composable:
        if not isinstance(value, str):
            raise FilterError(f"{op} needs a string pattern, got {type(value).__name__}")
        value = _text(value)
        kw = sql.SQL("ILIKE" if op == "$ilike" else "LIKE")
        return sql.SQL("coalesce({} {} {}::text, false)").format(
            self._at_text(path), kw, self.params.add(value)
        )

    def between(self, path: list[str], value: Any) -> sql.Composable:
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
            raise FilterError("$between needs a [low, high] pair")
        low, high = value
        return sql.SQL("({} AND {})").format(
            self.range("$gte", path, low), self.range("$lte", path, high)
        )

    def exists(self, path: list[str], value: Any) -> sql.Composable:
        if not isinstance(value, bool):
            raise FilterError(f"$exists needs true or false, got {value!r}")
        return sql.SQL("({} IS {} NULL)").format(self._at(path), sql.SQL("NOT" if value else ""))

    def contains(self, path: list[str], value: Any) -> sql.Composable:
        value = _normalise(value)
        if not _is_scalar(value):
            raise FilterError("$contains needs a scalar element")
        return self._contains(path, [value])

    # -- structure ---------------------------------------------------------------------------

    def field(self, key: str, spec: Any, depth: int) -> sql.Composable:
        path = _path(key)
        if (
            isinstance(spec, Mapping)
            and spec
            and all(isinstance(k, str) and k.startswith("$") for k in spec)
        ):
            parts = [self.op(path, op, val, depth) for op, val in spec.items()]
            return _join(parts, "AND")
        if isinstance(spec, Mapping) and any(
            isinstance(k, str) and k.startswith("$") for k in spec
        ):
            raise FilterError(f"filter for {key!r} mixes operators and plain keys: {list(spec)}")
        return self.eq(path, spec)

    def op(self, path: list[str], op: Any, value: Any, depth: int) -> sql.Composable:
        if op == "$eq":
            return self.eq(path, value)
        if op == "$ne":
            return self.ne(path, value)
        if op in _RANGE_SQL:
            return self.range(op, path, value)
        if op in ("$in", "$nin"):
            return self.in_(path, value, negate=op == "$nin")
        if op in ("$like", "$ilike"):
            return self.like(op, path, value)
        if op == "$between":
            return self.between(path, value)
        if op == "$exists":
            return self.exists(path, value)
        if op == "$contains":
            return self.contains(path, value)
        if op == "$not":
            if not isinstance(value, Mapping) or not value:
                raise FilterError("field-level $not needs an operator object, e.g. {'$gt': 3}")
            parts = [self.op(path, o, v, depth + 1) for o, v in value.items()]
            return _negate(_join(parts, "AND"))
        raise FilterError(
            f"unknown filter operator {op!r}; supported: " + ", ".join(sorted(FIELD_OPERATORS))
        )

    def node(self, spec: Any, depth: int = 0) -> sql.Composable:
        if depth > _MAX_DEPTH:
            raise FilterError(f"filter nested deeper than {_MAX_DEPTH} levels")
        if not isinstance(spec, Mapping):
            raise FilterError(f"a filter condition must be a mapping, got {type(spec).__name__}")
        if not spec:
            # only the whole filter may be empty (= no filter); an empty condition inside
            # $and / $or / $not would silently match every row
            raise FilterError(
                "empty condition {} inside a filter: every condition of $and / $or / $not "
                "needs at least one field or operator"
            )
        parts: list[sql.Composable] = []
        for key, value in spec.items():
            if key in ("$and", "$or"):
                subs = [self.node(v, depth + 1) for v in _conditions(key, value)]
                parts.append(_join(subs, "AND" if key == "$and" else "OR"))
            elif key == "$not":
                if not isinstance(value, Mapping):
                    raise FilterError(
                        "$not needs one condition (a mapping such as {'lang': 'en'}), got "
                        f"{type(value).__name__}"
                    )
                parts.append(_negate(self.node(value, depth + 1)))
            else:
                parts.append(self.field(key, value, depth))
        return _join(parts, "AND")


def _conditions(key: str, value: Any) -> Sequence[Any]:
    """The conditions of ``$and`` / ``$or``: a non-empty list (never a dict or a string)."""
    if isinstance(value, (Mapping, str, bytes)):
        raise FilterError(
            f"{key} needs a list of conditions, e.g. {{{key!r}: [{{'a': 1}}, {{'b': 2}}]}}; got "
            f"{type(value).__name__}"
        )
    if not isinstance(value, Sequence):
        raise FilterError(f"{key} needs a list of conditions, got {type(value).__name__}")
    if not value:
        raise FilterError(
            f"{key} needs at least one condition: an empty {key} has no meaning a search or a "
            "delete could rely on (leave the filter out to match every row)"
        )
    return value


TRUE = sql.SQL("true")
FALSE = sql.SQL("false")


def _negate(cond: sql.Composable) -> sql.Composable:
    if cond is TRUE:
        return FALSE
    if cond is FALSE:
        return TRUE
    return sql.SQL("(NOT {})").format(cond)


def _join(parts: list[sql.Composable], word: str) -> sql.Composable:
    """``AND`` / ``OR`` of ``parts`` with the constants folded, so a condition that can only
    be true (``{"x": {"$nin": []}}``) is recognisable as :data:`TRUE`."""
    absorbing, neutral = (FALSE, TRUE) if word == "AND" else (TRUE, FALSE)
    if any(p is absorbing for p in parts):
        return absorbing
    parts = [p for p in parts if p is not neutral]
    if not parts:
        return neutral
    if len(parts) == 1:
        return parts[0]
    return sql.SQL("(") + sql.SQL(f" {word} ").join(parts) + sql.SQL(")")


def compile_filter(
    filter: Filter | None,
    params: Params,
    column: sql.Composable | None = None,
) -> sql.Composable | None:
    """Compile a LangChain-style metadata filter to a SQL condition.

    ``None`` and ``{}`` mean no filter. Inside a filter every logic operator must be
    well formed: ``$and`` / ``$or`` take a non-empty list of non-empty conditions, ``$not``
    takes one non-empty condition; anything else is a :class:`FilterError`, never a broader
    match. Conditions that are constant are folded: ``{"x": {"$in": []}}`` is ``false``,
    ``{"x": {"$nin": []}}`` is ``true`` (see :data:`TRUE`, :data:`FALSE`).

    Args:
        filter: e.g. ``{"year": {"$gte": 2020}, "$or": [{"lang": "zh"}, {"lang": "en"}]}``.
        params: the collector the values are bound into.
        column: the jsonb column (default ``metadata``).

    Returns:
        The condition, or ``None`` for no filter.

    Raises:
        FilterError: unknown operator, malformed logic operator, bad key or bad value.
    """
    if filter is None:
        return None
    if not isinstance(filter, Mapping):
        raise FilterError(f"a filter must be a mapping, got {type(filter).__name__}")
    if not filter:
        return None
    return _Compiler(params, column or sql.Identifier("metadata")).node(filter)


def compile_delete_filter(filter: Filter | None, params: Params) -> sql.Composable:
    """The condition of a delete by filter; refuses a filter that would match every row.

    An empty filter, or one that can only be true (``{"x": {"$nin": []}}``), would empty the
    collection: deleting everything is only ever the explicit ``clear()``.

    Raises:
        FilterError: no filter, a malformed one, or one that matches every row.
    """
    cond = compile_filter(filter, params)
    if cond is None or cond is TRUE:
        raise FilterError(
            f"refusing to delete by the filter {filter!r}: it matches every row. Pass ids or "
            "a filter that names a field; to delete every row call clear()."
        )
    return cond
