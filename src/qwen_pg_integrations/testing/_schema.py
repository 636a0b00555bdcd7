"""Values that satisfy a JSON schema: tool-call arguments and ``json_schema`` replies.

Supported: ``type`` (one or a list), ``enum``, ``const``, ``default``, ``examples``, ``properties``
(all properties are filled, required or not), ``items``/``prefixItems``/``minItems``/``maxItems``,
number bounds (``minimum``, ``maximum``, ``exclusiveMinimum``/``Maximum``, ``multipleOf`` for
integers), string ``minLength``/``maxLength``/``format`` (date, date-time, time, email, uri, uuid),
``anyOf``/``oneOf`` (first branch), ``allOf`` (merged) and local ``$ref`` (``#/$defs/...``,
``#/definitions/...``). ``pattern`` is not honoured.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["value_for_schema"]

_FORMATS = {
    "date": "2024-01-01",
    "date-time": "2024-01-01T00:00:00Z",
    "time": "12:00:00",
    "email": "user@example.com",
    "uri": "https://example.com",
    "url": "https://example.com",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    seen = 0
    while isinstance(ref, str) and ref.startswith("#/") and seen < 32:
        node: Any = root
        for part in ref[2:].split("/"):
            node = (
                node.get(part.replace("~1", "/").replace("~0", "~"), {})
                if isinstance(node, dict)
                else {}
            )
        extra = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**node, **extra} if isinstance(node, dict) else extra
        ref = schema.get("$ref")
        seen += 1
    return schema


def _string(schema: dict[str, Any], hint: str) -> str:
    fmt = schema.get("format")
    value = _FORMATS.get(fmt, hint) if isinstance(fmt, str) else hint
    lo = int(schema.get("minLength", 0))
    hi = schema.get("maxLength")
    if len(value) < lo:
        value = value + "x" * (lo - len(value))
    if isinstance(hi, int) and len(value) > hi:
        value = value[:hi]
    return value


def _bound(schema: dict[str, Any], key: str) -> float | None:
    value = schema.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _number(schema: dict[str, Any], integer: bool) -> int | float:
    lo, hi = _bound(schema, "minimum"), _bound(schema, "maximum")
    xlo, xhi = _bound(schema, "exclusiveMinimum"), _bound(schema, "exclusiveMaximum")
    lower = max((b for b in (lo, xlo) if b is not None), default=None)
    upper = min((b for b in (hi, xhi) if b is not None), default=None)
    if lower is None:
        value = 1.0 if upper is None or upper > 1.0 else upper - 1.0
    elif upper is None:
        value = lower + (1.0 if lower == xlo else 0.0)
    else:
        value = (lower + upper) / 2 if lower in (xlo,) or upper in (xhi,) else lower
    multiple = _bound(schema, "multipleOf")
    if multiple is not None and multiple > 0:
        value = math.ceil(value / multiple) * multiple
        if xlo is not None and value <= xlo:
            value += multiple
    if not integer:
        return value
    result = math.ceil(value)
    if xlo is not None and result <= xlo:
        result = math.floor(xlo) + 1
    if multiple is not None and multiple >= 1 and float(multiple).is_integer():
        result += (-result) % int(multiple)
    return result


def _merge_all_of(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    for part in schema.get("allOf", []):
        sub = _resolve(part, root) if isinstance(part, dict) else {}
        for key, val in sub.items():
            if key == "properties":
                merged["properties"] = {**merged.get("properties", {}), **val}
            elif key == "required":
                merged["required"] = [*merged.get("required", []), *val]
            else:
                merged.setdefault(key, val)
    return merged


def value_for_schema(
    schema: dict[str, Any] | bool | None,
    hint: str = "example",
    root: dict[str, Any] | None = None,
    depth: int = 0,
) -> Any:
    """A deterministic value valid against ``schema``; free strings get ``hint``."""
    if not isinstance(schema, dict):
        return hint if schema is not False else None
    root = root if root is not None else schema
    schema = _resolve(schema, root)
    if "allOf" in schema:
        schema = _merge_all_of(schema, root)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    if "default" in schema:
        return schema["default"]
    examples = schema.get("examples")
    if isinstance(examples, list) and examples:
        return examples[0]
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if isinstance(branches, list) and branches:
            non_null = [
                b for b in branches if not (isinstance(b, dict) and b.get("type") == "null")
            ]
            return value_for_schema((non_null or branches)[0], hint, root, depth)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "string":
        return _string(schema, hint)
    if kind == "integer":
        return _number(schema, integer=True)
    if kind == "number":
        return _number(schema, integer=False)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if kind == "array":
        return _array(schema, hint, root, depth)
    return _object(schema, hint, root, depth)


def _array(schema: dict[str, Any], hint: str, root: dict[str, Any], depth: int) -> list[Any]:
    prefix = schema.get("prefixItems")
    items: list[Any] = []
    if isinstance(prefix, list):
        items = [value_for_schema(p, hint, root, depth + 1) for p in prefix]
    lo = int(schema.get("minItems", 1 if depth < 6 else 0))
    hi = schema.get("maxItems")
    count = max(lo, len(items))
    if isinstance(hi, int):
        count = min(count, hi)
    item_schema = schema.get("items", {"type": "string"})
    while len(items) < count:
        items.append(value_for_schema(item_schema, hint, root, depth + 1))
    return items[:count]


def _object(schema: dict[str, Any], hint: str, root: dict[str, Any], depth: int) -> dict[str, Any]:
    props = schema.get("properties")
    if not isinstance(props, dict):
        return {}
    required = set(schema.get("required", []))
    result: dict[str, Any] = {}
    for name, sub in props.items():
        if depth > 6 and name not in required:
            continue
        result[name] = value_for_schema(sub, hint, root, depth + 1)
    return result
