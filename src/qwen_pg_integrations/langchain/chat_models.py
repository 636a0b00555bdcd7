"""LangChain chat model for Qwen on DashScope: :class:`ChatQwen`.

A thin adapter over :class:`qwen_pg_integrations.dashscope.ChatClient`: messages and tools are
translated to the core's types, answers back to ``AIMessage`` / ``AIMessageChunk``. Retries,
error mapping, ``tool_choice`` mapping, parameter handling and stream merging are the core's.
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from operator import itemgetter
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.base import OutputParserLike
from langchain_core.output_parsers.openai_tools import (
    JsonOutputKeyToolsParser,
    PydanticToolsParser,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils import from_env, secret_from_env
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)
from typing_extensions import Self

from ..dashscope.chat import ChatClient
from ..dashscope.compat import CompatChatClient, chat_client
from ..dashscope.models import DEFAULT_CHAT_MODEL
from ..dashscope.structured import (
    JSON_OBJECT_RESPONSE_FORMAT,
    json_schema_response_format,
    resolve_structured_method,
    structured_output_params,
)
from ..types import ChatChunk, Usage
from ._convert import (
    chunk_to_message_chunk,
    final_chunk,
    has_delta,
    messages_to_core,
    response_to_message,
    tool_to_spec,
)

__all__ = ["ChatQwen"]

# Fields sent to DashScope as ``parameters`` when set (None means: not sent, service default).
_PARAM_FIELDS = (
    "temperature",
    "max_tokens",
    "top_p",
    "top_k",
    "seed",
    "stop",
    "repetition_penalty",
    "presence_penalty",
    "enable_thinking",
    "thinking_budget",
    "enable_search",
    "search_options",
    "response_format",
    "parallel_tool_calls",
)


class _StreamTail:
    """What a stream reports once: the last usage, finish reason, request id and model."""

    def __init__(self, model: str) -> None:
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.request_id: str | None = None
        self.model = model

    def see(self, chunk: ChatChunk) -> None:
        self.usage = chunk.usage or self.usage
        self.finish_reason = chunk.finish_reason or self.finish_reason
        self.request_id = chunk.request_id or self.request_id
        self.model = chunk.model or self.model

    def chunk(self) -> ChatGenerationChunk:
        return ChatGenerationChunk(
            message=final_chunk(
                usage=self.usage,
                model=self.model,
                finish_reason=self.finish_reason,
                request_id=self.request_id,
            )
        )


class ChatQwen(BaseChatModel):
    """Qwen chat models on DashScope (Alibaba Cloud Model Studio) for LangChain.

    Every LangChain entry point works without special flags: ``invoke``, ``batch``, ``stream``,
    ``ainvoke``, ``abatch``, ``astream`` and ``astream_events`` (token by token). Constructor
    parameters are sent to DashScope when set; any of them, and ``model``, can be overridden per
    call (``llm.invoke(msgs, model="qwen-max", temperature=0)``).

    Thinking models keep their reasoning in ``additional_kwargs["reasoning_content"]`` (streamed
    as it arrives); it is handed back to the core on the next turn, which sends DashScope what
    it accepts. ``usage_metadata`` (with reasoning and cache-read token details when DashScope
    reports them) is set on answers and on the last chunk of a stream; ``response_metadata``
    carries ``model_name``, ``finish_reason`` and ``request_id``.

    Tool calling: ``bind_tools(tools, tool_choice=...)`` with ``"auto"``, ``"none"``, a tool name,
    ``"required"``/``"any"``/``True``. DashScope's native API has no "required": with one tool
    it is sent as that tool's name; with several the core emulates it and raises
    :class:`~qwen_pg_integrations.errors.ToolCallRequiredError` rather than return a text answer
    (see :mod:`qwen_pg_integrations.dashscope.chat`). Streamed tool calls arrive as
    ``tool_call_chunks`` with an ``index`` and add up to the exact arguments.

    Errors are the package's typed errors: a 429 is retried ``max_retries`` times with backoff,
    then raised as :class:`~qwen_pg_integrations.errors.RateLimitError`.

    Environment:
        ``DASHSCOPE_API_KEY``: the key when ``api_key`` is not given.
        ``DASHSCOPE_HTTP_BASE_URL``: endpoint (region or local emulator) when ``base_url`` is not
        given; the default is the Beijing endpoint.

    Example:
        .. code-block:: python

            from qwen_pg_integrations.langchain import ChatQwen

            llm = ChatQwen(model="qwen-plus", temperature=0.3, max_tokens=512)
            print(llm.invoke("What is pgvector?").content)
            for chunk in llm.stream("Write a haiku about PostgreSQL"):
                print(chunk.content, end="", flush=True)
    """

    model_config = ConfigDict(populate_by_name=True, protected_namespaces=())

    model: str = Field(
        default=DEFAULT_CHAT_MODEL, validation_alias=AliasChoices("model", "model_name")
    )
    """DashScope model name (default: the package's current general model, ``qwen-plus``)."""
    api_key: SecretStr | None = Field(
        default_factory=secret_from_env("DASHSCOPE_API_KEY", default=None),
        validation_alias=AliasChoices("api_key", "dashscope_api_key"),
    )
    """DashScope API key; defaults to ``DASHSCOPE_API_KEY``. Never printed."""
    base_url: str | None = Field(
        default_factory=from_env("DASHSCOPE_HTTP_BASE_URL", default=None),
        validation_alias=AliasChoices("base_url", "base_address"),
    )
    """Endpoint ending in ``/api/v1``, or a region name; default ``DASHSCOPE_HTTP_BASE_URL``.
    Any other URL is an OpenAI-compatible server (vLLM ``http://host:8000/v1``, Ollama
    ``http://host:11434/v1``, DashScope ``.../compatible-mode/v1``), reached with the ``openai``
    package."""
    dialect: Literal["native", "dashscope", "vllm", "ollama", "openai"] | None = None
    """How to talk to ``base_url``: ``"native"`` (DashScope's own API), or the OpenAI-compatible
    dialect of DashScope, vLLM, Ollama or a generic server; ``None`` guesses from the URL. The
    dialect decides how ``enable_thinking`` is sent and where reasoning is read."""
    workspace: str | None = None
    """DashScope workspace id."""
    timeout: float | None = None
    """Seconds to wait for an answer (per attempt); ``None`` means the core's default (60 s)."""
    max_retries: int = 3
    """Retries on 429, 5xx, timeouts and dropped connections (never on other 4xx)."""

    temperature: float | None = None
    """Sampling temperature, [0, 2)."""
    max_tokens: int | None = None
    """Maximum tokens to generate (``finish_reason`` becomes ``"length"`` when reached)."""
    top_p: float | None = None
    """Nucleus sampling, (0, 1]."""
    top_k: int | None = None
    """Candidates considered per token."""
    seed: int | None = None
    """Random seed for repeatable sampling."""
    stop: list[str] | None = Field(
        default=None, validation_alias=AliasChoices("stop", "stop_sequences")
    )
    """Stop sequences."""
    repetition_penalty: float | None = None
    """Penalty on repeated tokens (1.0 = none)."""
    presence_penalty: float | None = None
    """Penalty on tokens already present, [-2, 2]."""
    enable_thinking: bool | None = None
    """Turn the thinking (reasoning) mode of hybrid models on or off."""
    thinking_budget: int | None = None
    """Maximum reasoning tokens when thinking."""
    enable_search: bool | None = None
    """Let the model search the web (DashScope's built-in search)."""
    search_options: dict[str, Any] | None = None
    """Options of the built-in search."""
    response_format: dict[str, Any] | None = None
    """``{"type": "json_object"}`` or a json_schema format; see also ``with_structured_output``."""
    parallel_tool_calls: bool | None = None
    """Allow several tool calls in one answer."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Other DashScope ``parameters`` sent as they are (unknown constructor keywords land here)."""
    streaming: bool = False
    """Make ``invoke`` stream internally too. Not needed for ``stream``/``astream``, which always
    stream."""

    _client: ChatClient | CompatChatClient = PrivateAttr()

    # --- construction -----------------------------------------------------------------------

    @model_validator(mode="before")
    @classmethod
    def _collect_model_kwargs(cls, values: Any) -> Any:
        """Unknown keywords go to ``model_kwargs`` (sent to DashScope), with a warning."""
        if not isinstance(values, dict):
            return values
        known: set[str] = set()
        for name, info in cls.model_fields.items():
            known.add(name)
            if isinstance(info.validation_alias, AliasChoices):
                known.update(c for c in info.validation_alias.choices if isinstance(c, str))
        extra = {k: v for k, v in values.items() if k not in known}
        if not extra:
            return values
        warnings.warn(
            f"{sorted(extra)} are not ChatQwen fields; they are sent to DashScope as parameters "
            "(model_kwargs).",
            UserWarning,
            stacklevel=4,
        )
        values = {k: v for k, v in values.items() if k in known}
        values["model_kwargs"] = {**(values.get("model_kwargs") or {}), **extra}
        return values

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _build_qwen_client(self) -> Self:
        """One core client per instance: its own key, endpoint, retries and timeout."""
        self._client = chat_client(
            self.model,
            base_url=self.base_url,
            dialect=self.dialect,
            api_key=self.api_key,
            key_given="api_key" in self.model_fields_set,
            workspace=self.workspace,
            max_retries=self.max_retries,
            timeout=self.timeout,
        )
        return self

    # --- LangChain metadata -----------------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "qwen-dashscope-chat"

    # Not declared lc-serializable: langchain-core's load() revives only classes on its own
    # allowlist (langchain_core.load.mapping), so a dumped ChatQwen could not be loaded back.

    @property
    def _default_params(self) -> dict[str, Any]:
        params = {k: getattr(self, k) for k in _PARAM_FIELDS if getattr(self, k) is not None}
        return {**params, **self.model_kwargs}

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, **self._default_params}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = {**self._default_params, **kwargs}
        model = kwargs.get("model")
        ls = LangSmithParams(
            ls_provider="dashscope",
            ls_model_name=model if isinstance(model, str) and model else self.model,
            ls_model_type="chat",
        )
        if isinstance(temperature := params.get("temperature"), (int, float)):
            ls["ls_temperature"] = temperature
        if isinstance(max_tokens := params.get("max_tokens"), int):
            ls["ls_max_tokens"] = max_tokens
        if ls_stop := stop or params.get("stop"):
            ls["ls_stop"] = [ls_stop] if isinstance(ls_stop, str) else list(ls_stop)
        return ls

    # --- calls ------------------------------------------------------------------------------

    def _call_args(self, stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Instance parameters overlaid with per-call ones, in the core's call shape."""
        params = {**self._default_params, **kwargs}
        params.pop("stream", None)
        if stop is not None:
            params["stop"] = stop
        if not params.get("stop"):
            params.pop("stop", None)
        model = params.pop("model", None) or self.model
        tools = params.pop("tools", None)
        tool_choice = params.pop("tool_choice", None)
        if tools:
            params["tools"] = [tool_to_spec(t) for t in tools]
            if tool_choice is not None:
                params["tool_choice"] = tool_choice
        return {"model": model, **params}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        args = self._call_args(stop, kwargs)
        response = self._client.chat(messages_to_core(messages), **args)
        return _result(response_to_message(response, requested_model=args["model"]))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        args = self._call_args(stop, kwargs)
        response = await self._client.achat(messages_to_core(messages), **args)
        return _result(response_to_message(response, requested_model=args["model"]))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        # LangChain's base class reports each yielded chunk to the callbacks (token events).
        args = self._call_args(stop, kwargs)
        tail = _StreamTail(args["model"])
        for chunk in self._client.stream(messages_to_core(messages), **args):
            tail.see(chunk)
            if has_delta(chunk):
                yield ChatGenerationChunk(message=chunk_to_message_chunk(chunk))
        yield tail.chunk()

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        args = self._call_args(stop, kwargs)
        tail = _StreamTail(args["model"])
        async for chunk in self._client.astream(messages_to_core(messages), **args):
            tail.see(chunk)
            if has_delta(chunk):
                yield ChatGenerationChunk(message=chunk_to_message_chunk(chunk))
        yield tail.chunk()

    # --- tools and structured output --------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | bool | dict[str, Any] | None = None,
        parallel_tool_calls: bool | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (LangChain tools, functions, pydantic models or JSON schemas).

        Args:
            tools: the tools the model may call.
            tool_choice: ``"auto"`` (model decides), ``"none"`` (no call), a tool name or
                ``{"type": "function", "function": {"name": ...}}`` (that tool), ``"required"``,
                ``"any"`` or ``True`` (some tool; see the class docstring for how DashScope gets
                it).
            parallel_tool_calls: allow several calls in one answer.
            strict: passed to the tool-schema conversion.
            **kwargs: other call parameters to bind.
        """
        formatted = [convert_to_openai_tool(t, strict=strict) for t in tools]
        # The core maps tool_choice (and refuses a name that is not among the tools).
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        if parallel_tool_calls is not None:
            kwargs["parallel_tool_calls"] = parallel_tool_calls
        return super().bind(tools=formatted, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        method: Literal["json_schema", "function_calling", "json_mode"] | None = None,
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """A runnable that answers with data matching ``schema``.

        Args:
            schema: a pydantic class (answers are instances of it), a TypedDict, or a JSON /
                OpenAI-function schema (answers are dicts).
            method: ``"json_schema"`` (DashScope constrains the answer; default where the model
                supports it), ``"function_calling"`` (the schema as a forced tool; default
                elsewhere) or ``"json_mode"`` (some JSON object; mention "json" in the prompt).
            include_raw: answer ``{"raw": AIMessage, "parsed": ..., "parsing_error": ...}``.
            strict: ask DashScope for strict schema adherence (json_schema / tools).
            **kwargs: other call parameters to bind.

        The model instance is not changed: what the structured call needs (for hybrid thinking
        models, thinking switched off) is bound to the returned runnable only.
        """
        chosen = resolve_structured_method(self.model, method)
        is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
        fn = convert_to_openai_tool(schema)["function"]
        bound = {
            **structured_output_params(self.model, chosen),
            **kwargs,
            "ls_structured_output_format": {
                "kwargs": {"method": chosen, "strict": strict},
                "schema": schema,
            },
        }
        parser: OutputParserLike[Any]
        if chosen == "function_calling":
            llm = self.bind_tools([schema], tool_choice=fn["name"], strict=strict, **bound)
            parser = (
                PydanticToolsParser(tools=[schema], first_tool_only=True)  # type: ignore[list-item]
                if is_pydantic
                else JsonOutputKeyToolsParser(key_name=fn["name"], first_tool_only=True)
            )
        else:
            if chosen == "json_schema":
                response_format = json_schema_response_format(
                    fn["name"],
                    fn.get("parameters") or {"type": "object", "properties": {}},
                    description=fn.get("description"),
                    strict=strict,
                )
            else:
                response_format = dict(JSON_OBJECT_RESPONSE_FORMAT)
            llm = self.bind(response_format=response_format, **bound)
            parser = (
                PydanticOutputParser(pydantic_object=schema)  # type: ignore[arg-type]
                if is_pydantic
                else JsonOutputParser()
            )
        if not include_raw:
            return llm | parser
        parser_assign = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
        )
        parser_none = RunnablePassthrough.assign(parsed=lambda _: None)
        with_fallback = parser_assign.with_fallbacks([parser_none], exception_key="parsing_error")
        return RunnableMap(raw=llm) | with_fallback


def _result(message: AIMessage) -> ChatResult:
    finish_reason = message.response_metadata.get("finish_reason")
    info = {"finish_reason": finish_reason} if finish_reason else None
    return ChatResult(generations=[ChatGeneration(message=message, generation_info=info)])
