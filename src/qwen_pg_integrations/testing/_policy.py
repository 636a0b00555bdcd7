"""What the emulator answers: the plan of a reply, from a script or from the default policy.

Default policy (no scripted reply queued), deterministic:

1. Tools offered and ``tool_choice`` is not ``"none"`` and the last message is not a tool result:
   * ``tool_choice`` names a function -> call it;
   * otherwise the last message must be a user message that asks for a tool: it contains the tool's
     name (``get_weather`` or ``get weather``) or every significant word of the name (verbs such as
     get/search/find/fetch/lookup/query/list/create are skipped: ``get_current_weather`` is asked
     for by "what's the weather in Paris?"); a message with CJK text also asks for a tool whose
     description shares a CJK character bigram with it ("北京天气怎么样" and "查询城市天气"),
     common function bigrams (什么, 怎么, 如何...) excepted. Only the first such tool is called
     unless ``parallel_tool_calls`` is true.
   Arguments are valid against the tool's JSON schema (see ``_schema``). Free strings get a hint
   from the last user message: a quoted phrase, else the last capitalised phrase that does not start
   the sentence ("New York"), else the message itself (cut to 200 characters).
2. Otherwise a text answer that quotes the prompt, so RAG tests can assert grounding:
   * after a tool result: ``"According to the tool result: <tool message content>"``;
   * else the question is the text after the last ``Question:``/``问题：`` marker of the last user
     message, or its last sentence; every other sentence of the system and user messages is a
     context candidate; the candidate sharing the most words (CJK: characters and bigrams) with the
     question is quoted verbatim (minus a leading label such as ``Context:`` or ``[1]``):
     ``"Based on the context: <sentence>"``
     (``"根据上下文：<sentence>"`` when the question contains CJK);
   * no overlapping context: ``"Emulated reply to: <last user message>"``.
3. Text-format (ReAct) agents -- no native tools, and a system prompt listing tools as
   ``> Tool Name: X`` / ``Tool Args: {schema}`` with an ``Action Input:`` format (LlamaIndex
   ``ReActAgent``, LangChain's ReAct prompts): after an ``Observation:`` message, ``"Thought: I can
   answer without using any more tools. ...\nAnswer: <the observation>"``; else, when the question
   asks for a tool (rule 1) or shares a significant word with its description, ``"Thought: ...
   I need to use a tool ...\nAction: <tool>\nAction Input: <JSON valid against Tool Args>"``;
   else a ``Thought:``/``Answer:`` pair around the answer of rule 2.
4. ``response_format`` ``json_object`` -> ``{"answer": <text of 2>}``; ``json_schema`` -> an object
   valid against the schema (free strings carry the text of 2).
5. Thinking on -> ``reasoning_content`` ``"Thinking about: <question>"`` before the answer.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from ._schema import value_for_schema
from ._text import count_tokens, has_cjk, split_sentences, truncate_tokens, word_features
from .scripts import ScriptedReply

__all__ = ["ChatRequest", "Plan", "PlannedCall", "default_plan", "finalize", "plan_from_script"]

_SKIP_WORDS = frozenset(
    (
        "get",
        "set",
        "search",
        "find",
        "fetch",
        "lookup",
        "look",
        "up",
        "query",
        "call",
        "run",
        "list",
        "make",
        "create",
        "do",
        "the",
        "a",
        "an",
        "tool",
        "current",
        "for",
        "of",
        "by",
        "to",
        "info",
    )
)
_CJK_STOP = {
    "什么",
    "怎么",
    "一个",
    "可以",
    "这个",
    "那个",
    "我们",
    "你们",
    "他们",
    "是否",
    "如何",
    "请问",
}
_QUESTION_MARK = re.compile(r"(?:question|query|问题)\s*[:：]", re.IGNORECASE)
_QUOTED = re.compile(r"\"([^\"]{1,200})\"|'([^']{2,200})'|「([^」]{1,200})」|“([^”]{1,200})”")
_LABEL = re.compile(r"^(?:\[[\w\s.-]{1,12}\]|[\w\s.-]{1,20}[:：])\s*")
_CAPITALISED = re.compile(r"(?<![.?!]\s)(?<!^)\b([A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)*)")


@dataclass
class ChatRequest:
    """A generation request reduced to what the policy needs (native and compatible mode)."""

    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)  # function specs {name, parameters}
    tool_choice: Any = None
    parallel_tool_calls: bool = False
    response_format: dict[str, Any] | None = None
    thinking: bool = False
    max_tokens: int | None = None
    thinking_budget: int | None = None
    stop: list[str] = field(default_factory=list)


@dataclass
class PlannedCall:
    """One tool call of a reply; ``arguments`` is the JSON string sent on the wire."""

    id: str
    name: str
    arguments: str


@dataclass
class Plan:
    """A reply before rendering: what is said and how it ends."""

    content: str = ""
    reasoning: str = ""
    tool_calls: list[PlannedCall] = field(default_factory=list)
    finish_reason: str = "stop"
    usage: dict[str, Any] = field(default_factory=dict)
    chunk_size: int | None = None


def text_of(message: dict[str, Any]) -> str:
    """The text content of a message (string, or the text parts of a list)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") if isinstance(p, dict) else str(p) for p in content]
        return "".join(p for p in parts if isinstance(p, str))
    return ""


def call_id(index: int, name: str, arguments: str) -> str:
    """A deterministic ``call_...`` id."""
    digest = hashlib.blake2b(f"{index}:{name}:{arguments}".encode(), digest_size=12).hexdigest()
    return f"call_{digest}"


def _name_words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [w for w in re.split(r"[\s_\-.]+", spaced.lower()) if w]


def _cjk_bigrams(text: str) -> set[str]:
    return {f for f in word_features(text) if len(f) == 2 and has_cjk(f)} - _CJK_STOP


def _asks_for(tool: dict[str, Any], text: str) -> bool:
    tool_name = str(tool.get("name", ""))
    description = str(tool.get("description") or "")
    if has_cjk(text) and _cjk_bigrams(text) & _cjk_bigrams(description):
        return True
    lowered = text.lower()
    words = _name_words(tool_name)
    if tool_name.lower() in lowered or " ".join(words) in lowered:
        return True
    significant = [w for w in words if w not in _SKIP_WORDS]
    return bool(significant) and all(
        re.search(rf"\b{re.escape(w)}", lowered) is not None for w in significant
    )


def string_hint(text: str) -> str:
    """The value given to free string arguments (see the module docstring)."""
    quoted = _QUOTED.search(text)
    if quoted:
        return next(g for g in quoted.groups() if g)
    caps = [m.group(1) for m in _CAPITALISED.finditer(text) if m.start() > 0]
    caps = [c for c in caps if c not in {"I", "I'm"}]
    if caps:
        return caps[-1]
    return text.strip()[:200] or "example"


def _last_user_text(req: ChatRequest) -> str:
    for message in reversed(req.messages):
        if message.get("role") == "user":
            return text_of(message)
    return ""


def _tool_plan(req: ChatRequest) -> Plan | None:
    if not req.tools or req.tool_choice == "none":
        return None
    if req.messages and req.messages[-1].get("role") == "tool":
        return None
    named = None
    if isinstance(req.tool_choice, dict):
        named = (req.tool_choice.get("function") or {}).get("name")
    chosen: list[dict[str, Any]]
    if named:
        chosen = [t for t in req.tools if t.get("name") == named]
    elif req.messages and req.messages[-1].get("role") == "user":
        last = text_of(req.messages[-1])
        chosen = [t for t in req.tools if _asks_for(t, last)]
        if not req.parallel_tool_calls:
            chosen = chosen[:1]
    else:
        chosen = []
    if not chosen:
        return None
    hint = string_hint(_last_user_text(req))
    calls = []
    for i, tool in enumerate(chosen):
        schema = tool.get("parameters") or {"type": "object", "properties": {}}
        args = json.dumps(value_for_schema(schema, hint), ensure_ascii=False)
        calls.append(PlannedCall(call_id(i, str(tool["name"]), args), str(tool["name"]), args))
    return Plan(tool_calls=calls, finish_reason="tool_calls")


def _question_and_context(req: ChatRequest) -> tuple[str, list[str]]:
    last_user = _last_user_text(req)
    markers = list(_QUESTION_MARK.finditer(last_user))
    if markers:
        question = last_user[markers[-1].end() :].strip()
        own_context = last_user[: markers[-1].start()]
    else:
        sentences = split_sentences(last_user)
        question = sentences[-1] if sentences else ""
        own_context = "\n".join(sentences[:-1])
    context: list[str] = []
    for message in req.messages:
        if message.get("role") == "system":
            context.extend(split_sentences(text_of(message)))
    context.extend(split_sentences(own_context))
    stripped = (_LABEL.sub("", c, count=1) for c in context)
    return question, [c for c in stripped if c and c != question]


def grounded_answer(req: ChatRequest) -> str:
    """The text answer of the default policy (rule 2 of the module docstring)."""
    if req.messages and req.messages[-1].get("role") == "tool":
        results = []
        for message in reversed(req.messages):
            if message.get("role") != "tool":
                break
            results.append(text_of(message))
        return "According to the tool result: " + " ".join(reversed(results))
    question, context = _question_and_context(req)
    q_feats = word_features(question)
    best, best_score = "", 0
    for sentence in context:
        score = len(q_feats & word_features(sentence))
        if score > best_score:
            best, best_score = sentence, score
    if best:
        return ("根据上下文：" if has_cjk(question) else "Based on the context: ") + best
    return "Emulated reply to: " + (_last_user_text(req).strip() or question)


_REACT_TOOL = re.compile(
    r"^> Tool Name: *(?P<name>\S+) *$\n(?:Tool Description: *(?P<desc>[\s\S]*?)\n)?"
    r"Tool Args: *(?P<args>\{.*\}) *$",
    re.MULTILINE,
)
_SIGNIFICANT = re.compile(r"[A-Za-z][A-Za-z0-9_-]{3,}")
_COMMON = frozenset(
    (  # noqa: SIM905 - a word list reads best as text
        "what which when where does with that this from have your about there their would  "
        "should could into tool tools search find answer question questions"
    ).split()
)


def _react_tools(req: ChatRequest) -> list[tuple[str, str, dict[str, Any]]]:
    if req.tools:
        return []  # native tools: rule 1
    system = "\n".join(text_of(m) for m in req.messages if m.get("role") == "system")
    if "Action Input:" not in system:
        return []
    found = []
    for m in _REACT_TOOL.finditer(system):
        try:
            schema = json.loads(m.group("args"))
        except json.JSONDecodeError:
            schema = {"type": "object", "properties": {}}
        found.append((m.group("name"), m.group("desc") or "", schema))
    return found


def _words(text: str) -> set[str]:
    return {w.lower() for w in _SIGNIFICANT.findall(text)} - _COMMON


def _react_plan(req: ChatRequest) -> Plan | None:
    tools = _react_tools(req)
    if not tools or not req.messages:
        return None
    last = text_of(req.messages[-1]).strip()
    if last.startswith("Observation:"):
        observation = last[len("Observation:") :].strip()
        return Plan(
            content="Thought: I can answer without using any more tools. I'll use the user's "
            f"language to answer\nAnswer: {observation}"
        )
    question = _last_user_text(req)
    for name, desc, schema in tools:
        spec = {"name": name, "description": desc}
        if _asks_for(spec, question) or _words(question) & _words(f"{name} {desc}"):
            # agents of this kind hand the whole question to a tool ("input", "query")
            hint = question.strip()[:200] or "example"
            args = json.dumps(value_for_schema(schema, hint), ensure_ascii=False)
            language = "Chinese" if has_cjk(question) else "English"
            return Plan(
                content=f"Thought: The current language of the user is: {language}. I need to "
                f"use a tool to help me answer the question.\nAction: {name}\n"
                f"Action Input: {args}"
            )
    return Plan(
        content="Thought: I can answer without using any more tools. I'll use the user's "
        f"language to answer\nAnswer: {grounded_answer(req)}"
    )


def default_plan(req: ChatRequest) -> Plan:
    """The reply of the default policy (module docstring)."""
    plan = _tool_plan(req) or _react_plan(req)
    if plan is None:
        answer = grounded_answer(req)
        fmt = req.response_format or {}
        if fmt.get("type") == "json_object":
            answer = json.dumps({"answer": answer}, ensure_ascii=False)
        elif fmt.get("type") == "json_schema":
            spec = fmt.get("json_schema") or {}
            schema = spec.get("schema", spec) if isinstance(spec, dict) else {}
            answer = json.dumps(
                value_for_schema(schema or {"type": "object"}, answer), ensure_ascii=False
            )
        plan = Plan(content=answer)
    if req.thinking:
        question, _ = _question_and_context(req)
        plan.reasoning = "Thinking about: " + (question or _last_user_text(req))
    return plan


def plan_from_script(reply: ScriptedReply, req: ChatRequest) -> Plan:
    """The plan of a scripted reply; reasoning only appears when the script gives it."""
    calls = []
    for i, call in enumerate(reply.tool_calls or ()):
        args = call.get("arguments", {})
        text = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
        cid = str(call.get("id") or call_id(i, str(call["name"]), text))
        calls.append(PlannedCall(cid, str(call["name"]), text))
    plan = Plan(
        content=reply.text or "",
        reasoning=reply.reasoning or "",
        tool_calls=calls,
        finish_reason="tool_calls" if calls else "stop",
        usage=dict(reply.usage or {}),
        chunk_size=reply.chunk_size,
    )
    if reply.finish_reason:
        plan.finish_reason = reply.finish_reason
    return plan


def finalize(plan: Plan, req: ChatRequest, scripted_finish: bool = False) -> Plan:
    """Apply ``stop``, ``thinking_budget`` and ``max_tokens``; fill ``usage``."""
    for stop in req.stop:
        if stop and stop in plan.content:
            plan.content = plan.content[: plan.content.index(stop)]
    if req.thinking_budget is not None and plan.reasoning:
        plan.reasoning, _ = truncate_tokens(plan.reasoning, req.thinking_budget)
    if req.max_tokens is not None and not plan.tool_calls:
        plan.content, cut = truncate_tokens(plan.content, req.max_tokens)
        if cut and not scripted_finish:
            plan.finish_reason = "length"
    input_tokens = sum(count_tokens(text_of(m)) for m in req.messages) + (
        count_tokens(json.dumps(req.tools)) if req.tools else 0
    )
    reasoning_tokens = count_tokens(plan.reasoning)
    output_tokens = output_token_count(plan.content, plan.reasoning, plan.tool_calls)
    usage: dict[str, Any] = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }
    if plan.reasoning:
        usage["output_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
    usage.update(plan.usage)
    if "total_tokens" not in plan.usage:
        usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
    plan.usage = usage
    return plan


def output_token_count(content: str, reasoning: str, calls: list[PlannedCall]) -> int:
    """Output tokens of a (partial) reply."""
    return (
        count_tokens(content)
        + count_tokens(reasoning)
        + sum(count_tokens(c.name) + count_tokens(c.arguments) for c in calls)
    )
