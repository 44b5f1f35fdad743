"""The terminal view of a simulation: a progress bar per policy on stderr, the final comparison
table on stdout (rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from forestgate.clients.simulate.episode import PaymentResult
from forestgate.clients.simulate.metrics import Summary, table_rows


class Screen:
    def __init__(self, out: Console | None = None, err: Console | None = None) -> None:
        self.out = out or Console()
        self.bar = Progress(
            TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(),
            TimeRemainingColumn(), console=err or Console(stderr=True), transient=False,
        )  # fmt: skip
        self.task: Any = None

    def start(self, description: str, total: int) -> None:
        if self.task is None:
            self.bar.start()
        self.task = self.bar.add_task(description, total=total)

    def advance(self, result: PaymentResult) -> None:
        self.bar.advance(self.task)

    def table(self, forestgate: Summary, incumbent: Summary, notes: dict[str, Any]) -> None:
        self.bar.stop()
        table = Table(title="ForestGate against the incumbent (same payments, same draws)")
        for column in ("metric", "ForestGate", "incumbent", "difference"):
            table.add_column(column, justify="left" if column == "metric" else "right")
        for row in table_rows(forestgate, incumbent):
            table.add_row(*row)
        self.out.print(table)
        for name, counts in notes.items():
            if counts:
                items = ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items()))
                self.out.print(f"{name}: {items}")
