"""Testing helpers: a local DashScope emulator and pytest fixtures (public API).

``DashScopeEmulator`` is a real HTTP server on 127.0.0.1 that speaks DashScope's wire protocol,
so the unchanged ``dashscope`` SDK -- and any app built on it -- can be tested offline::

    from qwen_pg_integrations.testing import DashScopeEmulator, ScriptedReply, Fault

    with DashScopeEmulator() as emu:
        emu.script(ScriptedReply(text="hello"))
        emu.inject(Fault(status=429, code="Throttling.RateQuota"), endpoint="embedding")
        ...  # point the SDK at emu.base_url with api_key=emu.api_key

With pytest, the ``dashscope_emulator`` fixture (installed with the package) starts one and sets
``DASHSCOPE_API_KEY``, ``DASHSCOPE_HTTP_BASE_URL`` and ``NO_PROXY`` for the test.
"""

from __future__ import annotations

from ._records import RecordedRequest
from .emulator import DashScopeEmulator
from .faults import Fault
from .scripts import ScriptedReply

__all__ = ["DashScopeEmulator", "Fault", "RecordedRequest", "ScriptedReply"]
