"""Report: a benchmark's Markdown, plots and raw JSON, written side by side in one folder.

Every script builds its text with `Markdown` (headings, paragraphs, bullets, tables from rows),
opens it with the shared provenance bullets, and hands text and data to `write`, which saves
NAME.md and NAME.json together. `--quick` runs write to bench/.cache/quick unless --out says
otherwise, so a smoke run never replaces a recorded result.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
QUICK = HERE / ".cache" / "quick"
WINDOW = ("started", "seconds", "loadavg_start", "loadavg_end")
CACHES = (("L1d", "l1d"), ("L1i", "l1i"), ("L2", "l2"), ("L3", "l3"))


def table(
    header: Sequence[str], rows: Iterable[Sequence[str]], *, left: int | None = None
) -> list[str]:
    """A Markdown table; the first `left` columns are left-aligned and the rest right-aligned
    (all left-aligned when `left` is None)."""
    n = len(header)
    left = n if left is None else left
    rule = "|" + "|".join("---" if i < left else "---:" for i in range(n)) + "|"
    return [f"| {' | '.join(header)} |", rule, *(f"| {' | '.join(r)} |" for r in rows)]


class Markdown:
    """A report under construction: each block is followed by one blank line."""

    def __init__(self, title: str) -> None:
        self.lines: list[str] = [f"# {title}", ""]

    def heading(self, text: str, level: int = 2) -> Markdown:
        self.lines += [f"{'#' * level} {text}", ""]
        return self

    def para(self, *parts: str) -> Markdown:
        self.lines += ["".join(parts), ""]
        return self

    def bullets(self, items: Iterable[str]) -> Markdown:
        self.lines += [*(f"- {item}" for item in items), ""]
        return self

    def table(
        self, header: Sequence[str], rows: Iterable[Sequence[str]], *, left: int | None = None
    ) -> Markdown:
        self.lines += [*table(header, rows, left=left), ""]
        return self

    def line(self, text: str) -> Markdown:
        """One line as given (a trailing newline in it leaves a blank line after it)."""
        self.lines.append(text)
        return self

    def extend(self, lines: Iterable[str]) -> Markdown:
        self.lines += list(lines)
        return self

    def text(self) -> str:
        return "\n".join(self.lines).rstrip() + "\n"


# ------------------------------------------------------------------------------ provenance


def machine_line(env: dict[str, Any]) -> str:
    # .get: results written before the shared provenance lack some of these fields.
    caches = ", ".join(f"{name} {env[key]}" for name, key in CACHES if key in env)
    return (
        f"Machine: {env['cpu']}, {env['cpus']} CPUs ({env['hypervisor']} guest); {caches} "
        f"(lscpu); Linux {env.get('kernel', '?')}"
    )


def software_line(env: dict[str, Any]) -> str:
    packages = ", ".join(f"{k} {v}" for k, v in env["packages"].items())
    return f"Python {env['python']}, {env.get('gcc', 'gcc ?')}; {packages}"


def commit_line(env: dict[str, Any]) -> str:
    if not env["dirty"]:
        return f"Commit `{env['commit']}`"
    scope = ", ".join(env.get("dirty_paths") or [])
    return f"Commit `{env['commit']}` (uncommitted changes{' in ' + scope if scope else ''})"


def _loads(values: Sequence[float]) -> str:
    return "/".join(f"{v:.2f}" for v in values)


def load_line(run: dict[str, Any]) -> str:
    return (
        f"Started {run['started']} (UTC), ran {run['seconds'] / 60:.1f} min; load average "
        f"(1/5/15 min) {_loads(run['loadavg_start'])} at the start, "
        f"{_loads(run['loadavg_end'])} at the end"
    )


def settings_line(run: dict[str, Any]) -> str:
    settings = {k: v for k, v in run.items() if k not in WINDOW}
    return "Settings: " + ", ".join(f"{k}={v}" for k, v in settings.items())


def provenance(env: dict[str, Any], run: dict[str, Any]) -> list[str]:
    """The standard provenance bullets: machine, software, commit, time and load, settings."""
    return [machine_line(env), software_line(env), commit_line(env), load_line(run),
            settings_line(run)]  # fmt: skip


# ------------------------------------------------------------------------------ output


def add_output_options(parser: argparse.ArgumentParser, quick_help: str) -> None:
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument(
        "--out", type=Path, help=f"results folder (default {RESULTS}; --quick: {QUICK})"
    )


def output_dir(args: argparse.Namespace) -> Path:
    out: Path = args.out or (QUICK if args.quick else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    return out


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display on the benchmark machines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_plot(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=1, default=str) + "\n")


def write(out_dir: Path, name: str, markdown: str, data: dict[str, Any]) -> Path:
    """NAME.md and, next to it, NAME.json with the raw data the text was written from."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / f"{name}.json", data)
    path = out_dir / f"{name}.md"
    path.write_text(markdown, encoding="utf-8")
    print(f"wrote {path} and {name}.json")
    return path
