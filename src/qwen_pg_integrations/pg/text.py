"""Client-side word segmentation for full-text search (Chinese and other languages alike).

PostgreSQL's built-in parsers turn a Chinese sentence into one token. Without a server
extension (zhparser, pg_jieba) we segment with jieba on the client and store the words,
space-separated, in a ``simple`` tsvector; queries are segmented the same way.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

__all__ = ["STOPWORDS", "segment", "segmented_text"]

_WORD = re.compile(r"\w+", re.UNICODE)
# Function words that match nearly every document; an OR query over them would rank noise.
STOPWORDS = frozenset(
    [
        "的",
        "了",
        "是",
        "在",
        "和",
        "与",
        "及",
        "或",
        "也",
        "都",
        "就",
        "而",
        "被",
        "把",
        "这",
        "那",
        "之",
        "其",
        "着",
        "过",
        "吗",
        "呢",
        "吧",
        "啊",
        "呀",
        "么",
        "个",
        "一个",
        "我",
        "你",
        "他",
        "她",
        "它",
        "我们",
        "你们",
        "他们",
        "并",
        "且",
        "但",
        "从",
        "对",
        "于",
        "以",
        "为",
        "所",
        "等",
        "很",
        "又",
        "还",
        "已",
        "将",
        "给",
        "让",
        "a",
        "an",
        "the",
        "of",
        "and",
        "or",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "it",
        "this",
        "that",
        "as",
        "from",
    ]
)
_lock = threading.Lock()
_jieba: Any = None


def _load() -> Any:
    global _jieba
    if _jieba is None:
        with _lock:
            if _jieba is None:
                import jieba

                jieba.setLogLevel(logging.WARNING)
                jieba.initialize()
                _jieba = jieba
    return _jieba


def segment(text: str) -> list[str]:
    """Search-mode words of ``text``, lower-cased, punctuation and stopwords dropped.

    Example:
        >>> segment("我爱北京天安门")
        ['爱', '北京', '天安', '天安门']
    """
    if not text:
        return []
    words: list[str] = []
    for token in _load().cut_for_search(text):
        # jieba keeps punctuation and mixed tokens; keep only word characters so the output
        # is also safe to quote as tsquery lexemes.
        words.extend(w for w in (m.lower() for m in _WORD.findall(token)) if w not in STOPWORDS)
    return words


def segmented_text(text: str) -> str:
    """``segment(text)`` joined by spaces, ready for ``to_tsvector('simple', ...)``."""
    return " ".join(segment(text))
