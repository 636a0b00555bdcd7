"""The model table: limits of DashScope embedding and chat models.

One table for every adapter (LangChain and LlamaIndex read their metadata from here) and for
the emulator, which enforces the same embedding limits as the service (protocol doc §3.3).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidDimensionError, UnsupportedModelError

__all__ = [
    "CHAT_MODELS",
    "DEFAULT_CHAT_MODEL",
    "DEFAULT_EMBEDDING_CONCURRENCY",
    "DEFAULT_EMBEDDING_MODEL",
    "DEFAULT_RERANK_MODEL",
    "EMBEDDING_MODELS",
    "RERANK_MODELS",
    "ChatModelSpec",
    "EmbeddingModelSpec",
    "RerankModelSpec",
    "chat_model_spec",
    "embedding_model_spec",
    "rerank_model_spec",
]

DEFAULT_EMBEDDING_MODEL = "text-embedding-v4"
# qwen-plus is DashScope's stable, current general model (not on the retirement list).
DEFAULT_CHAT_MODEL = "qwen-plus"
# Embedding batches in flight per call: DashScope quotas count requests per minute, and 10
# concurrent calls keep a 1,000-text job far below them while hiding network latency.
DEFAULT_EMBEDDING_CONCURRENCY = 10


@dataclass(frozen=True)
class EmbeddingModelSpec:
    """Limits of one text-embedding model."""

    name: str
    max_batch: int
    max_tokens: int
    dimensions: tuple[int, ...]
    default_dimension: int
    supports_dimension_param: bool
    supports_text_type: bool = True

    def resolve_dimension(self, requested: int | None) -> int:
        """The dimension to use; raises before any call when the model does not offer it."""
        if requested is None:
            return self.default_dimension
        if requested not in self.dimensions:
            allowed = ", ".join(str(d) for d in self.dimensions)
            raise InvalidDimensionError(
                f"{self.name} does not offer {requested} dimensions; choose one of: {allowed}."
            )
        return requested


EMBEDDING_MODELS: dict[str, EmbeddingModelSpec] = {
    spec.name: spec
    for spec in (
        EmbeddingModelSpec("text-embedding-v1", 25, 2048, (1536,), 1536, False),
        EmbeddingModelSpec("text-embedding-v2", 25, 2048, (1536,), 1536, False),
        EmbeddingModelSpec(
            "text-embedding-v3", 10, 8192, (1024, 768, 512, 256, 128, 64), 1024, True
        ),
        EmbeddingModelSpec(
            "text-embedding-v4",
            10,
            8192,
            (2048, 1536, 1024, 768, 512, 256, 128, 64),
            1024,
            True,
        ),
    )
}


def embedding_model_spec(model: str) -> EmbeddingModelSpec:
    """The limits of ``model``; raises :class:`UnsupportedModelError` for unknown names."""
    try:
        return EMBEDDING_MODELS[model]
    except KeyError:
        known = ", ".join(EMBEDDING_MODELS)
        raise UnsupportedModelError(
            f"Unknown embedding model {model!r}; use one of: {known}."
        ) from None


@dataclass(frozen=True)
class ChatModelSpec:
    """What the package knows about one chat model (context and output limits, features)."""

    name: str
    context_window: int
    max_output_tokens: int
    function_calling: bool = True
    thinking: bool = False  # supports enable_thinking
    thinking_only: bool = False  # always thinks (QwQ, *-thinking)
    json_schema: bool = False  # response_format json_schema


CHAT_MODELS: dict[str, ChatModelSpec] = {
    spec.name: spec
    for spec in (
        ChatModelSpec("qwen-max", 32_768, 8_192),
        ChatModelSpec("qwen-max-latest", 131_072, 8_192),
        ChatModelSpec("qwen3-max", 262_144, 65_536, json_schema=True),
        ChatModelSpec("qwen-plus", 1_000_000, 32_768, thinking=True, json_schema=True),
        ChatModelSpec("qwen-plus-latest", 1_000_000, 32_768, thinking=True, json_schema=True),
        ChatModelSpec("qwen-turbo", 1_000_000, 16_384, thinking=True, json_schema=True),
        ChatModelSpec("qwen-turbo-latest", 1_000_000, 16_384, thinking=True, json_schema=True),
        ChatModelSpec("qwen-flash", 1_000_000, 32_768, thinking=True, json_schema=True),
        ChatModelSpec("qwen-long", 10_000_000, 8_192),
        ChatModelSpec("qwq-plus", 131_072, 8_192, thinking=True, thinking_only=True),
        ChatModelSpec("qwen3-235b-a22b", 131_072, 16_384, thinking=True),
        ChatModelSpec("qwen3-32b", 131_072, 16_384, thinking=True),
        ChatModelSpec("qwen3-8b", 131_072, 8_192, thinking=True),
        ChatModelSpec(
            "qwen3-235b-a22b-thinking-2507", 131_072, 32_768, thinking=True, thinking_only=True
        ),
        ChatModelSpec("qwen3-235b-a22b-instruct-2507", 131_072, 32_768, json_schema=True),
        ChatModelSpec("qwen3-coder-plus", 1_000_000, 65_536),
    )
}

# Conservative limits for a model the table does not list: calls still go through.
_FALLBACK_CHAT = ChatModelSpec("unknown", 32_768, 8_192)


def chat_model_spec(model: str) -> ChatModelSpec:
    """The spec of ``model``; unknown names get conservative limits (calls are not refused)."""
    spec = CHAT_MODELS.get(model)
    if spec is not None:
        return spec
    return ChatModelSpec(
        model,
        _FALLBACK_CHAT.context_window,
        _FALLBACK_CHAT.max_output_tokens,
        thinking=model.startswith(("qwen3", "qwq")),
        thinking_only=model.startswith("qwq") or "thinking" in model,
    )


# --- rerank (protocol doc §11.2) ---------------------------------------------------------

DEFAULT_RERANK_MODEL = "qwen3-rerank"


@dataclass(frozen=True)
class RerankModelSpec:
    """Limits of one text-rerank model: documents per request, tokens per query or document
    (longer ones are truncated by the service, silently), tokens per request, where a request
    costs ``query_tokens x documents + sum(document_tokens)``."""

    name: str
    max_documents: int
    max_item_tokens: int
    max_request_tokens: int


RERANK_MODELS: dict[str, RerankModelSpec] = {
    spec.name: spec
    for spec in (
        RerankModelSpec("qwen3-rerank", 500, 4_000, 120_000),
        RerankModelSpec("gte-rerank-v2", 500, 4_000, 30_000),
        # limits not published: the smaller budget of its family, until verified
        RerankModelSpec("qwen3.7-text-rerank", 500, 4_000, 30_000),
    )
}

_RETIRED_RERANK = {"gte-rerank": "2026-05-30"}


def rerank_model_spec(model: str) -> RerankModelSpec:
    """The limits of ``model``; :class:`UnsupportedModelError` for unknown or retired names."""
    try:
        return RERANK_MODELS[model]
    except KeyError:
        known = ", ".join(RERANK_MODELS)
        if model in _RETIRED_RERANK:
            raise UnsupportedModelError(
                f"{model} was discontinued on {_RETIRED_RERANK[model]}; use qwen3-rerank "
                "(or gte-rerank-v2)."
            ) from None
        raise UnsupportedModelError(
            f"Unknown rerank model {model!r}; use one of: {known}."
        ) from None
