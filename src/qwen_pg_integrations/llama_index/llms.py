"""LlamaIndex ``FunctionCallingLLM`` over the DashScope chat core.

DashScope calls, retries, error mapping, ``tool_choice`` mapping and the merging of streamed
tool calls all happen in :class:`~qwen_pg_integrations.dashscope.ChatClient`; this module only
translates LlamaIndex messages and tools to core types and back.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, Sequence
from typing import Any, Literal

from llama_index.core.base.llms.generic_utils import (
    achat_to_completion_decorator,
    astream_chat_to_completion_decorator,
    chat_to_completion_decorator,
    stream_chat_to_completion_decorator,
)
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
    ToolCallBlock,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr, SecretStr
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection

from ..dashscope import DEFAULT_CHAT_MODEL, ChatClient, chat_model_spec
from ..dashscope.compat import CompatChatClient, chat_client
from ._messages import (
    StreamMerger,
    to_core_messages,
    to_core_tools,
    to_li_response,
    tool_selections,
)

__all__ = ["Qwen"]

# Model parameters that are fields of ``Qwen``; each is sent only when it is not None.
_PARAM_FIELDS = (
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "max_tokens",
    "stop",
    "repetition_penalty",
    "presence_penalty",
    "enable_search",
    "enable_thinking",
    "thinking_budget",
)


class Qwen(FunctionCallingLLM):
    """Qwen chat models through DashScope, for LlamaIndex (tools, agents, streaming, async).

    Only the parameters you set are sent: there is no default ``max_tokens``, ``seed`` or
    ``temperature``, so the service's own defaults apply. Errors are raised as
    :mod:`qwen_pg_integrations.errors` types (never turned into empty text).
    ``metadata`` (context window, output limit, function calling) comes from the package's
    model table, the one the LangChain adapter reads.

    Environment: ``DASHSCOPE_API_KEY`` and ``DASHSCOPE_HTTP_BASE_URL`` when ``api_key`` /
    ``base_url`` are not given (read when the object is built).

    Example:
        >>> from qwen_pg_integrations.llama_index import Qwen
        >>> llm = Qwen(model="qwen-plus", temperature=0.2)
        >>> print(llm.complete("Say hi"))  # doctest: +SKIP
    """

    model: str = Field(default=DEFAULT_CHAT_MODEL, description="DashScope chat model name.")
    temperature: float | None = Field(default=None, ge=0.0, lt=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0)
    seed: int | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    repetition_penalty: float | None = Field(default=None, gt=0.0)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    enable_search: bool | None = None
    enable_thinking: bool | None = None
    thinking_budget: int | None = Field(default=None, ge=1)
    additional_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Other DashScope parameters, sent as given."
    )
    api_key: SecretStr | None = Field(default=None, exclude=True, repr=False)
    base_url: str | None = Field(
        default=None,
        description="DashScope endpoint (.../api/v1) or emulator URL; any other URL is an "
        "OpenAI-compatible server (vLLM, Ollama, DashScope compatible mode).",
    )
    dialect: Literal["native", "dashscope", "vllm", "ollama", "openai"] | None = Field(
        default=None, description="How to talk to base_url; None guesses from the URL."
    )
    workspace: str | None = Field(default=None, description="DashScope workspace id.")
    max_retries: int = Field(default=3, ge=0)
    timeout: float = Field(default=60.0, gt=0)

    _client: ChatClient | CompatChatClient = PrivateAttr()

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        self._client = chat_client(
            self.model,
            base_url=self.base_url,
            dialect=self.dialect,
            api_key=self.api_key,
            key_given=self.api_key is not None,
            workspace=self.workspace,
            max_retries=self.max_retries,
            timeout=self.timeout,
        )

    @classmethod
    def class_name(cls) -> str:
        return "QwenPGQwen"

    @property
    def client(self) -> ChatClient | CompatChatClient:
        """The core chat client."""
        return self._client

    @property
    def metadata(self) -> LLMMetadata:
        spec = chat_model_spec(self.model)
        return LLMMetadata(
            context_window=spec.context_window,
            num_output=self.max_tokens or spec.max_output_tokens,
            is_chat_model=True,
            is_function_calling_model=spec.function_calling,
            model_name=self.model,
            system_role=MessageRole.SYSTEM,
        )

    # -- parameters ------------------------------------------------------------------------

    def _params(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        params: dict[str, Any] = {
            name: value for name in _PARAM_FIELDS if (value := getattr(self, name)) is not None
        }
        params.update(self.additional_kwargs)
        params.update(kwargs)
        tools = params.pop("tools", None)
        if tools:
            params["tools"] = to_core_tools(tools)
        elif "tool_choice" in params and params["tool_choice"] is None:
            del params["tool_choice"]
        return params

    def _messages(self, messages: Sequence[ChatMessage]) -> list[ChatMessage]:
        if self.system_prompt and not any(m.role == MessageRole.SYSTEM for m in messages):
            return [ChatMessage(role=MessageRole.SYSTEM, content=self.system_prompt), *messages]
        return list(messages)

    # -- chat ------------------------------------------------------------------------------

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        core = to_core_messages(self._messages(messages))
        return to_li_response(self._client.chat(core, **self._params(kwargs)))

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        core = to_core_messages(self._messages(messages))
        return to_li_response(await self._client.achat(core, **self._params(kwargs)))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        core = to_core_messages(self._messages(messages))
        chunks = self._client.stream(core, **self._params(kwargs))

        def gen() -> Generator[ChatResponse, None, None]:
            merger = StreamMerger()
            for chunk in chunks:
                yield merger.add(chunk)

        return gen()

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        core = to_core_messages(self._messages(messages))
        params = self._params(kwargs)

        async def gen() -> AsyncGenerator[ChatResponse, None]:
            merger = StreamMerger()
            chunks = self._client.astream(core, **params)
            try:
                async for chunk in chunks:
                    yield merger.add(chunk)
            finally:
                # A consumer that stops early releases the HTTP stream now, not at GC time.
                aclose = getattr(chunks, "aclose", None)
                if aclose is not None:
                    await aclose()

        return gen()

    # -- completion (a one-message chat) ---------------------------------------------------

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return chat_to_completion_decorator(self.chat)(prompt, **kwargs)

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        return await achat_to_completion_decorator(self.achat)(prompt, **kwargs)

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        return stream_chat_to_completion_decorator(self.stream_chat)(prompt, **kwargs)

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        return await astream_chat_to_completion_decorator(self.astream_chat)(prompt, **kwargs)

    # -- tools -----------------------------------------------------------------------------

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[Any],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        messages = list(chat_history or [])
        if isinstance(user_msg, str):
            messages.append(ChatMessage(role=MessageRole.USER, content=user_msg))
        elif user_msg is not None:
            messages.append(user_msg)
        prepared: dict[str, Any] = {"messages": messages, **kwargs}
        if tools:
            prepared["tools"] = list(tools)
            if tool_required and prepared.get("tool_choice") is None:
                prepared["tool_choice"] = "required"
            # DashScope's default is one call per turn; ask for more only when allowed.
            if allow_parallel_tool_calls:
                prepared.setdefault("parallel_tool_calls", True)
        return prepared

    def _validate_chat_with_tools_response(
        self,
        response: ChatResponse,
        tools: Sequence[Any],
        allow_parallel_tool_calls: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        if not allow_parallel_tool_calls:
            calls = [b for b in response.message.blocks if isinstance(b, ToolCallBlock)]
            if len(calls) > 1:
                response.message.blocks = [
                    b
                    for b in response.message.blocks
                    if not isinstance(b, ToolCallBlock) or b is calls[0]
                ]
        return response

    def get_tool_calls_from_response(
        self,
        response: ChatResponse,
        error_on_no_tool_call: bool = True,
        **kwargs: Any,
    ) -> list[ToolSelection]:
        """The tool calls of ``response`` (exact arguments once the response is complete)."""
        return tool_selections(response, error_on_no_tool_call=error_on_no_tool_call)
