"""The async twins of :class:`~.store.PGStore`'s methods (same plans, async runner)."""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from psycopg.types import TypeInfo

from ..errors import InvalidInputError, StorageError
from . import _ops
from ._plan import Plan, run_async
from ._setup import Requested, setup_plan
from .connection import ATTEMPTS, Engine
from .filters import Filter
from .records import EmbeddingLike, Record, SearchHit
from .schema import ServerInfo, TableSpec
from .text import warm_up

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

T = TypeVar("T")

__all__ = ["AsyncMethods"]


async def _aiter(items: Iterable[Record] | AsyncIterable[Record]) -> AsyncIterator[Record]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


class AsyncMethods:
    """Mixed into ``PGStore``: ``aadd``, ``asearch``, ... run the shared plans asynchronously."""

    _engine: Engine
    _req: Requested
    _server: ServerInfo | None
    _spec: TableSpec | None
    _types: tuple[TypeInfo, TypeInfo | None] | None
    _registered: weakref.WeakSet[Any]
    batch_size: int
    exact_filter_limit: int

    def _register(self, conn: Any, infos: tuple[TypeInfo, TypeInfo | None]) -> None:
        raise NotImplementedError

    def _errors(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    async def _aready(
        self, conn: psycopg.AsyncConnection[Any], dim_hint: int | None
    ) -> TableSpec | None:
        if self._spec is None or self._server is None:
            async with conn.transaction():
                self._server, self._spec = await run_async(conn, setup_plan(self._req, dim_hint))
            if self._spec is not None and self._spec.client_segmentation:
                warm_up()
        if self._spec is not None and conn not in self._registered:
            if self._types is None:
                vec = await TypeInfo.fetch(conn, "vector")
                if vec is None:
                    raise StorageError("the vector type is missing although pgvector is installed")
                half = None
                if self._server is not None and self._server.has_halfvec:
                    half = await TypeInfo.fetch(conn, "halfvec")
                self._types = (vec, half)
            self._register(conn, self._types)
        return self._spec

    async def _arun(self, conn: psycopg.AsyncConnection[Any], plan: Plan[T], *, tx: bool) -> T:
        if tx or not conn.autocommit:
            async with conn.transaction():
                return await run_async(conn, plan)
        return await run_async(conn, plan)

    async def _acall(self, op: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        """Async ``PGStore._call``: one whole operation, retried once on a fresh connection
        when the store's own pooled connection broke."""
        with self._errors():
            for attempt in range(ATTEMPTS):
                used: psycopg.AsyncConnection[Any] | None = None
                try:
                    async with self._engine.aconnect() as conn:
                        used = conn
                        return await op(conn)
                except psycopg.OperationalError:
                    if not self._engine.should_retry(attempt, used):
                        raise
            raise AssertionError("unreachable: the last attempt raises")

    async def _awrite(self, batch: _ops.RowBatch) -> None:
        rows = batch.rows()

        async def op(conn: psycopg.AsyncConnection[Any]) -> None:
            await self._aready(conn, batch.spec.dimension)
            await self._arun(conn, _ops.write_plan(batch.spec, rows), tx=True)

        await self._acall(op)

    async def asetup(self) -> None:
        """Async :meth:`~.store.PGStore.setup`."""
        await self._acall(lambda conn: self._aready(conn, None))

    async def aadd(self, records: Iterable[Record] | AsyncIterable[Record]) -> list[str]:
        """Async :meth:`~.store.PGStore.add` (also takes an async iterable)."""
        from .store import _dim

        ids: list[str] = []
        batch: _ops.RowBatch | None = None
        async for rec in _aiter(records):
            if batch is None:
                spec = await self._acall(partial(self._aready, dim_hint=_dim(rec)))
                if spec is None:
                    raise InvalidInputError("records need embeddings")
                batch = _ops.RowBatch(spec)
            batch.add(rec)
            if len(batch) >= self.batch_size:
                await self._awrite(batch)
                ids.extend(batch.ids)
                batch = _ops.RowBatch(batch.spec)
        if batch is not None and len(batch):
            await self._awrite(batch)
            ids.extend(batch.ids)
        return ids

    async def aget(
        self,
        ids: Sequence[str] | None = None,
        *,
        filter: Filter | None = None,
        limit: int | None = None,
        include_embeddings: bool = False,
    ) -> list[Record]:
        """Async :meth:`~.store.PGStore.get`."""
        if ids is not None and len(ids) == 0:
            return []

        async def op(conn: psycopg.AsyncConnection[Any]) -> list[Record]:
            spec = await self._aready(conn, None)
            if spec is None:
                return []
            plan = _ops.get_plan(
                spec, ids, filter=filter, limit=limit, include_embeddings=include_embeddings
            )
            return await self._arun(conn, plan, tx=False)

        return await self._acall(op)

    async def adelete(
        self, ids: Sequence[str] | None = None, *, filter: Filter | None = None
    ) -> int:
        """Async :meth:`~.store.PGStore.delete`."""
        if ids is None and filter is None:
            raise InvalidInputError(
                "delete needs ids or a filter that restricts the rows; to delete every row "
                "call aclear()"
            )
        if ids is not None and len(ids) == 0:
            return 0

        async def op(conn: psycopg.AsyncConnection[Any]) -> int:
            spec = await self._aready(conn, None)
            if spec is None:
                return 0
            return await self._arun(conn, _ops.delete_plan(spec, ids, filter), tx=True)

        return await self._acall(op)

    async def acount(self, filter: Filter | None = None) -> int:
        """Async :meth:`~.store.PGStore.count`."""

        async def op(conn: psycopg.AsyncConnection[Any]) -> int:
            spec = await self._aready(conn, None)
            if spec is None:
                return 0
            return await self._arun(conn, _ops.count_plan(spec, filter), tx=False)

        return await self._acall(op)

    async def aclear(self) -> None:
        """Async :meth:`~.store.PGStore.clear`."""

        async def op(conn: psycopg.AsyncConnection[Any]) -> None:
            spec = await self._aready(conn, None)
            if spec is not None:
                await self._arun(conn, _ops.clear_plan(spec), tx=True)

        await self._acall(op)

    async def asearch(
        self,
        embedding: EmbeddingLike,
        *,
        k: int = 4,
        filter: Filter | None = None,
        ids: Sequence[str] | None = None,
        score_threshold: float | None = None,
        ef_search: int | None = None,
        probes: int | None = None,
        include_embeddings: bool = False,
    ) -> list[SearchHit]:
        """Async :meth:`~.store.PGStore.search`."""
        _ops.check_search_args(k, score_threshold)

        async def op(conn: psycopg.AsyncConnection[Any]) -> list[SearchHit]:
            spec = await self._aready(conn, len(embedding))
            assert spec is not None and self._server is not None
            settings = _ops.search_settings(
                self._server,
                k,
                filtered=bool(filter) or ids is not None,
                ef_search=ef_search,
                probes=probes,
            )
            plan = _ops.search_plan(
                spec,
                self._server,
                _ops.query_vector(spec, embedding),
                k,
                filter=filter,
                ids=ids,
                score_threshold=score_threshold,
                ef_search=ef_search,
                probes=probes,
                include_embeddings=include_embeddings,
                exact_limit=self.exact_filter_limit,
            )
            return await self._arun(conn, plan, tx=bool(settings))

        return await self._acall(op)

    async def ammr_search(
        self,
        embedding: EmbeddingLike,
        *,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Filter | None = None,
        ids: Sequence[str] | None = None,
        score_threshold: float | None = None,
        ef_search: int | None = None,
        probes: int | None = None,
        include_embeddings: bool = False,
    ) -> list[SearchHit]:
        """Async :meth:`~.store.PGStore.mmr_search`."""
        _ops.check_search_args(k, score_threshold)

        async def op(conn: psycopg.AsyncConnection[Any]) -> list[SearchHit]:
            spec = await self._aready(conn, len(embedding))
            assert spec is not None and self._server is not None
            plan = _ops.mmr_plan(
                spec,
                self._server,
                _ops.query_vector(spec, embedding),
                k,
                fetch_k=fetch_k,
                lambda_mult=lambda_mult,
                filter=filter,
                ids=ids,
                score_threshold=score_threshold,
                ef_search=ef_search,
                probes=probes,
                include_embeddings=include_embeddings,
                exact_limit=self.exact_filter_limit,
            )
            return await self._arun(conn, plan, tx=True)

        return await self._acall(op)

    async def atext_search(
        self,
        query: str,
        *,
        k: int = 4,
        filter: Filter | None = None,
        ids: Sequence[str] | None = None,
    ) -> list[SearchHit]:
        """Async :meth:`~.store.PGStore.text_search`."""
        _ops.check_search_args(k)

        async def op(conn: psycopg.AsyncConnection[Any]) -> list[SearchHit]:
            spec = await self._aready(conn, None)
            if spec is None:
                return []
            return await self._arun(
                conn, _ops.text_plan(spec, query, k, filter=filter, ids=ids), tx=False
            )

        return await self._acall(op)

    async def ahybrid_search(
        self,
        embedding: EmbeddingLike,
        query: str,
        *,
        k: int = 4,
        filter: Filter | None = None,
        ids: Sequence[str] | None = None,
        fetch_k: int | None = None,
        rrf_k: int = 60,
        vector_weight: float = 1.0,
        text_weight: float = 1.0,
        ef_search: int | None = None,
        probes: int | None = None,
    ) -> list[SearchHit]:
        """Async :meth:`~.store.PGStore.hybrid_search`."""
        _ops.check_search_args(k)

        async def op(conn: psycopg.AsyncConnection[Any]) -> list[SearchHit]:
            spec = await self._aready(conn, len(embedding))
            assert spec is not None and self._server is not None
            plan = _ops.hybrid_plan(
                spec,
                self._server,
                _ops.query_vector(spec, embedding),
                query,
                k,
                fetch_k=fetch_k,
                filter=filter,
                ids=ids,
                rrf_k=rrf_k,
                vector_weight=vector_weight,
                text_weight=text_weight,
                ef_search=ef_search,
                probes=probes,
                exact_limit=self.exact_filter_limit,
            )
            return await self._arun(conn, plan, tx=True)

        return await self._acall(op)

    async def acreate_index(
        self,
        kind: str = "hnsw",
        *,
        m: int = 16,
        ef_construction: int = 64,
        lists: int | None = None,
        maintenance_work_mem: str | None = "256MB",
    ) -> str:
        """Async :meth:`~.store.PGStore.create_index`."""

        async def op(conn: psycopg.AsyncConnection[Any]) -> str:
            spec = await self._aready(conn, None)
            if spec is None:
                raise InvalidInputError(
                    "the table does not exist yet: add records (or give dimension=) first"
                )
            assert self._server is not None
            plan = _ops.index_plan(
                spec,
                self._server,
                kind,
                m=m,
                ef_construction=ef_construction,
                lists=lists,
                maintenance_work_mem=maintenance_work_mem,
            )
            return await self._arun(conn, plan, tx=True)

        return await self._acall(op)
