"""`forestgate load`: ghz's command line over the load runner; bad input fails before any load."""

from __future__ import annotations

import argparse
import asyncio
import os
import select
import signal
import sys

from forestgate.cli import one_line_errors
from forestgate.clients.load import LoadError, flags
from forestgate.clients.load import options as options_module
from forestgate.clients.load.options import LoadOptions

DESCRIPTION = """\
Load-test a gRPC server with ghz's flags, templating and report formats.

  forestgate load --insecure --call inference.GRPCInferenceService/ModelInfer \\
      -D bench/ghz/data/approval-1row.json -n 2000 -c 32 127.0.0.1:50051
  forestgate load --config bench/ghz/modelinfer-1row.json

Without --proto or --protoset the method comes from server reflection (v1, then v1alpha).
-d is JSON (an array is sent round-robin) and may use ghz's {{.RequestNumber}}, {{.UUID}}, ...
--rps or --load-schedule step/line runs an open loop: latency counts from each call's
scheduled send time, so a stalled server shows instead of being hidden. --procs N spreads the
load over N processes. -O summary|json|pretty|csv|html; our extra numbers (p99.9, the tool's
own CPU, intended vs actual rate) are under the "forestgate" key. --config FILE takes the long
flag names as keys; flags given on the command line win over it.
"""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    load = commands.add_parser(
        "load",
        help="load-test a gRPC server (ghz-compatible flags and reports)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    flags.add_arguments(load)
    load.set_defaults(run=run_load)
    one_line_errors(load, "load")


def run_load(args: argparse.Namespace) -> int:
    options = options_module.from_arguments(args)
    if options.debug:
        print("forestgate load: note: --debug is accepted but writes no log", file=sys.stderr)
    # gRPC core logs (a failed TLS handshake, say) would add lines to our one-line errors.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    import uvloop

    from forestgate.clients.load.data import build_inputs
    from forestgate.clients.load.printers import render
    from forestgate.clients.load.report import build_report

    if options.procs > 1:
        from forestgate.clients.load.processes import run_processes

        schema = uvloop.run(_schema(options))
        build_inputs(options, schema)  # data errors now, before any process starts
        result = run_processes(options, schema.descriptor_set)
    else:
        result = uvloop.run(_run_here(options))
    if result.failure:
        raise LoadError(result.failure)
    text = render(build_report(result, options), options.format)
    if options.output:
        try:
            with open(options.output, "w", encoding="utf-8") as out:
                out.write(text)
        except OSError as exc:
            raise LoadError(f"--output: cannot write {options.output}: {exc.strerror}") from None
    else:
        write_stdout(text)
    return 0


def write_stdout(text: str) -> None:
    """All of it: with PYTHONUNBUFFERED, sys.stdout sits on a raw FileIO whose partial writes
    to a full pipe are silently dropped by the text layer, cutting a large report short."""
    sys.stdout.flush()
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # a replaced stdout (tests): no descriptor
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    view = memoryview(text.encode("utf-8"))
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        view = view[written:]


async def _schema(options: LoadOptions):  # type: ignore[no-untyped-def]
    from forestgate.clients.load import schema
    from forestgate.clients.load.channels import connect, open_channel

    if options.proto:
        return schema.from_proto(options.call, options.proto, options.import_paths)
    if options.protoset:
        return schema.from_protoset(options.call, options.protoset)
    schema.parse_call(options.call)
    channel = open_channel(options)
    try:
        await connect(channel, options)
        return await schema.from_reflection(
            options.call,
            channel,
            timeout_s=options.connect_timeout_ns / 1e9 or 10.0,
            metadata=options.reflect_metadata,
        )
    finally:
        await channel.close(None)


async def _run_here(options: LoadOptions):  # type: ignore[no-untyped-def]
    from forestgate.clients.load.data import build_inputs
    from forestgate.clients.load.runner import Runner

    schema = await _schema(options)
    runner = Runner(options, build_inputs(options, schema))
    await runner.open()
    loop = asyncio.get_running_loop()

    def on_sigint() -> None:
        # The first Ctrl-C stops the run and prints the partial report; a second one exits.
        loop.remove_signal_handler(signal.SIGINT)
        runner.stop("cancel")

    loop.add_signal_handler(signal.SIGINT, on_sigint)
    try:
        return await runner.run()
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        await runner.close()
