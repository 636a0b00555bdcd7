"""Framework-free value types shared by the core and every adapter.

Adapters translate LangChain / LlamaIndex objects to these and back; the core never sees a
framework type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "ChatChunk",
    "ChatMessage",
    "ChatResponse",
    "EmbeddingResult",
    "RerankResult",
    "Role",
    "ToolCall",
    "ToolCallChunk",
    "ToolSpec",
    "Usage",
]

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class ToolCall:
    """A complete tool call requested by the model. ``arguments`` is the raw JSON string."""

    id: str
    name: str
    arguments: str
    index: int = 0


@dataclass(frozen=True)
class ToolCallChunk:
    """A streamed fragment of a tool call; fragments with the same ``index`` concatenate."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True)
class ToolSpec:
    """A function the model may call (OpenAI-style JSON schema in ``parameters``)."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def to_dashscope(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


@dataclass(frozen=True)
class ChatMessage:
    """One message of a conversation, as DashScope's native API takes it."""

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    reasoning_content: str | None = None


@dataclass(frozen=True)
class Usage:
    """Token usage of one call (or a running total)."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None

    def __add__(self, other: Usage) -> Usage:
        def _opt(a: int | None, b: int | None) -> int | None:
            return None if a is None and b is None else (a or 0) + (b or 0)

        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            reasoning_tokens=_opt(self.reasoning_tokens, other.reasoning_tokens),
            cached_tokens=_opt(self.cached_tokens, other.cached_tokens),
        )


@dataclass(frozen=True)
class ChatResponse:
    """A complete (non-streamed, or fully merged) chat answer."""

    content: str
    model: str
    finish_reason: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    reasoning_content: str | None = None
    usage: Usage | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class ChatChunk:
    """One streamed increment. ``content`` and ``reasoning_content`` are deltas."""

    content: str = ""
    reasoning_content: str = ""
    tool_call_chunks: tuple[ToolCallChunk, ...] = ()
    finish_reason: str | None = None
    usage: Usage | None = None
    request_id: str | None = None
    model: str | None = None


@dataclass(frozen=True)
class EmbeddingResult:
    """Vectors in input order, with the tokens the calls used (``vectors`` is empty for a
    sparse-only call)."""

    vectors: list[list[float]]
    model: str
    dimensions: int
    total_tokens: int = 0
    request_ids: tuple[str, ...] = ()
    sparse: list[dict[int, float]] | None = None
    """With ``output_type="dense&sparse"`` or ``"sparse"``: each text's sparse weights,
    ``{token index: weight}`` (indices as DashScope returns them, duplicates merged by their
    largest weight); ``None`` for dense-only calls."""


@dataclass(frozen=True)
class RerankResult:
    """One reranked document: its position in the input, the model's relevance score (higher
    is more relevant) and, when asked for, the document's text as the service returned it."""

    index: int
    relevance_score: float
    document: str | None = None
