"""What gRPC core did with calls before the server took them, read from its channelz counters.

Under overload the backlog forms inside gRPC core, as calls the event loop has not yet taken,
where ForestGate's own bounds cannot see it. `--max-pending-calls` caps that backlog, and core
refuses the excess at once (the client sees CANCELLED). Such a call is counted as started by
core's channelz node for the server, but never as succeeded or failed, so

    started - succeeded - failed = calls in progress + calls core refused

is how an operator sees those refusals. gRPC Python exposes channelz only through its Cython
module (the grpcio-channelz servicer reads it the same way); if that ever goes, the counters are
simply absent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

OUTCOMES = ("started", "succeeded", "failed")
CallCounts = Callable[[], dict[str, int]]


def _servers() -> list[dict[str, object]]:
    from grpc._cython import cygrpc  # type: ignore[attr-defined]

    listing = json.loads(cygrpc.channelz_get_servers(0))
    servers: list[dict[str, object]] = listing.get("server", [])
    return servers


def server_ids() -> set[int]:
    """The channelz ids of every gRPC server in this process (empty if channelz is absent)."""
    try:
        return {int(s["ref"]["serverId"]) for s in _servers()}  # type: ignore[index]
    except Exception:  # a private API: never let it stop the server
        log.warning("gRPC channelz is not readable; transport call counters are off")
        return set()


def call_counts(before: set[int]) -> CallCounts | None:
    """A reader of the counters of the one server created since `before` was taken; None if
    that server cannot be told apart (another one started meanwhile) or channelz is absent."""
    new = server_ids() - before
    if len(new) != 1:
        return None
    (server_id,) = new

    def read() -> dict[str, int]:
        from grpc._cython import cygrpc  # type: ignore[attr-defined]

        data = json.loads(cygrpc.channelz_get_server(server_id))["server"]["data"]
        return {outcome: int(data.get("calls" + outcome.capitalize(), 0)) for outcome in OUTCOMES}

    return read
