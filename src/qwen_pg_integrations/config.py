"""Settings resolution: explicit argument first, then environment, never process-wide state.

Environment variables (DESIGN.md §5):

* ``DASHSCOPE_API_KEY``: the DashScope key.
* ``DASHSCOPE_HTTP_BASE_URL``: region endpoint or a local emulator (``.../api/v1``).
* ``QWEN_PG_DSN``: the PostgreSQL / PolarDB DSN; unset means the embedded server.
"""

from __future__ import annotations

import os
import re

from pydantic import SecretStr

from .errors import MissingAPIKeyError

__all__ = [
    "DEFAULT_BASE_URL",
    "REGION_BASE_URLS",
    "redact_dsn",
    "redact_text",
    "resolve_api_key",
    "resolve_base_url",
    "resolve_dsn",
]

DEFAULT_BASE_URL = "https://dashscope.aliyuncs.com/api/v1"
REGION_BASE_URLS = {
    "cn-beijing": DEFAULT_BASE_URL,
    "ap-southeast-1": "https://dashscope-intl.aliyuncs.com/api/v1",
    "us-east-1": "https://dashscope-us.aliyuncs.com/api/v1",
}


def resolve_api_key(
    explicit: str | SecretStr | None = None, *, required: bool = True
) -> SecretStr | None:
    """The key from the argument, else ``DASHSCOPE_API_KEY``; raise if required and absent."""
    if isinstance(explicit, SecretStr):
        value: str | None = explicit.get_secret_value()
    else:
        value = explicit
    if not value:
        value = os.environ.get("DASHSCOPE_API_KEY") or None
    if value is None:
        if required:
            raise MissingAPIKeyError()
        return None
    return SecretStr(value)


def resolve_base_url(explicit: str | None = None) -> str:
    """The base URL (``.../api/v1``) from the argument, else ``DASHSCOPE_HTTP_BASE_URL``.

    A region name from :data:`REGION_BASE_URLS` is accepted too.
    """
    value = explicit or os.environ.get("DASHSCOPE_HTTP_BASE_URL") or DEFAULT_BASE_URL
    value = REGION_BASE_URLS.get(value, value)
    return value.rstrip("/")


def resolve_dsn(explicit: str | None = None) -> str | None:
    """The DSN from the argument, else ``QWEN_PG_DSN``; ``None`` means use the embedded server."""
    return explicit or os.environ.get("QWEN_PG_DSN") or None


_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)([^@\s]*)(@)")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def redact_dsn(dsn: str) -> str:
    """The DSN with any password replaced by ``***`` (URL and key=value forms)."""
    dsn = _URL_PASSWORD.sub(r"\1***\3", dsn)
    return _KV_PASSWORD.sub(r"\1***", dsn)


def _secrets(dsn: str) -> list[str]:
    """Every piece of ``dsn`` that may be (part of) its password, even if it is malformed."""
    found: list[str] = []
    kv = re.search(r"password\s*=\s*(.*)", dsn, re.IGNORECASE)
    if kv:
        found.extend(p.strip("'\"") for p in kv.group(1).split())
    url = re.search(r"://[^:/@\s]*:([^@]*)@", dsn)
    if url:
        found.append(url.group(1))
    return sorted((s for s in found if s), key=len, reverse=True)


def redact_text(text: str, dsn: str) -> str:
    """``text`` (e.g. a driver's message about ``dsn``) with every piece of the DSN's password
    replaced by ``***``: parse errors quote fragments of a malformed DSN."""
    for secret in _secrets(dsn):
        text = text.replace(secret, "***")
    return redact_dsn(text)
