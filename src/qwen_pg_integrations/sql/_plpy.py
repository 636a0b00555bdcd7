"""PL/Python plumbing shared by the runtime: the ``plpy`` protocol and typed errors as SQL errors.

A :class:`~qwen_pg_integrations.errors.QwenPGError` raised inside a function becomes a
PostgreSQL error: the message is the package's (DashScope code and what to do), the detail has
the DashScope code, HTTP status and request id, and the SQLSTATE says which kind it was
(:data:`SQLSTATES`; class ``QW`` is ours, the digits echo the HTTP status).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn, Protocol

from ..errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    DashScopeError,
    DataInspectionFailed,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    QwenPGError,
    RateLimitError,
    ServerError,
)

__all__ = ["SQLSTATES", "Plpy", "raise_pg", "sqlstate_for"]


class Plpy(Protocol):
    """The parts of PL/Python's ``plpy`` module used here."""

    def execute(self, query: Any, args: Sequence[Any] = ..., /) -> Any: ...

    def prepare(self, query: str, argtypes: Sequence[str] = ..., /) -> Any: ...

    def error(
        self,
        msg: str,
        *,
        detail: str | None = ...,
        hint: str | None = ...,
        sqlstate: str | None = ...,
    ) -> NoReturn: ...

    def quote_ident(self, name: str, /) -> str: ...

    Error: type[Exception]


# Most specific class first. Class "QW" is ours; the last three digits echo the HTTP status.
SQLSTATES: tuple[tuple[type[QwenPGError], str], ...] = (
    (AuthenticationError, "QW401"),
    (PermissionDeniedError, "QW403"),
    (NotFoundError, "QW404"),
    (DataInspectionFailed, "QW451"),
    (BadRequestError, "QW400"),
    (RateLimitError, "QW429"),
    (APITimeoutError, "QW504"),
    (APIConnectionError, "QW503"),
    (ServerError, "QW500"),
    (DashScopeError, "QW000"),
    (InvalidInputError, "22023"),  # invalid_parameter_value
    (ConfigurationError, "QW001"),
    (QwenPGError, "QW999"),
)

_SQL_HINT = (
    "The database uses the key and base URL given to qwen_pg_integrations.sql.install() / "
    "`qwen-pg sql install`; run it again with the right key (DASHSCOPE_API_KEY) or base URL "
    "(DASHSCOPE_HTTP_BASE_URL)."
)


def sqlstate_for(exc: QwenPGError) -> str:
    """The SQLSTATE a typed error is raised with."""
    for cls, state in SQLSTATES:
        if isinstance(exc, cls):
            return state
    return "QW999"  # pragma: no cover - QwenPGError is the last row


def raise_pg(plpy: Plpy, exc: QwenPGError) -> NoReturn:
    """Raise ``exc`` as a PostgreSQL error (message, detail, hint, SQLSTATE)."""
    detail = None
    hint = None
    if isinstance(exc, DashScopeError):
        detail = (
            f"DashScope code={exc.code or '-'} status={exc.status_code or '-'} "
            f"request_id={exc.request_id or '-'}"
        )
        hint = exc.hint
        if isinstance(exc, AuthenticationError | APIConnectionError):
            hint = f"{exc.hint} {_SQL_HINT}"
    elif isinstance(exc, ConfigurationError):
        hint = _SQL_HINT
    error = _error_class(plpy, type(exc).__name__)(str(exc))
    # PL/Python reads these attributes of a plpy.Error into the PostgreSQL error
    error.sqlstate = sqlstate_for(exc)  # type: ignore[attr-defined]
    error.detail = detail  # type: ignore[attr-defined]
    error.hint = hint  # type: ignore[attr-defined]
    raise error from None


_ERROR_CLASSES: dict[str, type[Exception]] = {}


def _error_class(plpy: Plpy, name: str) -> type[Exception]:
    """A ``plpy.Error`` subclass named like the package's error.

    PL/Python prefixes the message with the exception's ``module.name``; in module ``builtins``
    the prefix is just the name, so the error reads ``AuthenticationError: DashScope 401
    InvalidApiKey: ...`` instead of ``plpy.Error: ...``.
    """
    cls = _ERROR_CLASSES.get(name)
    if cls is None or not issubclass(cls, plpy.Error):
        cls = type(name, (plpy.Error,), {"__module__": "builtins"})
        _ERROR_CLASSES[name] = cls
    return cls
