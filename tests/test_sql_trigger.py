"""The embedding trigger: sync_embedding() keeps a vector column in step with a text column."""

# ruff: noqa: F811  (pytest fixtures imported from _sql_pg15 are parameters by design)
from __future__ import annotations

from typing import Any

import psycopg
import pytest

from _sql_pg15 import _reset_emulator, db, emu, pg15, sql_dsn  # noqa: F401

pytestmark = pytest.mark.plpython


def _embed_count(emu: Any) -> int:
    return sum(1 for r in emu.requests if r.endpoint == "embedding")


@pytest.fixture
def notes(db: Any) -> str:
    db.execute("DROP TABLE IF EXISTS notes")
    db.execute("CREATE TABLE notes (id serial PRIMARY KEY, body text, tag text, emb vector(512))")
    return "notes"


def test_sync_embedding_backfills_existing_rows_at_the_column_dimension(
    db: Any, emu: Any, notes: str
):
    db.execute("INSERT INTO notes (body) VALUES ('first note'), ('second note'), (NULL), ('  ')")
    filled = db.execute("SELECT qwen_pg.sync_embedding('notes', 'body', 'emb')").fetchone()[0]
    assert filled == 2
    rows = db.execute("SELECT body, vector_dims(emb) FROM notes ORDER BY id").fetchall()
    assert rows == [("first note", 512), ("second note", 512), (None, None), ("  ", None)]
    assert all(r.body["parameters"]["dimension"] == 512 for r in emu.requests)


def test_insert_embeds_the_text_as_a_document(db: Any, emu: Any, notes: str):
    db.execute("SELECT qwen_pg.sync_embedding('notes', 'body', 'emb')")
    db.execute("INSERT INTO notes (body) VALUES ('PostgreSQL stores vectors')")
    stored, expected = db.execute(
        "SELECT emb::text, qwen_pg.embed(body, 'document', NULL, 512)::text FROM notes"
    ).fetchone()
    assert stored == expected
    assert emu.requests[0].body["parameters"]["text_type"] == "document"


def test_update_re_embeds_only_when_the_text_changed(db: Any, emu: Any, notes: str):
    db.execute("SELECT qwen_pg.sync_embedding('notes', 'body', 'emb')")
    db.execute("INSERT INTO notes (body) VALUES ('old text')")
    before = db.execute("SELECT emb::text FROM notes").fetchone()[0]
    calls = _embed_count(emu)

    db.execute("UPDATE notes SET tag = 'x'")  # text column not in the SET list
    db.execute("UPDATE notes SET body = body, tag = 'y'")  # in the SET list, value unchanged
    assert _embed_count(emu) == calls
    assert db.execute("SELECT emb::text FROM notes").fetchone()[0] == before

    db.execute("UPDATE notes SET body = 'new text about cats'")
    assert _embed_count(emu) == calls + 1
    after = db.execute("SELECT emb::text FROM notes").fetchone()[0]
    assert after != before
    assert after == db.execute("SELECT qwen_pg.embed('new text about cats', 'document', NULL, 512)"
                               "::text").fetchone()[0]  # fmt: skip

    db.execute("UPDATE notes SET body = NULL")
    assert db.execute("SELECT emb FROM notes").fetchone()[0] is None


def test_trigger_model_argument_and_dashscope_errors_abort_the_write(db: Any, emu: Any, notes: str):
    from qwen_pg_integrations.testing import Fault

    db.execute("SELECT qwen_pg.sync_embedding('notes', 'body', 'emb', 'text-embedding-v3', false)")
    db.execute("INSERT INTO notes (body) VALUES ('v3 text')")
    assert emu.requests[-1].model == "text-embedding-v3"

    emu.inject(Fault(status=500, code="InternalError"), times=5, endpoint="embedding")
    with pytest.raises(psycopg.Error) as info:
        db.execute("INSERT INTO notes (body) VALUES ('will fail')")
    assert info.value.sqlstate == "QW500"
    assert db.execute("SELECT count(*) FROM notes").fetchone()[0] == 1


def test_unsync_embedding_removes_the_trigger(db: Any, emu: Any, notes: str):
    db.execute("SELECT qwen_pg.sync_embedding('notes', 'body', 'emb')")
    db.execute("SELECT qwen_pg.unsync_embedding('notes', 'emb')")
    db.execute("INSERT INTO notes (body) VALUES ('no trigger now')")
    assert db.execute("SELECT emb FROM notes").fetchone()[0] is None
    assert emu.requests == []


def test_sync_embedding_on_a_missing_column_is_a_clear_error(db: Any, notes: str):
    with pytest.raises(psycopg.errors.UndefinedColumn, match=r"column nope of public\.notes"):
        db.execute("SELECT qwen_pg.sync_embedding('notes', 'body', 'nope')")


def test_trigger_fills_a_real_array_column_too(db: Any, emu: Any):
    db.execute("DROP TABLE IF EXISTS plain_notes")
    db.execute("CREATE TABLE plain_notes (body text, emb real[])")
    db.execute("SELECT qwen_pg.sync_embedding('plain_notes', 'body', 'emb')")
    db.execute("INSERT INTO plain_notes VALUES ('a real array')")
    assert db.execute("SELECT array_length(emb, 1) FROM plain_notes").fetchone()[0] == 1024
