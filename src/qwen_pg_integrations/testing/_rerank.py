"""Native text rerank (protocol doc §11): validation against the model table and the answer.

Scores are deterministic and meaningful: the share of the query's word features (words, CJK
characters and bigrams, as the reply policy uses) found in the document, so documents sharing
more of the query score higher; ties keep the input order. Limits come from
:data:`qwen_pg_integrations.dashscope.models.RERANK_MODELS`. Error texts:

* more documents than the model takes, or none -> 400 ``InvalidParameter`` with the service's
  text (§11.3, seen in production);
* unknown or retired model -> 400 ``InvalidParameter`` ``Model not exist.`` (as embeddings);
* empty query, non-string documents -> 400 ``InvalidParameter``;
* a request over the model's token budget -> 400 ``InvalidParameter`` ``Range of input length
  should be [1, N]`` (the service's text for this case is not documented: §10). Items over the
  per-item limit are truncated silently, as the service does.
"""

from __future__ import annotations

from typing import Any

from ..dashscope.models import RERANK_MODELS
from ._text import count_tokens, word_features
from ._wire import invalid

__all__ = ["rerank_response", "score"]


def score(query: str, document: str) -> float:
    """The emulator's relevance of ``document`` to ``query``, in (0, 1)."""
    q = word_features(query)
    if not q:
        return 0.01
    shared = len(q & word_features(document)) / len(q)
    return round(0.01 + 0.98 * shared, 6)


def rerank_response(body: Any, request_id: str) -> dict[str, Any]:
    """The JSON answer to one native rerank request (raises ``ApiError``)."""
    if not isinstance(body, dict):
        raise invalid("Required body invalid, please check the request body format.", False)
    model = body.get("model")
    spec = RERANK_MODELS.get(model) if isinstance(model, str) else None
    if spec is None:
        raise invalid("Model not exist.", False)
    raw_inp, raw_params = body.get("input"), body.get("parameters")
    inp: dict[str, Any] = raw_inp if isinstance(raw_inp, dict) else {}
    params: dict[str, Any] = raw_params if isinstance(raw_params, dict) else {}
    query, documents = inp.get("query"), inp.get("documents")
    if not isinstance(query, str) or not query.strip():
        raise invalid("Value error, query is empty.: input.query")
    if not isinstance(documents, list) or not 1 <= len(documents) <= spec.max_documents:
        raise invalid(
            "Value error, batch size of documents is invalid, it should not be empty or larger "
            f"than {spec.max_documents}.: input.documents"
        )
    if not all(isinstance(d, str) for d in documents):
        raise invalid("Value error, documents must be a list of str.: input.documents")
    limit = spec.max_item_tokens
    q_tokens = min(count_tokens(query), limit)
    tokens = q_tokens * len(documents) + sum(min(count_tokens(d), limit) for d in documents)
    if tokens > spec.max_request_tokens:
        raise invalid(f"Range of input length should be [1, {spec.max_request_tokens}]")
    top_n = params.get("top_n")
    if top_n is not None and (not isinstance(top_n, int) or isinstance(top_n, bool) or top_n < 1):
        raise invalid("Value error, top_n should be a positive integer.: parameters.top_n")
    ranked = sorted(range(len(documents)), key=lambda i: (-score(query, documents[i]), i))
    if top_n is not None:
        ranked = ranked[:top_n]
    with_text = params.get("return_documents") is True
    results = []
    for i in ranked:
        item: dict[str, Any] = {"index": i, "relevance_score": score(query, documents[i])}
        if with_text:
            item["document"] = {"text": documents[i]}
        results.append(item)
    return {
        "output": {"results": results},
        "usage": {"total_tokens": tokens},
        "request_id": request_id,
    }
