"""The retrieval-augmented answer flow, framework-free (DESIGN.md §1, steps 5-8).

One core for every front end: prompts in Chinese and English, numbered sources, the similarity
threshold, the "nothing found" answer that does not call the model, and the rewriting of follow-up
questions. :mod:`qwen_pg_integrations.langchain` (``create_rag_chain``),
:mod:`qwen_pg_integrations.llama_index` (``create_query_engine``) and the ``qwen-pg`` CLI drive
the same :func:`rag_flow`.

Example::

    from qwen_pg_integrations.rag import RagConfig, RetrievedChunk, rag_flow, run_flow

    result = run_flow(
        rag_flow("What is pgvector?", RagConfig(k=4, score_threshold=0.5)),
        retrieve=lambda query, k: [RetrievedChunk("pgvector adds vectors to PostgreSQL", 0.8)],
        generate=lambda messages: "An extension [1].",
    )
    result.answer, result.chunks, result.no_context
"""

from .drivers import (
    StreamContext,
    StreamDone,
    StreamEvent,
    StreamToken,
    arun_flow,
    astream_flow,
    run_flow,
    stream_flow,
)
from .flow import (
    DEFAULT_NO_CONTEXT,
    Condense,
    Generate,
    RagConfig,
    RagResult,
    Rerank,
    Retrieve,
    RetrievedChunk,
    Step,
    answer_messages,
    condense_messages,
    format_context,
    rag_flow,
    reranker_of,
    select_chunks,
    source_label,
)
from .prompts import (
    CONDENSE_PROMPTS,
    DEFAULT_PROMPTS,
    NO_CONTEXT_ANSWERS,
    Language,
    RagPrompt,
    detect_language,
    resolve_language,
)

__all__ = [
    "CONDENSE_PROMPTS",
    "DEFAULT_NO_CONTEXT",
    "DEFAULT_PROMPTS",
    "NO_CONTEXT_ANSWERS",
    "Condense",
    "Generate",
    "Language",
    "RagConfig",
    "RagPrompt",
    "RagResult",
    "Rerank",
    "Retrieve",
    "RetrievedChunk",
    "Step",
    "StreamContext",
    "StreamDone",
    "StreamEvent",
    "StreamToken",
    "answer_messages",
    "arun_flow",
    "astream_flow",
    "condense_messages",
    "detect_language",
    "format_context",
    "rag_flow",
    "reranker_of",
    "resolve_language",
    "run_flow",
    "select_chunks",
    "source_label",
    "stream_flow",
]
