"""create_rag_chain on PGVectorStore (real PostgreSQL) and ChatQwen (unchanged SDK vs emulator)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable
from langchain_core.vectorstores import InMemoryVectorStore

from qwen_pg_integrations.errors import InvalidInputError
from qwen_pg_integrations.langchain import (
    ChatQwen,
    DashScopeEmbeddings,
    PGVectorStore,
    create_rag_chain,
)
from qwen_pg_integrations.rag import NO_CONTEXT_ANSWERS, RagPrompt
from qwen_pg_integrations.testing import DashScopeEmulator, ScriptedReply

TEXTS = [
    "pgvector supports HNSW and IVFFlat indexes.",
    "PolarDB separates compute and storage.",
    "通义千问是阿里云研发的大语言模型。",
    "HNSW 索引查询速度快，召回率高。",
]
SOURCES = ["pgvector.md", "polardb.md", "qwen_zh.md", "pgvector_zh.md"]


@pytest.fixture
def store(dashscope_emulator: DashScopeEmulator, pg_dsn: str, table_name: str) -> PGVectorStore:
    s = PGVectorStore(DashScopeEmbeddings(), connection=pg_dsn, table_name=table_name)
    s.add_texts(TEXTS, metadatas=[{"source": src} for src in SOURCES])
    dashscope_emulator.clear_requests()
    return s


def _generations(emu: DashScopeEmulator) -> list[Any]:
    return [r for r in emu.requests if r.endpoint == "generation"]


def _messages(request: Any) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = request.body["input"]["messages"]
    return messages


def test_chain_is_a_runnable_and_answers_from_the_store_with_scored_sources(
    store: PGVectorStore, dashscope_emulator: DashScopeEmulator
) -> None:
    chain = create_rag_chain(store, ChatQwen(), k=2, score_threshold=0.5)
    assert isinstance(chain, Runnable)
    out = chain.invoke("Which indexes does pgvector support?")
    assert out["answer"] == "Based on the context: pgvector supports HNSW and IVFFlat indexes."
    first = out["context"][0]
    assert isinstance(first, Document) and first.metadata["source"] == "pgvector.md"
    assert 0.2 <= first.metadata["score"] <= 1.0
    assert out["no_context"] is False and out["model_called"] is True
    sent = _messages(_generations(dashscope_emulator)[0])
    assert sent[0]["role"] == "system" and "Answer in English" in sent[0]["content"]
    assert sent[1]["content"].startswith("Sources:\n\n[1] source: pgvector.md (score ")
    assert sent[1]["content"].endswith("Question: Which indexes does pgvector support?")


def test_chinese_question_sends_the_chinese_prompt(
    store: PGVectorStore, dashscope_emulator: DashScopeEmulator
) -> None:
    out = create_rag_chain(store, ChatQwen(), k=2).invoke("通义千问是什么？")
    assert out["language"] == "zh" and out["answer"].startswith("根据上下文：")
    sent = _messages(_generations(dashscope_emulator)[0])
    assert "请用中文回答" in sent[0]["content"] and "问题：通义千问是什么？" in sent[1]["content"]


def test_nothing_above_threshold_answers_without_calling_qwen(
    store: PGVectorStore, dashscope_emulator: DashScopeEmulator
) -> None:
    out = create_rag_chain(store, ChatQwen(), score_threshold=0.9).invoke("How to bake bread?")
    assert out["answer"] == NO_CONTEXT_ANSWERS["en"]
    assert out["no_context"] is True and out["model_called"] is False and out["context"] == []
    assert _generations(dashscope_emulator) == []


def test_configured_no_context_answer_and_custom_prompt(
    store: PGVectorStore, dashscope_emulator: DashScopeEmulator
) -> None:
    chain = create_rag_chain(
        store, ChatQwen(), score_threshold=0.9, no_context_answer="Not in the docs."
    )
    assert chain.invoke("How to bake bread?")["answer"] == "Not in the docs."
    prompt = RagPrompt(system="Reply tersely.", user="Facts:\n{context}\nQuestion: {question}")
    create_rag_chain(store, ChatQwen(), k=1, prompt=prompt).invoke("PolarDB storage?")
    sent = _messages(_generations(dashscope_emulator)[0])
    assert sent[0]["content"] == "Reply tersely." and sent[1]["content"].startswith("Facts:\n[1]")


def test_stream_yields_sources_first_then_answer_tokens(
    store: PGVectorStore, dashscope_emulator: DashScopeEmulator
) -> None:
    chain = create_rag_chain(store, ChatQwen(), k=2, score_threshold=0.5)
    chunks = list(chain.stream("Which indexes does pgvector support?"))
    assert "context" in chunks[0] and "answer" not in chunks[0]
    tokens = [c["answer"] for c in chunks[1:]]
    assert len(tokens) > 3  # streamed, not one block
    assert "".join(tokens) == chain.invoke("Which indexes does pgvector support?")["answer"]
    assert _generations(dashscope_emulator)[0].stream


async def test_async_invoke_stream_and_batch(
    store: PGVectorStore, dashscope_emulator: DashScopeEmulator
) -> None:
    chain = create_rag_chain(store, ChatQwen(), k=2, score_threshold=0.5)
    out = await chain.ainvoke("PolarDB storage?")
    assert out["answer"] == "Based on the context: PolarDB separates compute and storage."
    parts = [c async for c in chain.astream("PolarDB storage?")]
    assert "".join(p.get("answer", "") for p in parts) == out["answer"]
    many = await chain.abatch(["PolarDB storage?", "通义千问是什么？"])
    assert [m["language"] for m in many] == ["en", "zh"]
    sync_many = chain.batch(["PolarDB storage?", "How to bake bread?"])
    assert [m["no_context"] for m in sync_many] == [False, True]


def test_follow_up_with_history_is_rewritten_before_retrieval(
    store: PGVectorStore, dashscope_emulator: DashScopeEmulator
) -> None:
    dashscope_emulator.script(ScriptedReply(text="Which indexes does pgvector support?"))
    chain = create_rag_chain(store, ChatQwen(), k=1)
    out = chain.invoke(
        {
            "question": "Which indexes does it support?",
            "chat_history": [
                ("human", "Tell me about pgvector."),
                ("ai", "pgvector is a PostgreSQL extension."),
            ],
        }
    )
    assert out["standalone_question"] == "Which indexes does pgvector support?"
    assert out["context"][0].metadata["source"] == "pgvector.md"
    rewrite, answer = _generations(dashscope_emulator)
    rewrite_prompt = _messages(rewrite)[1]["content"]
    assert "User: Tell me about pgvector." in rewrite_prompt
    assert "Follow-up question: Which indexes does it support?" in rewrite_prompt
    embeds = [r for r in dashscope_emulator.requests if r.endpoint == "embedding"]
    queries = [r.body["input"]["texts"] for r in embeds]
    assert queries == [["Which indexes does pgvector support?"]]
    assert _messages(answer)[1]["content"].endswith(
        "Question: Which indexes does pgvector support?"
    )


def test_retrievers_are_accepted_and_hybrid_keeps_its_search_type(
    store: PGVectorStore, dashscope_emulator: DashScopeEmulator
) -> None:
    as_retriever = store.as_retriever(search_kwargs={"k": 3, "filter": {"source": "polardb.md"}})
    out = create_rag_chain(as_retriever, ChatQwen(), k=3).invoke("PolarDB storage?")
    assert [d.metadata["source"] for d in out["context"]] == ["polardb.md"]  # filter kept

    hybrid = store.as_retriever(search_type="hybrid")
    out = create_rag_chain(hybrid, ChatQwen(), k=2, score_threshold=0.01).invoke("HNSW 索引")
    assert out["context"] and all("score" in d.metadata for d in out["context"])
    assert "HNSW" in out["context"][0].page_content


class _NoScores(BaseRetriever):
    def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
        return [Document(page_content="PolarDB separates compute and storage.")]


def test_plain_retriever_without_scores_works_but_refuses_a_threshold(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    out = create_rag_chain(_NoScores(), ChatQwen()).invoke("PolarDB storage?")
    assert out["answer"].endswith("PolarDB separates compute and storage.")
    with pytest.raises(InvalidInputError, match="needs similarity scores"):
        create_rag_chain(_NoScores(), ChatQwen(), score_threshold=0.5).invoke("PolarDB?")


def test_any_langchain_vector_store_works(dashscope_emulator: DashScopeEmulator) -> None:
    memory = InMemoryVectorStore(DashScopeEmbeddings())
    memory.add_texts(TEXTS)
    out = create_rag_chain(memory, ChatQwen(), k=1, score_threshold=0.5).invoke("PolarDB storage?")
    assert out["context"][0].page_content == TEXTS[1]


class _Runs(BaseCallbackHandler):
    def __init__(self) -> None:
        self.chains: dict[UUID, UUID | None] = {}
        self.models: list[UUID | None] = []

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: UUID, **kw: Any) -> None:
        self.chains[run_id] = kw.get("parent_run_id")

    def on_chat_model_start(self, serialized: Any, messages: Any, **kw: Any) -> None:
        self.models.append(kw.get("parent_run_id"))


def test_model_calls_are_traced_as_children_of_the_chain_run(
    store: PGVectorStore, dashscope_emulator: DashScopeEmulator
) -> None:
    runs = _Runs()
    chain = create_rag_chain(store, ChatQwen(), k=1)
    chain.invoke("PolarDB storage?", config={"callbacks": [runs]})
    top = [run for run, parent in runs.chains.items() if parent is None]
    assert len(top) == 1 and runs.models == top


def test_bad_input_is_a_clear_error(store: PGVectorStore) -> None:
    chain = create_rag_chain(store, ChatQwen())
    with pytest.raises(InvalidInputError, match="question"):
        chain.invoke({"text": "no question key"})
    with pytest.raises(InvalidInputError, match="VectorStore or BaseRetriever"):
        create_rag_chain("not a store", ChatQwen())  # type: ignore[arg-type]
