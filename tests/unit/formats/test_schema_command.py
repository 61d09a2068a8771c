"""`streaming-producer schema`: the schema a format writes, with the dataset's kept columns, as the
program registers it (for registering it by hand)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2  # type: ignore[import-untyped]

from supervisor.cli import main
from supervisor.dataset.synth import write
from supervisor.errors import ExitCode
from supervisor.formats.protobuf import transaction_file
from supervisor.formats.schemas import label_schema, schema_file, transaction_schema
from tests.unit.formats.test_protobuf import compiled


@pytest.fixture
def config(tmp_path: Path) -> Path:
    write(tmp_path / "cards.csv", rows=50, seed=1, cards=5)
    path = tmp_path / "config.yaml"
    path.write_text(
        "dataset: {uri: cards.csv, extra_columns: keep, columns: {card_id: string}}\n"
        "profiles:\n  p: {interval_s: 1, min_records: 1, max_records: 1}\n"
    )
    return path


def schema_of(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["schema", *args]) == ExitCode.OK
    return capsys.readouterr().out


def test_avro_and_json_schema_carry_the_kept_columns(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for format in ("avro", "json-schema"):
        printed = json.loads(schema_of(capsys, "--format", format, "--config", str(config)))
        assert printed == json.loads(transaction_schema(format, [("card_id", "string")]))


def test_the_protobuf_text_compiles_to_the_descriptor_the_program_builds(
    config: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = schema_of(capsys, "--format", "protobuf", "--config", str(config))
    assert "  optional string card_id = 8;\n}" in text
    folder = tmp_path / "proto"
    folder.mkdir()
    (folder / "transaction.proto").write_text(text)
    theirs = compiled("transaction.proto", tmp_path, folder)
    ours = transaction_file([("card_id", "string")])
    for field in (*ours.message_type[0].field, *theirs.message_type[0].field):
        field.ClearField("json_name")
    assert isinstance(theirs, descriptor_pb2.FileDescriptorProto)
    assert ours == theirs


def test_without_kept_columns_and_for_labels_the_files_of_schemas(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tmp_path / "plain.yaml"
    plain.write_text("profiles:\n  p: {interval_s: 1, min_records: 1, max_records: 1}\n")
    assert schema_of(capsys, "--format", "avro", "--config", str(plain)) == schema_file(
        "transaction.avsc"
    )
    assert schema_of(capsys, "--format", "protobuf", "--label") == label_schema("protobuf")
