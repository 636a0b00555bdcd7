"""Retries with exponential backoff and jitter, written once for sync, async and streams.

What is retried: errors whose class is marked ``retryable`` in :mod:`qwen_pg_integrations.errors`
(429 :class:`RateLimitError`, 5xx :class:`ServerError`, :class:`APIConnectionError` and
:class:`APITimeoutError`). Every other error (400, 401, 403, 404, content inspection, bad input)
is raised at once: the same request would fail again.

A stream is retried only until it has yielded its first item; after that an error is raised to
the caller, who has already seen part of the answer.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from ..errors import DashScopeError

__all__ = ["RetryPolicy"]

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before resending a failed request.

    Attributes:
        max_retries: resends after the first attempt (0 disables retries).
        backoff_base: first delay in seconds; doubles on each retry.
        backoff_max: cap of one delay in seconds.
        jitter: fraction of the delay drawn at random (0.5 -> delay * [0.5, 1.0]).
    """

    max_retries: int = 3
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.backoff_base < 0 or self.backoff_max < 0:
            raise ValueError("backoff_base and backoff_max must be >= 0")

    def delay_after(self, error: BaseException, attempt: int) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` to raise ``error`` now.

        Args:
            error: what the attempt raised.
            attempt: number of attempts made so far minus one (0 after the first failure).
        """
        if not isinstance(error, DashScopeError) or not error.retryable:
            return None
        if attempt >= self.max_retries:
            return None
        delay = min(self.backoff_max, self.backoff_base * (2**attempt))
        spread: float = random.random()  # jitter, not cryptography
        return float(delay * (1.0 - self.jitter * spread))

    # --- sync -------------------------------------------------------------------------

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` until it succeeds, a non-retryable error occurs, or retries run out."""
        attempt = 0
        while True:
            try:
                return fn()
            except DashScopeError as exc:
                delay = self.delay_after(exc, attempt)
                if delay is None:
                    raise
            time.sleep(delay)
            attempt += 1

    def stream(self, open_stream: Callable[[], Iterator[T]]) -> Iterator[T]:
        """Iterate a stream, reopening it on retryable errors raised before its first item."""
        attempt = 0
        while True:
            iterator = open_stream()
            try:
                first = next(iterator)
            except StopIteration:
                return
            except DashScopeError as exc:
                _close(iterator)
                delay = self.delay_after(exc, attempt)
                if delay is None:
                    raise
                time.sleep(delay)
                attempt += 1
                continue
            try:
                yield first
                yield from iterator
            finally:
                _close(iterator)
            return

    # --- async ------------------------------------------------------------------------

    async def acall(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Async :meth:`call`: awaits ``fn()`` with the same policy, sleeping without blocking."""
        attempt = 0
        while True:
            try:
                return await fn()
            except DashScopeError as exc:
                delay = self.delay_after(exc, attempt)
                if delay is None:
                    raise
            await asyncio.sleep(delay)
            attempt += 1

    async def astream(self, open_stream: Callable[[], AsyncIterator[T]]) -> AsyncIterator[T]:
        """Async :meth:`stream`."""
        attempt = 0
        while True:
            iterator = open_stream()
            try:
                first = await iterator.__anext__()
            except StopAsyncIteration:
                return
            except DashScopeError as exc:
                await _aclose(iterator)
                delay = self.delay_after(exc, attempt)
                if delay is None:
                    raise
                await asyncio.sleep(delay)
                attempt += 1
                continue
            try:
                yield first
                async for item in iterator:
                    yield item
            finally:
                await _aclose(iterator)
            return


def _close(iterator: Iterator[object]) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


async def _aclose(iterator: AsyncIterator[object]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()
