"""Structured output on DashScope chat models: which method a model supports, and what to send.

Framework-free, shared by the LangChain and LlamaIndex adapters. Three methods:

* ``"json_schema"``: ``response_format={"type": "json_schema", "json_schema": {...}}``; the
  service constrains the answer to the schema. Only models whose table entry says
  ``json_schema=True`` (``qwen-plus``, ``qwen-turbo``, ``qwen-flash``, ``qwen3-max``, ...).
* ``"function_calling"``: the schema becomes the only tool and ``tool_choice`` names it.
* ``"json_mode"``: ``response_format={"type": "json_object"}``; the answer is some JSON object,
  and DashScope requires the word "json" somewhere in the messages.

DashScope refuses ``json_object`` while a model is thinking (protocol notes §2.1), and hybrid
thinking models do not honour a forced ``tool_choice`` in thinking mode either, so every method
switches thinking off *for that call only* on models that can think but need not
(:func:`structured_output_params`). The caller's model object is never changed.
"""

from __future__ import annotations

from typing import Any, Literal

from ..errors import InvalidInputError, UnsupportedModelError
from .models import CHAT_MODELS, chat_model_spec

__all__ = [
    "JSON_OBJECT_RESPONSE_FORMAT",
    "STRUCTURED_METHODS",
    "StructuredMethod",
    "json_schema_response_format",
    "resolve_structured_method",
    "structured_output_params",
]

StructuredMethod = Literal["json_schema", "function_calling", "json_mode"]
STRUCTURED_METHODS: tuple[StructuredMethod, ...] = ("json_schema", "function_calling", "json_mode")

JSON_OBJECT_RESPONSE_FORMAT: dict[str, Any] = {"type": "json_object"}


def resolve_structured_method(model: str, method: str | None = None) -> StructuredMethod:
    """The structured-output method to use for ``model``.

    Args:
        model: DashScope chat model name.
        method: ``"json_schema"``, ``"function_calling"``, ``"json_mode"``, or ``None`` for the
            best the model supports (json_schema where the model table says so, else
            function_calling).

    Raises:
        InvalidInputError: an unknown method name.
        UnsupportedModelError: ``"json_schema"`` on a model the table knows lacks it (models the
            table does not list are let through: the service decides).
    """
    spec = chat_model_spec(model)
    if method is None:
        return "json_schema" if spec.json_schema else "function_calling"
    if method not in STRUCTURED_METHODS:
        raise InvalidInputError(
            f"Unknown structured-output method {method!r}; use one of: "
            + ", ".join(STRUCTURED_METHODS)
            + "."
        )
    if method == "json_schema" and model in CHAT_MODELS and not spec.json_schema:
        capable = ", ".join(name for name, s in CHAT_MODELS.items() if s.json_schema)
        raise UnsupportedModelError(
            f"{model} does not support response_format json_schema on DashScope; use "
            f"method='function_calling' or 'json_mode', or a model that does ({capable})."
        )
    return method


def json_schema_response_format(
    name: str,
    schema: dict[str, Any],
    *,
    description: str | None = None,
    strict: bool | None = None,
) -> dict[str, Any]:
    """DashScope's ``response_format`` for a JSON schema (OpenAI-compatible shape)."""
    body: dict[str, Any] = {"name": name, "schema": schema}
    if description:
        body["description"] = description
    if strict is not None:
        body["strict"] = strict
    return {"type": "json_schema", "json_schema": body}


def structured_output_params(model: str, method: StructuredMethod) -> dict[str, Any]:
    """Extra call parameters a structured-output call on ``model`` needs.

    Hybrid thinking models (``thinking=True`` and not ``thinking_only``) get
    ``enable_thinking=False`` for the structured call: json_object is refused while thinking and
    a forced tool_choice is not honoured. Always-thinking models (QwQ, ``*-thinking``) cannot
    switch it off; nothing is added and the service's answer stands.
    """
    spec = chat_model_spec(model)
    if spec.thinking and not spec.thinking_only:
        return {"enable_thinking": False}
    del method  # every method needs the same today; kept for future per-method rules
    return {}
