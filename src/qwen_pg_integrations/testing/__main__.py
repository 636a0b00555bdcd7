"""Run the DashScope emulator as a standalone server: ``python -m qwen_pg_integrations.testing``.

Useful to test an app in another process (or another language) offline::

    python -m qwen_pg_integrations.testing --port 8089 --api-key sk-emulator
    DASHSCOPE_HTTP_BASE_URL=http://127.0.0.1:8089/api/v1 DASHSCOPE_API_KEY=sk-emulator my-app

Replies follow the default policy (no scripts); stop with Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import threading

from .emulator import DashScopeEmulator


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m qwen_pg_integrations.testing")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--api-key", default="sk-emulator")
    parser.add_argument("--chunk-size", type=int, default=4)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args(argv)
    emu = DashScopeEmulator(
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        chunk_size=args.chunk_size,
        latency=args.latency,
    )
    with emu:
        print(f"DASHSCOPE_HTTP_BASE_URL={emu.base_url}", flush=True)
        print(f"DASHSCOPE_API_KEY={emu.api_key}", flush=True)
        print(f"OpenAI-compatible base: {emu.compat_base_url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
