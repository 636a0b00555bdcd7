"""The SQL objects of the ``qwen_pg`` schema, as pure builders (no I/O).

Every plpython3u body is a few lines: it makes sure the package is importable (``_bootstrap``)
and hands ``plpy``, ``GD`` and its arguments to :mod:`qwen_pg_integrations.sql.runtime`, so
the logic (retries, typed errors, limits) is the package's core and not a copy pasted into SQL.

Function bodies are DDL text, which PostgreSQL cannot take as a bind parameter; they are
rendered with :class:`psycopg.sql.Literal`. Identifiers (schema, vector type, roles) always go
through :class:`psycopg.sql.Identifier`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import sql

__all__ = [
    "FUNCTIONS",
    "RUNTIME_KEY",
    "FunctionDef",
    "render_function",
    "render_grants",
    "render_schema",
]

# Key of the imported runtime module in plpython's session-wide GD dictionary.
RUNTIME_KEY = "qwen_pg_integrations.sql.runtime"

# Prepended to every plpython3u body (except _bootstrap): import the runtime once per session.
_PREAMBLE = f"""\
rt = GD.get({RUNTIME_KEY!r})
if rt is None:
    plpy.execute("SELECT _bootstrap()")
    rt = GD[{RUNTIME_KEY!r}]
"""

# (noqa S608: this is the Python source of a plpython body, not SQL built from input.)
_BOOTSTRAP = f"""\
import json
import sys
rows = plpy.execute("SELECT value FROM config WHERE key = 'python_path'")
paths = json.loads(rows[0]["value"]) if rows.nrows() else []
for path in reversed(paths):
    if path in sys.path:
        sys.path.remove(path)
    sys.path.insert(0, path)
import qwen_pg_integrations.sql.runtime as runtime
GD[{RUNTIME_KEY!r}] = runtime
"""  # noqa: S608

_SELFTEST = f"""\
import json
import sys
out = {{"python": "%d.%d.%d" % sys.version_info[:3], "ok": False}}
try:
    plpy.execute("SELECT _bootstrap()")
    out.update(GD[{RUNTIME_KEY!r}].selftest())
except Exception as exc:
    out["error"] = str(exc)[:4000]
return json.dumps(out)
"""


@dataclass(frozen=True)
class FunctionDef:
    """One function of the schema.

    ``args`` and ``returns`` are SQL text in which ``{vector}`` stands for the embedding type
    (pgvector's ``vector``, schema-qualified, or ``real[]`` without pgvector) and
    ``{vector_array}`` for an array of it; ``{rag_answer}`` is the schema's composite type.
    """

    name: str
    args: str
    returns: str
    body: str
    language: str = "plpython3u"
    security_definer: bool = True
    public: bool = True  # EXECUTE granted to the install's grant_to roles
    preamble: bool = True


FUNCTIONS: tuple[FunctionDef, ...] = (
    FunctionDef("_bootstrap", "", "void", _BOOTSTRAP, preamble=False),
    FunctionDef("_selftest", "", "jsonb", _SELFTEST, public=False, preamble=False),
    FunctionDef(
        "embed",
        "input text, text_type text DEFAULT 'document', model text DEFAULT NULL, "
        "dimensions integer DEFAULT NULL",
        "{vector}",
        "return rt.embed_one(plpy, GD, input, text_type, model, dimensions, as_text={as_text})",
    ),
    FunctionDef(
        "embed",
        "inputs text[], text_type text DEFAULT 'document', model text DEFAULT NULL, "
        "dimensions integer DEFAULT NULL",
        "{vector_array}",
        "return rt.embed_many(plpy, GD, inputs, text_type, model, dimensions, as_text={as_text})",
    ),
    FunctionDef(
        "chat",
        "system text, prompt text, model text DEFAULT NULL, options jsonb DEFAULT '{{}}'",
        "text",
        "return rt.chat(plpy, GD, system, prompt, model, options)",
    ),
    FunctionDef(
        "chat_raw",
        "system text, prompt text, model text DEFAULT NULL, options jsonb DEFAULT '{{}}'",
        "jsonb",
        "return rt.chat_raw(plpy, GD, system, prompt, model, options)",
    ),
    # SECURITY INVOKER: the search runs with the caller's privileges on the table; the key is
    # only touched by embed() and chat(), which rag() calls through SQL.
    FunctionDef(
        "rag",
        "question text, tbl regclass, k integer DEFAULT 5, threshold double precision DEFAULT 0.5, "
        "model text DEFAULT NULL, embedding_model text DEFAULT NULL",
        "{rag_answer}",
        "return rt.rag(plpy, GD, question, tbl, k, threshold, model, embedding_model)",
        security_definer=False,
    ),
    FunctionDef(
        "embedding_trigger",
        "",
        "trigger",
        "return rt.embedding_trigger(plpy, GD, TD)",
    ),
    FunctionDef(
        "sync_embedding",
        "tbl regclass, text_col name, vector_col name, model text DEFAULT NULL, "
        "backfill boolean DEFAULT true",
        "bigint",
        """
DECLARE
    trigger_name text := left('qwen_pg_sync_' || vector_col, 63);
    dims integer;
    filled bigint := 0;
BEGIN
    SELECT CASE WHEN a.atttypmod > 0 THEN a.atttypmod END INTO dims
      FROM pg_attribute a
     WHERE a.attrelid = tbl AND a.attname = vector_col AND NOT a.attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'column % of % does not exist', vector_col, tbl
              USING ERRCODE = 'undefined_column',
                    HINT = 'Add the embedding column first (for example vector(1024)).';
    END IF;
    PERFORM 1 FROM pg_attribute
     WHERE attrelid = tbl AND attname = text_col AND NOT attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'column % of % does not exist', text_col, tbl
              USING ERRCODE = 'undefined_column';
    END IF;
    IF backfill THEN
        EXECUTE format(
            'UPDATE %s SET %I = embed(%I, ''document'', $1, $2) WHERE %I IS NULL AND %I IS NOT NULL'
            ' AND btrim(%I) <> ''''',
            tbl, vector_col, text_col, vector_col, text_col, text_col)
          USING model, dims;
        GET DIAGNOSTICS filled = ROW_COUNT;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = tbl AND tgname = trigger_name) THEN
        EXECUTE format('DROP TRIGGER %I ON %s', trigger_name, tbl);
    END IF;
    EXECUTE format(
        'CREATE TRIGGER %I BEFORE INSERT OR UPDATE OF %I ON %s FOR EACH ROW '
        'EXECUTE FUNCTION %I.embedding_trigger(%L, %L, %L)',
        trigger_name, text_col, tbl, current_schema(), text_col, vector_col, coalesce(model, ''));
    RETURN filled;
END
""",
        language="plpgsql",
        security_definer=False,
        preamble=False,
    ),
    FunctionDef(
        "unsync_embedding",
        "tbl regclass, vector_col name",
        "void",
        """
DECLARE
    trigger_name text := left('qwen_pg_sync_' || vector_col, 63);
BEGIN
    IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = tbl AND tgname = trigger_name) THEN
        EXECUTE format('DROP TRIGGER %I ON %s', trigger_name, tbl);
    END IF;
END
""",
        language="plpgsql",
        security_definer=False,
        preamble=False,
    ),
)


def _vector_sql(vector_schema: str | None) -> tuple[sql.Composable, sql.Composable]:
    if vector_schema is None:
        return sql.SQL("real[]"), sql.SQL("real[]")
    vector = sql.Identifier(vector_schema, "vector")
    return vector, sql.Composed([vector, sql.SQL("[]")])


def render_function(fn: FunctionDef, schema: str, vector_schema: str | None) -> sql.Composed:
    """``CREATE OR REPLACE FUNCTION`` for ``fn`` in ``schema``.

    Every function gets a fixed ``search_path`` (its own schema, then ``pg_catalog``, then
    ``pg_temp``): a SECURITY DEFINER function must not resolve names through the caller's path.
    """
    vector, vector_array = _vector_sql(vector_schema)
    body = fn.body.format(as_text=vector_schema is not None) if fn.preamble else fn.body
    if fn.preamble:
        body = _PREAMBLE + body
    return sql.SQL(
        "CREATE OR REPLACE FUNCTION {name}(" + fn.args + ") RETURNS " + fn.returns + " "
        "LANGUAGE {language} {security} SET search_path = {schema}, pg_catalog, pg_temp "
        "AS {body}"
    ).format(
        name=sql.Identifier(schema, fn.name),
        vector=vector,
        vector_array=vector_array,
        rag_answer=sql.Identifier(schema, "rag_answer"),
        language=sql.Identifier(fn.language),
        security=sql.SQL("SECURITY DEFINER" if fn.security_definer else "SECURITY INVOKER"),
        schema=sql.Identifier(schema),
        body=sql.Literal(body),
    )


def render_schema(schema: str) -> list[sql.Composed]:
    """Schema, private configuration table and the ``rag_answer`` type (idempotent)."""
    ident = sql.Identifier(schema)
    return [
        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident),
        # Only the owner (the installing superuser) can read it; callers reach the key only
        # through the SECURITY DEFINER functions, which never return it.
        sql.SQL("CREATE TABLE IF NOT EXISTS {} (key text PRIMARY KEY, value text NOT NULL)").format(
            sql.Identifier(schema, "config")
        ),
        sql.SQL("REVOKE ALL ON {} FROM PUBLIC").format(sql.Identifier(schema, "config")),
        sql.SQL("REVOKE CREATE ON SCHEMA {} FROM PUBLIC").format(ident),
    ]


def render_rag_type(schema: str) -> sql.Composed:
    """The composite ``rag_answer(answer, sources, no_context)`` that ``rag()`` returns."""
    return sql.SQL("CREATE TYPE {} AS (answer text, sources jsonb, no_context boolean)").format(
        sql.Identifier(schema, "rag_answer")
    )


def _role(name: str) -> sql.Composable:
    return sql.SQL("PUBLIC") if name.upper() == "PUBLIC" else sql.Identifier(name)


def _signature(fn: FunctionDef, schema: str, vector_schema: str | None) -> sql.Composed:
    vector, vector_array = _vector_sql(vector_schema)
    types = []
    for arg in fn.args.split(",") if fn.args else []:
        # "name type [DEFAULT ...]" -> the type words only
        words = arg.strip().split(" DEFAULT ")[0].split()[1:]
        types.append(" ".join(words))
    return sql.SQL("{}(" + ", ".join(types) + ")").format(
        sql.Identifier(schema, fn.name), vector=vector, vector_array=vector_array
    )


def render_grants(
    schema: str, vector_schema: str | None, grant_to: Sequence[str]
) -> list[sql.Composed]:
    """Revoke the default PUBLIC EXECUTE, then grant the public functions to ``grant_to``."""
    out = [
        sql.SQL("REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {} FROM PUBLIC").format(
            sql.Identifier(schema)
        )
    ]
    for role in grant_to:
        out.append(
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), _role(role))
        )
        for fn in FUNCTIONS:
            if fn.public:
                out.append(
                    sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(
                        _signature(fn, schema, vector_schema), _role(role)
                    )
                )
    return out
