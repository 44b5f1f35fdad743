"""`forestgate generate` (synthetic transactions as Parquet tables) and `forestgate train`
(features -> models -> calibration -> evaluation -> compiled bundles -> report)."""

from __future__ import annotations

import argparse
import sys

from forestgate.compiler import require_compiler
from forestgate.training.generator.presets import PRESETS


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    gen = commands.add_parser(
        "generate",
        help="generate synthetic card authorizations (Parquet, one file per table)",
        description=(
            "Generate a synthetic world of issuers, cards, merchants and acquirer routes and "
            "simulate authorization attempts, retries and cascades with known ground truth "
            "(docs/generator.md). Writes attempts.parquet, truth.parquet and the "
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

    tr = commands.add_parser(
        "train",
        help="train, calibrate, evaluate and compile the approval and retry models",
        description=(
            "Extract features with SQL (DuckDB) from the generated tables in DATA (generating "
            "them first when DATA is missing or empty), train XGBoost and LightGBM approval and "
            "retry models with inverse-propensity weights on a time split, keep the better of "
            "each, calibrate it (isotonic or Platt, chosen on validation), evaluate it on the "
            "held-out period, compile both into REPOSITORY as the next version of 'approval' "
            "and 'retry', and write REPORT/<run>/report.md with its plots. Logs to MLflow when "
            "it is installed."
        ),
    )
    tr.add_argument("--data", required=True, metavar="DIR", help="generated Parquet tables")
    tr.add_argument("--repository", required=True, metavar="DIR", help="model repository")
    tr.add_argument("--report", default="reports", metavar="DIR",
                    help="reports root; the run writes DIR/<run>/ (default: reports)")  # fmt: skip
    tr.add_argument("--config", default="full", metavar="NAME",
                    help="model size: demo (fast, for make run) | full (default)")  # fmt: skip
    tr.add_argument("--preset", default="default", metavar="NAME",
                    help=f"generator preset when DATA is empty: {' | '.join(PRESETS)} "
                    "(default: default)")  # fmt: skip
    tr.add_argument("--seed", default="0", metavar="N", help="seed for generation and training")
    tr.add_argument("--run", dest="run_name", default=None, metavar="NAME",
                    help="run name (default: the UTC time, YYYYmmdd-HHMMSS)")  # fmt: skip
    tr.set_defaults(run=_train)


def _run(args: argparse.Namespace) -> int:
    from forestgate.training.generator.generate import generate, validate

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


def _train(args: argparse.Namespace) -> int:
    require_compiler("forestgate train")
    from forestgate.training.trainer.pipeline import run, validate

    request = validate(
        data=args.data, repository=args.repository, report=args.report, config=args.config,
        preset=args.preset, seed=args.seed, run=args.run_name,
    )  # fmt: skip
    result = run(request, log=lambda line: print(line, file=sys.stderr))
    for model in (result.approval, result.retry):
        print(f"{model.task}: {model.bundle} ({model.selection.kept.framework}, "
              f"calibration {model.choice.method})")  # fmt: skip
    print(f"report: {result.report_dir / 'report.md' if result.report_dir else '-'}")
    return 0
