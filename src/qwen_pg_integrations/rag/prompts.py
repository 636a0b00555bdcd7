"""Prompts of the retrieval flow, in Chinese and English.

The language follows the question (:func:`detect_language`) unless the caller forces one. Templates
are plain ``str.format`` strings with named fields, so callers can pass their own
(:class:`RagPrompt`), and the exact text sent to the model can be shown (``qwen-pg demo`` does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import InvalidInputError

__all__ = [
    "CONDENSE_PROMPTS",
    "DEFAULT_PROMPTS",
    "NO_CONTEXT_ANSWERS",
    "Language",
    "RagPrompt",
    "detect_language",
    "resolve_language",
]

Language = Literal["zh", "en"]


def _is_cjk(ch: str) -> bool:
    code = ord(ch)
    return (
        0x4E00 <= code <= 0x9FFF  # CJK unified ideographs
        or 0x3400 <= code <= 0x4DBF  # extension A
        or 0xF900 <= code <= 0xFAFF  # compatibility ideographs
        or 0x20000 <= code <= 0x2A6DF  # extension B
    )


def detect_language(text: str) -> Language:
    """``"zh"`` when Chinese characters make up a real part of the text, else ``"en"``.

    Latin product names inside a Chinese question ("pgvector 支持哪些索引？") are common, so
    one CJK character per five letters is enough to call it Chinese.
    """
    cjk = sum(1 for ch in text if _is_cjk(ch))
    latin = sum(1 for ch in text if ch.isascii() and ch.isalpha())
    if cjk == 0:
        return "en"
    return "zh" if cjk * 5 >= latin else "en"


def resolve_language(language: str, text: str) -> Language:
    """``language`` when it is ``"zh"`` or ``"en"``; for ``"auto"`` the language of ``text``."""
    if language == "auto":
        return detect_language(text)
    if language in ("zh", "en"):
        return language  # type: ignore[return-value]
    raise InvalidInputError(f"language must be 'auto', 'zh' or 'en', not {language!r}.")


@dataclass(frozen=True)
class RagPrompt:
    """The two messages of the answer prompt.

    ``system`` is sent as is; ``user`` is formatted with ``{context}`` (the numbered sources) and
    ``{question}``. Pass your own to ``create_rag_chain(prompt=...)`` /
    ``create_query_engine(prompt=...)``; it is used whatever the question's language.
    """

    system: str
    user: str

    def __post_init__(self) -> None:
        for field in ("{context}", "{question}"):
            if field not in self.user:
                raise InvalidInputError(f"RagPrompt.user must contain the field {field}.")


DEFAULT_PROMPTS: dict[Language, RagPrompt] = {
    "en": RagPrompt(
        system=(
            "You are a careful assistant that answers questions using only the numbered sources "
            "from a knowledge base. Cite the sources you use as [1], [2], ... right after the "
            "statements they support. If the sources do not contain the answer, say that the "
            "knowledge base does not cover it; do not invent facts. Answer in English."
        ),
        user="Sources:\n\n{context}\n\nQuestion: {question}",
    ),
    "zh": RagPrompt(
        system=(
            "你是一个严谨的助手，只根据知识库中带编号的资料回答问题。"
            "在引用的内容后用 [1]、[2] 等标注出处。"
            "如果资料中没有答案，请直接说明知识库未涉及该问题，不要编造。请用中文回答。"
        ),
        user="资料：\n\n{context}\n\n问题：{question}",
    ),
}

# Asked when nothing passed the threshold and the caller chose to let the model answer anyway
# (no_context_answer=None): the model must say the knowledge base had nothing.
NO_CONTEXT_PROMPTS: dict[Language, RagPrompt] = {
    "en": RagPrompt(
        system=(
            "The knowledge base returned no relevant source for this question. Say so first; "
            "then, only if you are confident, give a short general answer and label it as not "
            "coming from the knowledge base. Answer in English."
        ),
        user="Sources:\n\n{context}\n\nQuestion: {question}",
    ),
    "zh": RagPrompt(
        system=(
            "知识库中没有与该问题相关的资料。请先说明这一点；"
            "然后仅在有把握时给出简短的通用回答，并注明该回答并非来自知识库。请用中文回答。"
        ),
        user="资料：\n\n{context}\n\n问题：{question}",
    ),
}

NO_CONTEXT_ANSWERS: dict[Language, str] = {
    "en": (
        "The knowledge base has nothing on this question, so I will not guess. "
        "Rephrase it, or ingest documents that cover it."
    ),
    "zh": "知识库中没有与该问题相关的内容，因此不作猜测。请换个问法，或先导入涵盖该主题的文档。",
}

EMPTY_CONTEXT: dict[Language, str] = {"en": "(none)", "zh": "（无）"}


@dataclass(frozen=True)
class CondensePrompt:
    """Rewrites a follow-up question into a standalone one, using the conversation so far."""

    system: str
    user: str  # fields: {history}, {question}


CONDENSE_PROMPTS: dict[Language, CondensePrompt] = {
    "en": CondensePrompt(
        system=(
            "Rewrite the follow-up question so that it can be understood without the "
            "conversation: replace pronouns and references with what they refer to. Keep its "
            "language. Reply with the rewritten question only, no answer and no explanation."
        ),
        user="Conversation:\n{history}\n\nFollow-up question: {question}\n\nStandalone question:",
    ),
    "zh": CondensePrompt(
        system=(
            "请把后续问题改写成脱离对话也能看懂的独立问题：把代词和指代替换为其所指的内容，"
            "保持原问题的语言。只输出改写后的问题，不要回答，也不要解释。"
        ),
        user="对话：\n{history}\n\n后续问题：{question}\n\n独立问题：",
    ),
}

ROLE_LABELS: dict[Language, dict[str, str]] = {
    "en": {"user": "User", "assistant": "Assistant", "system": "System", "tool": "Tool"},
    "zh": {"user": "用户", "assistant": "助手", "system": "系统", "tool": "工具"},
}
