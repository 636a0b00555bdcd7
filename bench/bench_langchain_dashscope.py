"""Benchmark: our LangChain DashScope classes vs langchain-community's, same process, same emulator.

1. Embeddings: 1,000 texts on ``text-embedding-v2`` (25 texts per call, so 40 calls each), with the
   emulator adding ``--latency`` seconds (default 0.1) to every call. Ours
   (``qwen_pg_integrations.langchain.DashScopeEmbeddings``) vs langchain-community
   ``DashScopeEmbeddings``. Printed: seconds per run (best of ``--repeat``) and the ratio.
2. Chat streaming: time to first token and total time of one streamed reply (``--reply-chars``
   characters in ``--chunk-chars``-character SSE pieces), ours (``ChatQwen.stream``) vs
   ``ChatTongyi.stream`` as users build it (no ``streaming=True``) and with ``streaming=True``.

Run it with ``bench/run-langchain-dashscope`` (builds ``.bench-venv`` with the package and the
anchors of ``bench/requirements-langchain-anchors.txt``; the anchors are not dependencies of the
package). ``--quick`` makes a small smoke run; ``--allow-missing-anchors`` runs our side alone
when langchain-community is not installed (used by the test suite's smoke test).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ.setdefault("no_proxy", "127.0.0.1,localhost")

from qwen_pg_integrations.langchain import ChatQwen, DashScopeEmbeddings
from qwen_pg_integrations.testing import DashScopeEmulator, Fault, ScriptedReply

EMBED_MODEL = "text-embedding-v2"  # the newest model langchain-community's wrapper batches right
CHAT_MODEL = "qwen-plus"


def _texts(n: int) -> list[str]:
    topics = [
        "PostgreSQL",
        "pgvector",
        "PolarDB",
        "Qwen",
        "DashScope",
        "HNSW",
        "向量检索",
        "通义千问",
    ]
    return [
        f"Document {i} about {topics[i % len(topics)]}: row {i} of the corpus." for i in range(n)
    ]


def _best(runs: int, fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _community() -> tuple[Any, Any] | None:
    try:
        from langchain_community.chat_models.tongyi import ChatTongyi
        from langchain_community.embeddings import DashScopeEmbeddings as CommunityEmbeddings
    except ImportError:
        return None
    return CommunityEmbeddings, ChatTongyi


_SERVE = """
import sys
from qwen_pg_integrations.testing import DashScopeEmulator
emu = DashScopeEmulator(latency=float(sys.argv[1])).start()
print(emu.base_url, emu.api_key, flush=True)
sys.stdin.read()  # serve until the parent closes our stdin
emu.stop()
"""


class _RemoteEmulator:
    """The emulator in its own process, as the real service is: its CPU work (hashing vectors,
    encoding JSON) does not compete for the benchmark process's GIL."""

    def __init__(self, latency: float) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _SERVE, str(latency)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        self.base_url, self.api_key = self._proc.stdout.readline().split()

    def close(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        self._proc.wait(timeout=10)


def _point_sdk_at(emu: DashScopeEmulator | _RemoteEmulator) -> None:
    # langchain-community relies on the SDK's process-wide endpoint (read at import time from
    # DASHSCOPE_HTTP_BASE_URL); the module attribute is read at call time. Ours passes it per call.
    import dashscope

    dashscope.base_http_api_url = emu.base_url


def _calls(texts: int, per_call: int) -> int:
    return -(-texts // per_call)


def bench_embeddings(
    emu: DashScopeEmulator | _RemoteEmulator, n: int, repeat: int, anchors: Any
) -> list[str]:
    texts = _texts(n)
    ours = DashScopeEmbeddings(model=EMBED_MODEL, api_key=emu.api_key, base_url=emu.base_url)
    expected = len(ours.embed_documents(texts[:3]))  # warm-up (connection pool, imports)
    assert expected == 3
    lines = []
    t_ours = _best(repeat, lambda: ours.embed_documents(texts))
    calls = _calls(n, 25)
    lines.append(
        f"embeddings  ours        {n} texts  {calls} calls  {t_ours:7.3f} s"
        f"  (max_concurrency={ours.max_concurrency})"
    )
    if anchors is None:
        lines.append("embeddings  community   (langchain-community not installed: skipped)")
        return lines
    community = anchors[0](model=EMBED_MODEL, dashscope_api_key=emu.api_key)
    community.embed_documents(texts[:3])
    t_comm = _best(repeat, lambda: community.embed_documents(texts))
    lines.append(f"embeddings  community   {n} texts  {calls} calls  {t_comm:7.3f} s")
    lines.append(f"embeddings  RATIO community/ours = {t_comm / t_ours:.1f}x  (target >= 6x)")
    return lines


def _time_stream(chunks: Iterable[Any]) -> tuple[float, float, int]:
    start = time.perf_counter()
    first = None
    count = 0
    for chunk in chunks:
        if first is None and getattr(chunk, "content", ""):
            first = time.perf_counter() - start
        count += 1
    total = time.perf_counter() - start
    return (first if first is not None else total), total, count


def bench_stream(
    emu: DashScopeEmulator, reply_chars: int, chunk_chars: int, repeat: int, anchors: Any
) -> list[str]:
    reply = ("PostgreSQL with pgvector stores embeddings next to the rows they describe. " * 40)[
        :reply_chars
    ]
    prompt = "Explain pgvector."

    # A streamed reply spends (pieces - 1) x stream_delay between its SSE events. The service
    # generates a non-streamed answer in full before replying, so such a call gets the same
    # generation time as latency up front (a one-shot Fault), or it would look faster than it is.
    generation_time = max(0, -(-reply_chars // chunk_chars) - 1) * emu.stream_delay

    def run(
        make_stream: Callable[[], Iterable[Any]], streams: bool = True
    ) -> tuple[float, float, int]:
        results = []
        for _ in range(repeat):
            emu.script(ScriptedReply(text=reply, chunk_size=chunk_chars))
            if not streams:
                emu.inject(Fault(latency=generation_time), endpoint="generation")
            results.append(_time_stream(make_stream()))
        ttft = statistics.median(r[0] for r in results)
        total = statistics.median(r[1] for r in results)
        return ttft, total, results[-1][2]

    ours = ChatQwen(model=CHAT_MODEL, api_key=emu.api_key, base_url=emu.base_url)
    emu.script(ScriptedReply(text="warm"))
    ours.invoke("warm up")
    o_ttft, o_total, o_n = run(lambda: ours.stream(prompt))
    lines = [
        f"stream      ours                     ttft {o_ttft * 1000:7.1f} ms"
        f"  total {o_total * 1000:7.1f} ms  chunks {o_n}"
    ]
    if anchors is None:
        lines.append("stream      ChatTongyi  (langchain-community not installed: skipped)")
        return lines
    for label, kwargs in (
        ("ChatTongyi()", {}),
        ("ChatTongyi(streaming=True)", {"streaming": True}),
    ):
        tongyi = anchors[1](model=CHAT_MODEL, api_key=emu.api_key, **kwargs)
        # ChatTongyi() turns .stream() into one non-streamed call (protocol notes 7.1.5)
        t_ttft, t_total, t_n = run(lambda t=tongyi: t.stream(prompt), streams=bool(kwargs))
        lines.append(
            f"stream      {label:<26}   ttft {t_ttft * 1000:7.1f} ms"
            f"  total {t_total * 1000:7.1f} ms  chunks {t_n}"
        )
        lines.append(
            f"stream      RATIO {label} / ours: ttft {t_ttft / o_ttft:.1f}x, "
            f"total {t_total / o_total:.2f}x"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds added to every call")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--reply-chars", type=int, default=600)
    parser.add_argument("--chunk-chars", type=int, default=6)
    parser.add_argument("--stream-interval", type=float, default=0.01,
                        help="seconds between SSE events of a streamed reply")  # fmt: skip
    parser.add_argument(
        "--emulator",
        choices=["process", "thread"],
        default="process",
        help="embeddings: emulator in its own process (like the remote service) or a thread here",
    )
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--allow-missing-anchors", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.texts, args.repeat, args.latency, args.reply_chars = 60, 1, 0.01, 60

    anchors = _community()
    if anchors is None and not args.allow_missing_anchors:
        print("langchain-community is not installed here; run bench/run-langchain-dashscope")
        return 2

    print(
        f"# emulator: +{args.latency * 1000:.0f} ms per call, {args.stream_interval * 1000:.0f} ms"
        f" between stream events; best (embeddings) / median (stream) of {args.repeat} runs"
    )
    if args.emulator == "process":
        remote = _RemoteEmulator(args.latency)
        try:
            _point_sdk_at(remote)
            print(f"# embeddings: emulator in its own process ({remote.base_url})")
            lines = bench_embeddings(remote, args.texts, args.repeat, anchors)
        finally:
            remote.close()
    with DashScopeEmulator(latency=args.latency, stream_delay=args.stream_interval) as emu:
        _point_sdk_at(emu)
        if args.emulator == "thread":
            print(f"# embeddings: emulator in this process ({emu.base_url})")
            lines = bench_embeddings(emu, args.texts, args.repeat, anchors)
        for line in lines:
            print(line)
        print(f"# stream: emulator in this process ({emu.base_url}), scripted reply")
        for line in bench_stream(emu, args.reply_chars, args.chunk_chars, args.repeat, anchors):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
