"""`forestgate generate`: write a synthetic transaction data set as Parquet tables."""

from __future__ import annotations

import argparse
import sys

from forestgate.training.presets import PRESETS


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    gen = commands.add_parser(
        "generate",
        help="generate synthetic card authorizations (Parquet, one file per table)",
        description=(
            "Generate a synthetic world of issuers, cards, merchants and acquirer routes and "
            "simulate authorization attempts, retries and cascades with known ground truth "
            "(reference/payments.md section 8). Writes attempts.parquet, truth.parquet and the "
            "dimension tables to OUT. The same preset and seed give byte-identical files."
        ),
    )
    gen.add_argument(
        "--preset",
        default="default",
        metavar="NAME",
        help=f"world size: {' | '.join(PRESETS)} (default: default, about 1M attempts)",
    )
    gen.add_argument(
        "--seed", default="0", metavar="N", help="non-negative integer seed (default 0)"
    )
    gen.add_argument("--out", required=True, metavar="DIR", help="output directory")
    gen.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from forestgate.training.generate import generate, validate

    # Validation (preset, seed, writable directory) raises InvalidInput before any work starts.
    request = validate(args.preset, args.seed, args.out)
    result = generate(request)
    rows = result.files
    print(
        f"generated {rows['attempts']:,} attempts ({request.preset.name}, seed {request.seed}) "
        f"in {result.seconds:.1f} s: {len(rows)} tables in {result.out}",
        file=sys.stdout,
    )
    return 0
