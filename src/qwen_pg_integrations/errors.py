"""Typed errors of qwen-pg-integrations.

Every exception the package raises on purpose derives from :class:`QwenPGError`, so
``except QwenPGError`` catches them all. Each message says what to do next.

::

    QwenPGError
    ├── ConfigurationError                 bad or missing settings, detected before any I/O
    │   ├── MissingAPIKeyError             no DashScope key in the argument or DASHSCOPE_API_KEY
    │   ├── UnsupportedModelError          a model name the package has no limits for
    │   └── InvalidDimensionError          a dimension the embedding model does not offer
    ├── InvalidInputError                  bad input (empty text, NaN in a vector, k <= 0)
    │   └── FilterError                    an unknown operator or malformed metadata filter
    ├── DashScopeError                     the service answered an error (request_id, status, code)
    │   ├── AuthenticationError            401 InvalidApiKey (wrong key, or another region's)
    │   ├── PermissionDeniedError          403 (model not purchased, workspace access)
    │   ├── NotFoundError                  404 (model or workspace does not exist)
    │   ├── BadRequestError                400 (InvalidParameter, Arrearage, ...)
    │   │   └── DataInspectionFailed       400 DataInspectionFailed (content moderation)
    │   ├── RateLimitError                 429 Throttling* (retried)
    │   ├── ServerError                    5xx InternalError, ModelServingError (retried)
    │   ├── ToolCallRequiredError          a tool call was required; the model answered in text
    │   └── APIConnectionError             no answer: refused / dropped (retried)
    │       └── APITimeoutError            no answer in time (retried)
    └── StorageError                       PostgreSQL / pgvector side
        ├── DatabaseConnectionError        the server cannot be reached
        ├── ExtensionError                 pgvector missing, not installable, or too old
        ├── SchemaMismatchError            a table made for another model, dimension or distance
        ├── TableNotFoundError             the table does not exist and may not be created
        ├── ReadOnlyServerError            a write reached a read-only standby (SQLSTATE 25006)
        └── PLPythonUnavailableError       in-database functions need plpython3u

Warnings the package gives derive from :class:`QwenPGWarning` (a ``UserWarning``).

Errors keep the DashScope ``request_id``, HTTP ``status_code`` and service ``code`` so
that support tickets can quote them. Keys and passwords never appear in a message.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "APIConnectionError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "DashScopeError",
    "DataInspectionFailed",
    "DatabaseConnectionError",
    "ExtensionError",
    "FilterError",
    "InvalidDimensionError",
    "InvalidInputError",
    "MissingAPIKeyError",
    "NotFoundError",
    "PLPythonUnavailableError",
    "PermissionDeniedError",
    "QwenPGError",
    "QwenPGWarning",
    "RateLimitError",
    "ReadOnlyServerError",
    "SchemaMismatchError",
    "ServerError",
    "StorageError",
    "TableNotFoundError",
    "ToolCallRequiredError",
    "UnsupportedModelError",
    "error_class_for",
    "error_from_response",
]


class QwenPGError(Exception):
    """Root of every error raised by qwen-pg-integrations."""


class QwenPGWarning(UserWarning):
    """Something works but deserves attention (e.g. a table whose embedding model is unknown)."""


# --- configuration and input -------------------------------------------------------------


class ConfigurationError(QwenPGError):
    """A setting is missing or invalid; raised before any network or database I/O."""


class MissingAPIKeyError(ConfigurationError):
    """No DashScope API key was given."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "No DashScope API key: pass api_key=... or set DASHSCOPE_API_KEY "
            "(create one in the Model Studio console of the region you call)."
        )


class UnsupportedModelError(ConfigurationError):
    """The model is not in the package's model table."""


class InvalidDimensionError(ConfigurationError):
    """The requested embedding dimension is not offered by the model."""


class InvalidInputError(QwenPGError, ValueError):
    """The caller's input cannot be processed (nothing was sent or written)."""


class FilterError(InvalidInputError):
    """A metadata filter uses an unknown operator or a malformed value."""


# --- DashScope --------------------------------------------------------------------------


class DashScopeError(QwenPGError):
    """DashScope answered with an error.

    Attributes:
        status_code: HTTP status (``None`` when no answer arrived).
        code: DashScope error code, e.g. ``"Throttling.RateQuota"``.
        request_id: DashScope request id, to quote to support.
        service_message: the message the service sent, unchanged.
    """

    retryable: bool = False
    hint: str = "Check the request; see the DashScope error-code page for this code."

    def __init__(
        self,
        message: str | None = None,
        *,
        status_code: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        service_message: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.code = code or None
        self.request_id = request_id or None
        self.service_message = service_message or None
        super().__init__(message or self._compose())

    def _compose(self) -> str:
        head = f"DashScope {self.status_code or 'error'}"
        if self.code:
            head += f" {self.code}"
        parts = [head]
        if self.service_message:
            parts.append(f": {self.service_message}")
        parts.append(f". {self.hint}")
        if self.request_id:
            parts.append(f" (request_id={self.request_id})")
        return "".join(parts)

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_dashscope_error,
            (
                type(self),
                str(self),
                self.status_code,
                self.code,
                self.request_id,
                self.service_message,
            ),
        )


def _rebuild_dashscope_error(
    cls: type[DashScopeError],
    message: str,
    status_code: int | None,
    code: str | None,
    request_id: str | None,
    service_message: str | None,
) -> DashScopeError:
    return cls(
        message,
        status_code=status_code,
        code=code,
        request_id=request_id,
        service_message=service_message,
    )


class AuthenticationError(DashScopeError):
    """401: the key is wrong, revoked, or belongs to another region."""

    hint = (
        "Check DASHSCOPE_API_KEY. Keys are bound to a region: a Beijing key fails on the "
        "international endpoint and the other way round, so make sure base_url / "
        "DASHSCOPE_HTTP_BASE_URL points at the region where the key was created."
    )


class PermissionDeniedError(DashScopeError):
    """403: the account or workspace may not use this model."""

    hint = "Enable the model for this account or workspace in the Model Studio console."


class NotFoundError(DashScopeError):
    """404: the model or workspace does not exist."""

    hint = "Check the model name (and workspace id); retired models return this error."


class BadRequestError(DashScopeError):
    """400: the request was rejected; retrying the same request will not help."""

    hint = "Fix the request parameters named in the message; it will not succeed on retry."


class DataInspectionFailed(BadRequestError):
    """400 DataInspectionFailed: input or output was blocked by content moderation."""

    hint = (
        "The input or the generated output was blocked by DashScope content inspection; "
        "rephrase the input or remove the offending document."
    )


class RateLimitError(DashScopeError):
    """429: rate or quota exceeded (retried with backoff before it is raised)."""

    retryable = True
    hint = (
        "Requests were throttled even after retries: lower the concurrency, raise max_retries, "
        "or ask for a higher quota."
    )


class ServerError(DashScopeError):
    """5xx: DashScope failed on its side (retried with backoff before it is raised)."""

    retryable = True
    hint = "DashScope failed on its side even after retries; try again later."


class ToolCallRequiredError(DashScopeError):
    """tool_choice demanded a tool call (``"required"``/``"any"``); the model answered in text."""

    hint = (
        "The model answered in text although a tool call was required: name the tool with "
        'tool_choice="<tool name>", describe the tools more clearly, or use tool_choice="auto".'
    )


class APIConnectionError(DashScopeError):
    """No answer arrived: connection refused, reset or dropped."""

    retryable = True
    hint = (
        "Could not reach DashScope: check the network, proxies (NO_PROXY for local emulators) "
        "and base_url / DASHSCOPE_HTTP_BASE_URL."
    )


class APITimeoutError(APIConnectionError):
    """No answer arrived within the timeout."""

    hint = "DashScope did not answer in time even after retries: raise timeout= or retry later."


# --- storage ----------------------------------------------------------------------------


class StorageError(QwenPGError):
    """PostgreSQL / pgvector side."""


class DatabaseConnectionError(StorageError):
    """The database cannot be reached."""


class ExtensionError(StorageError):
    """pgvector is missing, cannot be created by this role, or is too old."""


class SchemaMismatchError(StorageError):
    """The table was made for another embedding model, dimension or distance."""


class TableNotFoundError(StorageError):
    """The collection table does not exist and the store may not create it
    (``create_table=False``, e.g. the CLI's read commands).

    Attributes:
        schema: the schema looked in.
        table: the table name.
    """

    def __init__(self, message: str, *, schema: str, table: str) -> None:
        super().__init__(message)
        self.schema = schema
        self.table = table


class ReadOnlyServerError(StorageError):
    """A write or DDL reached a server that only reads: a hot standby / PolarDB read-only
    node (SQLSTATE 25006, ``read_only_sql_transaction``)."""


class PLPythonUnavailableError(StorageError):
    """The server has no plpython3u, which the in-database functions need."""


# --- mapping DashScope codes to classes ------------------------------------------------

_CODE_PREFIXES: tuple[tuple[str, type[DashScopeError]], ...] = (
    ("DataInspectionFailed", DataInspectionFailed),
    ("data_inspection_failed", DataInspectionFailed),
    ("InvalidApiKey", AuthenticationError),
    ("invalid_api_key", AuthenticationError),
    ("Throttling", RateLimitError),
    ("insufficient_quota", RateLimitError),
    ("AccessDenied", PermissionDeniedError),
    ("Model.AccessDenied", PermissionDeniedError),
    ("Workspace.AccessDenied", PermissionDeniedError),
    ("AllocationQuota.FreeTierOnly", PermissionDeniedError),
    ("ModelNotFound", NotFoundError),
    ("Model.NotExist", NotFoundError),
    ("WorkSpaceNotFound", NotFoundError),
    ("NotFound", NotFoundError),
    ("RequestTimeOut", ServerError),
    ("InternalError.Timeout", ServerError),
    ("InternalError.Algo.InvalidParameter", BadRequestError),
    ("InternalError", ServerError),
    ("SystemError", ServerError),
    ("ModelServiceFailed", ServerError),
    ("ModelServingError", ServerError),
    ("ModelUnavailable", ServerError),
    ("ServiceUnavailable", ServerError),
    ("InvalidParameter", BadRequestError),
    ("BadRequest", BadRequestError),
    ("Arrearage", BadRequestError),
    ("UnsupportedOperation", BadRequestError),
    ("InvalidURL", BadRequestError),
)

_STATUS_CLASSES: dict[int, type[DashScopeError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: APITimeoutError,
    429: RateLimitError,
}


def error_class_for(status_code: int | None, code: str | None) -> type[DashScopeError]:
    """The error class for a DashScope answer.

    The code wins over the status because the SDK reports every in-stream error as 400
    whatever the server's real status was (see the protocol notes, 2.4).
    """
    if code:
        for prefix, cls in _CODE_PREFIXES:
            if code == prefix or code.startswith(prefix + "."):
                return cls
    if status_code is not None:
        if status_code in _STATUS_CLASSES:
            return _STATUS_CLASSES[status_code]
        if status_code >= 500:
            return ServerError
        if 400 <= status_code < 500:
            return BadRequestError
    return DashScopeError


def error_from_response(
    status_code: int | None,
    code: str | None,
    message: str | None,
    request_id: str | None,
) -> DashScopeError:
    """Build the typed error for a DashScope error answer."""
    cls = error_class_for(status_code, code)
    return cls(
        status_code=status_code,
        code=code,
        request_id=request_id,
        service_message=message,
    )
