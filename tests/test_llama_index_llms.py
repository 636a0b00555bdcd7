"""LlamaIndex Qwen (FunctionCallingLLM) against the DashScope emulator.

Anchor defects (llama-index-llms-dashscope, protocol notes §7.2) shown absent here: FunctionAgent
crashing when tool arguments arrive in several chunks; spaces stripped from streamed text;
surprise defaults (max_tokens=256, seed=1234); API errors returned as empty text.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
from llama_index.core.tools import FunctionTool

from qwen_pg_integrations.dashscope import CHAT_MODELS
from qwen_pg_integrations.errors import DataInspectionFailed, QwenPGError
from qwen_pg_integrations.llama_index import Qwen
from qwen_pg_integrations.testing import DashScopeEmulator, ScriptedReply

# llama-index's workflow engine inspects agents with pydantic-deprecated attributes (not ours).
pytestmark = pytest.mark.filterwarnings(
    "ignore::pydantic.warnings.PydanticDeprecatedSince20",
    "ignore::pydantic.warnings.PydanticDeprecatedSince211",
)

SPACED = "  Hello,  world!\n  你好， 世界。 Tabs\there  "
# Raw JSON as a model may format it: spaces after separators, CJK not escaped.
ARGS = '{"city": "New York", "note": "北京 上海  x", "days": 3}'


def _generation_bodies(emu: DashScopeEmulator) -> list[dict[str, Any]]:
    return [r.body for r in emu.requests if r.endpoint == "generation"]


def get_weather(city: str, note: str = "", days: int = 1) -> str:
    """Weather forecast for a city."""
    return f"sunny in {city} for {days} days ({note})"


# -- plain chat and completion ---------------------------------------------------------------


def test_chat_complete_and_stream_return_text(dashscope_emulator: DashScopeEmulator) -> None:
    llm = Qwen()
    dashscope_emulator.script(ScriptedReply(text="chat answer"))
    assert llm.chat([ChatMessage(role="user", content="hi")]).message.content == "chat answer"
    dashscope_emulator.script(ScriptedReply(text="complete answer"))
    assert llm.complete("hi").text == "complete answer"
    dashscope_emulator.script(ScriptedReply(text="stream answer", chunk_size=2))
    assert "".join(r.delta or "" for r in llm.stream_complete("hi")) == "stream answer"


async def test_async_twins_return_text(dashscope_emulator: DashScopeEmulator) -> None:
    llm = Qwen()
    dashscope_emulator.script(ScriptedReply(text="a chat"))
    assert (await llm.achat([ChatMessage(role="user", content="hi")])).message.content == "a chat"
    dashscope_emulator.script(ScriptedReply(text="a complete"))
    assert (await llm.acomplete("hi")).text == "a complete"
    dashscope_emulator.script(ScriptedReply(text="a stream chat", chunk_size=3))
    gen = await llm.astream_chat([ChatMessage(role="user", content="hi")])
    responses = [r async for r in gen]
    assert responses[-1].message.content == "a stream chat"
    dashscope_emulator.script(ScriptedReply(text="a stream complete", chunk_size=3))
    deltas = [r.delta async for r in await llm.astream_complete("hi")]
    assert "".join(d or "" for d in deltas) == "a stream complete"


def test_streamed_text_keeps_spaces_and_cjk(dashscope_emulator: DashScopeEmulator) -> None:
    llm = Qwen()
    dashscope_emulator.script(ScriptedReply(text=SPACED, chunk_size=2))
    responses = list(llm.stream_chat([ChatMessage(role="user", content="hi")]))
    assert "".join(r.delta or "" for r in responses) == SPACED
    assert responses[-1].message.content == SPACED


async def test_async_streamed_text_keeps_spaces_and_cjk(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    dashscope_emulator.script(ScriptedReply(text=SPACED, chunk_size=1))
    gen = await Qwen().astream_complete("hi")
    assert "".join([r.delta or "" async for r in gen]) == SPACED


def test_no_surprise_defaults_only_set_parameters_are_sent(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    Qwen().chat([ChatMessage(role="user", content="hi")])
    Qwen(temperature=0.3, max_tokens=100).complete("hi")
    list(Qwen().stream_complete("hi"))
    plain, tuned, streamed = _generation_bodies(dashscope_emulator)
    for params in (plain["parameters"], streamed["parameters"]):
        for name in ("max_tokens", "seed", "temperature", "top_p", "top_k", "kwargs"):
            assert name not in params
    assert tuned["parameters"]["temperature"] == 0.3
    assert tuned["parameters"]["max_tokens"] == 100
    assert "seed" not in tuned["parameters"]


def test_per_call_parameters_and_system_prompt_are_sent(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    Qwen(system_prompt="Answer briefly.", seed=7).chat(
        [ChatMessage(role="user", content="hi")], top_p=0.5
    )
    body = _generation_bodies(dashscope_emulator)[0]
    assert body["parameters"]["seed"] == 7 and body["parameters"]["top_p"] == 0.5
    assert body["input"]["messages"][0] == {"role": "system", "content": "Answer briefly."}


@pytest.mark.parametrize("call", ["chat", "complete", "stream_chat", "stream_complete"])
def test_api_error_raises_typed_error_not_empty_text(
    dashscope_emulator: DashScopeEmulator, call: str
) -> None:
    dashscope_emulator.script(
        ScriptedReply(error=(400, "DataInspectionFailed", "Input data may contain bad content."))
    )
    llm = Qwen()
    with pytest.raises(DataInspectionFailed) as info:
        if call == "chat":
            llm.chat([ChatMessage(role="user", content="hi")])
        elif call == "complete":
            llm.complete("hi")
        elif call == "stream_chat":
            list(llm.stream_chat([ChatMessage(role="user", content="hi")]))
        else:
            list(llm.stream_complete("hi"))
    assert info.value.request_id


async def test_async_api_error_raises_typed_error(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.script(ScriptedReply(error=(400, "DataInspectionFailed", "bad")))
    with pytest.raises(DataInspectionFailed):
        await Qwen().achat([ChatMessage(role="user", content="hi")])
    dashscope_emulator.script(ScriptedReply(error=(400, "DataInspectionFailed", "bad")))
    with pytest.raises(DataInspectionFailed):
        gen = await Qwen().astream_chat([ChatMessage(role="user", content="hi")])
        async for _ in gen:
            pass


def test_metadata_comes_from_the_shared_model_table() -> None:
    for name in ("qwen-plus", "qwen-max", "qwen-turbo", "qwen3-max"):
        spec = CHAT_MODELS[name]
        meta = Qwen(model=name, api_key="sk-x").metadata
        assert meta.context_window == spec.context_window
        assert meta.num_output == spec.max_output_tokens
        assert meta.is_function_calling_model is spec.function_calling
        assert meta.is_chat_model is True
        assert meta.model_name == name
    assert Qwen(model="qwen-plus", max_tokens=500, api_key="sk-x").metadata.num_output == 500


def test_key_never_in_repr_or_serialisation() -> None:
    llm = Qwen(api_key="sk-very-secret-456")
    for text in (repr(llm), str(llm), llm.to_json(), str(llm.to_payload())):
        assert "sk-very-secret-456" not in text


# -- tools -----------------------------------------------------------------------------------


def test_streamed_tool_call_arguments_in_several_chunks_merge_exactly(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    dashscope_emulator.script(
        ScriptedReply(tool_calls=[{"name": "get_weather", "arguments": ARGS}], chunk_size=3)
    )
    llm = Qwen()
    tool = FunctionTool.from_defaults(get_weather)
    responses = list(llm.stream_chat_with_tools([tool], user_msg="weather in New York?"))
    assert len(responses) > 3  # the arguments really arrived in pieces
    # every intermediate response is readable (partial JSON parsed leniently, never raises)
    for r in responses:
        llm.get_tool_calls_from_response(r, error_on_no_tool_call=False)
    final = responses[-1]
    blocks = [b for b in final.message.blocks if isinstance(b, ToolCallBlock)]
    assert [b.tool_kwargs for b in blocks] == [ARGS]  # byte for byte: spaces and CJK kept
    (selection,) = llm.get_tool_calls_from_response(final)
    assert selection.tool_name == "get_weather"
    assert selection.tool_kwargs == json.loads(ARGS)


def test_chat_with_tools_sends_tool_specs_and_required_choice(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    dashscope_emulator.script(
        ScriptedReply(tool_calls=[{"name": "get_weather", "arguments": ARGS}])
    )
    llm = Qwen()
    tool = FunctionTool.from_defaults(get_weather)
    response = llm.chat_with_tools([tool], user_msg="weather?", tool_required=True)
    (call,) = llm.get_tool_calls_from_response(response)
    assert call.tool_kwargs == json.loads(ARGS)
    params = _generation_bodies(dashscope_emulator)[0]["parameters"]
    assert params["tools"][0]["function"]["name"] == "get_weather"
    assert "city" in params["tools"][0]["function"]["parameters"]["properties"]
    # "required" with one tool is DashScope's named choice (mapped by the core)
    assert params["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


def test_no_tool_call_raises_only_when_asked(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.script(ScriptedReply(text="no tools needed"))
    llm = Qwen()
    response = llm.chat_with_tools([FunctionTool.from_defaults(get_weather)], user_msg="hi")
    assert llm.get_tool_calls_from_response(response, error_on_no_tool_call=False) == []
    with pytest.raises(QwenPGError):
        llm.get_tool_calls_from_response(response)


def test_predict_and_call_runs_the_tool_with_exact_arguments(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    dashscope_emulator.script(
        ScriptedReply(tool_calls=[{"name": "get_weather", "arguments": ARGS}])
    )
    out = Qwen().predict_and_call([FunctionTool.from_defaults(get_weather)], "weather?")
    assert out.response == "sunny in New York for 3 days (北京 上海  x)"


async def test_apredict_and_call(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.script(
        ScriptedReply(tool_calls=[{"name": "get_weather", "arguments": ARGS}])
    )
    out = await Qwen().apredict_and_call([FunctionTool.from_defaults(get_weather)], "weather?")
    assert out.response.startswith("sunny in New York")


def test_tool_call_history_goes_back_to_dashscope_unchanged(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    dashscope_emulator.script(
        ScriptedReply(tool_calls=[{"name": "get_weather", "arguments": ARGS}], chunk_size=4)
    )
    llm = Qwen()
    tool = FunctionTool.from_defaults(get_weather)
    first = list(llm.stream_chat_with_tools([tool], user_msg="weather?"))[-1]
    (call,) = llm.get_tool_calls_from_response(first)
    history = [
        ChatMessage(role="user", content="weather?"),
        first.message,
        ChatMessage(
            role=MessageRole.TOOL,
            content=get_weather(**call.tool_kwargs),
            additional_kwargs={"tool_call_id": call.tool_id, "name": call.tool_name},
        ),
    ]
    dashscope_emulator.script(ScriptedReply(text="It is sunny."))
    assert llm.chat_with_tools([tool], chat_history=history).message.content == "It is sunny."
    messages = _generation_bodies(dashscope_emulator)[-1]["input"]["messages"]
    assistant, tool_msg = messages[-2], messages[-1]
    assert assistant["tool_calls"][0]["function"]["arguments"] == ARGS
    assert assistant["tool_calls"][0]["id"] == call.tool_id
    assert tool_msg["role"] == "tool" and tool_msg["tool_call_id"] == call.tool_id


@pytest.mark.parametrize("streaming", [True, False])
async def test_function_agent_tool_arguments_in_several_chunks(
    dashscope_emulator: DashScopeEmulator, streaming: bool
) -> None:
    # The anchor's FunctionAgent crashed when streamed arguments arrived in several chunks.
    dashscope_emulator.script(
        ScriptedReply(tool_calls=[{"name": "get_weather", "arguments": ARGS}], chunk_size=2)
    )
    dashscope_emulator.script(ScriptedReply(text="It is sunny in New York.", chunk_size=2))
    seen: list[dict[str, Any]] = []

    def weather(city: str, note: str = "", days: int = 1) -> str:
        """Weather forecast for a city."""
        seen.append({"city": city, "note": note, "days": days})
        return "sunny"

    agent = FunctionAgent(
        tools=[FunctionTool.from_defaults(weather, name="get_weather")],
        llm=Qwen(),
        streaming=streaming,
    )
    result = await agent.run(user_msg="What is the weather in New York?")
    assert seen == [json.loads(ARGS)]
    assert str(result) == "It is sunny in New York."


def test_streamed_reasoning_is_kept_apart_from_the_answer(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    dashscope_emulator.script(ScriptedReply(text="答案 42", reasoning="先想 一想", chunk_size=2))
    responses = list(
        Qwen(enable_thinking=True).stream_chat([ChatMessage(role="user", content="q")])
    )
    thinking = "".join(r.additional_kwargs.get("thinking_delta", "") for r in responses)
    assert thinking == "先想 一想"
    assert responses[-1].message.content == "答案 42"
    assert dashscope_emulator.requests[-1].body["parameters"]["enable_thinking"] is True


def test_token_counting_handler_reads_dashscope_usage(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    from llama_index.core.callbacks import CallbackManager, TokenCountingHandler

    counter = TokenCountingHandler()
    llm = Qwen(callback_manager=CallbackManager([counter]))
    usage = {"input_tokens": 111, "output_tokens": 222, "total_tokens": 333}
    dashscope_emulator.script(ScriptedReply(text="four words are here", usage=usage))
    llm.chat([ChatMessage(role="user", content="count me")])
    (event,) = counter.llm_token_counts
    assert (event.prompt_token_count, event.completion_token_count) == (111, 222)


def test_structured_predict_goes_through_a_required_tool_call(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    from llama_index.core.prompts import PromptTemplate
    from pydantic import BaseModel

    class City(BaseModel):
        """A city and its country."""

        name: str
        country: str

    args = '{"name": "杭州", "country": "China"}'
    dashscope_emulator.script(ScriptedReply(tool_calls=[{"name": "City", "arguments": args}]))
    city = Qwen().structured_predict(City, PromptTemplate("Where is {place}?"), place="Hangzhou")
    assert city == City(name="杭州", country="China")
    params = dashscope_emulator.requests[-1].body["parameters"]
    assert params["tool_choice"] == {"type": "function", "function": {"name": "City"}}


def test_non_text_blocks_are_refused_before_any_request(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    from llama_index.core.base.llms.types import ImageBlock, TextBlock

    message = ChatMessage(
        role="user", blocks=[TextBlock(text="what is this?"), ImageBlock(url="http://x/y.png")]
    )
    with pytest.raises(QwenPGError, match="text only"):
        Qwen().chat([message])
    with pytest.raises(QwenPGError, match="tool_call_id"):
        Qwen().chat([ChatMessage(role="tool", content="orphan tool result")])
    assert dashscope_emulator.requests == []


async def test_function_agent_initial_tool_choice_is_sent_as_named_choice(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    agent = FunctionAgent(
        tools=[FunctionTool.from_defaults(get_weather)],
        llm=Qwen(),
        initial_tool_choice="get_weather",
    )
    result = await agent.run(user_msg="Tell me about Paris")
    first, second = _generation_bodies(dashscope_emulator)
    assert first["parameters"]["tool_choice"] == {
        "type": "function",
        "function": {"name": "get_weather"},
    }
    assert "tool_choice" not in second["parameters"]  # only the first turn is forced
    assert result.tool_calls and result.tool_calls[0].tool_name == "get_weather"
    assert "sunny" in str(result)
