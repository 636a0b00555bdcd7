"""Text helpers shared by the emulator: a deterministic token counter and sentence splitting.

The emulator does not know the real Qwen tokenizer. It counts one token per CJK character, per
Latin word or number and per punctuation mark, which is close enough for usage figures and makes
``max_tokens`` truncation predictable in tests.
"""

from __future__ import annotations

import re
from bisect import bisect_right

_CJK = (
    "\u3040-\u30ff"  # kana
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uac00-\ud7af"  # hangul
    "\uf900-\ufaff"  # compatibility ideographs
)
CJK_CHAR = re.compile(f"[{_CJK}]")
# One token: optional leading whitespace, then a CJK char, a word, or one other symbol.
_TOKEN = re.compile(rf"\s*(?:[{_CJK}]|[^\W{_CJK}]+|[^\w\s])")
_SENT_SPLIT = re.compile(r"(?<=[。！？!?])|(?<=\.)(?=\s)|\n+")


def count_tokens(text: str) -> int:
    """Number of emulator tokens in ``text`` (0 for empty or whitespace-only text)."""
    return len(_TOKEN.findall(text))


def truncate_tokens(text: str, limit: int) -> tuple[str, bool]:
    """The first ``limit`` tokens of ``text`` and whether anything was cut."""
    if limit <= 0:
        return "", bool(text.strip())
    for i, match in enumerate(_TOKEN.finditer(text)):
        if i == limit:
            return text[: match.start()], True
    return text, False


def split_sentences(text: str) -> list[str]:
    """Sentences and lines of ``text``, stripped, without empty ones."""
    return [s.strip() for s in _SENT_SPLIT.split(text) if s and s.strip()]


def has_cjk(text: str) -> bool:
    """True when ``text`` contains at least one CJK/kana/hangul character."""
    return CJK_CHAR.search(text) is not None


def word_features(text: str) -> set[str]:
    """Lower-cased words and CJK characters/bigrams: the overlap measure of the reply policy."""
    lowered = text.lower()
    feats = {w for w in re.findall(rf"[^\W{_CJK}_]+", lowered) if len(w) > 2 or w.isdigit()}
    cjk = CJK_CHAR.findall(lowered)
    feats.update(cjk)
    runs = re.findall(f"[{_CJK}]+", lowered)
    for run in runs:
        feats.update(run[i : i + 2] for i in range(len(run) - 1))
    return feats


class PrefixCounter:
    """Token counts of the prefixes of one text, in O(log n) each (for streamed usage)."""

    def __init__(self, text: str) -> None:
        self._ends = [m.end() for m in _TOKEN.finditer(text)]

    def count(self, length: int) -> int:
        """Tokens that end within the first ``length`` characters."""
        return bisect_right(self._ends, length)
