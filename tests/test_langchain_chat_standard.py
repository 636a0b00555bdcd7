"""langchain-tests ``ChatModelIntegrationTests`` for ChatQwen against the DashScope emulator.

The real ``dashscope`` SDK talks to :class:`~qwen_pg_integrations.testing.DashScopeEmulator` over
HTTP. The emulator's default reply policy plays the model (it calls a tool the user asks for, with
schema-valid arguments; answers ``json_schema`` requests with a schema-valid object). Where a test
asserts a *specific* model decision the policy cannot guess, the ``model`` fixture scripts that
reply (see ``_SCRIPTS``); the wrapper still does all the translating, both ways.

Skipped tests, and the DashScope capability each lacks:

* ``test_image_inputs``, ``test_image_tool_message``, ``test_pdf_inputs``,
  ``test_pdf_tool_message``, ``test_audio_inputs``: DashScope's text-generation endpoint takes
  text only; images, audio and files need the multimodal endpoint (Qwen-VL / Omni models), which
  ChatQwen does not drive.
* ``test_anthropic_inputs``: DashScope has no Anthropic-style content blocks (``tool_use`` /
  ``tool_result``) on its native API.
* ``test_stream_time``: needs VCR cassettes recorded from the live service, which this offline
  project cannot reach; streaming overhead is measured by ``bench/bench_langchain_dashscope.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_tests.integration_tests import ChatModelIntegrationTests

from qwen_pg_integrations.langchain import ChatQwen
from qwen_pg_integrations.testing import DashScopeEmulator, ScriptedReply

_MAGIC_3 = ScriptedReply(tool_calls=[{"name": "magic_function", "arguments": {"input": 3}}])
_JOKE = ScriptedReply(
    text=json.dumps(
        {"setup": "Why did the cat sit on the keyboard?", "punchline": "To watch the mouse."}
    )
)

# Replies a test needs from "the model" that the emulator's default policy cannot infer.
_SCRIPTS: dict[str, list[ScriptedReply]] = {
    # "magic_function(3)" -> input 3 (the policy fills integers from the schema, not the prose)
    "test_tool_calling": [_MAGIC_3, _MAGIC_3],
    "test_tool_calling_async": [_MAGIC_3, _MAGIC_3],
    # tool_choice="any" over two tools: DashScope has no "required", so the core sends "auto",
    # and on a text answer asks again with an instruction (its documented emulation). The
    # script makes the model answer in text first, then call a tool: the emulation path runs.
    "test_tool_choice": [
        ScriptedReply(text="Hello! How can I help you today?"),
        ScriptedReply(tool_calls=[{"name": "get_weather", "arguments": {"location": "Hangzhou"}}]),
    ],
    # json_mode constrains to *a* JSON object; the prompt asks for setup/punchline keys
    "test_json_mode": [_JOKE, _JOKE, _JOKE, _JOKE],
}


def _collect(llm: BaseChatModel, prompt: str, *, stream: bool) -> AIMessage:
    if not stream:
        result = llm.invoke(prompt)
        assert isinstance(result, AIMessage)
        return result
    full: AIMessageChunk | None = None
    for chunk in llm.stream(prompt):
        assert isinstance(chunk, AIMessageChunk)
        full = chunk if full is None else full + chunk
    assert full is not None
    return full


class TestChatQwenStandard(ChatModelIntegrationTests):
    emu: DashScopeEmulator

    @property
    def chat_model_class(self) -> type[ChatQwen]:
        return ChatQwen

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": "qwen-plus"}

    @pytest.fixture
    def model(
        self, request: pytest.FixtureRequest, dashscope_emulator: DashScopeEmulator
    ) -> Iterator[BaseChatModel]:
        # The emulator fixture exports DASHSCOPE_API_KEY / DASHSCOPE_HTTP_BASE_URL, so ChatQwen
        # is built as users build it, from the environment.
        self.emu = dashscope_emulator
        for reply in _SCRIPTS.get(request.node.originalname, []):
            dashscope_emulator.script(reply)
        extra = getattr(request, "param", None) or {}
        yield self.chat_model_class(
            **{**self.standard_chat_model_params, **self.chat_model_params, **extra}
        )
        # every scripted decision was actually asked for (the test took the path it scripts)
        assert dashscope_emulator.pending_scripts == 0

    @property
    def has_tool_choice(self) -> bool:
        return True

    # --- skipped suites: each names the DashScope capability that is missing -------------

    @property
    def supports_image_inputs(self) -> bool:
        return False  # text-generation endpoint is text only; images need Qwen-VL (multimodal)

    @property
    def supports_image_tool_message(self) -> bool:
        return False  # same: no image content in tool messages on the text endpoint

    @property
    def supports_pdf_inputs(self) -> bool:
        return False  # DashScope chat takes no file/PDF content blocks (Qwen-Long uses file ids)

    @property
    def supports_pdf_tool_message(self) -> bool:
        return False  # same: no file content in tool messages

    @property
    def supports_audio_inputs(self) -> bool:
        return False  # audio needs Qwen-Audio / Omni on the multimodal endpoint

    @property
    def supports_anthropic_inputs(self) -> bool:
        return False  # DashScope's native API has no Anthropic tool_use/tool_result blocks

    @property
    def enable_vcr_tests(self) -> bool:
        return False  # test_stream_time replays cassettes of the live service (unreachable here)

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return "qwen-max"

    @property
    def supported_usage_metadata_details(self) -> dict[Any, Any]:
        return {
            "invoke": ["reasoning_output", "cache_read_input"],
            "stream": ["reasoning_output", "cache_read_input"],
        }

    def invoke_with_reasoning_output(self, *, stream: bool = False) -> AIMessage:
        llm = ChatQwen(model="qwen-plus", enable_thinking=True)
        return _collect(llm, "Why is the sky blue? Think it through.", stream=stream)

    def invoke_with_cache_read_input(self, *, stream: bool = False) -> AIMessage:
        # DashScope reports context-cache hits as usage.prompt_tokens_details.cached_tokens.
        self.emu.script(
            ScriptedReply(
                text="From the cached context: yes.",
                usage={"prompt_tokens_details": {"cached_tokens": 4}},
            )
        )
        llm = ChatQwen(model="qwen-plus")
        return _collect(llm, "A long shared prefix that the service cached. Is it?", stream=stream)


# Scripts of the compatible path: tool_choice="any" is OpenAI's "required" there (no emulation)
_COMPAT_SCRIPTS = {k: v for k, v in _SCRIPTS.items() if k != "test_tool_choice"}


class TestChatQwenStandardOnVLLM(TestChatQwenStandard):
    """The same suite with ChatQwen pointed at a self-hosted vLLM server (the emulator's vLLM
    dialect, through the ``openai`` package)."""

    @pytest.fixture
    def model(
        self, request: pytest.FixtureRequest, dashscope_emulator: DashScopeEmulator
    ) -> Iterator[BaseChatModel]:
        self.emu = dashscope_emulator
        for reply in _COMPAT_SCRIPTS.get(request.node.originalname, []):
            dashscope_emulator.script(reply)
        extra = getattr(request, "param", None) or {}
        yield self.chat_model_class(
            **{
                **self.standard_chat_model_params,
                **self.chat_model_params,
                "base_url": dashscope_emulator.vllm_base_url,
                **extra,
            }
        )
        assert dashscope_emulator.pending_scripts == 0

    @property
    def model_override_value(self) -> str:
        return "Qwen/Qwen3-32B"

    def invoke_with_reasoning_output(self, *, stream: bool = False) -> AIMessage:
        llm = ChatQwen(model="qwen-plus", enable_thinking=True, base_url=self.emu.vllm_base_url)
        return _collect(llm, "Why is the sky blue? Think it through.", stream=stream)

    def invoke_with_cache_read_input(self, *, stream: bool = False) -> AIMessage:
        self.emu.script(
            ScriptedReply(
                text="From the cached context: yes.",
                usage={"prompt_tokens_details": {"cached_tokens": 4}},
            )
        )
        llm = ChatQwen(model="qwen-plus", base_url=self.emu.vllm_base_url)
        return _collect(llm, "A long shared prefix that the service cached. Is it?", stream=stream)
