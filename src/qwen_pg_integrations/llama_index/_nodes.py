"""LlamaIndex nodes to core records and back, in the table format both frameworks share.

A row keeps the node's text in ``content`` and the node's own metadata as plain top-level keys
of ``metadata``, so a LangChain ``Document`` read from the same table sees exactly that metadata.
What only LlamaIndex needs goes under keys starting with ``_node_``, which the core reserves for
this adapter and the LangChain adapter hides (PG_CORE_API.md, "Reserved metadata"):

* ``_node_type``: the node class (``TextNode``, ``IndexNode``, ``Document``, ...);
* ``_node_content``: the rest of the node (relationships, templates, excluded keys, offsets) as a
  JSON object, without text, metadata or embedding (those live in their own places, once);
* ``_node_ref_doc_id``: the source document id, so ``delete(ref_doc_id)`` and ``doc_ids`` are one
  indexed metadata filter.

Rows written by LangChain have none of these and come back as ``TextNode`` objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llama_index.core.schema import (
    BaseNode,
    Document,
    ImageNode,
    IndexNode,
    MetadataMode,
    Node,
    TextNode,
)

from ..errors import InvalidInputError
from ..pg import Record
from ..pg.records import clean_metadata

__all__ = ["NODE_PREFIX", "REF_DOC_KEY", "node_to_record", "record_to_node"]

NODE_PREFIX = "_node_"
TYPE_KEY = "_node_type"
CONTENT_KEY = "_node_content"
REF_DOC_KEY = "_node_ref_doc_id"

_CLASSES: dict[str, type[BaseNode]] = {
    cls.class_name(): cls for cls in (TextNode, IndexNode, ImageNode, Node, Document)
}
# Stored elsewhere in the row, or recomputed on load.
_OWN_PLACE = ("id_", "embedding", "metadata", "text", "text_resource", "class_name")


def node_to_record(node: BaseNode) -> Record:
    """The row for ``node`` (its embedding is required)."""
    if node.embedding is None:
        raise InvalidInputError(
            f"Node {node.node_id!r} has no embedding: embed nodes before adding them "
            "(VectorStoreIndex and IngestionPipeline do, given an embed_model)."
        )
    # The node's metadata by the core's rules (the same for every store: NaN, lone surrogates
    # and non-string keys refused; pydantic's JSON mode would turn NaN into null silently).
    metadata = clean_metadata(node.metadata, owner=f"node {node.node_id!r}")
    # Defaults are left out (restored on load), so rows carry only what the node changed.
    dumped = node.model_dump(mode="json", exclude_defaults=True)
    reserved = [k for k in metadata if k.startswith(NODE_PREFIX)]
    if reserved:
        raise InvalidInputError(
            f"Metadata keys starting with {NODE_PREFIX!r} are reserved for the store: {reserved}."
        )
    metadata[TYPE_KEY] = node.class_name()
    metadata[CONTENT_KEY] = {k: v for k, v in dumped.items() if k not in _OWN_PLACE}
    if node.ref_doc_id is not None:
        metadata[REF_DOC_KEY] = node.ref_doc_id
    return Record(
        id=node.node_id,
        content=node.get_content(metadata_mode=MetadataMode.NONE),
        metadata=metadata,
        embedding=node.embedding,
    )


def record_to_node(record: Record) -> BaseNode:
    """The node stored in ``record`` (a plain ``TextNode`` for rows LangChain wrote)."""
    meta: Mapping[str, Any] = record.metadata
    user_meta = {k: v for k, v in meta.items() if not k.startswith(NODE_PREFIX)}
    cls = _CLASSES.get(str(meta.get(TYPE_KEY, "")), TextNode)
    stored = meta.get(CONTENT_KEY)
    data: dict[str, Any] = dict(stored) if isinstance(stored, Mapping) else {}
    data.update(id_=record.id, metadata=user_meta)
    if record.embedding is not None:
        data["embedding"] = [float(x) for x in record.embedding]
    node = cls.model_validate(data)
    node.set_content(record.content)
    return node
