"""The policy view on held-out time: the model's routing and retry decisions replayed against the
logging policy, the generator's oracle and a fixed retry schedule (docs/evaluation.md, "Business
metrics").

Routing is judged with the generator's true approval probability of every eligible route, so
its numbers are expectations, not one noisy draw. Retries are judged off-policy: only the
randomised-delay traffic has known propensities, so the recovery of a retry policy is the
inverse-propensity estimate (IPS, and its self-normalised form SNIPS) over those decisions.
Every retry the model would send is first filtered, then re-checked, by the payments core's
guardrail.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from forestgate.payments.action import Action, ActionKind
from forestgate.payments.economics import RouteTable
from forestgate.payments.guardrail import Rules, check
from forestgate.payments.history import Attempt, History, card_key
from forestgate.training.generator import countries
from forestgate.training.generator.horizon import DAY_S
from forestgate.training.generator.ledger import memoised
from forestgate.training.generator.routes import attempt_costs, build_routes
from forestgate.training.generator.world import exchange_rates

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

# A recovered payment is worth a little less the later it lands (cash-flow and churn); 0.5 % per
# day is a design choice, stated in the report.
DISCOUNT_PER_DAY = 0.005
FIXED_FIRST_RETRY_S = DAY_S  # the fixed schedule's first retry: 1 day after the decline


@dataclass(frozen=True, slots=True)
class PolicyOutcome:
    """One routing policy on the held-out first attempts, in expectation under the oracle."""

    policy: str
    payments: int
    approval_rate: float
    net_usd_per_1000: float
    cost_per_approved_usd: float
    regret_usd_per_1000: float
    agrees_with_oracle: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@functools.cache
def _routes_costs() -> Any:
    # Only the cost arrays of the generator's vectorised route table are used (no behaviour);
    # built once per process, not once per money() call (a run makes three).
    return build_routes(
        np.random.default_rng(0), table=RouteTable.load(), rates=exchange_rates(), horizon_s=1
    )


@dataclass(frozen=True, slots=True)
class Money:
    """Per (attempt, route) row, in USD: the value of an approval to the merchant (amount x
    gross margin) net of the route's approval costs, those costs, and the per-attempt fee."""

    margin_usd: F64
    approval_usd: F64
    attempt_usd: F64
    p_true: F64  # the generator's true approval probability on that route (NaN if unknown)
    logged: B


def money(data_dir: Path, pairs: pa.Table) -> Money:
    """Money of ``pairs`` (columns attempt_id, route_id, logged), row for row."""
    con = duckdb.connect()
    con.register(
        "pairs",
        pairs.select(["attempt_id", "route_id", "logged"]).append_column(
            "row_no", pa.array(np.arange(pairs.num_rows, dtype=np.int64))
        ),
    )
    frame = con.sql(
        f"""
        select c.row_no, c.route_id, c.logged, a.amount_minor, a.currency, a.amount_usd,
               a.funding, a.is_commercial, a.issuer_country, m.gross_margin,
               map_extract(t.p_approve_true_by_route, c.route_id)[1] as p_true
        from pairs c
        join read_parquet('{data_dir / "attempts.parquet"}') a using (attempt_id)
        join read_parquet('{data_dir / "truth.parquet"}') t using (attempt_id)
        join read_parquet('{data_dir / "merchants.parquet"}') m on m.merchant_id = a.merchant_id
        order by c.row_no
        """
    ).to_arrow_table()
    if frame.num_rows != pairs.num_rows:
        raise ValueError("some (attempt, route) pairs do not join to attempts, truth and merchants")
    col = {n: frame.column(n).to_numpy(zero_copy_only=False) for n in frame.column_names}
    routes = _routes_costs()
    route_idx = np.array([routes.index(r) for r in col["route_id"]], dtype=np.int64)
    country = np.array([countries.CODES.index(c) for c in col["issuer_country"]], dtype=np.int64)
    currency = np.array([countries.CURRENCIES.index(c) for c in col["currency"]], dtype=np.int64)
    funding = col["funding"].astype(str)
    card_type = np.select(
        [col["is_commercial"].astype(bool), funding == "credit", funding == "debit"],
        [3, 0, 1],
        default=2,
    ).astype(np.int64)
    amount = col["amount_minor"].astype(np.int64)
    costs = attempt_costs(
        routes,
        route=route_idx,
        local=routes.local[route_idx, country],
        card_type=card_type,
        currency=currency,
        amount_minor=amount,
        approved=np.ones(amount.size, dtype=np.bool_),
    )
    approval_cost = costs.interchange + costs.scheme_fee + costs.acquirer_fee + costs.fx_fee
    usd_per_minor = col["amount_usd"].astype(np.float64) / np.maximum(amount, 1)
    value = np.round(amount * col["gross_margin"].astype(np.float64))
    return Money(
        margin_usd=(value - approval_cost) * usd_per_minor,
        approval_usd=approval_cost * usd_per_minor,
        attempt_usd=costs.auth_fee * usd_per_minor,
        p_true=np.array([np.nan if v is None else v for v in col["p_true"]], dtype=np.float64),
        logged=col["logged"].astype(np.bool_),
    )


def _first_per_group(group: I64, score: F64) -> npt.NDArray[np.intp]:
    """Per group (rows of one payment, contiguous after a stable sort), the best-scoring row."""
    order = np.argsort(group, kind="stable")
    g, s = group[order], score[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    best = np.maximum.reduceat(s, starts)
    first = np.flatnonzero(s == np.repeat(best, np.diff(np.r_[starts, s.size])))
    seg = np.searchsorted(starts, first, side="right") - 1
    _, keep = np.unique(seg, return_index=True)
    return np.asarray(order[first[keep]], dtype=np.intp)


def routing(data_dir: Path, candidates: pa.Table, p_model: F64) -> list[PolicyOutcome]:
    """Model routing (argmax expected net value with the model's calibrated p) against the
    logged route and the oracle (the same rule with the true p), per payment."""
    m = money(data_dir, candidates)
    if np.isnan(m.p_true).any():
        raise ValueError("truth has no approval probability for some eligible route")
    group = candidates.column("attempt_id").to_numpy().astype(np.int64)
    route = np.asarray(candidates.column("route_id").to_pylist(), dtype=object)

    def net(p: F64) -> F64:
        return p * m.margin_usd - m.attempt_usd

    oracle = _first_per_group(group, net(m.p_true))
    chosen = {
        "logging policy": np.flatnonzero(m.logged),
        "model": _first_per_group(group, net(p_model)),
        "oracle": oracle,
    }
    true_net = net(m.p_true)
    oracle_net = true_net[oracle].sum()
    by_payment = {int(g): i for i, g in enumerate(group[oracle])}
    outcomes = []
    for name, rows in chosen.items():
        if rows.size != oracle.size:
            raise ValueError(f"{name}: {rows.size} choices for {oracle.size} payments")
        # Same payment order as the oracle's, so the two can be compared row by row.
        rows = rows[np.argsort([by_payment[int(g)] for g in group[rows]])]  # noqa: PLW2901
        p = m.p_true[rows]
        outcomes.append(
            PolicyOutcome(
                policy=name,
                payments=int(rows.size),
                approval_rate=float(p.mean()),
                net_usd_per_1000=float(true_net[rows].sum() / rows.size * 1000),
                cost_per_approved_usd=float(
                    (p * m.approval_usd[rows] + m.attempt_usd[rows]).sum() / max(p.sum(), 1e-12)
                ),
                regret_usd_per_1000=float((oracle_net - true_net[rows].sum()) / rows.size * 1000),
                agrees_with_oracle=float(np.mean(route[rows] == route[oracle])),
            )
        )
    return outcomes


@dataclass(frozen=True, slots=True)
class RetryOutcome:
    """A retry policy's recovery on the randomised-delay decisions, off-policy."""

    policy: str
    family: str
    decisions: int
    retried_share: float
    recovery_ips: float
    recovery_snips: float
    matched: int  # decisions where the policy chose the logged delay (the IPS support)
    effective_sample_size: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RetryReplay:
    outcomes: list[RetryOutcome]
    guardrail_denied_candidates: int
    guardrail_violations: int  # chosen retries the guardrail denies when re-checked: must be 0
    checked: int


def _utc(epoch_ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch_ms / 1000, tz=dt.UTC)


def _histories(
    con: duckdb.DuckDBPyConnection, data_dir: Path, parents: I64
) -> dict[int, tuple[History, dict[str, Any]]]:
    """For each declined parent attempt: its card+merchant history up to and including it."""
    con.register("parents", pa.table({"attempt_id": pa.array(parents, type=pa.int64())}))
    rows = con.sql(
        f"""
        with p as (
            select a.attempt_id as parent_id, coalesce(a.par, a.pan_hash) as ck, a.merchant_id,
                   a.ts_utc as decided_at
            from read_parquet('{data_dir / "attempts.parquet"}') a join parents using (attempt_id)
        )
        select p.parent_id, epoch_ms(a.ts_utc) as ts_ms, a.par, a.pan_hash, a.merchant_id,
               a.amount_minor, a.currency, a.brand, a.response_code, a.merchant_advice_code,
               a.approved, a.route_id, a.cit_mit, a.issuer_country, a.credential_changed,
               a.three_ds, a.payment_id
        from p join read_parquet('{data_dir / "attempts.parquet"}') a
          on coalesce(a.par, a.pan_hash) = p.ck and a.merchant_id = p.merchant_id
         and a.ts_utc <= p.decided_at
        order by p.parent_id, a.ts_utc, a.attempt_id
        """
    ).fetchall()
    grouped: dict[int, list[tuple[Any, ...]]] = {}
    for row in rows:
        grouped.setdefault(int(row[0]), []).append(row)
    out: dict[int, tuple[History, dict[str, Any]]] = {}
    for parent, items in grouped.items():
        attempts = []
        for r in items:
            at = _utc(r[1])
            attempts.append(
                Attempt(
                    at=at, card_key=card_key(r[2], r[3]), merchant_id=r[4],
                    amount_minor=int(r[5]), currency=r[6], network=r[7], response_code=r[8],
                    merchant_advice_code=r[9], approved=bool(r[10]), route=r[11],
                    is_mit=r[12] == "MIT", issuer_country=r[13],
                    credential_changed=bool(r[14]), three_ds=bool(r[15]), payment_id=r[16],
                )
            )  # fmt: skip
        last = items[-1]
        history = History(attempts[-1].card_key, attempts[-1].merchant_id, tuple(attempts))
        out[parent] = (history, {"at": _utc(last[1]), "route": last[11],
                                 "amount_minor": int(last[5]), "currency": last[6],
                                 "is_mit": last[12] == "MIT"})  # fmt: skip
    return out


def _retry(last: dict[str, Any], delay_s: int) -> Action:
    """A merchant-initiated retry of the decline ``last`` after ``delay_s``, on its route."""
    return Action(
        kind=ActionKind.RETRY,
        at=last["at"] + dt.timedelta(seconds=delay_s),
        route=last["route"],
        amount_minor=last["amount_minor"],
        currency=last["currency"],
        is_mit=last["is_mit"],
    )


def retries(
    data_dir: Path, candidates: pa.Table, p_model: F64, *, value_usd: F64, attempt_usd: F64
) -> RetryReplay:
    """Model retry policy (argmax p * value * discount - attempt cost over the delays the
    guardrail allows; no retry when nothing is worth it) and the fixed 1-day schedule, both
    against the logged randomised delays."""
    con = duckdb.connect()
    parent = candidates.column("parent_attempt_id").to_numpy().astype(np.int64)
    delay = candidates.column("delay_s").to_numpy().astype(np.int64)
    logged = candidates.column("logged").to_numpy(zero_copy_only=False).astype(bool)
    label = candidates.column("approved").to_numpy(zero_copy_only=False)
    prop = candidates.column("propensity").to_numpy(zero_copy_only=False)
    family = np.asarray(candidates.column("decline_family").to_pylist(), dtype=object)
    histories = _histories(con, data_dir, np.unique(parent))
    rules = memoised(Rules.load())
    allowed = np.zeros(parent.size, dtype=np.bool_)
    for i in range(parent.size):
        history, last = histories[int(parent[i])]
        allowed[i] = check(_retry(last, int(delay[i])), history, rules, last["at"]).allowed
    worth = p_model * value_usd * (1 - DISCOUNT_PER_DAY) ** (delay / DAY_S) - attempt_usd
    worth = np.where(allowed, worth, -np.inf)
    model_pick, fixed_pick = _retry_picks(parent, delay, worth=worth, allowed=allowed)
    # The plan is checked again, action by action, against the rule file as loaded (the filter
    # above used a memoised code table for speed): any disagreement is a violation.
    fresh = Rules.load()
    violations = 0
    for d, row in model_pick.items():
        history, last = histories[d]
        violations += not check(_retry(last, int(delay[row])), history, fresh, last["at"]).allowed
    logged_row = {int(parent[i]): int(i) for i in np.flatnonzero(logged)}
    fam_of = {int(parent[i]): str(family[i]) for i in range(parent.size)}
    policies = {"model": model_pick, "fixed 1 d": fixed_pick}
    policies["logging policy (randomised)"] = dict(logged_row)
    families = ["all", *sorted(set(fam_of.values()))]
    outcomes = []
    for name, picks in policies.items():
        for fam in families:
            outcome = _retry_outcome(
                name, picks, fam=fam, logged_row=logged_row, fam_of=fam_of, label=label, prop=prop
            )
            if outcome is not None:
                outcomes.append(outcome)
    return RetryReplay(
        outcomes=outcomes,
        guardrail_denied_candidates=int((~allowed).sum()),
        guardrail_violations=int(violations),
        checked=len(model_pick),
    )


def _retry_picks(
    parent: I64, delay: I64, *, worth: F64, allowed: B
) -> tuple[dict[int, int], dict[int, int]]:
    """Per decline, the candidate row the model would send (only when it is worth it) and the
    fixed schedule's (the first allowed delay of at least a day)."""
    model_pick: dict[int, int] = {}
    fixed_pick: dict[int, int] = {}
    for d in np.unique(parent).tolist():
        rows = np.flatnonzero(parent == d)
        best = rows[np.argmax(worth[rows])]
        if worth[best] > 0:
            model_pick[d] = int(best)
        fixed = rows[allowed[rows] & (delay[rows] >= FIXED_FIRST_RETRY_S)]
        if fixed.size:
            fixed_pick[d] = int(fixed[np.argmin(delay[fixed])])
    return model_pick, fixed_pick


def _retry_outcome(
    name: str,
    picks: dict[int, int],
    *,
    fam: str,
    logged_row: dict[int, int],
    fam_of: dict[int, str],
    label: npt.NDArray[np.generic],
    prop: npt.NDArray[np.generic],
) -> RetryOutcome | None:
    """One policy's recovery on the logged decisions of one decline family ("all": every one),
    or None when the family has none."""
    ds = [d for d in logged_row if fam in ("all", fam_of[d])]
    if not ds:
        return None
    match = np.array([picks.get(d) == logged_row[d] for d in ds])
    y = np.array([bool(label[logged_row[d]]) for d in ds])
    pi = np.array([float(prop[logged_row[d]]) for d in ds])
    # The logging policy is judged on-policy (weight 1); the others by importance weights.
    on_policy = name.startswith("logging")
    w = np.where(match, 1.0 if on_policy else 1.0 / np.maximum(pi, 1e-6), 0.0)
    return RetryOutcome(
        policy=name,
        family=fam,
        decisions=len(ds),
        retried_share=float(np.mean([d in picks for d in ds])),
        recovery_ips=float((w * y).sum() / len(ds)),
        recovery_snips=float((w * y).sum() / w.sum()) if w.sum() > 0 else float("nan"),
        matched=int(match.sum()),
        effective_sample_size=float(w.sum() ** 2 / max((w**2).sum(), 1e-12)),
    )
