"""langchain-tests ``ChatModelUnitTests`` for ChatQwen (no network), plus construction checks."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from langchain_tests.unit_tests import ChatModelUnitTests

from qwen_pg_integrations.dashscope import DEFAULT_CHAT_MODEL
from qwen_pg_integrations.errors import UnsupportedModelError
from qwen_pg_integrations.langchain import ChatQwen

_UNREACHABLE = "http://127.0.0.1:9/api/v1"  # unit tests never call out


class TestChatQwenUnit(ChatModelUnitTests):
    """The full unit suite.

    One test skips by design, not for a missing capability: ``test_serdes`` ("Model is not
    serializable"). langchain-core's ``load()`` revives only classes on its own allowlist
    (``langchain_core.load.mapping``), so no package outside that list can round-trip; ChatQwen
    therefore does not declare itself lc-serializable.
    """

    @property
    def chat_model_class(self) -> type[ChatQwen]:
        return ChatQwen

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": "qwen-plus", "api_key": "sk-unit", "base_url": _UNREACHABLE}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {"DASHSCOPE_API_KEY": "sk-from-env", "DASHSCOPE_HTTP_BASE_URL": _UNREACHABLE},
            {"model": "qwen-max"},
            {"api_key": "sk-from-env", "base_url": _UNREACHABLE, "model": "qwen-max"},
        )

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return "qwen-max"


def test_default_model_is_the_current_table_default() -> None:
    llm = ChatQwen(api_key="sk-unit")
    assert llm.model == DEFAULT_CHAT_MODEL


def test_streaming_is_not_put_in_fields_set_by_construction() -> None:
    # ChatTongyi's validator adds streaming=False to model_fields_set, which makes langchain-core
    # skip streaming; ours only has it there when the user passes it.
    assert "streaming" not in ChatQwen(api_key="sk-unit").model_fields_set


def test_unknown_keywords_are_sent_as_parameters_with_a_warning() -> None:
    with pytest.warns(UserWarning, match="repetition_window"):
        llm = ChatQwen(api_key="sk-unit", repetition_window=3)
    assert llm.model_kwargs == {"repetition_window": 3}
    assert llm._default_params["repetition_window"] == 3


def test_known_fields_do_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ChatQwen(api_key="sk-unit", model_name="qwen-max", temperature=0.1, stop="END")


def test_stop_string_becomes_a_list() -> None:
    assert ChatQwen(api_key="sk-unit", stop="END").stop == ["END"]


def test_ls_params_name_dashscope_and_honour_overrides() -> None:
    llm = ChatQwen(api_key="sk-unit", temperature=0.5, max_tokens=20, stop=["x"])
    ls = llm._get_ls_params(model="qwen-max", temperature=0.1)
    assert ls["ls_provider"] == "dashscope"
    assert ls["ls_model_name"] == "qwen-max"
    assert ls["ls_temperature"] == 0.1
    assert ls["ls_max_tokens"] == 20
    assert ls["ls_stop"] == ["x"]


def test_key_never_printed() -> None:
    llm = ChatQwen(api_key="sk-very-secret-456")
    for text in (
        repr(llm),
        str(llm),
        llm.model_dump_json(),
        str(llm.model_dump()),
        str(llm.asdict()),
    ):
        assert "sk-very-secret-456" not in text


def test_json_schema_refused_on_a_model_known_to_lack_it() -> None:
    from pydantic import BaseModel

    class Answer(BaseModel):
        text: str

    with pytest.raises(UnsupportedModelError, match="function_calling"):
        ChatQwen(api_key="sk-unit", model="qwen-max").with_structured_output(
            Answer, method="json_schema"
        )


def test_missing_key_is_a_typed_error_before_any_call(monkeypatch: pytest.MonkeyPatch) -> None:
    from qwen_pg_integrations.errors import MissingAPIKeyError
    from qwen_pg_integrations.langchain import DashScopeEmbeddings

    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    with pytest.raises(MissingAPIKeyError):
        ChatQwen(base_url=_UNREACHABLE, max_retries=0).invoke("hi")
    with pytest.raises(MissingAPIKeyError):
        DashScopeEmbeddings(base_url=_UNREACHABLE, max_retries=0).embed_query("hi")
