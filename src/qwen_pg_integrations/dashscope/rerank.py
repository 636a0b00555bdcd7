"""Text rerank over DashScope's native API (``qwen3-rerank`` by default), batched to the limits.

A cross-encoder scores each (query, document) pair; the scores are absolute, so documents over
the model's limits (500 per request, a token budget of ``query_tokens x documents +
sum(document_tokens)`` per request) are split into several requests, sent up to
``max_concurrency`` at a time, and merged: the result is one list, best first, mapped by each
result's ``index`` (never by text), ``top_n`` applied over all of it. The sync path calls the
SDK's ``TextReRank.call`` (on a thread pool when there are several requests); the async path
sends the same request with aiohttp. Errors are the typed errors of every client (the SDK
itself returns ``output=None`` on HTTP errors), with the same retries.

Example:
    >>> rr = RerankClient()  # qwen3-rerank, DASHSCOPE_API_KEY
    >>> docs = ["PolarDB is a cloud database", "Qwen is a model"]
    >>> rr.rerank("what is PolarDB?", docs)  # doctest: +SKIP
    [RerankResult(index=0, relevance_score=0.93, document=None), RerankResult(index=1, ...)]
"""

from __future__ import annotations

import asyncio
import threading
import unicodedata
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import BadRequestError, ConfigurationError, InvalidInputError
from ..types import RerankResult
from . import _aio
from .client import DashScopeClient
from .models import DEFAULT_RERANK_MODEL, RerankModelSpec, rerank_model_spec

__all__ = ["RerankClient"]


def _tokens_at_most(text: str) -> int:
    """A generous *upper* estimate of a text's tokens (CJK: 1 per char, other: 1 per 3 chars),
    so that a batch planned under the request budget is under it on the service too."""
    wide = sum(1 for ch in text if unicodedata.east_asian_width(ch) in ("W", "F"))
    return wide + (len(text) - wide) // 3 + 1


class RerankClient:
    """DashScope text rerank.

    Args:
        model: a model of :data:`~.models.RERANK_MODELS` (``gte-rerank`` was discontinued).
        top_n: default number of results (``None``: all documents, best first).
        instruct: the task instruction (qwen3-rerank; English recommended), e.g.
            ``"Retrieve semantically similar text."``; ``None``: the service's default.
        client: a :class:`DashScopeClient`; built from ``client_kwargs`` when ``None``
            (``api_key``, ``base_url``, ``workspace``, ``max_retries``, ``timeout``, ...).
        max_concurrency: requests in flight at once when the documents need several.
        max_documents: documents per request; defaults to, and may not exceed, the model's.
    """

    def __init__(
        self,
        model: str = DEFAULT_RERANK_MODEL,
        *,
        top_n: int | None = None,
        instruct: str | None = None,
        client: DashScopeClient | None = None,
        max_concurrency: int = 4,
        max_documents: int | None = None,
        **client_kwargs: Any,
    ) -> None:
        self.spec: RerankModelSpec = rerank_model_spec(model)
        self.top_n = _check_top_n(top_n)
        if instruct is not None and (not isinstance(instruct, str) or not instruct.strip()):
            raise ConfigurationError("instruct must be a non-empty string or None.")
        self.instruct = instruct
        if max_concurrency < 1:
            raise ConfigurationError(f"max_concurrency must be >= 1, got {max_concurrency}.")
        if max_documents is not None and not 1 <= max_documents <= self.spec.max_documents:
            raise ConfigurationError(
                f"max_documents must be between 1 and {self.spec.max_documents} for "
                f"{self.spec.name}"
            )
        self.max_documents = max_documents or self.spec.max_documents
        self.max_concurrency = max_concurrency
        self.client = client if client is not None else DashScopeClient(**client_kwargs)
        self._lock = threading.Lock()
        self._total_tokens = 0

    @property
    def model(self) -> str:
        return self.spec.name

    @property
    def total_tokens(self) -> int:
        """Tokens used by every call of this instance so far (thread-safe)."""
        with self._lock:
            return self._total_tokens

    def __repr__(self) -> str:
        return (
            f"RerankClient(model={self.model!r}, top_n={self.top_n}, "
            f"instruct={self.instruct!r}, client={self.client!r})"
        )

    # --- shared: checks, batches, parameters, merging -------------------------------------

    def _batches(self, query: str, documents: Sequence[str]) -> list[range]:
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError("the rerank query is empty; pass the question to rank for.")
        if isinstance(documents, str):
            raise InvalidInputError("documents must be a list of strings, not one string.")
        for i, doc in enumerate(documents):
            if not isinstance(doc, str):
                raise InvalidInputError(f"documents[{i}] is {type(doc).__name__}, not str.")
        cap = self.spec.max_item_tokens
        q_tokens = min(_tokens_at_most(query), cap)
        budget = self.spec.max_request_tokens
        batches: list[range] = []
        start, used = 0, 0
        for i, doc in enumerate(documents):
            cost = q_tokens + min(_tokens_at_most(doc), cap)
            if i > start and (i - start >= self.max_documents or used + cost > budget):
                batches.append(range(start, i))
                start, used = i, 0
            used += cost
        if len(documents) > start:
            batches.append(range(start, len(documents)))
        return batches

    def _parameters(self, top_n: int | None, return_documents: bool, many: bool) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if top_n is not None and not many:  # several requests: top_n applies to the merge
            params["top_n"] = top_n
        if return_documents:
            params["return_documents"] = True
        if self.instruct is not None:
            params["instruct"] = self.instruct
        return params

    def _place(self, batch: range, response: Mapping[str, Any], out: list[RerankResult]) -> int:
        request_id = response.get("request_id") or None
        output = response.get("output") or {}
        items = output.get("results") if isinstance(output, Mapping) else None
        if not isinstance(items, list):
            raise BadRequestError(
                f"DashScope returned no rerank results (request_id={request_id}); retry the call.",
                request_id=request_id,
            )
        for item in items:
            index = item.get("index") if isinstance(item, Mapping) else None
            score = item.get("relevance_score") if isinstance(item, Mapping) else None
            if not isinstance(index, int) or not 0 <= index < len(batch) or score is None:
                raise BadRequestError(
                    f"DashScope returned a malformed rerank item (index={index!r}).",
                    request_id=request_id,
                )
            doc = item.get("document")
            text = doc.get("text") if isinstance(doc, Mapping) else None
            out.append(RerankResult(batch[index], float(score), text))
        usage = response.get("usage") or {}
        return int(usage.get("total_tokens") or 0) if isinstance(usage, Mapping) else 0

    def _merge(
        self,
        found: list[RerankResult],
        tokens: int,
        documents: Sequence[str],
        top_n: int | None,
        return_documents: bool,
        score_threshold: float | None = None,
    ) -> list[RerankResult]:
        with self._lock:
            self._total_tokens += tokens
        found.sort(key=lambda r: (-r.relevance_score, r.index))
        if score_threshold is not None:
            found = [r for r in found if r.relevance_score >= score_threshold]
        if return_documents:  # the caller's own text, whatever the service echoed
            found = [RerankResult(r.index, r.relevance_score, documents[r.index]) for r in found]
        return found if top_n is None else found[:top_n]

    # --- sync -----------------------------------------------------------------------------

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None = None,
        return_documents: bool = False,
        score_threshold: float | None = None,
    ) -> list[RerankResult]:
        """``documents`` ranked for ``query``, best first (``top_n`` of them; ``None``: the
        instance's ``top_n``, else all; only those scoring at least ``score_threshold`` when
        given). An empty list gives ``[]`` without a call.

        Raises:
            InvalidInputError: an empty query or a document that is not a string.
            DashScopeError: the service's error, after retries where they make sense.
        """
        top_n = _check_top_n(top_n) if top_n is not None else self.top_n
        batches = self._batches(query, documents)
        params = self._parameters(top_n, return_documents, len(batches) > 1)
        found: list[RerankResult] = []

        def one(batch: range) -> Mapping[str, Any]:
            docs = [documents[i] for i in batch]
            return self.client.retry.call(
                lambda: self.client.text_rerank(self.model, query, docs, params)
            )

        if len(batches) <= 1 or self.max_concurrency == 1:
            responses = [one(b) for b in batches]
        else:
            workers = min(self.max_concurrency, len(batches))
            with ThreadPoolExecutor(workers, thread_name_prefix="qwen-pg-rerank") as pool:
                responses = list(pool.map(one, batches))
        tokens = sum(self._place(b, r, found) for b, r in zip(batches, responses, strict=True))
        return self._merge(found, tokens, documents, top_n, return_documents, score_threshold)

    # --- async ----------------------------------------------------------------------------

    async def arerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None = None,
        return_documents: bool = False,
        score_threshold: float | None = None,
    ) -> list[RerankResult]:
        """Async :meth:`rerank`: aiohttp requests, at most ``max_concurrency`` at a time."""
        top_n = _check_top_n(top_n) if top_n is not None else self.top_n
        batches = self._batches(query, documents)
        params = self._parameters(top_n, return_documents, len(batches) > 1)
        found: list[RerankResult] = []
        if not batches:
            return []
        semaphore = asyncio.Semaphore(self.max_concurrency)
        async with _aio.open_session(limit=self.max_concurrency) as session:

            async def one(batch: range) -> Mapping[str, Any]:
                docs = [documents[i] for i in batch]
                async with semaphore:
                    return await self.client.retry.acall(
                        lambda: self.client.atext_rerank(session, self.model, query, docs, params)
                    )

            responses = await asyncio.gather(*(one(b) for b in batches))
        tokens = sum(self._place(b, r, found) for b, r in zip(batches, responses, strict=True))
        return self._merge(found, tokens, documents, top_n, return_documents, score_threshold)


def _check_top_n(top_n: int | None) -> int | None:
    if top_n is not None and (not isinstance(top_n, int) or isinstance(top_n, bool) or top_n < 1):
        raise ConfigurationError(f"top_n must be a positive integer or None, got {top_n!r}.")
    return top_n
