"""Issue 7: the API key and DSN passwords never show up anywhere a user or a tracer can see.

Scanned for the secret: ``repr``/``str`` of every public object, every log record (all loggers
at DEBUG, including ``dashscope``, ``urllib3``, ``psycopg``, ``psycopg.pool``), exception
messages with their whole chain and formatted tracebacks, and LangSmith-style trace data
(``_get_ls_params``, ``dict()``/``model_dump()``, ``langchain_core.load.dumps``, the
``serialized`` / ``invocation_params`` / ``metadata`` a callback handler receives; LlamaIndex
``to_dict``/``to_json``/``model_dump``).

The database password runs against a private server with a scram-sha-256 role on its unix
socket (the shared test server trusts everyone).
"""

from __future__ import annotations

import asyncio
import logging
import traceback
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from _rel_support import dedicated_server
from qwen_pg_integrations.dashscope import ChatClient, DashScopeClient, EmbeddingClient
from qwen_pg_integrations.errors import (
    APIConnectionError,
    AuthenticationError,
    DatabaseConnectionError,
    QwenPGError,
)
from qwen_pg_integrations.pg import PGStore, Record
from qwen_pg_integrations.testing import DashScopeEmulator
from qwen_pg_integrations.types import ChatMessage

KEY = f"sk-S3CRET{uuid.uuid4().hex}"
PASSWORD = f"pw-S3CRET{uuid.uuid4().hex[:16]}"
SECRETS = (KEY, PASSWORD, KEY[3:20], PASSWORD[3:20])
LOGGERS = (
    "",
    "dashscope",
    "urllib3",
    "psycopg",
    "psycopg.pool",
    "aiohttp",
    "asyncio",
    "langchain",
    "langchain_core",
    "llama_index",
    "qwen_pg_integrations",
    "httpx",
)


# --- scanning ---------------------------------------------------------------------------------


def _exception_text(exc: BaseException) -> str:
    parts: list[str] = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        parts += [str(e), repr(e), repr(e.args)]
        if isinstance(e, QwenPGError):  # our own attributes (request_id, service_message, ...)
            parts.append(repr(vars(e)))
        todo += [e.__cause__, e.__context__]
    return "\n".join(parts)


def _text(obj: Any) -> str:
    if isinstance(obj, BaseException):
        return _exception_text(obj)
    return f"{obj!s}\n{obj!r}"


def assert_clean(label: str, *objs: Any) -> None:
    """Fail if any secret (or a long piece of it) appears in the text of ``objs``."""
    for obj in objs:
        text = _text(obj)
        for secret in SECRETS:
            assert secret not in text, f"{label}: secret found in {text[:2000]}"


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[str] = []
        self.formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # a record that cannot be formatted is still scanned raw
            line = repr(record.msg)
        self.records.append(f"{line} | args={record.args!r} | extra={record.__dict__!r}")


@pytest.fixture
def logs() -> Iterator[_Capture]:
    """Every log record of every logger at DEBUG, scanned for secrets at teardown."""
    handler = _Capture()
    saved = {name: logging.getLogger(name).level for name in LOGGERS}
    root = logging.getLogger()
    root.addHandler(handler)
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
    assert handler.records, "nothing was logged: the capture is not working"
    assert_clean("log records", "\n".join(handler.records))


@pytest.fixture
def emu() -> Iterator[DashScopeEmulator]:
    with DashScopeEmulator(api_key=KEY) as e:
        yield e


@pytest.fixture
def other_emu() -> Iterator[DashScopeEmulator]:
    """An emulator that rejects KEY (401)."""
    with DashScopeEmulator(api_key="sk-some-other-key") as e:
        yield e


def _dead_url() -> str:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/api/v1"


def test_the_scanner_finds_a_secret() -> None:
    """The scan itself works (a test that cannot fail proves nothing)."""
    for leak in (KEY, f"key={PASSWORD}", RuntimeError(f"x {KEY[3:20]} y")):
        with pytest.raises(AssertionError):
            assert_clean("self-test", leak)
    try:
        try:
            raise ValueError(PASSWORD)
        except ValueError as inner:
            raise QwenPGError("clean message") from inner
    except QwenPGError as outer:
        with pytest.raises(AssertionError):
            assert_clean("chained", outer)


# --- the DashScope core --------------------------------------------------------------------


def test_core_clients_never_show_the_key(
    emu: DashScopeEmulator, other_emu: DashScopeEmulator, logs: _Capture
) -> None:
    client = DashScopeClient(api_key=KEY, base_url=emu.base_url, max_retries=1, backoff_base=0.0)
    emb = EmbeddingClient("text-embedding-v4", dimensions=64, client=client)
    chat = ChatClient("qwen-plus", client=client)
    result = emb.embed(["pgvector stores vectors"])
    reply = chat.chat([ChatMessage(role="user", content="hi")])
    chunks = list(chat.stream([ChatMessage(role="user", content="hi")]))
    assert_clean("core objects", client, emb, chat, client.api_key, result, reply, chunks)
    assert "**" in repr(client)
    assert emu.last_request.headers["authorization"] == f"Bearer {KEY}"  # the key is really sent

    for base_url, expected in (
        (other_emu.base_url, AuthenticationError),
        (_dead_url(), APIConnectionError),
    ):
        bad = DashScopeClient(api_key=KEY, base_url=base_url, max_retries=1, backoff_base=0.0)
        for call in (
            lambda bad=bad: EmbeddingClient("text-embedding-v4", client=bad).embed_query("x"),
            lambda bad=bad: ChatClient("qwen-plus", client=bad).chat(
                [ChatMessage(role="user", content="x")]
            ),
            lambda bad=bad: list(
                ChatClient("qwen-plus", client=bad).stream([ChatMessage(role="user", content="x")])
            ),
            lambda bad=bad: asyncio.run(
                EmbeddingClient("text-embedding-v4", client=bad).aembed_query("x")
            ),
            lambda bad=bad: asyncio.run(
                ChatClient("qwen-plus", client=bad).achat([ChatMessage(role="user", content="x")])
            ),
        ):
            with pytest.raises(expected) as info:
                call()
            assert_clean(f"{expected.__name__} from {base_url}", info.value)


# --- LangChain --------------------------------------------------------------------------------


class _Recorder:
    """A LangChain callback handler keeping everything a tracer (LangSmith) would receive."""

    def __init__(self) -> None:
        from langchain_core.callbacks import BaseCallbackHandler

        seen: list[Any] = []

        class Handler(BaseCallbackHandler):
            def on_chat_model_start(self, serialized: Any, messages: Any, **kw: Any) -> None:
                seen.append(("chat_start", serialized, kw))

            def on_llm_start(self, serialized: Any, prompts: Any, **kw: Any) -> None:
                seen.append(("llm_start", serialized, kw))

            def on_llm_end(self, response: Any, **kw: Any) -> None:
                seen.append(("llm_end", response, kw))

            def on_llm_error(self, error: BaseException, **kw: Any) -> None:
                seen.append(("llm_error", _exception_text(error), kw))

            def on_retriever_start(self, serialized: Any, query: str, **kw: Any) -> None:
                seen.append(("retriever_start", serialized, kw))

            def on_chain_start(self, serialized: Any, inputs: Any, **kw: Any) -> None:
                seen.append(("chain_start", serialized, kw))

        self.handler = Handler()
        self.seen = seen


def test_langchain_chat_and_embeddings_never_show_the_key(
    emu: DashScopeEmulator, other_emu: DashScopeEmulator, logs: _Capture
) -> None:
    from langchain_core.load import dumps

    from qwen_pg_integrations.langchain import ChatQwen, DashScopeEmbeddings

    llm = ChatQwen(model="qwen-plus", api_key=KEY, base_url=emu.base_url, temperature=0.1)
    emb = DashScopeEmbeddings(model="text-embedding-v4", api_key=KEY, base_url=emu.base_url)
    rec = _Recorder()
    answer = llm.invoke("hi", config={"callbacks": [rec.handler]})
    streamed = list(llm.stream("hi", config={"callbacks": [rec.handler]}))
    vectors = emb.embed_documents(["a", "b"])
    assert rec.seen and any(kind == "chat_start" for kind, *_ in rec.seen)
    assert_clean(
        "langchain objects and traces",
        llm,
        emb,
        answer,
        streamed,
        vectors[0][:3],
        rec.seen,
        llm._get_ls_params(),
        llm._identifying_params,
        getattr(llm, "asdict", llm.dict)(),
        llm.model_dump(),
        emb.model_dump(),
        dumps(llm),
        dumps(emb),
        llm.to_json(),
        llm.model_dump_json(),
        emb.model_dump_json(),
    )
    # errors, also as a tracer sees them
    bad_llm = ChatQwen(model="qwen-plus", api_key=KEY, base_url=other_emu.base_url, max_retries=0)
    bad_emb = DashScopeEmbeddings(api_key=KEY, base_url=other_emu.base_url, max_retries=0)
    rec2 = _Recorder()
    with pytest.raises(AuthenticationError) as e1:
        bad_llm.invoke("hi", config={"callbacks": [rec2.handler]})
    with pytest.raises(AuthenticationError) as e2:
        bad_emb.embed_query("hi")
    assert any(kind == "llm_error" for kind, *_ in rec2.seen)
    assert_clean("langchain errors", e1.value, e2.value, rec2.seen)


# --- LlamaIndex -------------------------------------------------------------------------------


def test_llama_index_llm_and_embedding_never_show_the_key(
    emu: DashScopeEmulator, other_emu: DashScopeEmulator, logs: _Capture
) -> None:
    from llama_index.core.llms import ChatMessage as LIMessage

    from qwen_pg_integrations.llama_index import DashScopeEmbedding, Qwen

    llm = Qwen(model="qwen-plus", api_key=KEY, base_url=emu.base_url)
    emb = DashScopeEmbedding(model_name="text-embedding-v4", api_key=KEY, base_url=emu.base_url)
    reply = llm.chat([LIMessage(role="user", content="hi")])
    vec = emb.get_text_embedding("pgvector")
    assert_clean(
        "llama_index objects",
        llm,
        emb,
        reply,
        vec[:3],
        llm.metadata,
        llm.model_dump(),
        emb.model_dump(),
        llm.to_dict(),
        emb.to_dict(),
        llm.to_json(),
        emb.to_json(),
    )
    bad = Qwen(model="qwen-plus", api_key=KEY, base_url=other_emu.base_url, max_retries=0)
    with pytest.raises(AuthenticationError) as info:
        bad.complete("hi")
    bad_emb = DashScopeEmbedding(api_key=KEY, base_url=other_emu.base_url, max_retries=0)
    with pytest.raises(AuthenticationError) as info2:
        bad_emb.get_query_embedding("hi")
    assert_clean("llama_index errors", info.value, info2.value)


# --- PostgreSQL passwords ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def password_dsns() -> Iterator[dict[str, str]]:
    """DSNs of a scram-sha-256 role on a private server's socket (URL and key=value forms)."""
    with dedicated_server() as srv:
        with psycopg.connect(srv.dsn, autocommit=True) as conn:
            conn.execute("SET password_encryption = 'scram-sha-256'")
            conn.execute(
                sql.SQL("CREATE ROLE rel_user LOGIN PASSWORD {}").format(sql.Literal(PASSWORD))
            )
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute("GRANT CREATE, USAGE ON SCHEMA public TO rel_user")
            socket_dir = conn.info.host
        hba = srv.pgdata / "pg_hba.conf"
        hba.write_text("local all rel_user scram-sha-256\n" + hba.read_text())
        srv.reload()
        dsns = {
            "url": f"postgresql://rel_user:{PASSWORD}@/postgres?host={socket_dir}",
            "kv": f"host={socket_dir} dbname=postgres user=rel_user password={PASSWORD}",
            "url_wrong": f"postgresql://rel_user:{PASSWORD}x@/postgres?host={socket_dir}",
            "kv_wrong": f"host={socket_dir} dbname=postgres user=rel_user password='{PASSWORD}x'",
            "url_down": f"postgresql://rel_user:{PASSWORD}@/postgres?host=/nonexistent",
        }
        # the role really needs its password
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(dsns["url_wrong"]).close()
        yield dsns


@pytest.mark.parametrize("form", ["url", "kv"])
def test_store_with_a_passworded_dsn_never_shows_the_password(
    form: str, password_dsns: dict[str, str], emu: DashScopeEmulator, logs: _Capture
) -> None:
    from langchain_core.load import dumps

    from qwen_pg_integrations.langchain import DashScopeEmbeddings
    from qwen_pg_integrations.llama_index import PGVectorStore as LIStore

    dsn = password_dsns[form]
    store = PGStore(dsn, table_name=f"secret_{form}", dimension=4)
    store.add([Record("a", "alpha", {"k": 1}, [1.0, 0.0, 0.0, 0.0])])
    hits = store.search([1.0, 0.0, 0.0, 0.0], k=1)
    ahits = asyncio.run(store.asearch([1.0, 0.0, 0.0, 0.0], k=1))
    assert hits[0].record.id == ahits[0].record.id == "a"
    li = LIStore(connection=dsn, table_name=f"secret_{form}", embed_dim=4)
    assert_clean(
        "stores with a password",
        store,
        store._engine,
        hits,
        li,
        li.client,
        li.model_dump(),
        li.to_dict(),
        li.to_json(),
    )
    try:
        from qwen_pg_integrations.langchain import PGVectorStore as LCStore
    except ImportError:  # the LangChain store is not in this checkout yet
        return
    emb = DashScopeEmbeddings(
        model="text-embedding-v4", dimensions=64, api_key=KEY, base_url=emu.base_url
    )
    lc = LCStore(emb, connection=dsn, table_name=f"secret_lc_{form}")
    lc.add_texts(["pgvector stores vectors"])
    rec = _Recorder()
    docs = lc.as_retriever().invoke("vectors", config={"callbacks": [rec.handler]})
    assert docs and rec.seen
    assert_clean(
        "langchain store with a password", lc, lc.as_retriever(), rec.seen, dumps(lc.as_retriever())
    )


@pytest.mark.parametrize("which", ["url_wrong", "kv_wrong", "url_down"])
def test_connection_errors_never_show_the_password(
    which: str, password_dsns: dict[str, str], logs: _Capture
) -> None:
    dsn = password_dsns[which]
    store = PGStore(dsn, table_name="secret_err", dimension=4)
    assert_clean("store repr", store)
    with pytest.raises(DatabaseConnectionError) as info:
        store.count()
    assert_clean("sync connection error", info.value)
    with pytest.raises(DatabaseConnectionError) as ainfo:
        asyncio.run(store.acount())
    assert_clean("async connection error", ainfo.value)
    assert "***" in str(info.value) or "password" not in dsn


def test_connection_error_holds_no_reference_to_the_password(
    password_dsns: dict[str, str],
) -> None:
    store = PGStore(password_dsns["url_wrong"], table_name="secret_err", dimension=4)
    with pytest.raises(DatabaseConnectionError) as info:
        store.count()
    chain = []
    e: BaseException | None = info.value
    while e is not None:
        chain.append(repr(vars(e)))
        e = e.__cause__ or e.__context__
    assert PASSWORD not in "\n".join(chain)


def test_sql_installer_never_shows_the_key_or_the_password(
    password_dsns: dict[str, str], logs: _Capture
) -> None:
    from qwen_pg_integrations.sql import install, status

    for which in ("url", "url_wrong"):
        with pytest.raises(QwenPGError) as info:  # no plpython3u here / wrong password
            install(password_dsns[which], api_key=KEY, base_url="http://127.0.0.1:9/api/v1")
        assert_clean(f"installer error ({which})", info.value)
    try:
        assert_clean("installer status", status(password_dsns["url"]))
    except QwenPGError as exc:
        assert_clean("installer status error", exc)
