"""LlamaIndex ``DashScopeRerank``: a node postprocessor over DashScope text rerank.

A thin adapter over :class:`qwen_pg_integrations.dashscope.RerankClient`. Unlike
llama-index-postprocessor-dashscope-rerank it ranks the node's text alone (``metadata_mode``
``NONE``; ``EMBED`` / ``LLM`` / ``ALL`` when asked), maps scores by index, defaults to
``qwen3-rerank`` (``gte-rerank`` was discontinued), raises the service's typed error instead of
an ``AttributeError``, and has a real async path.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.bridge.pydantic import Field, PrivateAttr, SecretStr
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from ..dashscope.models import DEFAULT_RERANK_MODEL
from ..dashscope.rerank import RerankClient
from ..errors import InvalidInputError
from ..types import RerankResult

__all__ = ["DashScopeRerank"]

dispatcher = get_dispatcher(__name__)


class DashScopeRerank(BaseNodePostprocessor):
    """Rerank retrieved nodes with a DashScope cross-encoder (``qwen3-rerank`` by default).

    The nodes come back best first, at most ``top_n``, each ``score`` replaced by the rerank
    score (the retrieval score is kept in ``node.metadata["retrieval_score"]`` only if
    ``keep_retrieval_score``). Use it as ``index.as_query_engine(similarity_top_k=20,
    node_postprocessors=[DashScopeRerank(top_n=4)])``.
    """

    model: str = Field(default=DEFAULT_RERANK_MODEL, description="Rerank model.")
    top_n: int = Field(default=3, ge=1, description="Nodes to keep.")
    instruct: str | None = Field(default=None, description="Task instruction (qwen3-rerank).")
    metadata_mode: MetadataMode = Field(
        default=MetadataMode.NONE,
        description="What of the node is ranked: NONE = its text alone (no metadata tokens).",
    )
    score_threshold: float | None = Field(
        default=None, description="Drop nodes whose rerank score is below this."
    )
    keep_retrieval_score: bool = Field(
        default=False, description="Copy the retrieval score to metadata['retrieval_score']."
    )
    api_key: SecretStr | None = Field(default=None, exclude=True, repr=False)
    base_url: str | None = Field(default=None, description="DashScope endpoint or emulator URL.")
    workspace: str | None = Field(default=None, description="DashScope workspace id.")
    max_retries: int = Field(default=3, ge=0)
    timeout: float = Field(default=60.0, gt=0)

    _client: RerankClient = PrivateAttr()

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        self._client = RerankClient(
            self.model,
            instruct=self.instruct,
            api_key=self.api_key,
            base_url=self.base_url,
            workspace=self.workspace,
            max_retries=self.max_retries,
            timeout=self.timeout,
        )

    @classmethod
    def class_name(cls) -> str:
        return "QwenPGDashScopeRerank"

    @property
    def client(self) -> RerankClient:
        """The core client (for ``total_tokens`` and direct calls)."""
        return self._client

    def _query(self, query_bundle: QueryBundle | None) -> str:
        if query_bundle is None:
            raise InvalidInputError(
                "DashScopeRerank needs the query: pass query_bundle or query_str."
            )
        return query_bundle.query_str

    def _texts(self, nodes: list[NodeWithScore]) -> list[str]:
        return [n.node.get_content(metadata_mode=self.metadata_mode) for n in nodes]

    def _nodes(self, nodes: list[NodeWithScore], ranked: list[RerankResult]) -> list[NodeWithScore]:
        out = []
        for r in ranked:
            original = nodes[r.index]
            node = original.node
            if self.keep_retrieval_score:
                node = node.model_copy()
                node.metadata = {**node.metadata, "retrieval_score": original.score}
            out.append(NodeWithScore(node=node, score=r.relevance_score))
        return out

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        query = self._query(query_bundle)
        dispatcher.event(
            ReRankStartEvent(
                query=query_bundle, nodes=nodes, top_n=self.top_n, model_name=self.model
            )
        )
        ranked = (
            self._client.rerank(
                query, self._texts(nodes), top_n=self.top_n, score_threshold=self.score_threshold
            )
            if nodes
            else []
        )
        out = self._nodes(nodes, ranked)
        dispatcher.event(ReRankEndEvent(nodes=out))
        return out

    async def _apostprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        query = self._query(query_bundle)
        dispatcher.event(
            ReRankStartEvent(
                query=query_bundle, nodes=nodes, top_n=self.top_n, model_name=self.model
            )
        )
        ranked = (
            await self._client.arerank(
                query, self._texts(nodes), top_n=self.top_n, score_threshold=self.score_threshold
            )
            if nodes
            else []
        )
        out = self._nodes(nodes, ranked)
        dispatcher.event(ReRankEndEvent(nodes=out))
        return out
