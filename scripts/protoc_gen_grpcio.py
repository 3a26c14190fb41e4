"""buf local plugin that runs grpcio-tools' bundled protoc.

buf hands every plugin a CodeGeneratorRequest holding the compiled
descriptors of the module. grpcio-tools ships protoc and the gRPC Python
generator as a library rather than as protoc-gen-* executables, so this shim
feeds those descriptors to it through ``--descriptor_set_in`` and returns the
generated files to buf. Python stubs therefore come from exactly the
grpcio-tools version pinned in uv.lock, while ``buf generate`` stays the one
regeneration command (as the specification documents).

It also emits an empty ``__init__.py`` for every generated package so the
output tree is importable as committed.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path, PurePosixPath

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from grpc_tools import protoc


def generate(request: plugin_pb2.CodeGeneratorRequest) -> plugin_pb2.CodeGeneratorResponse:
    response = plugin_pb2.CodeGeneratorResponse()
    descriptors = descriptor_pb2.FileDescriptorSet(file=request.proto_file)
    with tempfile.TemporaryDirectory() as tmp:
        descriptor_path = Path(tmp, "descriptors.pb")
        descriptor_path.write_bytes(descriptors.SerializeToString(deterministic=True))
        out = Path(tmp, "out")
        out.mkdir()
        args = [
            "protoc",
            f"--descriptor_set_in={descriptor_path}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            *request.file_to_generate,
        ]
        if protoc.main(args) != 0:
            response.error = "grpc_tools.protoc failed; see its output above"
            return response
        generated = sorted(p for p in out.rglob("*") if p.is_file())
        packages: set[PurePosixPath] = set()
        for path in generated:
            relative = PurePosixPath(path.relative_to(out).as_posix())
            packages.update(p for p in relative.parents if p != PurePosixPath("."))
            response.file.add(name=str(relative), content=path.read_text(encoding="utf-8"))
        for package in sorted(packages):
            response.file.add(name=str(package / "__init__.py"), content="")
    return response


def main() -> None:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    sys.stdout.buffer.write(generate(request).SerializeToString())


if __name__ == "__main__":
    main()
