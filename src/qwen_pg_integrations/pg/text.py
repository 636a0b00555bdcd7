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

__all__ = ["segment", "segmented_text"]

_WORD = re.compile(r"\w+", re.UNICODE)
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
    """Search-mode words of ``text``, lower-cased, punctuation dropped.

    Example:
        >>> segment("我爱北京天安门")
        ['我', '爱', '北京', '天安', '天安门']
    """
    if not text:
        return []
    words: list[str] = []
    for token in _load().cut_for_search(text):
        # jieba keeps punctuation and mixed tokens; keep only word characters so the output
        # is also safe to quote as tsquery lexemes.
        words.extend(w.lower() for w in _WORD.findall(token))
    return words


def segmented_text(text: str) -> str:
    """``segment(text)`` joined by spaces, ready for ``to_tsvector('simple', ...)``."""
    return " ".join(segment(text))
