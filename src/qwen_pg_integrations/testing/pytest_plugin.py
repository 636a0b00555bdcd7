"""pytest plugin (registered through the ``pytest11`` entry point): DashScope emulator fixtures.

Fixtures:
    dashscope_emulator: a started :class:`~qwen_pg_integrations.testing.DashScopeEmulator` for one
        test. ``DASHSCOPE_API_KEY``, ``DASHSCOPE_HTTP_BASE_URL``, ``DASHSCOPE_BASE_URL`` (2.x v2
        client), ``DASHSCOPE_COMPATIBLE_BASE_URL`` and ``NO_PROXY``/``no_proxy`` are set through
        ``monkeypatch`` so classes built without arguments talk to it. The SDK reads its own
        environment at import time, so pass ``api_key=``/``base_address=`` to direct SDK calls.
        The test fails at teardown if the emulator itself raised (``internal_errors``).
    dashscope_emulator_session: one emulator for the whole session (no environment changes;
        call ``reset()`` between uses).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .emulator import DashScopeEmulator


def _no_proxy(current: str | None) -> str:
    hosts = [h for h in (current or "").split(",") if h]
    for host in ("127.0.0.1", "localhost"):
        if host not in hosts:
            hosts.append(host)
    return ",".join(hosts)


@pytest.fixture
def dashscope_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[DashScopeEmulator]:
    """A DashScope emulator for one test, with the DashScope environment pointing at it."""
    from .emulator import DashScopeEmulator

    with DashScopeEmulator() as emu:
        monkeypatch.setenv("DASHSCOPE_API_KEY", emu.api_key)
        monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", emu.base_url)
        monkeypatch.setenv("DASHSCOPE_BASE_URL", emu.base_url)
        monkeypatch.setenv("DASHSCOPE_COMPATIBLE_BASE_URL", emu.compat_base_url)
        monkeypatch.setenv("NO_PROXY", _no_proxy(os.environ.get("NO_PROXY")))
        monkeypatch.setenv("no_proxy", _no_proxy(os.environ.get("no_proxy")))
        yield emu
        if emu.internal_errors:
            pytest.fail(f"DashScopeEmulator raised internally: {emu.internal_errors}")


@pytest.fixture(scope="session")
def dashscope_emulator_session() -> Iterator[DashScopeEmulator]:
    """One DashScope emulator shared by the session (``reset()`` it between uses)."""
    from .emulator import DashScopeEmulator

    with DashScopeEmulator() as emu:
        yield emu
