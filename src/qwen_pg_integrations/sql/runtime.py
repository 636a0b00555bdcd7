"""What the plpython3u functions of the ``qwen_pg`` schema run inside the PostgreSQL server.

Each installed function body is two lines: import this module once per session (``_bootstrap``
puts the recorded ``python_path`` in front of ``sys.path``) and call one function here with
``plpy``, the session dictionary ``GD`` and its arguments. Embeddings and chat go through the
package's core (:class:`~qwen_pg_integrations.dashscope.EmbeddingClient`,
:class:`~qwen_pg_integrations.dashscope.ChatClient`): the same retries, typed errors and model
limits as the Python side. Typed errors become PostgreSQL errors (see :mod:`._plpy`).

SECURITY DEFINER functions (``embed``, ``chat``, ``chat_raw``, the trigger) read the key from the
owner-only ``config`` table; ``rag`` runs as the caller, so the caller's privileges on the table
apply, and reaches the key only through ``embed()`` and ``chat()`` in SQL.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

from ..dashscope.chat import ChatClient
from ..dashscope.client import DashScopeClient
from ..dashscope.compat import CompatChatClient, CompatEmbeddingClient
from ..dashscope.embeddings import EmbeddingClient
from ..dashscope.models import DEFAULT_CHAT_MODEL, DEFAULT_EMBEDDING_MODEL
from ..errors import InvalidInputError, MissingAPIKeyError, QwenPGError
from ..types import ChatMessage, ChatResponse
from ._plpy import SQLSTATES, Plpy, raise_pg, sqlstate_for
from ._rag import rag

__all__ = [
    "SQLSTATES",
    "Plpy",
    "chat",
    "chat_raw",
    "embed_many",
    "embed_one",
    "embedding_trigger",
    "format_vector",
    "rag",
    "raise_pg",
    "selftest",
    "sqlstate_for",
]

_CLIENTS_KEY = "qwen_pg_integrations.sql.clients"


# --- settings and clients -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Settings:
    """The ``config`` table, typed. The key is kept out of ``repr``."""

    api_key: str = dataclasses.field(repr=False)
    base_url: str
    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    embedding_dimensions: int | None = None
    chat_model: str = DEFAULT_CHAT_MODEL
    max_retries: int = 3
    timeout: float = 60.0
    dialect: str = "native"  # or the OpenAI-compatible server's dialect

    @property
    def compat(self) -> bool:
        return self.dialect != "native"


def load_settings(plpy: Plpy) -> Settings:
    """Read the config table (SECURITY DEFINER functions only: it is owner-only)."""
    rows = plpy.execute("SELECT key, value FROM config")
    values = {row["key"]: row["value"] for row in rows}
    dialect = values.get("dialect") or "native"
    self_hosted = dialect not in ("native", "dashscope")
    if not values.get("api_key") and not self_hosted:
        raise MissingAPIKeyError(
            "No DashScope API key is configured in the database; run `qwen-pg sql install` "
            "(or qwen_pg_integrations.sql.install) with DASHSCOPE_API_KEY set."
        )
    dims = values.get("embedding_dimensions")
    return Settings(
        api_key=values.get("api_key") or "",
        base_url=values.get("base_url") or "",
        embedding_model=values.get("embedding_model") or DEFAULT_EMBEDDING_MODEL,
        embedding_dimensions=int(dims) if dims else None,
        chat_model=values.get("chat_model") or DEFAULT_CHAT_MODEL,
        max_retries=int(values.get("max_retries") or 3),
        timeout=float(values.get("timeout") or 60.0),
        dialect=dialect,
    )


def _cache(gd: MutableMapping[str, Any]) -> dict[tuple[Any, ...], Any]:
    cache = gd.get(_CLIENTS_KEY)
    if cache is None:
        cache = {}
        gd[_CLIENTS_KEY] = cache
    return cache


def _base_client(gd: MutableMapping[str, Any], s: Settings) -> DashScopeClient:
    key = ("base", s.api_key, s.base_url, s.max_retries, s.timeout)
    cache = _cache(gd)
    if key not in cache:
        cache[key] = DashScopeClient(
            api_key=s.api_key,
            base_url=s.base_url or None,
            max_retries=s.max_retries,
            timeout=s.timeout,
        )
    client: DashScopeClient = cache[key]
    return client


def embedding_client(
    gd: MutableMapping[str, Any], s: Settings, model: str | None, dimensions: int | None
) -> EmbeddingClient:
    """A cached client for (settings, model, dimensions); one batch at a time, no threads."""
    model = model or s.embedding_model
    if dimensions is None and model == s.embedding_model:
        dimensions = s.embedding_dimensions
    key = ("embed", s.api_key, s.base_url, s.max_retries, s.timeout, model, dimensions, s.dialect)
    cache = _cache(gd)
    if key not in cache and s.compat:
        cache[key] = CompatEmbeddingClient(
            model,
            base_url=s.base_url,
            api_key=s.api_key or None,
            dialect=s.dialect,
            dimensions=dimensions,
            max_retries=s.max_retries,
            timeout=s.timeout,
        )
    if key not in cache:
        # max_concurrency=1: a PostgreSQL backend is no place for a thread pool.
        cache[key] = EmbeddingClient(
            model, dimensions=dimensions, client=_base_client(gd, s), max_concurrency=1
        )
    client: EmbeddingClient = cache[key]
    return client


def chat_client(gd: MutableMapping[str, Any], s: Settings) -> ChatClient:
    """A cached chat client for the settings (the model is chosen per call)."""
    key = ("chat", s.api_key, s.base_url, s.max_retries, s.timeout, s.chat_model, s.dialect)
    cache = _cache(gd)
    if key not in cache and s.compat:
        cache[key] = CompatChatClient(
            s.chat_model,
            base_url=s.base_url,
            api_key=s.api_key or None,
            dialect=s.dialect,
            max_retries=s.max_retries,
            timeout=s.timeout,
        )
    if key not in cache:
        cache[key] = ChatClient(s.chat_model, client=_base_client(gd, s))
    client: ChatClient = cache[key]
    return client


# --- embeddings ---------------------------------------------------------------------------


def format_vector(values: Sequence[float]) -> str:
    """pgvector's text form ``[x,y,...]`` (exact float repr, no spaces)."""
    return "[" + ",".join(repr(float(v)) for v in values) + "]"


def _text_type(value: str | None) -> str:
    text_type = value or "document"
    if text_type not in ("query", "document"):
        raise InvalidInputError(f"text_type must be 'query' or 'document', not {text_type!r}.")
    return text_type


def _embed(
    plpy: Plpy,
    gd: MutableMapping[str, Any],
    texts: Sequence[str],
    text_type: str | None,
    model: str | None,
    dimensions: int | None,
) -> list[list[float]]:
    settings = load_settings(plpy)
    client = embedding_client(gd, settings, model, dimensions)
    kind = _text_type(text_type)
    result = client.embed(texts, text_type="query" if kind == "query" else "document")
    return result.vectors


def embed_one(
    plpy: Plpy,
    gd: MutableMapping[str, Any],
    text: str | None,
    text_type: str | None,
    model: str | None,
    dimensions: int | None,
    *,
    as_text: bool,
) -> str | list[float] | None:
    """``embed(text)``: a vector (pgvector text form) or ``real[]``; NULL in, NULL out."""
    if text is None:
        return None
    try:
        vector = _embed(plpy, gd, [text], text_type, model, dimensions)[0]
    except QwenPGError as exc:
        raise_pg(plpy, exc)
    return format_vector(vector) if as_text else vector


def embed_many(
    plpy: Plpy,
    gd: MutableMapping[str, Any],
    texts: Sequence[str | None] | None,
    text_type: str | None,
    model: str | None,
    dimensions: int | None,
    *,
    as_text: bool,
) -> list[Any] | None:
    """``embed(text[])``: one vector per element, in order, batched by the model's limits.

    ``vector[]`` with pgvector (NULL for a NULL text), else a 2-D ``real[]``.
    """
    if texts is None:
        return None
    present = [i for i, t in enumerate(texts) if t is not None]
    try:
        vectors = _embed(plpy, gd, [str(texts[i]) for i in present], text_type, model, dimensions)
    except QwenPGError as exc:
        raise_pg(plpy, exc)
    out: list[Any] = [None] * len(texts)
    for i, vector in zip(present, vectors, strict=True):
        out[i] = format_vector(vector) if as_text else vector
    if not as_text and vectors:
        # real[][] cannot hold a NULL row: a NULL text gets a row of NULLs
        out = [row if row is not None else [None] * len(vectors[0]) for row in out]
    return out


# --- chat -----------------------------------------------------------------------------------


def _chat(
    plpy: Plpy,
    gd: MutableMapping[str, Any],
    system: str | None,
    prompt: str | None,
    model: str | None,
    options: str | None,
) -> ChatResponse:
    if not prompt or not prompt.strip():
        raise InvalidInputError("prompt is empty; pass the user message as the second argument.")
    params = json.loads(options) if options else {}
    if not isinstance(params, dict):
        raise InvalidInputError("options must be a jsonb object such as '{\"temperature\": 0}'.")
    settings = load_settings(plpy)
    messages = [ChatMessage("user", prompt)]
    if system:
        messages.insert(0, ChatMessage("system", system))
    return chat_client(gd, settings).chat(messages, model=model or None, **params)


def chat(
    plpy: Plpy,
    gd: MutableMapping[str, Any],
    system: str | None,
    prompt: str | None,
    model: str | None,
    options: str | None,
) -> str:
    """``chat(system, prompt, model, options)``: the answer's text."""
    try:
        return _chat(plpy, gd, system, prompt, model, options).content
    except QwenPGError as exc:
        raise_pg(plpy, exc)


def response_json(response: ChatResponse) -> str:
    """A chat response as a JSON object (the ``chat_raw`` result)."""
    return json.dumps(dataclasses.asdict(response), ensure_ascii=False)


def chat_raw(
    plpy: Plpy,
    gd: MutableMapping[str, Any],
    system: str | None,
    prompt: str | None,
    model: str | None,
    options: str | None,
) -> str:
    """``chat_raw(...)``: the whole response (content, model, finish_reason, tool_calls,
    reasoning_content, usage, request_id) as jsonb."""
    try:
        return response_json(_chat(plpy, gd, system, prompt, model, options))
    except QwenPGError as exc:
        raise_pg(plpy, exc)


# --- trigger ----------------------------------------------------------------------------------


def _column(plpy: Plpy, relid: str, column: str) -> tuple[str, int | None]:
    plan = plpy.prepare(
        "SELECT t.typname, a.atttypmod FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = $1 AND a.attname = $2 AND NOT a.attisdropped",
        ["oid", "name"],
    )
    rows = plpy.execute(plan, [relid, column])
    if not rows.nrows():
        raise InvalidInputError(f"The table has no column {column!r} for the embedding.")
    typmod = int(rows[0]["atttypmod"])
    return str(rows[0]["typname"]), typmod if typmod > 0 else None


def embedding_trigger(
    plpy: Plpy, gd: MutableMapping[str, Any], td: Mapping[str, Any]
) -> str | None:
    """BEFORE INSERT OR UPDATE row trigger: ``TD["args"] = [text_col, vector_col, model]``.

    On UPDATE the text is embedded again only when it changed. NULL or blank text gives a
    NULL embedding (nothing to embed). The column's dimension (``vector(n)``) is requested from
    the model, so a ``vector(512)`` column gets 512-d vectors.
    """
    args = list(td.get("args") or [])
    if td.get("when") != "BEFORE" or td.get("level") != "ROW" or len(args) < 2:
        plpy.error(
            "embedding_trigger must be a BEFORE INSERT OR UPDATE ... FOR EACH ROW trigger with "
            "arguments (text_col, vector_col[, model]); create it with sync_embedding().",
            sqlstate="39P01",  # trigger_protocol_violated
        )
    text_col, vector_col = str(args[0]), str(args[1])
    model = str(args[2]) if len(args) > 2 and args[2] else None
    new: MutableMapping[str, Any] = td["new"]
    if td.get("event") == "UPDATE" and td["old"].get(text_col) == new.get(text_col):
        return None
    text = new.get(text_col)
    if text is None or not str(text).strip():
        new[vector_col] = None
        return "MODIFY"
    try:
        typname, dims = _column(plpy, str(td["relid"]), vector_col)
        vector = _embed(plpy, gd, [str(text)], "document", model, dims)[0]
    except QwenPGError as exc:
        raise_pg(plpy, exc)
    new[vector_col] = vector if typname.startswith("_") else format_vector(vector)
    return "MODIFY"


def selftest() -> dict[str, Any]:
    """What ``_selftest()`` reports once the runtime imported: versions and locations."""
    import dashscope  # the SDK must be importable by the server's Python too

    from .. import __file__ as package_file
    from .. import __version__

    return {
        "ok": True,
        "package_version": __version__,
        "package_file": package_file,
        "dashscope_version": str(getattr(dashscope, "__version__", "?")),
    }
