"""Native text embedding: validation against the model table and the response (§3).

Limits come from :data:`qwen_pg_integrations.dashscope.models.EMBEDDING_MODELS` (one table for the
package and the emulator). Error choices where the service's text is not documented (§3.4, §10):

* unknown model -> 400 ``InvalidParameter`` ``Model not exist.`` (the documented validation message;
  the service's 404 ``ModelNotFound`` is not used for embeddings);
* empty or whitespace-only text -> 400 ``InvalidParameter`` ``... is empty.: input.contents``;
* text longer than the model's token limit -> 400 ``Range of input length should be [1, N]``;
* unsupported ``dimension`` -> 400 ``InvalidParameter`` naming the allowed values (v1/v2 ignore it);
* ``text_type`` other than query/document -> 400 ``InvalidParameter``.
"""

from __future__ import annotations

from typing import Any

from ..dashscope.models import EMBEDDING_MODELS, EmbeddingModelSpec
from ._embed import embed_texts, sparse_features
from ._text import count_tokens
from ._wire import ApiError, invalid

__all__ = ["EmbeddingCall", "embed_response", "parse_embedding"]


class EmbeddingCall:
    """A validated embedding request."""

    def __init__(
        self,
        spec: EmbeddingModelSpec,
        texts: list[str],
        dimension: int,
        text_type: str,
        output_type: str,
    ) -> None:
        self.spec = spec
        self.texts = texts
        self.dimension = dimension
        self.text_type = text_type
        self.output_type = output_type


def check_texts(spec: EmbeddingModelSpec, raw: Any) -> list[str]:
    """The texts of a request, checked against ``spec``'s batch and length limits."""
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise invalid("Value error, contents is neither str nor list of str.: input.contents")
    if not texts:
        raise invalid("Value error, batch size is invalid, it should not be smaller than 1.")
    if len(texts) > spec.max_batch:
        raise invalid(
            "Value error, batch size is invalid, it should not be larger than "
            f"{spec.max_batch}.: input.contents"
        )
    for i, text in enumerate(texts):
        if not text.strip():
            raise invalid(f"Value error, text at index {i} is empty.: input.contents")
        if count_tokens(text) > spec.max_tokens:
            raise invalid(f"Range of input length should be [1, {spec.max_tokens}]")
    return texts


def resolve_spec(model: Any) -> EmbeddingModelSpec:
    """The table entry of ``model``; 400 ``Model not exist.`` otherwise."""
    if not isinstance(model, str) or not model:
        raise ApiError(400, "BadRequest.EmptyModel", 'Required parameter "model" missing.')
    spec = EMBEDDING_MODELS.get(model)
    if spec is None:
        raise invalid("Model not exist.", algo=False)
    return spec


def resolve_dimension(spec: EmbeddingModelSpec, value: Any, key: str) -> int:
    """The output dimension; a value the model does not offer is a 400."""
    if value is None or not spec.supports_dimension_param:
        return spec.default_dimension
    if isinstance(value, bool) or not isinstance(value, int) or value not in spec.dimensions:
        allowed = ", ".join(str(d) for d in spec.dimensions)
        raise invalid(f"Value error, {key} should be one of [{allowed}], got {value!r}.")
    return value


def parse_embedding(body: Any) -> EmbeddingCall:
    """Validate a native embedding body; raises :class:`ApiError`."""
    if not isinstance(body, dict):
        raise invalid("Required body invalid, please check the request body format.", algo=False)
    spec = resolve_spec(body.get("model"))
    inp = body.get("input")
    if not isinstance(inp, dict) or "texts" not in inp:
        raise ApiError(
            400, "BadRequest.EmptyInput", "Required input parameter missing from request."
        )
    texts = check_texts(spec, inp["texts"])
    params = body.get("parameters") or {}
    if not isinstance(params, dict):
        params = {}
    dimension = resolve_dimension(spec, params.get("dimension"), "parameters.dimension")
    text_type = params.get("text_type", "document")
    if text_type not in ("query", "document"):
        raise invalid(f"text_type should be query or document, got {text_type!r}.")
    output_type = params.get("output_type", "dense")
    if output_type not in ("dense", "sparse", "dense&sparse"):
        raise invalid(f"output_type should be dense, sparse or dense&sparse, got {output_type!r}.")
    if output_type != "dense" and not spec.supports_dimension_param:
        output_type = "dense"
    return EmbeddingCall(spec, texts, dimension, text_type, output_type)


def embed_response(call: EmbeddingCall, request_id: str) -> dict[str, Any]:
    """The success body ``{"output": {"embeddings": [...]}, "usage", "request_id"}``."""
    vectors = embed_texts(call.texts, call.dimension) if call.output_type != "sparse" else []
    items: list[dict[str, Any]] = []
    for i, text in enumerate(call.texts):
        item: dict[str, Any] = {"text_index": i}
        if vectors:
            item["embedding"] = vectors[i]
        if call.output_type != "dense":
            item["sparse_embedding"] = sparse_features(text)
        items.append(item)
    tokens = sum(count_tokens(t) for t in call.texts)
    return {
        "output": {"embeddings": items},
        "usage": {"total_tokens": tokens},
        "request_id": request_id,
    }
