"""The numbers a simulation reports per policy: approval (first attempt and final), net revenue,
cost per approved payment and guardrail violations, summed from its payments' attempts and
priced with the route cost table."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from forestgate.clients.simulate.episode import PaymentResult
from forestgate.clients.simulate.pricing import Pricing


@dataclass
class Tally:
    """One policy's running sums (USD at each payment's own rate)."""

    policy: str
    payments: int = 0
    approved: int = 0
    first_approved: int = 0
    attempts: int = 0
    recovered: int = 0  # approved after a declined first attempt
    fallbacks: int = 0
    violations: int = 0
    value_usd: float = 0.0  # merchant value of the approved payments
    approval_cost_usd: float = 0.0
    attempt_cost_usd: float = 0.0
    routes: dict[str, int] = field(default_factory=dict)  # first-attempt route counts

    def add(self, result: PaymentResult, pricing: Pricing) -> None:
        payment = result.payment
        self.payments += 1
        self.attempts += len(result.attempts)
        self.violations += result.violations
        self.fallbacks += result.fallback
        first = result.attempts[0]
        self.routes[first.route_id] = self.routes.get(first.route_id, 0) + 1
        self.first_approved += first.approved
        for attempt in result.attempts:
            costs = pricing.costs(payment, attempt.route_id)
            self.attempt_cost_usd += pricing.usd(payment, costs.attempt_cost.amount_minor)
            if attempt.approved:
                self.approved += 1
                self.recovered += attempt is not first
                self.value_usd += pricing.usd(payment, pricing.value_minor(payment))
                self.approval_cost_usd += pricing.usd(payment, costs.approval_cost.amount_minor)

    def summary(self) -> Summary:
        n = max(self.payments, 1)
        cost = self.approval_cost_usd + self.attempt_cost_usd
        return Summary(
            policy=self.policy,
            payments=self.payments,
            approval_rate=self.approved / n,
            first_attempt_approval_rate=self.first_approved / n,
            attempts_per_payment=self.attempts / n,
            recovered=self.recovered,
            net_revenue_usd=self.value_usd - cost,
            cost_per_approved_usd=cost / self.approved if self.approved else float("nan"),
            guardrail_violations=self.violations,
            fallbacks=self.fallbacks,
            first_routes=dict(sorted(self.routes.items())),
        )


@dataclass(frozen=True, slots=True)
class Summary:
    policy: str
    payments: int
    approval_rate: float
    first_attempt_approval_rate: float
    attempts_per_payment: float
    recovered: int
    net_revenue_usd: float
    cost_per_approved_usd: float
    guardrail_violations: int
    fallbacks: int
    first_routes: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# (label, Summary field, format) of the final table, in order.
ROWS: tuple[tuple[str, str, str], ...] = (
    ("payments", "payments", "{:,}"),
    ("approval rate (final)", "approval_rate", "{:.2%}"),
    ("approval rate (first attempt)", "first_attempt_approval_rate", "{:.2%}"),
    ("attempts per payment", "attempts_per_payment", "{:.3f}"),
    ("recovered after a decline", "recovered", "{:,}"),
    ("net revenue (USD)", "net_revenue_usd", "{:,.2f}"),
    ("cost per approved payment (USD)", "cost_per_approved_usd", "{:.4f}"),
    ("guardrail violations", "guardrail_violations", "{:,}"),
    ("fallbacks (incumbent rules answered)", "fallbacks", "{:,}"),
)


def table_rows(forestgate: Summary, incumbent: Summary) -> list[tuple[str, str, str, str]]:
    """(metric, ForestGate, incumbent, difference) per row of the final table."""
    rows = []
    for label, name, fmt in ROWS:
        ours, theirs = getattr(forestgate, name), getattr(incumbent, name)
        difference = ours - theirs
        if fmt.endswith("%}"):
            delta = f"{difference * 100:+.2f} pp"
        else:
            delta = ("+" if difference > 0 else "") + fmt.format(difference)
        rows.append((label, fmt.format(ours), fmt.format(theirs), delta))
    return rows


def report(forestgate: Summary, incumbent: Summary, run: dict[str, Any]) -> dict[str, Any]:
    """The --json document: the run's settings and both policies' numbers."""
    return {"run": run, "forestgate": forestgate.as_dict(), "incumbent": incumbent.as_dict()}
