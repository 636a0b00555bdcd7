"""Loading, splitting and incremental re-ingestion of files (DESIGN.md §1, step 1).

Framework-free: the splitter comes from ``langchain-text-splitters`` (imported when first used),
the storage side is a small :class:`ChunkSink` protocol the caller implements (the CLI wraps the
PostgreSQL store in one).

Re-runs are incremental. A chunk's id is a stable hash of its file, its text and which repetition
of that text it is, so an unchanged chunk keeps its id and is skipped (not re-embedded); a changed
file gets its new chunks added and its chunks that no longer exist deleted.

Example::

    from qwen_pg_integrations.ingest import discover, load_and_split

    for path in discover(["docs/"]):
        chunks = load_and_split(path)
"""

from __future__ import annotations

import hashlib
import html.parser
import itertools
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .errors import ConfigurationError, InvalidInputError

if TYPE_CHECKING:
    from langchain_text_splitters import TextSplitter

__all__ = [
    "DEFAULT_CHUNK_OVERLAP",
    "DEFAULT_CHUNK_SIZE",
    "SEPARATORS",
    "SUPPORTED_SUFFIXES",
    "Chunk",
    "ChunkSink",
    "FilePlan",
    "IngestSummary",
    "chunk_id",
    "discover",
    "ingest_files",
    "load_and_split",
    "load_text",
    "make_splitter",
    "plan_file",
    "source_key",
]

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf")

# Paragraphs, lines, then sentence ends (Chinese full-width and English), then clause marks, then
# words. Chinese has no spaces, so without 。！？；， a long paragraph would be cut mid-sentence.
SEPARATORS = [
    "\n\n",
    "\n",
    "。",
    "！",
    "？",
    "；",
    ". ",
    "! ",
    "? ",
    "; ",
    "，",
    ", ",
    " ",
    "",
]
DEFAULT_CHUNK_SIZE = 500  # characters; ~ 300-500 tokens of Chinese, ~ 120 of English
DEFAULT_CHUNK_OVERLAP = 50


@dataclass(frozen=True)
class Chunk:
    """One piece of a file, ready to embed and store."""

    id: str
    content: str
    metadata: dict[str, Any]


class ChunkSink(Protocol):
    """Where chunks go. A chunk's ``source`` metadata names its file."""

    def existing(self, ids: Sequence[str]) -> set[str]:
        """Which of these chunk ids are already stored."""
        ...

    def add(self, chunks: Sequence[Chunk]) -> None:
        """Embed and store these chunks (their ids are new)."""
        ...

    def delete_stale(self, source: str, keep: Sequence[str]) -> int:
        """Delete the chunks of ``source`` whose id is not in ``keep``; return how many."""
        ...

    def delete_missing(self, folder: str, keep_sources: Sequence[str]) -> int:
        """Delete chunks of files under ``folder`` whose source is not in ``keep_sources``."""
        ...


@dataclass
class IngestSummary:
    """What one ingest run did.

    Attributes:
        files: files ingested.
        chunks: their chunks.
        new: chunks embedded and stored.
        skipped: chunks already stored (unchanged), not embedded again.
        deleted: stale chunks deleted.
        seconds: how long it took.
        unsupported: files found in the given folders whose type is not supported (not read).
    """

    files: int = 0
    chunks: int = 0
    new: int = 0
    skipped: int = 0
    deleted: int = 0
    seconds: float = 0.0
    unsupported: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FilePlan:
    """What was done for one file: chunks added, chunks unchanged, stale chunks deleted."""

    source: str
    to_add: tuple[Chunk, ...]
    unchanged: tuple[str, ...]
    deleted: int = 0


def source_key(path: Path) -> str:
    """The ``source`` metadata of a file: its absolute POSIX path (stable across runs)."""
    return path.resolve().as_posix()


def chunk_id(source: str, content: str, occurrence: int = 0) -> str:
    """A stable id: the same file, text and repetition number always give the same id."""
    digest = hashlib.sha256(f"{source}\x00{occurrence}\x00{content}".encode()).hexdigest()
    return digest[:32]


def discover(paths: Iterable[str | Path], *, unsupported: list[Path] | None = None) -> list[Path]:
    """The supported files under ``paths`` (folders are walked), sorted, without duplicates.

    Hidden files and folders (``.git``, ``.venv``, ``.DS_Store``...) inside a folder are not
    looked at. Other files of an unsupported type found in folders are appended to
    ``unsupported`` when it is given, so the caller can report them.

    Raises:
        InvalidInputError: a path does not exist, or a file given by name has an unsupported type.
    """
    found: dict[str, Path] = {}
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise InvalidInputError(f"{raw}: no such file or folder.")
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if not child.is_file() or any(
                    part.startswith(".") for part in child.relative_to(path).parts
                ):
                    continue
                if child.suffix.lower() in SUPPORTED_SUFFIXES:
                    found.setdefault(source_key(child), child)
                elif unsupported is not None:
                    unsupported.append(child)
        elif path.suffix.lower() in SUPPORTED_SUFFIXES:
            found.setdefault(source_key(path), path)
        else:
            kinds = ", ".join(SUPPORTED_SUFFIXES)
            raise InvalidInputError(f"{raw}: unsupported file type; supported: {kinds}.")
    return [found[key] for key in sorted(found)]


class _HTMLText(html.parser.HTMLParser):
    _SKIP = frozenset({"script", "style", "noscript", "template", "svg"})
    _BLOCK = frozenset(
        {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "pre"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip_depth += 1
        elif tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skip_depth:
            self._skip_depth -= 1
        elif tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            self.parts.append(data)


def _html_to_text(markup: str) -> str:
    parser = _HTMLText()
    parser.feed(markup)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip()


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):  # UTF-8 first; GB18030 for older Chinese files
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InvalidInputError(f"{path}: not UTF-8 or GB18030 text; convert it to UTF-8.")


def _pdf_text(path: Path) -> str:
    try:
        from pypdf import PdfReader
    except ImportError:
        raise ConfigurationError(
            f"{path}: reading PDF needs the pdf extra: pip install 'qwen-pg-integrations[pdf]'."
        ) from None
    reader = PdfReader(str(path))
    return "\n\n".join((page.extract_text() or "").strip() for page in reader.pages).strip()


def load_text(path: Path) -> str:
    """The text of a txt, md, html or pdf file."""
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        return _pdf_text(path)
    text = _read_text(path)
    if suffix in (".html", ".htm"):
        return _html_to_text(text)
    return text.strip()


def make_splitter(
    chunk_size: int = DEFAULT_CHUNK_SIZE, chunk_overlap: int = DEFAULT_CHUNK_OVERLAP
) -> TextSplitter:
    """A recursive splitter with separators for Chinese (。！？；，) and English.

    Sentence punctuation stays at the end of the sentence it closes.
    """
    if chunk_size <= 0 or chunk_overlap < 0 or chunk_overlap >= chunk_size:
        raise InvalidInputError("Need chunk_size > 0 and 0 <= chunk_overlap < chunk_size.")
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    return RecursiveCharacterTextSplitter(
        separators=SEPARATORS,
        keep_separator="end",
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
    )


_HEADING = re.compile(r"^#{1,6}\s", re.MULTILINE)
_FENCE = re.compile(r"^```", re.MULTILINE)


def markdown_sections(text: str) -> list[str]:
    """Markdown cut before each heading (outside code fences), so no chunk spans two sections
    and every section's chunks start with its heading."""
    fences = [m.start() for m in _FENCE.finditer(text)]

    def in_fence(pos: int) -> bool:
        return sum(1 for f in fences if f < pos) % 2 == 1

    cuts = [m.start() for m in _HEADING.finditer(text) if m.start() and not in_fence(m.start())]
    bounds = [0, *cuts, len(text)]
    return [s for s in (text[a:b].strip() for a, b in itertools.pairwise(bounds)) if s]


def _attach_headings(pieces: list[str]) -> list[str]:
    # a heading the splitter left on its own goes with the text it introduces
    out: list[str] = []
    for piece in pieces:
        if out and _HEADING.match(out[-1]) and "\n" not in out[-1].strip():
            out[-1] = f"{out[-1]}\n\n{piece}"
        else:
            out.append(piece)
    return out


def load_and_split(path: Path, splitter: TextSplitter | None = None) -> list[Chunk]:
    """The chunks of one file, with ids and source / file_name / chunk_index metadata."""
    splitter = splitter or make_splitter()
    text = load_text(path)
    source = source_key(path)
    file_hash = hashlib.sha256(text.encode()).hexdigest()[:16]
    seen: dict[str, int] = {}
    chunks = []
    sections = markdown_sections(text) if path.suffix.lower() in (".md", ".markdown") else [text]
    pieces = [
        p
        for section in sections
        for p in _attach_headings(splitter.split_text(section))
        if p.strip()
    ]
    for index, piece in enumerate(pieces):
        occurrence = seen.get(piece, 0)
        seen[piece] = occurrence + 1
        metadata = {
            "source": source,
            "file_name": path.name,
            "chunk_index": index,
            "file_sha256": file_hash,
        }
        ident = chunk_id(source, piece, occurrence)
        # the id is repeated in metadata so that stale chunks can be found with a metadata filter
        metadata["chunk_id"] = ident
        chunks.append(Chunk(ident, piece, metadata))
    return chunks


def plan_file(chunks: Sequence[Chunk], source: str, existing: set[str]) -> FilePlan:
    """Split a file's chunks into those to add and those already stored."""
    return FilePlan(
        source=source,
        to_add=tuple(c for c in chunks if c.id not in existing),
        unchanged=tuple(c.id for c in chunks if c.id in existing),
    )


def ingest_files(
    paths: Sequence[Path],
    sink: ChunkSink,
    *,
    splitter: TextSplitter | None = None,
    on_file: Callable[[Path, FilePlan], None] | None = None,
    prune: Sequence[Path] = (),
    on_start: Callable[[int], None] | None = None,
    on_chunks: Callable[[Path, int], None] | None = None,
    add_batch: int = 64,
) -> IngestSummary:
    """Split each file and bring the sink up to date with it; return the counts.

    All files are split first (local and fast), so ``on_start`` gets the total number of chunks;
    then each file's new chunks are added in slices of ``add_batch`` (``on_chunks`` reports
    progress: skipped chunks at once, new ones per slice) and its stale chunks deleted. New
    chunks are added before stale ones are deleted, so a failure midway never leaves a file
    with fewer chunks than before. ``on_file`` is called after each file. ``prune``: folders
    whose stored files that no longer exist lose their chunks (counted in ``deleted``).
    """
    if add_batch <= 0:
        raise InvalidInputError("add_batch must be positive.")
    splitter = splitter or make_splitter()
    summary = IngestSummary()
    started = time.perf_counter()
    split = [(path, load_and_split(path, splitter)) for path in paths]
    if on_start is not None:
        on_start(sum(len(chunks) for _, chunks in split))
    for path, chunks in split:
        source = source_key(path)
        plan = plan_file(chunks, source, sink.existing([c.id for c in chunks]))
        if on_chunks is not None and plan.unchanged:
            on_chunks(path, len(plan.unchanged))
        for start in range(0, len(plan.to_add), add_batch):
            batch = plan.to_add[start : start + add_batch]
            sink.add(batch)
            if on_chunks is not None:
                on_chunks(path, len(batch))
        plan = replace(plan, deleted=sink.delete_stale(source, [c.id for c in chunks]))
        summary.files += 1
        summary.chunks += len(chunks)
        summary.new += len(plan.to_add)
        summary.skipped += len(plan.unchanged)
        summary.deleted += plan.deleted
        if on_file is not None:
            on_file(path, plan)
    sources = [source_key(p) for p in paths]
    for folder in prune:
        summary.deleted += sink.delete_missing(source_key(folder), sources)
    summary.seconds = time.perf_counter() - started
    return summary
