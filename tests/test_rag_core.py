"""The framework-free retrieval flow: language, prompts, threshold, no-context answer, rewriting."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Sequence

import pytest

from qwen_pg_integrations.errors import InvalidInputError
from qwen_pg_integrations.rag import (
    NO_CONTEXT_ANSWERS,
    RagConfig,
    RagPrompt,
    RetrievedChunk,
    StreamContext,
    StreamDone,
    StreamToken,
    arun_flow,
    astream_flow,
    detect_language,
    format_context,
    rag_flow,
    run_flow,
    select_chunks,
    stream_flow,
)
from qwen_pg_integrations.types import ChatMessage

CHUNKS = [
    RetrievedChunk("pgvector adds HNSW and IVFFlat indexes.", 0.82, {"source": "/x/pg.md"}, "a"),
    RetrievedChunk("PolarDB separates compute and storage.", 0.41, {"file_name": "p.md"}, "b"),
]


class Recorder:
    def __init__(
        self, chunks: Sequence[RetrievedChunk] = CHUNKS, answer: str = "It has [1]."
    ) -> None:
        self.chunks = list(chunks)
        self.answer = answer
        self.queries: list[str] = []
        self.prompts: list[Sequence[ChatMessage]] = []
        self.condensed: list[Sequence[ChatMessage]] = []

    def retrieve(self, query: str, k: int) -> list[RetrievedChunk]:
        self.queries.append(query)
        return self.chunks[:k]

    def generate(self, messages: Sequence[ChatMessage]) -> str:
        self.prompts.append(messages)
        return self.answer

    def condense(self, messages: Sequence[ChatMessage]) -> str:
        self.condensed.append(messages)
        return "Standalone question: Which indexes does pgvector support?"

    def stream(self, messages: Sequence[ChatMessage]) -> Iterator[str]:
        self.prompts.append(messages)
        yield from ["It ", "has ", "[1]."]


def test_language_detection_follows_the_question() -> None:
    assert detect_language("What is pgvector?") == "en"
    assert detect_language("pgvector 支持哪些索引？") == "zh"
    assert detect_language("PolarDB 是什么") == "zh"
    assert detect_language("Is 千问 a model family of Alibaba Cloud's DashScope service?") == "en"


def test_chinese_question_gets_the_chinese_prompt_and_english_the_english_one() -> None:
    rec = Recorder()
    run_flow(
        rag_flow("pgvector 支持哪些索引？", RagConfig()),
        retrieve=rec.retrieve,
        generate=rec.generate,
    )
    run_flow(rag_flow("Which indexes?", RagConfig()), retrieve=rec.retrieve, generate=rec.generate)
    zh, en = rec.prompts
    assert "请用中文回答" in zh[0].content and zh[1].content.endswith(
        "问题：pgvector 支持哪些索引？"
    )
    assert "Answer in English" in en[0].content and en[1].content.endswith(
        "Question: Which indexes?"
    )


def test_forced_language_overrides_detection() -> None:
    rec = Recorder()
    result = run_flow(
        rag_flow("What is pgvector?", RagConfig(language="zh")),
        retrieve=rec.retrieve,
        generate=rec.generate,
    )
    assert result.language == "zh" and "资料" in rec.prompts[0][1].content


def test_context_numbers_sources_with_names_and_scores() -> None:
    text = format_context(CHUNKS, "en")
    assert text.startswith("[1] source: pg.md (score 0.820)\npgvector adds")
    assert "[2] source: p.md (score 0.410)\nPolarDB" in text


def test_threshold_keeps_only_chunks_at_or_above_it_best_first() -> None:
    rec = Recorder()
    result = run_flow(
        rag_flow("indexes?", RagConfig(score_threshold=0.5)),
        retrieve=rec.retrieve,
        generate=rec.generate,
    )
    assert [c.id for c in result.chunks] == ["a"]
    assert [c.id for c in result.retrieved] == ["a", "b"]
    assert "PolarDB" not in rec.prompts[0][1].content
    assert result.answer == "It has [1]." and result.model_called and not result.no_context


def test_nothing_above_threshold_answers_without_calling_the_model() -> None:
    rec = Recorder()
    result = run_flow(
        rag_flow("天气怎么样？", RagConfig(score_threshold=0.9)),
        retrieve=rec.retrieve,
        generate=rec.generate,
    )
    assert rec.prompts == []
    assert result.no_context and not result.model_called
    assert result.answer == NO_CONTEXT_ANSWERS["zh"]
    assert result.chunks == () and len(result.retrieved) == 2


def test_no_context_answer_is_configurable_per_language() -> None:
    rec = Recorder(chunks=[])
    config = RagConfig(no_context_answer={"en": "Nothing found.", "zh": "没有找到。"})
    en = run_flow(rag_flow("Why?", config), retrieve=rec.retrieve, generate=rec.generate)
    zh = run_flow(rag_flow("为什么？", config), retrieve=rec.retrieve, generate=rec.generate)
    assert (en.answer, zh.answer) == ("Nothing found.", "没有找到。")


def test_no_context_answer_none_asks_the_model_and_still_flags_it() -> None:
    rec = Recorder(chunks=[], answer="The knowledge base has nothing; generally ...")
    result = run_flow(
        rag_flow("Why?", RagConfig(no_context_answer=None)),
        retrieve=rec.retrieve,
        generate=rec.generate,
    )
    assert result.no_context and result.model_called
    assert "no relevant source" in rec.prompts[0][0].content
    assert "(none)" in rec.prompts[0][1].content


def test_threshold_without_scores_is_an_error_not_a_silent_pass() -> None:
    with pytest.raises(InvalidInputError, match="needs similarity scores"):
        select_chunks([RetrievedChunk("x")], 0.5, 4)


def test_custom_prompt_is_used_and_validated() -> None:
    rec = Recorder()
    prompt = RagPrompt(system="Be brief.", user="CTX {context} Q {question}")
    run_flow(
        rag_flow("Why?", RagConfig(prompt=prompt)), retrieve=rec.retrieve, generate=rec.generate
    )
    assert rec.prompts[0][0].content == "Be brief."
    assert rec.prompts[0][1].content.startswith("CTX [1]")
    with pytest.raises(InvalidInputError, match="question"):
        RagPrompt(system="s", user="{context} only")


def test_follow_up_is_rewritten_before_retrieval_and_answered_as_standalone() -> None:
    rec = Recorder()
    history = [
        ChatMessage(role="user", content="Tell me about pgvector."),
        ChatMessage(role="assistant", content="It is a PostgreSQL extension."),
    ]
    result = run_flow(
        rag_flow("Which indexes does it support?", RagConfig(), history),
        retrieve=rec.retrieve,
        generate=rec.generate,
        condense=rec.condense,
    )
    assert rec.queries == ["Which indexes does pgvector support?"]
    assert result.standalone_question == "Which indexes does pgvector support?"
    condense_prompt = rec.condensed[0][1].content
    assert "User: Tell me about pgvector." in condense_prompt
    assert "Assistant: It is a PostgreSQL extension." in condense_prompt
    assert condense_prompt.rstrip().endswith("Standalone question:")
    assert rec.prompts[0][1].content.endswith("Question: Which indexes does pgvector support?")


def test_without_history_no_rewrite_call_is_made() -> None:
    rec = Recorder()
    run_flow(rag_flow("Why?", RagConfig()), retrieve=rec.retrieve, generate=rec.generate)
    assert rec.condensed == [] and rec.queries == ["Why?"]


def test_empty_question_and_bad_settings_are_rejected() -> None:
    with pytest.raises(InvalidInputError):
        next(rag_flow("  ", RagConfig()))
    with pytest.raises(InvalidInputError):
        RagConfig(k=0)
    with pytest.raises(InvalidInputError):
        RagConfig(language="fr")


def test_stream_emits_sources_then_tokens_then_result() -> None:
    rec = Recorder()
    events = list(
        stream_flow(
            rag_flow("indexes?", RagConfig(score_threshold=0.5)),
            retrieve=rec.retrieve,
            stream=rec.stream,
            condense=rec.condense,
        )
    )
    assert isinstance(events[0], StreamContext) and events[0].result.answer == ""
    assert [e.text for e in events if isinstance(e, StreamToken)] == ["It ", "has ", "[1]."]
    assert isinstance(events[-1], StreamDone) and events[-1].result.answer == "It has [1]."


def test_stream_of_no_context_answer_is_one_token() -> None:
    rec = Recorder(chunks=[])
    events = list(
        stream_flow(
            rag_flow("Why?", RagConfig()),
            retrieve=rec.retrieve,
            stream=rec.stream,
            condense=rec.condense,
        )
    )
    tokens = [e.text for e in events if isinstance(e, StreamToken)]
    assert tokens == [NO_CONTEXT_ANSWERS["en"]] and rec.prompts == []


async def test_async_drivers_match_the_sync_one() -> None:
    rec = Recorder()

    async def retrieve(q: str, k: int) -> list[RetrievedChunk]:
        return rec.retrieve(q, k)

    async def generate(m: Sequence[ChatMessage]) -> str:
        return rec.generate(m)

    async def stream(m: Sequence[ChatMessage]) -> AsyncIterator[str]:
        for t in rec.stream(m):
            yield t

    result = await arun_flow(
        rag_flow("indexes?", RagConfig()), retrieve=retrieve, generate=generate
    )
    sync = run_flow(rag_flow("indexes?", RagConfig()), retrieve=rec.retrieve, generate=rec.generate)
    assert result == sync
    events = [
        e
        async for e in astream_flow(
            rag_flow("indexes?", RagConfig()), retrieve=retrieve, stream=stream, condense=generate
        )
    ]
    assert isinstance(events[-1], StreamDone) and events[-1].result.answer == "It has [1]."


def test_rag_core_and_ingest_import_no_framework() -> None:
    code = (
        "import sys, qwen_pg_integrations.rag, qwen_pg_integrations.ingest, "
        "qwen_pg_integrations.data\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('langchain_core', 'langchain', 'llama_index', 'langchain_text_splitters')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"
