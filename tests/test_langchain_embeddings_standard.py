"""langchain-tests standard suites for DashScopeEmbeddings: unit, and integration (emulator)."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.embeddings import Embeddings
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

from qwen_pg_integrations.langchain import DashScopeEmbeddings
from qwen_pg_integrations.testing import DashScopeEmulator

_UNREACHABLE = "http://127.0.0.1:9/api/v1"  # unit tests never call out


class TestDashScopeEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[DashScopeEmbeddings]:
        return DashScopeEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": "text-embedding-v4", "api_key": "sk-unit", "base_url": _UNREACHABLE}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {"DASHSCOPE_API_KEY": "sk-from-env", "DASHSCOPE_HTTP_BASE_URL": _UNREACHABLE},
            {"model": "text-embedding-v3", "dimensions": 512},
            {
                "api_key": "sk-from-env",
                "base_url": _UNREACHABLE,
                "model": "text-embedding-v3",
                "dimensions": 512,
            },
        )


class TestDashScopeEmbeddingsIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[DashScopeEmbeddings]:
        return DashScopeEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": "text-embedding-v4"}

    @pytest.fixture
    def model(self, dashscope_emulator: DashScopeEmulator) -> Embeddings:
        # The fixture exports DASHSCOPE_API_KEY / DASHSCOPE_HTTP_BASE_URL for the emulator, so
        # the class is built exactly as a user builds it: from the environment.
        return self.embeddings_class(**self.embedding_model_params)


class TestDashScopeEmbeddingsIntegrationOnVLLM(TestDashScopeEmbeddingsIntegration):
    """The same suite against a self-hosted vLLM embedding server (the emulator's vLLM route)."""

    @pytest.fixture
    def model(self, dashscope_emulator: DashScopeEmulator) -> Embeddings:
        return self.embeddings_class(
            model="Qwen/Qwen3-Embedding-0.6B", base_url=dashscope_emulator.vllm_base_url
        )
