"""The Protobuf message classes built at run time are those of schemas/*.proto, as protoc reads
them (grpcio-tools' protoc, a dev dependency)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2  # type: ignore[import-untyped]

from supervisor.formats.protobuf import label_file, transaction_file
from supervisor.formats.schemas import schemas_dir


def compiled(
    name: str, tmp_path: Path, folder: Path | None = None
) -> descriptor_pb2.FileDescriptorProto:
    """`name` in `folder` (default schemas/) as protoc reads it."""
    out = tmp_path / f"{name}.pb"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"--proto_path={folder or schemas_dir()}",
            f"--descriptor_set_out={out}",
            name,
        ],
        check=True,
        capture_output=True,
    )
    files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    (proto,) = files.file
    return proto


@pytest.mark.parametrize(
    ("name", "built"), [("transaction.proto", transaction_file), ("label.proto", label_file)]
)
def test_the_runtime_descriptor_is_protocs(name: str, built: object, tmp_path: Path) -> None:
    ours = built()  # type: ignore[operator]
    theirs = compiled(name, tmp_path)
    for field in (*ours.message_type[0].field, *theirs.message_type[0].field):
        field.ClearField("json_name")  # protoc leaves it out of a descriptor set
    assert ours == theirs
