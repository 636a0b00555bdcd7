"""File loading, Chinese/English splitting, stable chunk ids and incremental re-ingestion."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from qwen_pg_integrations.data import corpus_files
from qwen_pg_integrations.errors import InvalidInputError
from qwen_pg_integrations.ingest import (
    Chunk,
    discover,
    ingest_files,
    load_and_split,
    load_text,
    make_splitter,
)


class MemorySink:
    """A ChunkSink in memory: the contract the CLI's database sink follows."""

    def __init__(self) -> None:
        self.rows: dict[str, Chunk] = {}
        self.added: list[str] = []

    def existing(self, ids: Sequence[str]) -> set[str]:
        return {i for i in ids if i in self.rows}

    def add(self, chunks: Sequence[Chunk]) -> None:
        for c in chunks:
            self.rows[c.id] = c
            self.added.append(c.id)

    def delete_stale(self, source: str, keep: Sequence[str]) -> int:
        stale = [
            i for i, c in self.rows.items() if c.metadata["source"] == source and i not in keep
        ]
        for i in stale:
            del self.rows[i]
        return len(stale)

    def delete_missing(self, folder: str, keep_sources: Sequence[str]) -> int:
        gone = [
            i
            for i, c in self.rows.items()
            if c.metadata["source"].startswith(folder + "/")
            and c.metadata["source"] not in keep_sources
        ]
        for i in gone:
            del self.rows[i]
        return len(gone)


def test_chinese_text_is_split_at_sentence_ends_and_keeps_the_punctuation() -> None:
    text = "第一句话讲的是向量。" * 30 + "第二部分讲索引！" * 30
    pieces = make_splitter(chunk_size=100, chunk_overlap=0).split_text(text)
    assert len(pieces) > 3
    assert all(p.endswith(("。", "！")) for p in pieces)
    assert all(len(p) <= 100 for p in pieces)


def test_english_text_is_split_at_sentences() -> None:
    text = "PostgreSQL is a database. " * 40
    pieces = make_splitter(chunk_size=120, chunk_overlap=0).split_text(text)
    assert all(p.endswith("database.") for p in pieces)


def test_html_loses_tags_scripts_and_styles(tmp_path: Path) -> None:
    page = tmp_path / "a.html"
    page.write_text(
        "<html><head><style>p{color:red}</style><script>alert(1)</script></head>"
        "<body><h1>PolarDB</h1><p>存储计算分离 &amp; one primary.</p></body></html>",
        encoding="utf-8",
    )
    text = load_text(page)
    assert "PolarDB" in text and "存储计算分离 & one primary." in text
    assert "alert" not in text and "color" not in text and "<" not in text


def test_gb18030_chinese_file_is_read(tmp_path: Path) -> None:
    f = tmp_path / "old.txt"
    f.write_bytes("旧的中文文件。".encode("gb18030"))
    assert load_text(f) == "旧的中文文件。"


def test_pdf_text_is_extracted(tmp_path: Path) -> None:
    pypdf = pytest.importorskip("pypdf")
    from pypdf.generic import NameObject

    writer = pypdf.PdfWriter()
    page = writer.add_blank_page(width=300, height=200)
    # a minimal content stream with one line of text in a standard font
    font = pypdf.generic.DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    page[NameObject("/Resources")] = pypdf.generic.DictionaryObject(
        {
            NameObject("/Font"): pypdf.generic.DictionaryObject(
                {NameObject("/F1"): writer._add_object(font)}
            )
        }
    )
    stream = pypdf.generic.DecodedStreamObject()
    stream.set_data(b"BT /F1 12 Tf 20 100 Td (pgvector stores vectors) Tj ET")
    page[NameObject("/Contents")] = writer._add_object(stream)
    path = tmp_path / "doc.pdf"
    with path.open("wb") as fh:
        writer.write(fh)
    assert "pgvector stores vectors" in load_text(path)


def test_discover_walks_folders_and_rejects_unknown_files(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.md").write_text("a")
    (tmp_path / "sub" / "b.txt").write_text("b")
    (tmp_path / "c.bin").write_text("c")
    assert [p.name for p in discover([tmp_path])] == ["a.md", "b.txt"]
    with pytest.raises(InvalidInputError, match="unsupported"):
        discover([tmp_path / "c.bin"])
    with pytest.raises(InvalidInputError, match="no such"):
        discover([tmp_path / "missing"])


def test_chunk_ids_are_stable_and_repeated_text_gets_distinct_ids(tmp_path: Path) -> None:
    f = tmp_path / "a.md"
    f.write_text("Same paragraph.\n\nSame paragraph.\n\nOther.")
    small = make_splitter(chunk_size=20, chunk_overlap=0)
    first, second = load_and_split(f, small), load_and_split(f, small)
    assert [c.id for c in first] == [c.id for c in second]
    assert len({c.id for c in first}) == len(first) == 3
    assert first[0].metadata["file_name"] == "a.md"
    assert first[0].metadata["source"] == f.resolve().as_posix()


def test_rerun_skips_unchanged_and_replaces_changed_files_chunks(tmp_path: Path) -> None:
    a, b = tmp_path / "a.md", tmp_path / "b.md"
    a.write_text("Alpha one.\n\nAlpha two.")
    b.write_text("Beta one.\n\nBeta two.")
    sink, splitter = MemorySink(), make_splitter(chunk_size=12, chunk_overlap=0)
    first = ingest_files([a, b], sink, splitter=splitter)
    assert (first.files, first.chunks, first.new, first.skipped, first.deleted) == (2, 4, 4, 0, 0)

    again = ingest_files([a, b], sink, splitter=splitter)
    assert (again.new, again.skipped, again.deleted) == (0, 4, 0)

    b.write_text("Beta one.\n\nBeta three.")
    changed = ingest_files([a, b], sink, splitter=splitter)
    assert (changed.new, changed.skipped, changed.deleted) == (1, 3, 1)
    contents = sorted(c.content for c in sink.rows.values())
    assert contents == ["Alpha one.", "Alpha two.", "Beta one.", "Beta three."]


def test_bundled_corpus_is_bilingual_and_splits() -> None:
    files = corpus_files()
    assert len(files) >= 12
    names = {f.name for f in files}
    assert any(n.endswith("_zh.md") or n.endswith("_zh.txt") for n in names)
    chunks = [c for f in files for c in load_and_split(f)]
    assert len(chunks) >= len(files)
    assert any("向量" in c.content for c in chunks) and any("HNSW" in c.content for c in chunks)


def test_prune_deletes_chunks_of_files_gone_from_the_folder(tmp_path: Path) -> None:
    a, b = tmp_path / "a.md", tmp_path / "b.md"
    a.write_text("Alpha.")
    b.write_text("Beta.")
    sink = MemorySink()
    ingest_files(discover([tmp_path]), sink)
    b.unlink()
    kept = ingest_files(discover([tmp_path]), sink)  # without prune b's chunk stays
    assert kept.deleted == 0 and len(sink.rows) == 2
    pruned = ingest_files(discover([tmp_path]), sink, prune=[tmp_path])
    assert pruned.deleted == 1
    assert [c.content for c in sink.rows.values()] == ["Alpha."]


def test_markdown_chunks_never_span_two_sections_and_keep_their_heading(tmp_path: Path) -> None:
    doc = tmp_path / "a.md"
    doc.write_text(
        "# Title\n\nIntro.\n\n## HNSW\n\n" + "HNSW builds a graph. " * 30 + "\n\n"
        "```sql\n# not a heading inside code\nSELECT 1;\n```\n\n## IVFFlat\n\nLists.",
        encoding="utf-8",
    )
    chunks = load_and_split(doc, make_splitter(chunk_size=200, chunk_overlap=0))
    texts = [c.content for c in chunks]
    assert texts[0] == "# Title\n\nIntro."
    assert texts[1].startswith("## HNSW\n\nHNSW builds a graph.")  # heading not left alone
    assert texts[-1] == "## IVFFlat\n\nLists."
    assert any("# not a heading inside code" in t and "SELECT 1;" in t for t in texts)
    assert not any("IVFFlat" in t and "HNSW builds" in t for t in texts)


def test_progress_reports_every_chunk_once_and_adds_in_slices(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("\n\n".join(f"Paragraph {i}." for i in range(10)))
    (tmp_path / "b.md").write_text("Only one.")
    sink, totals, done = MemorySink(), [], []
    adds: list[int] = []
    original_add = sink.add

    def counting_add(chunks: Sequence[Chunk]) -> None:
        adds.append(len(chunks))
        original_add(chunks)

    sink.add = counting_add  # type: ignore[method-assign]
    splitter = make_splitter(chunk_size=15, chunk_overlap=0)
    summary = ingest_files(
        discover([tmp_path]),
        sink,
        splitter=splitter,
        on_start=totals.append,
        on_chunks=lambda path, n: done.append(n),
        add_batch=4,
    )
    assert totals == [summary.chunks] == [11]
    assert sum(done) == 11 and adds == [4, 4, 2, 1]
    done.clear()
    ingest_files(
        discover([tmp_path]), sink, splitter=splitter, on_chunks=lambda p, n: done.append(n)
    )
    assert done == [10, 1]  # unchanged chunks reported at once per file
