"""A real OTLP trace receiver for tests and benchmarks: the collector's TraceService over gRPC,
and the OTLP/HTTP endpoint, built from the opentelemetry-proto definitions, on free ports.

`python -m tests.otlp` runs one that only counts spans (bench/tracing.py), printing its gRPC
port on the first line and its counts when stopped.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as service_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

KINDS = {value: name.removeprefix("SPAN_KIND_") for name, value in trace_pb2.Span.SpanKind.items()}


@dataclass
class Span:
    """A received span, with ids as hex strings and attributes as plain values."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: str  # SERVER, INTERNAL, ...
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    links: list[tuple[str, str, dict[str, Any]]]  # (trace id, span id, attributes)
    status: int  # 0 unset, 1 ok, 2 error
    resource: dict[str, Any] = field(default_factory=dict)
    trace_state: str = ""


def value(any_value: common_pb2.AnyValue) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [value(v) for v in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


def attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: value(pair.value) for pair in pairs}


def link(item: trace_pb2.Span.Link) -> tuple[str, str, dict[str, Any]]:
    return item.trace_id.hex(), item.span_id.hex(), attributes(item.attributes)


def spans_of(request: service_pb2.ExportTraceServiceRequest) -> Iterator[Span]:
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                links = [link(x) for x in span.links]
                yield Span(
                    span.name, span.trace_id.hex(), span.span_id.hex(), span.parent_span_id.hex(),
                    KINDS[span.kind], span.start_time_unix_nano, span.end_time_unix_nano,
                    attributes(span.attributes), links, span.status.code, resource,
                    span.trace_state,
                )  # fmt: skip


class TraceReceiver(service_grpc.TraceServiceServicer):
    """Collects every span it receives; `wait_for` blocks until a condition holds."""

    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self.received: list[Span] = []
        self.count = 0
        self.exports = 0
        self._changed = threading.Condition()
        self._grpc: grpc.Server | None = None
        self._http: ThreadingHTTPServer | None = None

    def Export(
        self, request: service_pb2.ExportTraceServiceRequest, context: object
    ) -> service_pb2.ExportTraceServiceResponse:
        self.take(request)
        return service_pb2.ExportTraceServiceResponse()

    def take(self, request: service_pb2.ExportTraceServiceRequest) -> None:
        spans = list(spans_of(request))
        with self._changed:
            self.exports += 1
            self.count += len(spans)
            if self.keep:
                self.received.extend(spans)
            self._changed.notify_all()

    def start_grpc(self) -> int:
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        service_grpc.add_TraceServiceServicer_to_server(self, self._grpc)
        port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._grpc.start()
        return port

    def start_http(self) -> int:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.http_paths.append(self.path)
                receiver.take(service_pb2.ExportTraceServiceRequest.FromString(body))
                reply = service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.http_paths: list[str] = []
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return int(self._http.server_address[1])

    def wait_for(self, done: Callable[[list[Span]], bool], timeout_s: float = 20.0) -> list[Span]:
        """The spans received, once `done(spans)` holds; AssertionError after `timeout_s`."""
        with self._changed:
            if not self._changed.wait_for(lambda: done(self.received), timeout_s):
                names = sorted({span.name for span in self.received})
                raise AssertionError(f"spans never arrived; got {len(self.received)}: {names}")
            return list(self.received)

    def stop(self) -> None:
        if self._grpc is not None:
            self._grpc.stop(None)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()


def main() -> int:
    parser = argparse.ArgumentParser(description="an OTLP/gRPC trace receiver that counts spans")
    parser.parse_args()
    receiver = TraceReceiver(keep=False)
    print(receiver.start_grpc(), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    receiver.stop()
    print(f"spans {receiver.count} exports {receiver.exports}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
