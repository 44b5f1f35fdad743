"""Schema: the called method's descriptors, from --proto, --protoset or server reflection.

Every source ends as a serialized FileDescriptorSet loaded into a private DescriptorPool, so the
message classes built here never clash with another definition of the same names in the process
(ForestGate's own `inference.*`, tritonclient's copy). Reflection tries grpc.reflection.v1, then
v1alpha, as ghz's `grpcreflect.NewClientAuto` does; both have the same messages, so the v1alpha
classes that grpcio-reflection ships serve for v1 too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import MethodDescriptor

from forestgate.clients.load import LoadError
from forestgate.clients.load.template import MethodNames

REFLECTION_METHODS = (
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
)


@dataclass(frozen=True)
class MethodSchema:
    """The method to call: its wire path, request class and names for templating."""

    path: str  # /package.Service/Method
    names: MethodNames
    request_class: Any  # a protobuf message class from the private pool
    client_streaming: bool
    server_streaming: bool
    descriptor_set: bytes  # the FileDescriptorSet it came from, for worker processes


def parse_call(call: str) -> tuple[str, str]:
    """ghz's parseServiceMethod: package.Service.Method or package.Service/Method."""
    text = call.strip().lstrip(".")
    if text.count("/") == 1:
        service, method = text.split("/")
    elif "/" not in text and "." in text:
        service, method = text.rsplit(".", 1)
    else:
        raise LoadError(
            f"method name must be package.Service.Method or package.Service/Method: {call!r}"
        )
    if not service or not method:
        raise LoadError(
            f"method name must be package.Service.Method or package.Service/Method: {call!r}"
        )
    return service, method


def from_descriptor_set(call: str, data: bytes, *, source: str) -> MethodSchema:
    """Find the method in a serialized FileDescriptorSet."""
    service_name, method_name = parse_call(call)
    files = descriptor_pb2.FileDescriptorSet()
    try:
        files.ParseFromString(data)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise LoadError(f"could not parse contents of {source}: {exc}") from None
    pool = descriptor_pool.DescriptorPool()
    by_name = {f.name: f for f in files.file}
    added: set[str] = set()

    def add(name: str) -> None:
        if name in added:
            return
        proto = by_name.get(name)
        if proto is None:
            raise LoadError(f"{source}: no descriptor found for {name!r} (an import)")
        for dependency in proto.dependency:
            add(dependency)
        pool.Add(proto)
        added.add(name)

    try:
        for name in by_name:
            add(name)
        service = pool.FindServiceByName(service_name)
    except KeyError:
        raise LoadError(f"cannot find service {service_name!r} in {source}") from None
    except TypeError as exc:
        raise LoadError(f"{source}: {exc}") from None
    method = service.methods_by_name.get(method_name)
    if method is None:
        raise LoadError(f"service {service_name!r} does not include a method named {method_name!r}")
    return _schema(method, data)


def _schema(method: MethodDescriptor, descriptor_set: bytes) -> MethodSchema:
    service = method.containing_service
    names = MethodNames(
        full_name=method.full_name,
        service=service.name,
        method=method.name,
        input=method.input_type.name,
        output=method.output_type.name,
    )
    return MethodSchema(
        path=f"/{service.full_name}/{method.name}",
        names=names,
        request_class=message_factory.GetMessageClass(method.input_type),
        client_streaming=method.client_streaming,
        server_streaming=method.server_streaming,
        descriptor_set=descriptor_set,
    )


def from_protoset(call: str, path: str) -> MethodSchema:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise LoadError(f"could not load protoset file {path!r}: {exc.strerror}") from None
    return from_descriptor_set(call, data, source=f"protoset file {path!r}")


def from_proto(call: str, path: str, import_paths: Sequence[str]) -> MethodSchema:
    """Compile a .proto with grpcio-tools' protoc; the cwd and the file's folder are imports."""
    if not path.endswith(".proto"):
        raise LoadError(f"proto: {path!r} must have .proto extension")
    if not Path(path).is_file():
        raise LoadError(f"proto: no such file {path!r}")
    try:
        import grpc_tools
    except ImportError:
        raise LoadError(
            "--proto needs grpcio-tools (pip install grpcio-tools); or use --protoset or reflection"
        ) from None
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    folder = str(Path(path).parent)
    includes = [*import_paths, folder, os.getcwd(), str(well_known)]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.pb"
        command = [
            sys.executable, "-m", "grpc_tools.protoc", *(f"-I{p}" for p in includes),
            f"--descriptor_set_out={out}", "--include_imports", path,
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not out.exists():
            first = (done.stderr.strip().splitlines() or ["protoc failed"])[0]
            raise LoadError(f"cannot compile {path}: {first}")
        data = out.read_bytes()
    return from_descriptor_set(call, data, source=f"proto file {path!r}")


async def from_reflection(
    call: str, channel: grpc.aio.Channel, *, timeout_s: float, metadata: dict[str, str] | None
) -> MethodSchema:
    """Ask the server (v1, then v1alpha) for the file defining the service and its imports."""
    from grpc_reflection.v1alpha import reflection_pb2 as rpb

    service_name, _ = parse_call(call)
    md = tuple((k.lower(), v) for k, v in (metadata or {}).items())
    last: grpc.aio.AioRpcError | None = None
    for path in REFLECTION_METHODS:
        stream = channel.stream_stream(
            path,
            request_serializer=rpb.ServerReflectionRequest.SerializeToString,
            response_deserializer=rpb.ServerReflectionResponse.FromString,
        )
        try:
            files = await _reflect(stream, rpb, service_name, timeout_s, md)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                last = exc
                continue
            raise LoadError(
                f"server reflection failed: {exc.code().name}: {exc.details()}"
            ) from None
        data = descriptor_pb2.FileDescriptorSet(file=files).SerializeToString()
        return from_descriptor_set(call, data, source="server reflection")
    assert last is not None
    raise LoadError(
        "server does not support the reflection API: pass --proto or --protoset"
    ) from None


async def _reflect(
    stream: Any, rpb: Any, service: str, timeout_s: float, metadata: tuple[tuple[str, str], ...]
) -> list[descriptor_pb2.FileDescriptorProto]:
    call = stream(timeout=timeout_s, metadata=metadata or None)
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    try:
        await call.write(rpb.ServerReflectionRequest(file_containing_symbol=service))
        pending = [await _files(call, service, files)]
        while pending:
            missing = sorted(
                {d for f in files.values() for d in f.dependency if d not in files} - set(pending)
            )
            pending = []
            for name in missing:
                await call.write(rpb.ServerReflectionRequest(file_by_filename=name))
                pending.append(await _files(call, name, files))
        await call.done_writing()
    finally:
        call.cancel()
    return list(files.values())


async def _files(call: Any, asked: str, into: dict[str, descriptor_pb2.FileDescriptorProto]) -> str:
    response = await call.read()
    if response is grpc.aio.EOF:  # type: ignore[attr-defined]
        raise LoadError("server reflection: the server closed the stream")
    if response.HasField("error_response"):
        code = response.error_response.error_code
        if code == grpc.StatusCode.NOT_FOUND.value[0]:
            raise LoadError(f"cannot find service {asked!r} (server reflection: not found)")
        raise LoadError(f"server reflection: {response.error_response.error_message or code}")
    for blob in response.file_descriptor_response.file_descriptor_proto:
        proto = descriptor_pb2.FileDescriptorProto.FromString(blob)
        into.setdefault(proto.name, proto)
    return asked
