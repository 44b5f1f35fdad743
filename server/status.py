"""The one boundary where errors become gRPC status codes, and where every RPC is counted.

    InvalidInput -> INVALID_ARGUMENT      NotFound -> NOT_FOUND
    Overloaded -> RESOURCE_EXHAUSTED      DeadlineExpired -> DEADLINE_EXCEEDED
    Unavailable -> UNAVAILABLE            BundleError -> FAILED_PRECONDITION
    anything else -> INTERNAL, with the traceback logged and a generic message sent

Expected errors keep their message (it names the field); unexpected ones never leak details.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any, TypeVar

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError, Message

from forestgate import errors
from forestgate.server.metrics import ServerMetrics
from forestgate.server.tracing.record import CURRENT
from forestgate.server.tracing.tracer import Tracer

log = logging.getLogger(__name__)

STATUS_OF: dict[type[errors.ForestGateError], grpc.StatusCode] = {
    errors.InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.DeadlineExpired: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.BundleError: grpc.StatusCode.FAILED_PRECONDITION,
}

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Context = grpc.aio.ServicerContext[Any, Any]
Handler = Callable[[Any, Req, Context], Awaitable[Resp]]


def status_for(exc: BaseException) -> grpc.StatusCode:
    for kind in type(exc).__mro__:
        if kind in STATUS_OF:
            return STATUS_OF[kind]
    return grpc.StatusCode.INTERNAL


class RpcLimit:
    """Inference RPCs in progress; beyond `limit` a new one is refused at once.

    gRPC's own `maximum_concurrent_rpcs` refuses too, but out of ForestGate's sight (uncounted)
    and for every service, health checks included; this bound is counted like any other
    RESOURCE_EXHAUSTED and leaves health and metadata calls alone.
    """

    __slots__ = ("active", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0


def rpc(
    method: str, request_type: type[Message], *, bounded: bool = False, traced: bool = True
) -> Callable[[Handler[Req, Resp]], Handler[Req, Resp]]:
    """Wrap a servicer method: parse, map errors to status codes, record count and latency.

    The method is registered without a request deserializer (see server/app.py), so bytes
    arrive here and a request that is not valid protobuf gets INVALID_ARGUMENT with a message,
    instead of gRPC's own UNKNOWN "Unexpected DecodeError". A `bounded` method counts against
    the servicer's `rpc_limit`. A `traced` method gets a trace record when the servicer has a
    `tracer` (probes are not traced); it is the current one while the handler runs.
    """

    def decorate(handler: Handler[Req, Resp]) -> Handler[Req, Resp]:
        @functools.wraps(handler)
        async def wrapper(self: Any, request: Any, context: Context) -> Resp:
            metrics: ServerMetrics = self.metrics
            limit: RpcLimit | None = self.rpc_limit if bounded else None
            started = time.monotonic_ns()
            code = grpc.StatusCode.OK
            counted = False
            tracer: Tracer | None = self.tracer if traced else None
            if tracer is not None:
                name = f"{self.service_name}/{method}"
                trace = tracer.begin(name, context.invocation_metadata(), started)
                token = CURRENT.set(trace)
            try:
                if limit is not None:
                    if limit.active >= limit.limit:
                        raise errors.Overloaded(
                            f"{limit.active} {method} calls in progress, "
                            f"max_concurrent_rpcs={limit.limit}"
                        )
                    limit.active += 1
                    counted = True
                if isinstance(request, bytes):
                    try:
                        request = request_type.FromString(request)
                    except DecodeError as exc:
                        raise errors.InvalidInput(
                            f"request: not a valid {request_type.DESCRIPTOR.full_name} ({exc})"
                        ) from None
                return await handler(self, request, context)
            except errors.ForestGateError as exc:
                code = status_for(exc)
                await context.abort(code, str(exc))
                raise  # abort raises; this line only satisfies the type checker
            except grpc.aio.AbortError:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED  # the client went away, or the server stopped
                raise
            except Exception:
                code = grpc.StatusCode.INTERNAL
                log.exception("%s failed unexpectedly", method)
                await context.abort(code, f"{method}: internal error (logged by the server)")
                raise
            finally:
                if counted:
                    limit.active -= 1  # type: ignore[union-attr]
                ended = time.monotonic_ns()
                metrics.method(method).record(code.name, (ended - started) / 1e9)
                if tracer is not None:
                    tracer.finish(trace, code.value[0], ended, context.peer)
                    CURRENT.reset(token)

        return wrapper

    return decorate


def handlers(
    servicer: object, service: ServiceDescriptor, messages: ModuleType
) -> grpc.GenericRpcHandler[Any, Any]:
    """A service's method handlers taking raw bytes, so the `rpc` boundary parses each request
    (a malformed one gets INVALID_ARGUMENT with a message, not gRPC's UNKNOWN)."""
    methods = {
        method.name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, method.name),
            request_deserializer=None,
            response_serializer=getattr(messages, method.output_type.name).SerializeToString,
        )
        for method in service.methods
    }
    return grpc.method_handlers_generic_handler(service.full_name, methods)


def deadline_ns(context: Context) -> int | None:
    """The call's gRPC deadline as a monotonic clock reading, or None."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic_ns() + int(remaining * 1e9)
