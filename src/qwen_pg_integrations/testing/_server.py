"""HTTP plumbing of the emulator: a threaded HTTP/1.1 server and its request handler.

The handler reads and records the request, applies latency, auth and injected faults, then hands
the body to the endpoint code (``_native_chat``, ``_native_embed``, ``_compat``) and writes JSON
(``Content-Length``, keep-alive) or SSE (chunked transfer encoding).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from ._records import RecordedRequest
from ._wire import ApiError, Dropped, dumps, native_error_body, openai_error, sse_event
from .faults import message_for

if TYPE_CHECKING:
    from ._roles import Backend
    from .faults import Fault

__all__ = ["EmulatorServer", "Handler"]

NATIVE_ROUTES = {
    "/api/v1/services/aigc/text-generation/generation": "generation",
    "/api/v1/services/embeddings/text-embedding/text-embedding": "embedding",
    "/api/v1/services/rerank/text-rerank/text-rerank": "rerank",
}
COMPAT_ROUTES = {
    "/compatible-mode/v1/chat/completions": "generation",
    "/compatible-mode/v1/embeddings": "embedding",
    # self-hosted OpenAI-compatible servers (protocol doc 13), no key needed
    "/vllm/v1/chat/completions": "generation",
    "/vllm/v1/embeddings": "embedding",
    "/ollama/v1/chat/completions": "generation",
    "/ollama/v1/embeddings": "embedding",
}
SELF_HOSTED = ("/vllm/", "/ollama/")
_SSE_TYPE = "text/event-stream;charset=UTF-8"


class EmulatorServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer that knows its emulator and can close idle keep-alive sockets."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], emulator: Backend) -> None:
        super().__init__(address, Handler)
        self.emulator = emulator
        self._sockets: set[socket.socket] = set()
        self._sockets_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._sockets_lock:
            self._sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._sockets_lock:
            self._sockets.discard(request)
        super().shutdown_request(request)

    def close_all(self) -> None:
        """Shut every open connection down (used by ``stop()``)."""
        with self._sockets_lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Answered(Exception):
    """A fault already answered; stop processing (the connection stays usable)."""


class Handler(BaseHTTPRequestHandler):
    """One HTTP exchange: reads and records the request, writes JSON or SSE answers."""

    protocol_version = "HTTP/1.1"
    server: EmulatorServer
    server_version = "DashScopeEmulator/1"

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""

    # --- reading -------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def do_GET(self) -> None:
        """Answer GETs with 404 (only POST endpoints are emulated)."""
        self._handle("GET")

    def do_POST(self) -> None:
        """Entry point of every emulated API call."""
        self._handle("POST")

    def _handle(self, method: str) -> None:
        emu = self.server.emulator
        raw = self._read_body() if method == "POST" else b""
        path = re.sub(r"/+", "/", self.path.split("?", 1)[0]).rstrip("/")
        protocol = "openai" if path in COMPAT_ROUTES else "native"
        endpoint = NATIVE_ROUTES.get(path) or COMPAT_ROUTES.get(path) or "unknown"
        try:
            body: Any = json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            body = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        if protocol == "openai":
            stream = isinstance(body, dict) and body.get("stream") is True
        else:
            stream = headers.get("x-dashscope-sse", "").lower() == "enable" or (
                "text/event-stream" in headers.get("accept", "")
            )
        model = body.get("model") if isinstance(body, dict) else None
        self.record = RecordedRequest(
            method=method,
            path=path,
            headers=headers,
            body=body,
            raw=raw,
            stream=stream,
            endpoint=endpoint,
            model=model if isinstance(model, str) else None,
            protocol=protocol,
            request_id=str(uuid.uuid4()),
        )
        emu._log.add(self.record)
        try:
            self._dispatch(emu, body)
        except _Answered:
            pass
        except Dropped:
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # an emulator bug: answer 500 and keep it for the test to see
            emu._internal_errors.append(f"{type(exc).__name__}: {exc}")
            if self.record.status is None:
                err = ApiError(500, "InternalError", f"Emulator error: {type(exc).__name__}: {exc}")
                self.send_error_answer(err)
            else:
                self.close_connection = True

    def _dispatch(self, emu: Backend, body: Any) -> None:
        rec = self.record
        if emu.latency:
            time.sleep(emu.latency)
        if rec.endpoint == "unknown" or rec.method != "POST":
            self.send_error_answer(ApiError(404, "NotFound", f"No API at {rec.path}."))
            return
        self_hosted = rec.path.startswith(SELF_HOSTED)  # vLLM without --api-key, Ollama
        if not self_hosted and self.headers.get("Authorization", "") != f"Bearer {emu.api_key}":
            self.send_error_answer(ApiError(401, "InvalidApiKey", "Invalid API-key provided."))
            return
        if not emu._enter():
            code = "Throttling.RateQuota"
            self.send_error_answer(ApiError(429, code, message_for(code)))
            return
        try:
            self._answer(emu, body)
        finally:
            emu._leave()

    def _answer(self, emu: Backend, body: Any) -> None:
        fault = emu._faults.take(self.record.endpoint, self.record.stream)
        if fault is not None:
            self._apply_fault(emu, fault)
        if body is None:
            msg = "Required body invalid, please check the request body format."
            self.send_error_answer(ApiError(400, "InvalidParameter", msg))
            return
        try:
            emu._answer(self, body, fault)
        except ApiError as err:
            self.send_error_answer(err, fault)

    def _apply_fault(self, emu: Backend, fault: Fault) -> None:
        self.record.fault = repr(fault)
        if fault.latency:
            time.sleep(fault.latency)
        if fault.timeout:
            emu._stopping.wait(fault.hang_seconds)
            raise Dropped
        if fault.drop and (fault.after_chunks is None or not self.record.stream):
            raise Dropped
        error = fault.error()
        if error is not None:
            self.send_error_answer(ApiError(*error), fault)
            raise _Answered

    # --- writing -------------------------------------------------------------------------

    def _headers(self, status: int, content_type: str, length: int | None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("X-Request-Id", self.record.request_id)
        if length is None:
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Cache-Control", "no-cache")
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        self.record.status = status

    def send_json(self, status: int, payload: Any) -> None:
        """A JSON answer with ``Content-Length`` (the connection stays open)."""
        data = dumps(payload)
        self._headers(status, "application/json", len(data))
        self.wfile.write(data)
        self.wfile.flush()

    def start_sse(self, status: int = 200) -> None:
        """Send SSE response headers (chunked)."""
        self._headers(status, _SSE_TYPE, None)

    def write_chunk(self, data: bytes) -> None:
        """One HTTP chunk."""
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def end_chunks(self) -> None:
        """The terminating zero-length chunk."""
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def send_error_answer(self, err: ApiError, fault: Fault | None = None) -> None:
        """An error in the shape of the request's protocol (native JSON / SSE, or OpenAI)."""
        emu = self.server.emulator
        rec = self.record
        if rec.protocol == "openai":
            self.send_json(err.status, openai_error(err, rec.request_id))
            return
        body = native_error_body(err.code, err.message, rec.request_id)
        shape = fault.sse_error if fault is not None else emu.sse_error
        if not rec.stream or shape == "json":
            self.send_json(err.status, body)
            return
        self.start_sse(err.status if shape == "status" else 200)
        self.write_chunk(sse_event(1, body, status=err.status, event="error"))
        self.end_chunks()

    def stream_native(self, events: list[dict[str, Any]], fault: Fault | None) -> None:
        """Write native SSE events, honouring mid-stream error and drop faults."""
        emu = self.server.emulator
        midstream = fault.midstream_error() if fault is not None else None
        stop_after = len(events)
        if fault is not None and (midstream is not None or fault.drop):
            default = 1 if midstream is not None else len(events)
            stop_after = min(
                len(events), fault.after_chunks if fault.after_chunks is not None else default
            )
        self.start_sse(200)
        for n, payload in enumerate(events[:stop_after], start=1):
            if emu.stream_delay and n > 1:
                time.sleep(emu.stream_delay)
            self.write_chunk(sse_event(n, payload))
        if midstream is not None:
            status, code, message = midstream
            body = native_error_body(code, message, self.record.request_id)
            self.write_chunk(sse_event(stop_after + 1, body, status=status, event="error"))
        elif fault is not None and fault.drop:
            raise Dropped
        self.end_chunks()
