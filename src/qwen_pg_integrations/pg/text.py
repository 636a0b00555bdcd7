"""Client-side word segmentation for full-text search (Chinese and other languages alike).

PostgreSQL's built-in parsers turn a Chinese sentence into one token. Without a server
extension (zhparser, pg_jieba) we segment on the client (jieba's dictionary, through ``rjieba``
when installed, else ``jieba``) and store the words as a ``simple`` tsvector; queries are
segmented the same way. Text without CJK characters is split on word characters only.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable

__all__ = ["STOPWORDS", "segment", "segmented_text", "warm_up"]

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# Han, kana, hangul: scripts written without spaces, where jieba is needed
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
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
_cut: Callable[[str], Iterable[str]] | None = None


def _load() -> Callable[[str], Iterable[str]]:
    """jieba's search-mode cut: ``rjieba`` (Rust, same dictionary, ~50x faster) when installed,
    else ``jieba`` (quiet)."""
    global _cut
    if _cut is None:
        with _lock:
            if _cut is None:
                try:
                    import rjieba

                    _cut = rjieba.cut_for_search
                except ImportError:  # pragma: no cover - rjieba is a dependency
                    import jieba

                    jieba.setLogLevel(logging.WARNING)
                    jieba.initialize()
                    _cut = jieba.cut_for_search
    assert _cut is not None
    return _cut


def warm_up() -> None:
    """Load the segmenter now (its import takes ~0.1 s) instead of inside the first write."""
    _load()


def segment(text: str) -> list[str]:
    """Search-mode words of ``text``, lower-cased, punctuation and stopwords dropped.

    Example:
        >>> segment("我爱北京天安门")
        ['爱', '北京', '天安', '天安门']
    """
    if not text:
        return []
    if _CJK.search(text):
        # jieba keeps punctuation and mixed tokens; keep only word characters so the output
        # is also safe to quote as tsquery lexemes. Joined by spaces, the tokens go through one
        # regex pass (no word spans a space), the same words as token by token.
        text = " ".join(_load()(text))
    # without CJK there is nothing to segment: plain word splitting gives what jieba would
    return [w for w in map(str.lower, _WORD.findall(text)) if w not in STOPWORDS]


def segmented_text(text: str) -> str:
    """``segment(text)`` joined by spaces, ready for ``to_tsvector('simple', ...)``."""
    return " ".join(segment(text))
