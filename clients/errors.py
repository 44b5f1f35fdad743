"""The client's exception tree, one class per gRPC status a caller handles differently.

    ClientError                  any non-OK status; .code and .details
    ├── InvalidArgument          INVALID_ARGUMENT: the request is wrong; do not retry
    ├── NotFound                 NOT_FOUND: unknown model or version
    ├── Overloaded               RESOURCE_EXHAUSTED: the server shed load; back off
    ├── DeadlineExceeded         DEADLINE_EXCEEDED: no answer in time; fall back
    └── Unavailable              UNAVAILABLE: draining, starting or unreachable (already
                                 retried within the client's retry budget)

Callers write `except Overloaded:`, never `if e.code() == ...`.
"""

from __future__ import annotations

import grpc


class ClientError(Exception):
    """A call that ended with a non-OK gRPC status."""

    def __init__(self, code: grpc.StatusCode, details: str, method: str) -> None:
        super().__init__(f"{method}: {code.name}: {details}")
        self.code = code
        self.details = details
        self.method = method


class InvalidArgument(ClientError):
    pass


class NotFound(ClientError):
    pass


class Overloaded(ClientError):
    pass


class DeadlineExceeded(ClientError):
    pass


class Unavailable(ClientError):
    pass


_BY_CODE: dict[grpc.StatusCode, type[ClientError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.RESOURCE_EXHAUSTED: Overloaded,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
}


def from_rpc_error(error: grpc.RpcError, method: str) -> ClientError:
    code = error.code()
    details = error.details() or ""
    return _BY_CODE.get(code, ClientError)(code, details, method)
