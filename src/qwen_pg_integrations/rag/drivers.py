"""Run :func:`~.flow.rag_flow` with real I/O: sync, async, and streaming variants.

Each driver takes callables for the requests of the flow. Adapters pass their framework's
retriever and model calls; the CLI passes the core clients. A :class:`~.flow.Rerank` request
carries its reranker (the core ``RerankClient``), called here: sync ``rerank``, async
``arerank``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..types import ChatMessage
from .flow import Condense, RagResult, Rerank, Retrieve, RetrievedChunk, Step

__all__ = [
    "AGenerateFn",
    "ARetrieveFn",
    "AStreamFn",
    "GenerateFn",
    "RetrieveFn",
    "StreamContext",
    "StreamDone",
    "StreamEvent",
    "StreamFn",
    "StreamToken",
    "arun_flow",
    "astream_flow",
    "run_flow",
    "stream_flow",
]

Messages = Sequence[ChatMessage]
GenerateFn = Callable[[Messages], str]
RetrieveFn = Callable[[str, int], Sequence[RetrievedChunk]]
StreamFn = Callable[[Messages], Iterator[str]]
AGenerateFn = Callable[[Messages], Awaitable[str]]
ARetrieveFn = Callable[[str, int], Awaitable[Sequence[RetrievedChunk]]]
AStreamFn = Callable[[Messages], AsyncIterator[str]]

Flow = Generator[Step, Any, RagResult]


@dataclass(frozen=True)
class StreamContext:
    """Emitted once, before any token: the sources are known (``result.answer`` is empty)."""

    result: RagResult


@dataclass(frozen=True)
class StreamToken:
    """A piece of the answer."""

    text: str


@dataclass(frozen=True)
class StreamDone:
    """Emitted last, with the complete result."""

    result: RagResult


StreamEvent = StreamContext | StreamToken | StreamDone


def run_flow(
    flow: Flow,
    *,
    retrieve: RetrieveFn,
    generate: GenerateFn,
    condense: GenerateFn | None = None,
) -> RagResult:
    """Drive the flow to its result; ``condense`` defaults to ``generate``."""
    rewrite = condense or generate
    try:
        step = next(flow)
        while True:
            if isinstance(step, Condense):
                step = flow.send(rewrite(step.messages))
            elif isinstance(step, Retrieve):
                step = flow.send(list(retrieve(step.query, step.k)))
            elif isinstance(step, Rerank):
                step = flow.send(step.reranker.rerank(step.query, step.texts, top_n=step.top_n))
            else:
                step = flow.send(generate(step.messages))
    except StopIteration as stop:
        result: RagResult = stop.value
        return result


async def arun_flow(
    flow: Flow,
    *,
    retrieve: ARetrieveFn,
    generate: AGenerateFn,
    condense: AGenerateFn | None = None,
) -> RagResult:
    """The async twin of :func:`run_flow` (awaits the callables; no threads)."""
    rewrite = condense or generate
    try:
        step = next(flow)
        while True:
            if isinstance(step, Condense):
                step = flow.send(await rewrite(step.messages))
            elif isinstance(step, Retrieve):
                step = flow.send(list(await retrieve(step.query, step.k)))
            elif isinstance(step, Rerank):
                step = flow.send(
                    await step.reranker.arerank(step.query, step.texts, top_n=step.top_n)
                )
            else:
                step = flow.send(await generate(step.messages))
    except StopIteration as stop:
        result: RagResult = stop.value
        return result


def stream_flow(
    flow: Flow,
    *,
    retrieve: RetrieveFn,
    stream: StreamFn,
    condense: GenerateFn,
) -> Iterator[StreamEvent]:
    """Drive the flow, yielding the sources first, then answer tokens, then the result.

    The fixed "nothing found" answer arrives as a single :class:`StreamToken`.
    """
    try:
        step = next(flow)
        while True:
            if isinstance(step, Condense):
                step = flow.send(condense(step.messages))
            elif isinstance(step, Retrieve):
                step = flow.send(list(retrieve(step.query, step.k)))
            elif isinstance(step, Rerank):
                step = flow.send(step.reranker.rerank(step.query, step.texts, top_n=step.top_n))
            else:
                yield StreamContext(step.preview)
                parts: list[str] = []
                for token in stream(step.messages):
                    if token:
                        parts.append(token)
                        yield StreamToken(token)
                step = flow.send("".join(parts))
    except StopIteration as stop:
        result: RagResult = stop.value
    if not result.model_called:
        yield StreamContext(replace(result, answer=""))
        yield StreamToken(result.answer)
    yield StreamDone(result)


async def astream_flow(
    flow: Flow,
    *,
    retrieve: ARetrieveFn,
    stream: AStreamFn,
    condense: AGenerateFn,
) -> AsyncIterator[StreamEvent]:
    """The async twin of :func:`stream_flow`."""
    try:
        step = next(flow)
        while True:
            if isinstance(step, Condense):
                step = flow.send(await condense(step.messages))
            elif isinstance(step, Retrieve):
                step = flow.send(list(await retrieve(step.query, step.k)))
            elif isinstance(step, Rerank):
                step = flow.send(
                    await step.reranker.arerank(step.query, step.texts, top_n=step.top_n)
                )
            else:
                yield StreamContext(step.preview)
                parts: list[str] = []
                async for token in stream(step.messages):
                    if token:
                        parts.append(token)
                        yield StreamToken(token)
                step = flow.send("".join(parts))
    except StopIteration as stop:
        result: RagResult = stop.value
    if not result.model_called:
        yield StreamContext(replace(result, answer=""))
        yield StreamToken(result.answer)
    yield StreamDone(result)
