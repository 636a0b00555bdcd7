"""The retrieval flow, written once, with no I/O and no framework (DESIGN.md §1, steps 5-8).

:func:`rag_flow` is a generator that *asks* for the three things it cannot do itself and receives
the results through ``send``:

* :class:`Condense` (messages) -> the standalone question (str), only with chat history;
* :class:`Retrieve` (query, k) -> ``Sequence[RetrievedChunk]`` ranked by the store;
* :class:`Rerank` (query, texts) -> the reranker's results, only with a ``reranker``;
* :class:`Generate` (messages) -> the model's answer (str).

It returns a :class:`RagResult`. The drivers in :mod:`.drivers` run it synchronously,
asynchronously or streaming, with callables each framework adapter supplies, so LangChain,
LlamaIndex and the CLI share the threshold, the prompts, the "nothing found" answer and the
follow-up rewriting, byte for byte.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import InvalidInputError
from ..types import ChatMessage, RerankResult
from .prompts import (
    CONDENSE_PROMPTS,
    DEFAULT_PROMPTS,
    EMPTY_CONTEXT,
    NO_CONTEXT_ANSWERS,
    NO_CONTEXT_PROMPTS,
    ROLE_LABELS,
    Language,
    RagPrompt,
    resolve_language,
)

__all__ = [
    "DEFAULT_NO_CONTEXT",
    "Condense",
    "Generate",
    "RagConfig",
    "RagResult",
    "Rerank",
    "Retrieve",
    "RetrievedChunk",
    "Step",
    "answer_messages",
    "arerank_chunks",
    "check_question",
    "condense_messages",
    "fetch_size",
    "format_context",
    "rag_flow",
    "rerank_chunks",
    "reranked_chunks",
    "reranker_of",
    "select_chunks",
    "source_label",
]


class _DefaultNoContext:
    """Marker: answer with the built-in "nothing found" text of the question's language."""

    def __repr__(self) -> str:
        return "DEFAULT_NO_CONTEXT"


DEFAULT_NO_CONTEXT: Any = _DefaultNoContext()


@dataclass(frozen=True)
class RetrievedChunk:
    """One chunk the store returned, with its similarity score (higher is closer)."""

    content: str
    score: float | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True)
class RagConfig:
    """Settings of the flow.

    Attributes:
        k: chunks to retrieve.
        score_threshold: keep only chunks whose relevance score is at least this, a number
            in [0, 1] (``None``: keep all ``k``). Scores are the store's relevance scores
            (the package's stores: in [0, 1], 1 = same direction).
        language: ``"auto"`` (the question's language), ``"zh"`` or ``"en"``.
        prompt: your own :class:`RagPrompt` (used for every language), else the built-in one.
        no_context_answer: what to answer when no chunk passes the threshold, without calling
            the model: ``DEFAULT_NO_CONTEXT`` (built-in text per language), a string, or a
            ``{"zh": ..., "en": ...}`` mapping. ``None`` asks the model anyway, with a prompt
            that tells it the knowledge base had nothing. The result says ``no_context=True``
            either way.
        condense: rewrite a follow-up into a standalone question when chat history is given.
        max_history_messages: the most recent history messages shown to the rewriter.
        reranker: a :class:`~qwen_pg_integrations.dashscope.RerankClient` (or anything with
            its ``rerank`` / ``arerank``): the store's ``fetch_k`` candidates are reranked in
            one call and ``score_threshold`` applies to the rerank scores; the retrieval score
            stays in each chunk's ``metadata["retrieval_score"]``.
        fetch_k: candidates retrieved for the reranker (default ``max(4 * k, 20)``); more
            candidates find more, at the price of a longer rerank call.
    """

    k: int = 4
    score_threshold: float | None = None
    language: str = "auto"
    prompt: RagPrompt | None = None
    no_context_answer: str | Mapping[str, str] | None = DEFAULT_NO_CONTEXT
    condense: bool = True
    max_history_messages: int = 12
    reranker: Any = None
    fetch_k: int | None = None

    def __post_init__(self) -> None:
        if self.k <= 0:
            raise InvalidInputError(f"k must be a positive number of chunks, not {self.k}.")
        if self.fetch_k is not None and self.fetch_k < self.k:
            raise InvalidInputError(f"fetch_k ({self.fetch_k}) must be at least k ({self.k}).")
        if self.reranker is not None and not callable(getattr(self.reranker, "rerank", None)):
            raise InvalidInputError(
                "reranker must be a RerankClient (or a DashScopeRerank's .client), "
                f"not {type(self.reranker).__name__}."
            )
        if self.max_history_messages <= 0:
            raise InvalidInputError("max_history_messages must be positive.")
        t = self.score_threshold
        if t is not None and (
            isinstance(t, bool)
            or not isinstance(t, (int, float))
            or not math.isfinite(t)
            or not 0.0 <= t <= 1.0
        ):
            raise InvalidInputError(
                f"score_threshold must be a number in [0, 1] (minimum relevance), got {t!r}."
            )
        resolve_language(self.language, "")  # validates the value

    @property
    def retrieve_k(self) -> int:
        """How many chunks the store is asked for (more when they are reranked)."""
        if self.reranker is None:
            return self.k
        return self.fetch_k if self.fetch_k is not None else max(4 * self.k, 20)

    def no_context_text(self, language: Language) -> str | None:
        """The fixed "nothing found" answer, or ``None`` when the model should be asked."""
        value = self.no_context_answer
        if value is None:
            return None
        if isinstance(value, _DefaultNoContext):
            return NO_CONTEXT_ANSWERS[language]
        if isinstance(value, str):
            return value
        return value.get(language) or NO_CONTEXT_ANSWERS[language]


@dataclass(frozen=True)
class RagResult:
    """What the flow produced.

    Attributes:
        question: the question as asked.
        standalone_question: the question used for retrieval (rewritten with chat history).
        answer: the answer ("" in the preview a streaming driver emits before generation).
        chunks: the chunks that passed the threshold, best first; these are the sources.
        retrieved: every chunk the store returned, before the threshold.
        no_context: ``True`` when no chunk passed the threshold.
        model_called: whether the answer came from the model (``False`` for the fixed
            "nothing found" answer).
        language: the prompt language used.
        messages: the exact answer prompt sent to the model (or that would have been sent).
    """

    question: str
    standalone_question: str
    answer: str
    chunks: tuple[RetrievedChunk, ...]
    retrieved: tuple[RetrievedChunk, ...]
    no_context: bool
    model_called: bool
    language: Language
    messages: tuple[ChatMessage, ...] = ()


@dataclass(frozen=True)
class Condense:
    """Ask the model to rewrite the follow-up; send back the standalone question."""

    messages: tuple[ChatMessage, ...]


@dataclass(frozen=True)
class Retrieve:
    """Search the store; send back the ranked chunks."""

    query: str
    k: int


@dataclass(frozen=True)
class Rerank:
    """Rerank the candidates with ``reranker`` (``rerank(query, texts, top_n=...)`` or its
    async ``arerank``); send back its ``RerankResult`` list, best first."""

    query: str
    texts: tuple[str, ...]
    top_n: int
    reranker: Any


@dataclass(frozen=True)
class Generate:
    """Ask the model for the answer; send back its text.

    ``preview`` is the result so far (sources known, answer empty), for streaming drivers that
    emit the sources before the first token.
    """

    messages: tuple[ChatMessage, ...]
    preview: RagResult


Step = Condense | Retrieve | Rerank | Generate


def reranker_of(rerank: Any) -> Any:
    """The core reranker for a ``rerank=`` argument: ``None``/``False`` -> none; ``True`` -> a
    ``RerankClient()`` (qwen3-rerank, key and endpoint from the environment); a framework
    ``DashScopeRerank`` -> its ``.client``; a ``RerankClient`` (or look-alike) as it is."""
    if rerank is None or rerank is False:
        return None
    if rerank is True:
        from ..dashscope.rerank import RerankClient

        return RerankClient()
    client = getattr(rerank, "client", None)
    if client is not None and callable(getattr(client, "rerank", None)):
        return client
    return rerank


def fetch_size(k: int, reranker: Any, fetch_k: int | None = None) -> int:
    """Candidates to retrieve for ``k`` results: ``k``, or ``fetch_k`` / ``max(4k, 20)`` to
    rerank."""
    return RagConfig(k=k, reranker=reranker, fetch_k=fetch_k).retrieve_k


def rerank_chunks(
    reranker: Any, query: str, chunks: Sequence[RetrievedChunk], k: int
) -> tuple[RetrievedChunk, ...]:
    """``chunks`` reranked for ``query`` (one call), the best ``k``; as they are without
    ``reranker``."""
    if reranker is None or not chunks:
        return tuple(chunks)
    results = reranker.rerank(query, [c.content for c in chunks], top_n=k)
    return reranked_chunks(chunks, results)


async def arerank_chunks(
    reranker: Any, query: str, chunks: Sequence[RetrievedChunk], k: int
) -> tuple[RetrievedChunk, ...]:
    """Async :func:`rerank_chunks`."""
    if reranker is None or not chunks:
        return tuple(chunks)
    results = await reranker.arerank(query, [c.content for c in chunks], top_n=k)
    return reranked_chunks(chunks, results)


def reranked_chunks(
    chunks: Sequence[RetrievedChunk], results: Sequence[RerankResult]
) -> tuple[RetrievedChunk, ...]:
    """The chunks in the reranker's order, scored by it (retrieval score kept in metadata)."""
    out = []
    for r in results:
        c = chunks[r.index]
        meta = {**c.metadata, "retrieval_score": c.score}
        out.append(replace(c, score=float(r.relevance_score), metadata=meta))
    return tuple(out)


def source_label(chunk: RetrievedChunk) -> str:
    """A short human name for where a chunk came from (file name, title, or id)."""
    meta = chunk.metadata
    for key in ("source", "file_name", "file_path", "title", "url"):
        value = meta.get(key)
        if value:
            text = str(value)
            return text.rsplit("/", 1)[-1] if key in ("source", "file_path") else text
    return chunk.id or "unknown"


def format_context(chunks: Sequence[RetrievedChunk], language: Language = "en") -> str:
    """The numbered sources block of the prompt: ``[n] source (score)`` then the text."""
    if not chunks:
        return EMPTY_CONTEXT[language]
    score_word = "相似度" if language == "zh" else "score"
    source_word = "来源" if language == "zh" else "source"
    blocks = []
    for n, chunk in enumerate(chunks, start=1):
        head = f"[{n}] {source_word}: {source_label(chunk)}"
        if chunk.score is not None:
            head += f" ({score_word} {chunk.score:.3f})"
        blocks.append(f"{head}\n{chunk.content.strip()}")
    return "\n\n".join(blocks)


def select_chunks(
    chunks: Sequence[RetrievedChunk], score_threshold: float | None, k: int
) -> tuple[RetrievedChunk, ...]:
    """The chunks at or above the threshold, best first, at most ``k``.

    Raises:
        InvalidInputError: a threshold is set but the retriever gave a chunk without a score
            (it would silently pass or fail otherwise).
    """
    if score_threshold is None:
        return tuple(chunks[:k])
    missing = [c for c in chunks if c.score is None]
    if missing:
        raise InvalidInputError(
            "score_threshold needs similarity scores, but the retriever returned documents "
            "without one: pass a vector store (or a retriever that puts 'score' in each "
            "document's metadata), or drop score_threshold."
        )
    kept = [c for c in chunks if c.score is not None and c.score >= score_threshold]
    kept.sort(key=lambda c: c.score if c.score is not None else float("-inf"), reverse=True)
    return tuple(kept[:k])


def answer_messages(
    question: str,
    chunks: Sequence[RetrievedChunk],
    language: Language,
    prompt: RagPrompt | None = None,
) -> tuple[ChatMessage, ...]:
    """The system + user messages that ask the model to answer from ``chunks``."""
    if prompt is None:
        prompt = DEFAULT_PROMPTS[language] if chunks else NO_CONTEXT_PROMPTS[language]
    user = prompt.user.format(context=format_context(chunks, language), question=question)
    return (
        ChatMessage(role="system", content=prompt.system),
        ChatMessage(role="user", content=user),
    )


def condense_messages(
    history: Sequence[ChatMessage], question: str, language: Language, max_messages: int = 12
) -> tuple[ChatMessage, ...]:
    """The messages that ask the model to rewrite ``question`` as a standalone question."""
    labels = ROLE_LABELS[language]
    lines = [
        f"{labels.get(m.role, m.role)}: {m.content.strip()}"
        for m in history[-max_messages:]
        if m.content.strip() and m.role in ("user", "assistant")
    ]
    prompt = CONDENSE_PROMPTS[language]
    user = prompt.user.format(history="\n".join(lines), question=question)
    return (
        ChatMessage(role="system", content=prompt.system),
        ChatMessage(role="user", content=user),
    )


_REWRITE_PREFIXES = ("standalone question:", "独立问题：", "独立问题:", "question:", "问题：")


def _clean_rewrite(text: str, fallback: str) -> str:
    line = text.strip().strip('"“”「」').strip()
    lowered = line.lower()
    for prefix in _REWRITE_PREFIXES:
        if lowered.startswith(prefix):
            line = line[len(prefix) :].strip()
            break
    return line or fallback


def check_question(question: str | None) -> str:
    """The question without surrounding white space.

    Raises:
        InvalidInputError: the question is empty (or ``None``).
    """
    question = (question or "").strip()
    if not question:
        raise InvalidInputError("The question is empty: ask something.")
    return question


def rag_flow(
    question: str, config: RagConfig, history: Sequence[ChatMessage] = ()
) -> Generator[Step, Any, RagResult]:
    """The flow as a generator of :data:`Step` requests; see the module docstring.

    Raises:
        InvalidInputError: the question is empty.
    """
    question = check_question(question)
    language = resolve_language(config.language, question)
    standalone = question
    if history and config.condense and any(m.content.strip() for m in history):
        messages = condense_messages(history, question, language, config.max_history_messages)
        rewritten = yield Condense(messages)
        standalone = _clean_rewrite(str(rewritten), question)

    retrieved = tuple((yield Retrieve(standalone, config.retrieve_k)))
    if config.reranker is not None and retrieved:
        texts = tuple(c.content for c in retrieved)
        results = yield Rerank(standalone, texts, config.k, config.reranker)
        retrieved = reranked_chunks(retrieved, results)
    chunks = select_chunks(retrieved, config.score_threshold, config.k)
    preview = RagResult(
        question=question,
        standalone_question=standalone,
        answer="",
        chunks=chunks,
        retrieved=retrieved,
        no_context=not chunks,
        model_called=False,
        language=language,
    )
    messages = answer_messages(standalone, chunks, language, config.prompt)
    fixed = config.no_context_text(language) if not chunks else None
    if fixed is not None:
        return replace(preview, answer=fixed, messages=messages)
    preview = replace(preview, messages=messages, model_called=True)
    answer = yield Generate(messages, preview)
    return replace(preview, answer=str(answer))
