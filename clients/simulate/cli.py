"""`forestgate simulate`: held-out generated payments through a Scoring server and through the
incumbent policy on the same random draws, compared in one table."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
from pathlib import Path
from typing import Any

from forestgate.cli import one_line_errors
from forestgate.clients.simulate import SimulateError

DESCRIPTION = """\
Replay the held-out payments of a generated data set (the last 20% of days, as `forestgate
train` holds them out) through a Scoring server's Score and ReportOutcome, resolve every
attempt against the generator's ground truth, and run the incumbent policy (local-else-cheapest
routing, the fixed-v1 retry schedule) on the same random draws. Prints approval, net revenue,
cost per approved payment and guardrail violations for both.

  forestgate simulate --target 127.0.0.1:50051 --data data/small --limit 2000
"""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sim = commands.add_parser(
        "simulate",
        help="replay held-out generated payments through Score against the incumbent",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sim.add_argument("--target", required=True, metavar="HOST:PORT", help="Scoring server")
    sim.add_argument("--data", required=True, type=Path, metavar="DIR",
                     help="a data set written by `forestgate generate`")  # fmt: skip
    sim.add_argument("--rate", type=float, default=None, metavar="R",
                     help="Score calls per second, open loop (default: as fast as the "
                     "deadline and --concurrency allow)")  # fmt: skip
    sim.add_argument("--limit", type=int, default=None, metavar="N",
                     help="simulate the first N held-out payments (default: all)")  # fmt: skip
    sim.add_argument("--concurrency", type=int, default=8, metavar="C",
                     help="payments in flight at once (default 8)")  # fmt: skip
    sim.add_argument("--max-attempts", type=int, default=4, metavar="K",
                     help="attempts per payment, the first included (default 4)")  # fmt: skip
    sim.add_argument("--deadline-ms", type=float, default=1000.0, metavar="MS",
                     help="deadline of each call (default 1000)")  # fmt: skip
    sim.add_argument("--seed", type=int, default=0, metavar="N",
                     help="seed of the random draws (default 0)")  # fmt: skip
    sim.add_argument("--json", type=Path, default=None, metavar="PATH",
                     help="also write the numbers as JSON to PATH")  # fmt: skip
    sim.set_defaults(run=run_simulate)
    one_line_errors(sim, "simulate")


def validate(args: argparse.Namespace) -> None:
    """SimulateError naming the flag, before any data is read or call is made."""
    host, _, port = str(args.target).rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SimulateError(f"--target: expected HOST:PORT, got {args.target!r}")
    positive = {"--concurrency": args.concurrency, "--max-attempts": args.max_attempts}
    if args.limit is not None:
        positive["--limit"] = args.limit
    for flag, value in positive.items():
        if value < 1:
            raise SimulateError(f"{flag}: expected a positive integer, got {value}")
    for flag, number in {"--rate": args.rate, "--deadline-ms": args.deadline_ms}.items():
        if number is not None and not (math.isfinite(number) and number > 0):
            raise SimulateError(f"{flag}: expected a positive number, got {number}")
    if args.json is not None and not args.json.parent.is_dir():
        raise SimulateError(f"--json: {args.json.parent} is not a directory")
    from forestgate.clients.simulate.dataset import check_directory

    check_directory(args.data)


def run_simulate(args: argparse.Namespace) -> int:
    validate(args)
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    from forestgate.clients.simulate.session import Settings, simulate
    from forestgate.clients.simulate.view import Screen

    settings = Settings(
        target=args.target, data=args.data, rate=args.rate, limit=args.limit,
        concurrency=args.concurrency, max_attempts=args.max_attempts,
        deadline_s=args.deadline_ms / 1000, seed=args.seed,
    )  # fmt: skip
    screen = Screen()
    outcome = asyncio.run(simulate(settings, progress=screen))
    screen.table(outcome.forestgate, outcome.incumbent, outcome.notes)
    if args.json is not None:
        _write_json(args.json, outcome.document)
    return 0


def _write_json(path: Path, document: dict[str, Any]) -> None:
    try:
        path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    except OSError as exc:
        raise SimulateError(f"--json: cannot write {path}: {exc.strerror}") from None
