"""Channels: the run's gRPC connections, built from the options and checked before any load.

Each channel gets its own subchannel pool, so N channels are N HTTP/2 connections (channels
with equal arguments would otherwise share one). A target that does not reach READY within
--connect-timeout, or that fails at once, ends the run with a one-line error.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc

from forestgate.clients.load import LoadError
from forestgate.clients.load.options import LoadOptions
from forestgate.clients.load.units import parse_bytes


def channel_options(o: LoadOptions) -> list[tuple[str, Any]]:
    options: list[tuple[str, Any]] = [
        ("grpc.use_local_subchannel_pool", 1),
        ("grpc.max_receive_message_length", -1),
        ("grpc.max_send_message_length", -1),
    ]
    if o.max_recv_message_size:
        size = parse_bytes(o.max_recv_message_size, what="--max-recv-message-size")
        options.append(("grpc.max_receive_message_length", size))
    if o.max_send_message_size:
        size = parse_bytes(o.max_send_message_size, what="--max-send-message-size")
        options.append(("grpc.max_send_message_length", size))
    if o.keepalive_ns:
        ms = max(1, o.keepalive_ns // 1_000_000)
        options += [("grpc.keepalive_time_ms", ms), ("grpc.keepalive_timeout_ms", ms)]
    if o.authority:
        options.append(("grpc.default_authority", o.authority))
    if o.cname:
        options.append(("grpc.ssl_target_name_override", o.cname))
    if o.lb_strategy:
        options.append(("grpc.lb_policy_name", o.lb_strategy))
    return options


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise LoadError(f"{what}: cannot read {path}: {exc.strerror}") from None


def open_channel(o: LoadOptions) -> grpc.aio.Channel:
    options = channel_options(o)
    if o.insecure:
        return grpc.aio.insecure_channel(o.host, options=options)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(o.cacert, "--cacert") if o.cacert else None,
        private_key=_read(o.key, "--key") if o.key else None,
        certificate_chain=_read(o.cert, "--cert") if o.cert else None,
    )
    return grpc.aio.secure_channel(o.host, credentials, options=options)


async def connect(channel: grpc.aio.Channel, o: LoadOptions) -> None:
    """Wait for READY; fail at once on TRANSIENT_FAILURE with gRPC's own reason."""
    timeout_s = (o.connect_timeout_ns or 10_000_000_000) / 1e9
    state = channel.get_state(try_to_connect=True)
    try:
        async with asyncio.timeout(timeout_s):
            while state != grpc.ChannelConnectivity.READY:
                if state == grpc.ChannelConnectivity.TRANSIENT_FAILURE:
                    raise LoadError(f"cannot connect to {o.host}: {await _reason(channel, o)}")
                if state == grpc.ChannelConnectivity.SHUTDOWN:
                    raise LoadError(f"cannot connect to {o.host}: channel shut down")
                await channel.wait_for_state_change(state)
                state = channel.get_state(try_to_connect=True)
    except TimeoutError:
        hint = "" if o.insecure else " (a plaintext server? pass --insecure)"
        raise LoadError(
            f"cannot connect to {o.host} within {timeout_s:g}s ({state.name}){hint}"
        ) from None


async def _reason(channel: grpc.aio.Channel, o: LoadOptions) -> str:
    """gRPC's text for the failure: a call on a failed channel fails at once with it, and
    reaches no server (there is no connection to send it on)."""
    probe = channel.unary_unary(
        "/forestgate.load.Probe/Connect", request_serializer=None, response_deserializer=None
    )
    reason = "connection failed"
    try:
        async with asyncio.timeout(2):
            await probe(b"", timeout=2)
    except grpc.aio.AioRpcError as exc:
        reason = exc.details() or exc.code().name
    except TimeoutError:
        pass
    if not o.insecure and "handshake" in reason.lower():
        reason += " (a plaintext server? pass --insecure)"
    return reason.splitlines()[0] if reason else "connection failed"
