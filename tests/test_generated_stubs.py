"""The committed stubs in service/chat_service/gen are exactly what `make proto` generates."""

from __future__ import annotations

import filecmp
import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
GEN = ROOT / "service" / "chat_service" / "gen"
# Every proto file: `make proto` generates them all in one command.
PROTOS = sorted(str(p) for p in (ROOT / "proto").glob("*.proto"))


def test_generated_stubs_are_fresh(tmp_path: Path) -> None:
    bindir = Path(sys.executable).parent  # the venv may not be on PATH
    code = protoc.main([
        "protoc",
        f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}",
        f"-Ichat_service/gen={ROOT / 'proto'}",
        f"--python_out={tmp_path}",
        f"--grpc_python_out={tmp_path}",
        f"--mypy_out={tmp_path}",
        f"--mypy_grpc_out={tmp_path}",
        *PROTOS,
    ])
    assert code == 0
    fresh = tmp_path / "chat_service" / "gen"
    names = [f"{Path(p).stem}{suffix}" for p in PROTOS
             for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")]
    assert len(names) >= 8  # chat.proto and chat_backend.proto at least
    stale = [n for n in names if not filecmp.cmp(fresh / n, GEN / n, shallow=False)]
    assert not stale, f"stubs are stale, run `make proto`: {stale}"


def test_extended_proto_keeps_every_seed_field_number() -> None:
    """Wire compatibility: the seed's messages, fields, numbers and enum values are intact."""
    seed_set = tmp_descriptor(ROOT / "tests" / "seed_proto", "chat.proto")
    ours = tmp_descriptor(ROOT / "proto", "chat.proto")
    ours_msgs = {m.name: m for m in ours.message_type}
    for msg in seed_set.message_type:
        assert msg.name in ours_msgs, msg.name
        fields = {f.number: (f.name, f.type, f.label) for f in ours_msgs[msg.name].field}
        for f in msg.field:
            assert fields.get(f.number) == (f.name, f.type, f.label), f"{msg.name}.{f.name}"
    ours_enums = {e.name: {v.name: v.number for v in e.value} for e in ours.enum_type}
    for enum in seed_set.enum_type:
        for v in enum.value:
            assert ours_enums[enum.name][v.name] == v.number
    ours_rpcs = {m.name: (m.input_type, m.output_type, m.client_streaming, m.server_streaming)
                 for m in ours.service[0].method}
    for m in seed_set.service[0].method:
        assert ours_rpcs[m.name] == (
            m.input_type, m.output_type, m.client_streaming, m.server_streaming
        )
    assert ours.package == seed_set.package == "chat"
    assert ours.service[0].name == seed_set.service[0].name == "ChatService"
    assert isinstance(seed_set, descriptor_pb2.FileDescriptorProto)


def tmp_descriptor(folder: Path, name: str) -> descriptor_pb2.FileDescriptorProto:

    from google.protobuf import descriptor_pb2

    with tempfile.TemporaryDirectory() as out:
        target = Path(out) / "set.pb"
        assert protoc.main(["protoc", f"-I{folder}", f"--descriptor_set_out={target}",
                            str(folder / name)]) == 0
        files = descriptor_pb2.FileDescriptorSet.FromString(target.read_bytes())
    return files.file[0]
