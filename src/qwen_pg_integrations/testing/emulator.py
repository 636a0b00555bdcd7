"""A local DashScope: the HTTP API of Alibaba Cloud Model Studio on 127.0.0.1, for offline tests.

The unchanged ``dashscope`` SDK (checked with 1.22.2 and 2.0.2), apps built on it, and
OpenAI-compatible clients talk to it as they would to the service. Point them at
:attr:`DashScopeEmulator.base_url` (SDK ``base_address=``, or ``DASHSCOPE_HTTP_BASE_URL`` set
*before* ``import dashscope``) with ``api_key=emu.api_key``.

Example:
    >>> from qwen_pg_integrations.testing import DashScopeEmulator, ScriptedReply
    >>> import dashscope
    >>> with DashScopeEmulator() as emu:
    ...     emu.script(ScriptedReply(text="hello"))
    ...     r = dashscope.Generation.call(model="qwen-plus", prompt="hi", api_key=emu.api_key,
    ...                                   base_address=emu.base_url)
    ...     r.output.text
    'hello'

Endpoints (POST; anything else -> 404 JSON):

* ``/api/v1/services/aigc/text-generation/generation`` -- native chat, JSON or SSE;
* ``/api/v1/services/embeddings/text-embedding/text-embedding`` -- native embeddings;
* ``/api/v1/services/rerank/text-rerank/text-rerank`` -- native text rerank (``_rerank``);
* ``/compatible-mode/v1/chat/completions`` and ``/compatible-mode/v1/embeddings`` -- OpenAI shapes.

What it reproduces:

* Transport: threaded HTTP/1.1, keep-alive with ``Content-Length`` on JSON answers, chunked SSE,
  ``X-Request-Id`` on every answer (equal to the body's ``request_id``); ASCII-escaped and raw
  UTF-8 JSON bodies; unknown parameters ignored.
* Auth: ``Authorization: Bearer <api_key>``; anything else -> 401 ``InvalidApiKey``,
  ``Invalid API-key provided.`` (OpenAI shape ``invalid_api_key`` in compatible mode).
* Streaming iff ``X-DashScope-SSE: enable`` or ``Accept: text/event-stream`` (never a body field).
  Events are byte-exact ``id:N\nevent:result\n:HTTP_STATUS/200\ndata:<one-line JSON>\n\n``;
  usage on every event; ``finish_reason`` is the string ``"null"`` until the last event
  (``stop``/``length``/``tool_calls``); ``incremental_output`` gives deltas, otherwise cumulative
  text, reasoning and tool calls; ``role`` and ``content`` are always present (``""`` next to tool
  calls); tool calls carry ``index``/``id``/``type``/``function`` and later fragments keep
  ``index``. Text is cut every ``chunk_size`` characters (default 4), so arguments such as
  ``{"city": "New York"}`` arrive in several fragments.
* Errors: JSON ``{"request_id", "code", "message"}``; before a stream starts, the real status plus
  one ``event:error`` frame (``sse_error="status"``; ``"200"`` and ``"json"`` are the other shapes
  seen in production); mid-stream ``event:error`` frames with ``:HTTP_STATUS/<status>`` and both
  ``code`` and ``message`` (the SDK reports them as status 400).
* Validation (400 ``InvalidParameter`` with the service's texts): temperature, top_p, n,
  max_tokens, presence/repetition penalties, thinking rules, ``json_object`` without the word
  "json", tool messages without a preceding ``tool_calls`` turn, non-string content; embedding
  batch size, empty text, text length, dimension and ``text_type`` per model from
  :data:`qwen_pg_integrations.dashscope.models.EMBEDDING_MODELS`. See ``_native_chat`` and
  ``_native_embed`` for the choices made where the service's text is not documented.
* ``max_tokens`` truncates the content (``finish_reason: "length"``), ``stop`` cuts it,
  ``thinking_budget`` cuts the reasoning; thinking streams ``reasoning_content`` first and reports
  ``usage.output_tokens_details.reasoning_tokens``.

Replies come from :class:`ScriptedReply` scripts (FIFO) or the deterministic default policy of
``_policy`` (tool calls with schema-valid arguments when a tool is named or clearly asked for,
otherwise an answer quoting the best-matching context sentence, JSON for ``response_format``).
Embeddings are deterministic feature-hashed vectors (``_embed``): texts sharing words or
characters are close. Faults (:class:`Fault`): error status, latency, dropped connection, hang,
mid-stream error; plus ``latency``, ``stream_delay`` and ``max_in_flight`` on the emulator.

Not emulated: multimodal generation, asynchronous tasks (``/tasks``), ``logprobs``, ``n > 1``
(one choice is returned), ``enable_search`` results, rate-limit headers.
"""

from __future__ import annotations

import threading
from typing import Any, Literal

from ._compat import answer_compat
from ._embed import embed_texts
from ._native_chat import parse_native_chat, render_body, render_events
from ._native_embed import embed_response, parse_embedding
from ._policy import ChatRequest, Plan, default_plan, finalize, plan_from_script
from ._records import RecordedRequest, RequestLog
from ._rerank import rerank_response
from ._server import EmulatorServer, Handler
from ._wire import ApiError
from .faults import Endpoint, Fault, FaultQueue, message_for
from .scripts import ScriptedReply, ScriptQueue

__all__ = ["DashScopeEmulator"]


class DashScopeEmulator:
    """A threaded local DashScope HTTP server (context manager).

    Args:
        api_key: The only key accepted (``Authorization: Bearer <api_key>``).
        host: Interface to bind (loopback by default).
        port: TCP port; 0 picks a free one.
        chunk_size: Characters per streamed piece (content, reasoning and tool arguments).
        latency: Seconds slept before every answer.
        stream_delay: Seconds slept between SSE events.
        sse_error: Shape of errors answered to streaming native requests: ``"status"`` (real
            status + one SSE error frame), ``"200"`` (200 + frame) or ``"json"``.
        max_in_flight: When set, an authenticated call arriving while this many calls are being
            answered gets 429 ``Throttling.RateQuota`` (a concurrency limit, like the service's
            rate limits); ``peak_in_flight`` reports the highest concurrency seen.
        log_limit: The request log keeps the newest ``log_limit`` requests (None: all).

    Attributes:
        base_url: ``http://host:port/api/v1`` -- the SDK's ``base_address`` / our ``base_url``.
        compat_base_url: ``http://host:port/compatible-mode/v1`` for OpenAI-compatible clients.
        vllm_base_url / ollama_base_url: ``http://host:port/vllm/v1`` and ``.../ollama/v1``:
            the same models in the dialects of a self-hosted vLLM and Ollama server (protocol
            doc 13: no key, thinking switch ``chat_template_kwargs`` / ``reasoning_effort``,
            reasoning in ``reasoning``; any model name; embeddings of 1024 dims, vLLM honours
            ``dimensions``, Ollama ignores it).
        vllm_tool_calling: ``False`` emulates vLLM started without
            ``--enable-auto-tool-choice``: requests with tools get its 400.
    """

    def __init__(
        self,
        api_key: str = "sk-emulator",
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        chunk_size: int = 4,
        latency: float = 0.0,
        stream_delay: float = 0.0,
        sse_error: Literal["status", "200", "json"] = "status",
        max_in_flight: int | None = None,
        log_limit: int | None = 10_000,
    ) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1.")
        self.api_key = api_key
        self.host = host
        self.chunk_size = chunk_size
        self.latency = latency
        self.stream_delay = stream_delay
        self.sse_error = sse_error
        self.max_in_flight = max_in_flight
        self._in_flight = 0
        self._peak_in_flight = 0
        self._in_flight_lock = threading.Lock()
        self._requested_port = port
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.vllm_tool_calling = True
        self._log = RequestLog(log_limit)
        self._scripts = ScriptQueue()
        self._faults = FaultQueue()
        self._internal_errors: list[str] = []

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> DashScopeEmulator:
        """Bind and serve in a background thread; returns ``self``."""
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = EmulatorServer((self.host, self._requested_port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"DashScopeEmulator:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end hung calls and close open connections."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.close_all()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> DashScopeEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = self.base_url if self._server is not None else "stopped"
        return f"DashScopeEmulator({state})"

    # --- addresses -----------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (after ``start()``)."""
        if self._server is None:
            raise RuntimeError("The emulator is not running; call start() or use 'with'.")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://host:port`` (no path)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """Native API base, ``http://host:port/api/v1``."""
        return self.url + "/api/v1"

    @property
    def compat_base_url(self) -> str:
        """OpenAI-compatible base, ``http://host:port/compatible-mode/v1``."""
        return self.url + "/compatible-mode/v1"

    @property
    def vllm_base_url(self) -> str:
        """A self-hosted vLLM server's OpenAI base, ``http://host:port/vllm/v1``."""
        return self.url + "/vllm/v1"

    @property
    def ollama_base_url(self) -> str:
        """A self-hosted Ollama server's OpenAI base, ``http://host:port/ollama/v1``."""
        return self.url + "/ollama/v1"

    # --- scripting, faults, log ----------------------------------------------------------

    def script(self, *replies: ScriptedReply) -> None:
        """Queue scripted replies for the next generation calls (FIFO)."""
        for reply in replies:
            self._scripts.add(reply)

    def inject(self, fault: Fault, times: int = 1, endpoint: Endpoint | None = None) -> None:
        """Make the next ``times`` calls to ``endpoint`` (any if None) fail as ``fault`` says."""
        self._faults.add(fault, times, endpoint)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a copy)."""
        return self._log.snapshot()

    @property
    def last_request(self) -> RecordedRequest:
        """The most recent request (raises if there is none)."""
        items = self._log.snapshot()
        if not items:
            raise LookupError("The emulator has received no request yet.")
        return items[-1]

    def requests_for(self, endpoint: str) -> list[RecordedRequest]:
        """The logged requests of one endpoint (``"generation"``, ``"embedding"``, ``"rerank"``)."""
        return [r for r in self._log.snapshot() if r.endpoint == endpoint]

    @property
    def peak_in_flight(self) -> int:
        """The highest number of authenticated calls answered at the same time."""
        return self._peak_in_flight

    def _enter(self) -> bool:
        with self._in_flight_lock:
            if self.max_in_flight is not None and self._in_flight >= self.max_in_flight:
                return False
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
            return True

    def _leave(self) -> None:
        with self._in_flight_lock:
            self._in_flight -= 1

    @property
    def pending_scripts(self) -> int:
        """Scripted replies not consumed yet."""
        return len(self._scripts)

    @property
    def pending_faults(self) -> int:
        """Fault uses not consumed yet."""
        return self._faults.pending()

    @property
    def internal_errors(self) -> list[str]:
        """Unexpected exceptions raised inside the emulator (answered as 500); empty if healthy."""
        return list(self._internal_errors)

    def clear_requests(self) -> None:
        """Empty the request log."""
        self._log.clear()

    def reset(self) -> None:
        """Clear scripts, faults and the request log."""
        self._scripts.clear()
        self._faults.clear()
        self._log.clear()
        self._internal_errors.clear()
        self._peak_in_flight = 0

    def embed(self, texts: list[str], dimension: int = 1024) -> list[list[float]]:
        """The vectors the emulator returns for ``texts`` (for assertions; no HTTP)."""
        return embed_texts(list(texts), dimension)

    # --- endpoint dispatch (called by the handler thread) --------------------------------

    def _answer(self, handler: Handler, body: Any, fault: Fault | None) -> None:
        rec = handler.record
        if rec.protocol == "openai":
            answer_compat(self, handler, body, fault)
            return
        if rec.endpoint == "embedding":
            handler.send_json(200, embed_response(parse_embedding(body), rec.request_id))
            return
        if rec.endpoint == "rerank":
            handler.send_json(200, rerank_response(body, rec.request_id))
            return
        call = parse_native_chat(body, rec.stream)
        plan = self._plan(call.req)
        if not rec.stream:
            handler.send_json(200, render_body(plan, call, rec.request_id))
            return
        size = plan.chunk_size or self.chunk_size
        handler.stream_native(render_events(plan, call, rec.request_id, size), fault)

    def _plan(self, req: ChatRequest) -> Plan:
        scripted = self._scripts.take(req.model)
        if scripted is None:
            return finalize(default_plan(req), req)
        if scripted.error is not None:
            status, code = scripted.error[0], scripted.error[1]
            message = scripted.error[2] if len(scripted.error) > 2 else message_for(code)
            raise ApiError(status, code, message)
        plan = plan_from_script(scripted, req)
        return finalize(plan, req, scripted_finish=scripted.finish_reason is not None)
