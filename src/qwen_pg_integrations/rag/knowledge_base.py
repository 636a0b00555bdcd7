"""A knowledge base on the core alone: PostgreSQL store + DashScope embeddings + Qwen chat.

No framework: the ``qwen-pg`` CLI uses it (fast start-up), and it shows the whole flow of
DESIGN.md §1 in one page. LangChain and LlamaIndex users get the same flow from
``create_rag_chain`` and ``create_query_engine``.

Example::

    from qwen_pg_integrations.rag.knowledge_base import KnowledgeBase

    kb = KnowledgeBase.open(table_name="docs", score_threshold=0.5)
    kb.ingest(["docs/"])
    result = kb.ask("pgvector 支持哪些索引？")
    result.answer, [(c.metadata["file_name"], c.score) for c in result.chunks]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from ..types import ChatMessage
from .drivers import StreamEvent, run_flow, stream_flow
from .flow import RagConfig, RagResult, RetrievedChunk, rag_flow

if TYPE_CHECKING:
    from ..dashscope import ChatClient, EmbeddingClient
    from ..ingest import Chunk, FilePlan, IngestSummary
    from ..pg import PGStore, SearchHit

__all__ = ["KnowledgeBase", "hit_to_chunk"]

SEARCH_MODES = ("vector", "text", "hybrid", "sparse")


def hit_to_chunk(hit: SearchHit) -> RetrievedChunk:
    """A store hit as the core's chunk (score = the store's relevance score, 0..1)."""
    record = hit.record
    return RetrievedChunk(record.content, hit.score, dict(record.metadata), record.id)


class KnowledgeBase:
    """Ingest files, search and answer, on :class:`~qwen_pg_integrations.pg.PGStore`.

    Args:
        store: the table.
        embeddings: the embedding client (documents and queries).
        chat: the chat client; ``None`` for search-only use (``ask`` then raises).
        config: the flow's settings (k, threshold, language, ...).
    """

    def __init__(
        self,
        store: PGStore,
        embeddings: EmbeddingClient,
        chat: ChatClient | None = None,
        config: RagConfig | None = None,
    ) -> None:
        self.store = store
        self.embeddings = embeddings
        self.chat = chat
        self.config = config or RagConfig()

    @classmethod
    def open(
        cls,
        connection: Any = None,
        *,
        table_name: str = "qwen_pg_documents",
        embedding_model: str = "text-embedding-v4",
        dimensions: int | None = None,
        chat_model: str | None = "qwen-plus",
        api_key: str | None = None,
        base_url: str | None = None,
        create_table: bool = True,
        rerank_model: str | None = None,
        sparse: bool = False,
        read_connection: Any = None,
        dialect: str | None = None,
        **config: Any,
    ) -> KnowledgeBase:
        """Build the clients and the store from names; ``config`` goes to :class:`RagConfig`.

        ``create_table=False`` opens an existing table only: nothing is created (a missing
        table is :class:`~qwen_pg_integrations.errors.TableNotFoundError`). ``rerank_model``
        (e.g. ``"qwen3-rerank"``) reranks the candidates (``fetch_k``) before answering.
        ``sparse=True`` embeds with ``output_type="dense&sparse"`` (v3/v4; same calls, same
        price) and stores the sparse weights too: ``search(mode="sparse")``, and a sparse
        ranking in hybrid search. ``read_connection``: read replicas for searches (see
        :class:`~qwen_pg_integrations.pg.PGStore`), with read-your-writes.
        ``base_url`` / ``dialect``: an OpenAI-compatible server (vLLM, Ollama, DashScope's
        compatible mode) for the chat and embedding models, as for the adapters.
        """
        from ..dashscope import ChatClient, DashScopeClient, EmbeddingClient, RerankClient
        from ..dashscope.compat import chat_client, embedding_client, uses_compat
        from ..pg import PGStore

        embeddings: Any
        if uses_compat(base_url, dialect):
            if rerank_model:
                raise ConfigurationError(
                    "rerank uses DashScope's native rerank API: it is not available with an "
                    "OpenAI-compatible base_url; leave rerank out."
                )
            given: dict[str, Any] = {"api_key": api_key, "key_given": api_key is not None}
            embeddings = embedding_client(
                embedding_model,
                base_url=base_url,
                dialect=dialect,
                dimensions=dimensions,
                output_type="dense&sparse" if sparse else "dense",
                **given,
            )
            chat = (
                chat_client(chat_model, base_url=base_url, dialect=dialect, **given)
                if chat_model
                else None
            )
        else:
            client = DashScopeClient(api_key=api_key, base_url=base_url)
            embeddings = EmbeddingClient(
                embedding_model,
                dimensions=dimensions,
                client=client,
                output_type="dense&sparse" if sparse else "dense",
            )
            chat = ChatClient(chat_model, client=client) if chat_model else None
            if rerank_model:
                config["reranker"] = RerankClient(rerank_model, client=client)
        store = PGStore(
            connection,
            table_name=table_name,
            dimension=embeddings.dimensions or None,
            embedding_model=embedding_model,
            create_table=create_table,
            sparse_dimension=True if sparse and create_table else None,
            read_connection=read_connection or None,
            read_your_writes=bool(read_connection),
        )
        return cls(store, embeddings, chat, RagConfig(**config))

    # --- ingest (the ChunkSink contract of qwen_pg_integrations.ingest) --------------------------

    def existing(self, ids: Sequence[str]) -> set[str]:
        """Which of these chunk ids are stored."""
        return {r.id for r in self.store.get(list(ids)) if r.id is not None}

    def add(self, chunks: Sequence[Chunk]) -> None:
        """Embed the chunks as documents and store them."""
        from ..pg import Record

        result = self.embeddings.embed([c.content for c in chunks], "document")
        sparse: Sequence[dict[int, float] | None] = result.sparse or [None] * len(chunks)
        self.store.add(
            Record(c.id, c.content, c.metadata, vector, weights)
            for c, vector, weights in zip(chunks, result.vectors, sparse, strict=True)
        )

    def delete_stale(self, source: str, keep: Sequence[str]) -> int:
        """Delete the chunks of ``source`` whose id is not in ``keep``."""
        return self.store.delete(
            filter={"$and": [{"source": source}, {"chunk_id": {"$nin": list(keep)}}]}
        )

    def delete_missing(self, folder: str, keep_sources: Sequence[str]) -> int:
        """Delete the chunks of files under ``folder`` that are not in ``keep_sources``."""
        escaped = folder.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return self.store.delete(
            filter={
                "$and": [
                    {"source": {"$like": escaped.rstrip("/") + "/%"}},
                    {"source": {"$nin": list(keep_sources)}},
                ]
            }
        )

    def ingest(
        self,
        paths: Sequence[str | Path],
        *,
        chunk_size: int | None = None,
        chunk_overlap: int | None = None,
        on_file: Callable[[Path, FilePlan], None] | None = None,
        prune: bool = False,
        on_start: Callable[[int], None] | None = None,
        on_chunks: Callable[[Path, int], None] | None = None,
    ) -> IngestSummary:
        """Split, embed and store the files under ``paths``; unchanged chunks are skipped.

        With ``prune``, chunks of files that were under a given folder but no longer exist
        are deleted too. Files of unsupported types found in folders are listed in the
        summary's ``unsupported``.
        """
        from ..ingest import (
            DEFAULT_CHUNK_OVERLAP,
            DEFAULT_CHUNK_SIZE,
            discover,
            ingest_files,
            make_splitter,
        )

        splitter = make_splitter(
            chunk_size or DEFAULT_CHUNK_SIZE,
            DEFAULT_CHUNK_OVERLAP if chunk_overlap is None else chunk_overlap,
        )
        folders = [Path(p) for p in paths if Path(p).is_dir()] if prune else []
        unsupported: list[Path] = []
        files = discover(paths, unsupported=unsupported)
        summary = ingest_files(
            files,
            self,
            splitter=splitter,
            on_file=on_file,
            prune=folders,
            on_start=on_start,
            on_chunks=on_chunks,
        )
        summary.unsupported = [str(p) for p in unsupported]
        return summary

    # --- search and answer -----------------------------------------------------------------------

    def search(
        self, text: str, *, k: int | None = None, mode: str = "vector"
    ) -> list[RetrievedChunk]:
        """Ranked chunks for ``text``: ``vector`` (embedding), ``text`` (full text), ``hybrid``
        (both, and the sparse ranking with sparse weights on), ``sparse``."""
        k = k or self.config.k
        if mode == "text":
            hits = self.store.text_search(text, k=k)
        elif mode == "vector":
            hits = self.store.search(self.embeddings.embed_query(text), k=k)
        elif mode == "hybrid":
            res = self.embeddings.embed([text], "query")
            weights = res.sparse[0] if res.sparse else None
            hits = self.store.hybrid_search(res.vectors[0], text, k=k, sparse=weights)
        elif mode == "sparse":
            if not self.embeddings.has_sparse:
                raise ConfigurationError(
                    "sparse search needs sparse weights: open the knowledge base with "
                    "sparse=True (qwen-pg: --sparse) and ingest with it."
                )
            hits = self.store.sparse_search(self.embeddings.embed_sparse([text], "query")[0], k=k)
        else:
            raise ConfigurationError(f"search mode must be one of {', '.join(SEARCH_MODES)}.")
        return [hit_to_chunk(h) for h in hits]

    def retrieve(self, query: str, k: int) -> list[RetrievedChunk]:
        """The flow's retrieval step: vector search, threshold applied by the flow."""
        return self.search(query, k=k, mode="vector")

    def _chat(self) -> ChatClient:
        if self.chat is None:
            raise ConfigurationError("This knowledge base has no chat model; pass chat_model=.")
        return self.chat

    def _generate(self, messages: Sequence[ChatMessage]) -> str:
        return self._chat().chat(messages).content

    def _stream(self, messages: Sequence[ChatMessage]) -> Iterator[str]:
        for chunk in self._chat().stream(messages):
            if chunk.content:
                yield chunk.content

    def ask(self, question: str, history: Sequence[ChatMessage] = ()) -> RagResult:
        """Answer from the stored chunks (or say that nothing relevant is stored)."""
        return run_flow(
            rag_flow(question, self.config, history),
            retrieve=self.retrieve,
            generate=self._generate,
        )

    def stream(self, question: str, history: Sequence[ChatMessage] = ()) -> Iterator[StreamEvent]:
        """Like :meth:`ask`, as events: sources first, then answer tokens, then the result."""
        return stream_flow(
            rag_flow(question, self.config, history),
            retrieve=self.retrieve,
            stream=self._stream,
            condense=self._generate,
        )

    def close(self) -> None:
        """Close the store's connections (when the store owns any)."""
        close = getattr(self.store, "close", None)
        if callable(close):
            close()
