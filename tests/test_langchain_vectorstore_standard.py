"""langchain-tests' VectorStoreIntegrationTests (sync and async) against the real server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_tests.integration_tests import VectorStoreIntegrationTests

from qwen_pg_integrations.langchain import PGVectorStore


class TestPGVectorStoreStandard(VectorStoreIntegrationTests):
    """Every standard test, sync and async twins, on PostgreSQL 18 + pgvector 0.8."""

    @pytest.fixture
    def vectorstore(self, pg_dsn: str, table_name: str) -> Iterator[PGVectorStore]:  # type: ignore[override]
        store = PGVectorStore(self.get_embeddings(), connection=pg_dsn, table_name=table_name)
        try:
            yield store
        finally:
            store.store.drop()


class TestPGVectorStoreStandardHNSW(VectorStoreIntegrationTests):
    """The same suite with an HNSW index on the table (index scans instead of exact scans)."""

    @pytest.fixture
    def vectorstore(self, pg_dsn: str, table_name: str) -> Iterator[PGVectorStore]:  # type: ignore[override]
        store = PGVectorStore(
            self.get_embeddings(),
            connection=pg_dsn,
            table_name=table_name,
            embedding_dimension=6,
        )
        store.create_index("hnsw")
        try:
            yield store
        finally:
            store.store.drop()
