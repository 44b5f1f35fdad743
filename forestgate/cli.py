"""The `forestgate` command: one entry point, a subcommand per capability.

Subcommands import their modules only when they run, so `forestgate inspect` on a serving host
never loads the compiler's training frameworks.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from forestgate import __version__
from forestgate.errors import ForestGateError, UserError, VerificationError

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def _registrars() -> list[Register]:
    from forestgate.clients import health
    from forestgate.clients.load import cli as load_cli
    from forestgate.clients.simulate import cli as simulate_cli
    from forestgate.compiler import cli as compiler_cli
    from forestgate.server import cli as server_cli
    from forestgate.training import cli as training_cli

    return [
        compiler_cli.register,
        server_cli.register,
        training_cli.register,
        load_cli.register,
        health.register,
        simulate_cli.register,
    ]


def one_line_errors(parser: argparse.ArgumentParser, command: str) -> None:
    """Make ``parser`` report a bad flag on one line, as the commands report a UserError, and
    exit 2 without printing the usage block."""

    def error(message: str) -> NoReturn:
        print(f"forestgate {command}: error: {message}", file=sys.stderr)
        raise SystemExit(2)

    parser.error = error  # type: ignore[method-assign]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="forestgate",
        description="Compile tree ensembles to native bundles and serve them for card payments.",
    )
    parser.add_argument("--version", action="version", version=f"forestgate {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in _registrars():
        register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except VerificationError as exc:
        print(f"forestgate {args.command}: error: {exc}", file=sys.stderr)
        print(exc.report, file=sys.stderr)
        return 1
    except UserError as exc:
        print(f"forestgate {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ForestGateError as exc:
        print(f"forestgate {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
