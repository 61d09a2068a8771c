"""The message schemas of schemas/, and the same schemas extended with extra dataset columns.

schemas/ holds the transaction and label schemas of each format (`transaction.avsc`,
`transaction.proto`, `transaction.schema.json`, `label.*`). A dataset's extra columns go after
the seven fields (`transaction_schema(format, columns)`): the id and timestamp keep their place
in the layout, and each extra field is optional (Avro: a union with null, default null; Protobuf:
a new field number; JSON Schema: not required), so the extended schema is a compatible evolution
of the shipped one.
"""

from __future__ import annotations

import importlib.resources
import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias

ColumnType: TypeAlias = Literal["string", "int", "float", "bool"]
Column: TypeAlias = tuple[str, ColumnType]
"""An extra dataset column as a message field: its name and type."""

AVRO_TYPES: Final[dict[str, str]] = {
    "string": "string",
    "int": "long",
    "float": "double",
    "bool": "boolean",
}
PROTO_TYPES: Final[dict[str, str]] = {
    "string": "string",
    "int": "int64",
    "float": "double",
    "bool": "bool",
}
JSON_TYPES: Final[dict[str, str]] = {
    "string": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
}


def schemas_dir() -> Path:
    """schemas/: the wheel's `supervisor/_schemas`, or that of a source checkout (and of the
    container image, an editable install)."""
    bundled = importlib.resources.files("supervisor") / "_schemas"
    if isinstance(bundled, Path) and bundled.is_dir():
        return bundled
    return Path(__file__).resolve().parents[2] / "schemas"


@cache
def schema_file(name: str) -> str:
    """The text of one file of schemas/ (read once)."""
    return (schemas_dir() / name).read_text(encoding="utf-8")


def transaction_schema(format: str, columns: Sequence[Column] = ()) -> str:
    """The transaction schema text of `format` (`avro`, `protobuf` or `json-schema`) with
    `columns` added after the seven fields (the Protobuf descriptor the program builds from it is
    `supervisor.formats.protobuf.transaction_file`)."""
    if format == "avro":
        document: dict[str, Any] = json.loads(schema_file("transaction.avsc"))
        for name, kind in columns:
            document["fields"].append(
                {"name": name, "type": ["null", AVRO_TYPES[kind]], "default": None}
            )
        return json.dumps(document) if columns else schema_file("transaction.avsc")
    if format == "json-schema":
        document = json.loads(schema_file("transaction.schema.json"))
        for name, kind in columns:
            document["properties"][name] = {"type": [JSON_TYPES[kind], "null"]}
        return json.dumps(document) if columns else schema_file("transaction.schema.json")
    if format == "protobuf":  # each column an optional field numbered after the seven
        text = schema_file("transaction.proto")
        if not columns:
            return text
        fields = "".join(
            f"  optional {PROTO_TYPES[kind]} {name} = {number};\n"
            for number, (name, kind) in enumerate(columns, start=8)
        )
        end = text.rindex("}")
        return text[:end] + fields + text[end:]
    raise ValueError(f"no schema text for format {format!r}")


def label_schema(format: str) -> str:
    """The label schema text of `format` (`avro`, `protobuf` or `json-schema`)."""
    names = {"avro": "label.avsc", "protobuf": "label.proto", "json-schema": "label.schema.json"}
    return schema_file(names[format])
