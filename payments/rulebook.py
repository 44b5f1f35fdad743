"""The rulebook of the guardrail: the rules file loaded as ``Rules``, and rules H1-H13
(docs/payments.md, "The guardrail") one function each.

Every rule reads the same ``Evidence`` (the questions a history answers, whether scanned whole by
``facts.Facts`` or kept running by ``ledger.Ledger``) and returns nothing, a denial (permanent,
or lapsing at a known instant) or, for the counting rules, the headroom left.
``guardrail.judge`` combines them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from forestgate.payments.action import ActionKind
from forestgate.payments.codes import (
    NETWORK_MASTERCARD,
    NETWORK_VISA,
    AdviceAction,
    ResponseCodes,
    load_rules_file,
)
from forestgate.payments.evidence import Evidence, amount_key
from forestgate.payments.limits import Limits
from forestgate.payments.timeline import Timeline


@dataclass(frozen=True, slots=True)
class Rules:
    """The response codes and the guardrail limits of one rules file, checked at load."""

    codes: ResponseCodes
    limits: Limits

    @classmethod
    def load(cls, path: Path | None = None) -> Rules:
        """Read and check ``path`` (default: the packaged rules.yaml); ConfigError if invalid."""
        codes, limits = load_rules_file(path)
        return cls(codes, limits)

    @property
    def version(self) -> str:
        return self.codes.version

    def __repr__(self) -> str:
        return f"Rules(version={self.version!r}, source={str(self.codes.source)!r})"


@dataclass(frozen=True, slots=True)
class Denial:
    """One rule's refusal of a candidate action."""

    rule: str
    reason: str
    earliest: dt.datetime | None  # None: does not lapse by waiting


Headroom = tuple[int, str, str]  # (reattempts left after this one, rule, what is counted)
Rule = Callable[[Evidence], Denial | None]
Counter = Callable[[Evidence], Denial | Headroom | None]


def _h11_unknown(f: Evidence) -> Denial | None:
    decline = f.unknown_decline
    if decline is None:
        return None
    info, advice = decline.info, decline.advice
    if not info.known:
        what = "network" if info.description == "unknown network" else "code"
        return Denial("H11", f"unknown {what} {info.network}/{info.code}: no automated retry", None)
    code = advice.code if advice is not None else ""
    return Denial("H11", f"unknown merchant advice code {code}: no automated retry", None)


def _h8_card_present(f: Evidence) -> Denial | None:
    if f.failed.attempt.card_present or f.action.card_present:
        return Denial("H8", "card-present declines are never reattempted automatically", None)
    return None


def _h12_country(f: Evidence) -> Denial | None:
    carve_out = f.limits.carve_out(f.failed.attempt.issuer_country)
    if carve_out is not None and f.action.kind in carve_out.deny:
        return Denial(
            "H12",
            f"no automated {f.action.kind} for cards issued in {carve_out.issuer_country}",
            None,
        )
    return None


def _h13_amount(f: Evidence) -> Denial | None:
    failed, action = f.failed.attempt, f.action
    if not failed.same_amount(action.amount_minor, action.currency):
        return Denial(
            "H13",
            f"a retry keeps the declined amount {failed.amount_minor} {failed.currency}; "
            f"{action.amount_minor} {action.currency} would evade the counters",
            None,
        )
    return None


def _h4_never_retry(f: Evidence) -> Denial | None:
    """MAC 03/21 and stop-payment codes: the agreement (MIT) is never charged again; a customer-
    initiated payment of the same amount only after the scheme's window. MAC 03 is about the
    card data (a new credential lifts it); MAC 21 and Visa R-codes about the agreement."""
    action = f.action
    first = f.never_retry_decline
    if first is None:
        return None
    if action.is_mit:
        advice = first.advice
        label = f"MAC {advice.code}" if advice and first.never_retry else f"code {first.info.code}"
        return Denial("H4", f"{label}: the agreement is never charged again", None)
    days = f.limits.mastercard_never_retry_days.at(f.day)
    latest = f.latest_never_retry(amount_key(action.amount_minor, action.currency))
    if latest is None or action.at >= latest + dt.timedelta(days=days):
        return None
    earliest = latest + dt.timedelta(days=days)
    return Denial("H4", f"do-not-retry advice: same card and amount for {days} days", earliest)


def _h1_hard(f: Evidence) -> Denial | None:
    """Visa category 1 (and any network's hard decline): never on this credential again."""
    decline = f.hard_decline
    if decline is None:
        return None
    info = decline.info
    label = (
        f"Visa category 1 code {info.code}"
        if info.visa_category == 1
        else f"hard decline {info.network}/{info.code}"
    )
    return Denial("H1", f"{label}: only a new credential may be tried", None)


def _h7_sca(f: Evidence) -> Denial | None:
    action = f.action
    step_up = action.kind is ActionKind.CIT_3DS
    if step_up and not (action.customer_in_session and not action.is_mit):
        return Denial("H7", "a 3DS step-up needs a customer-initiated payment in session", None)
    decline = f.sca_decline
    if decline is not None and not step_up:
        return Denial(
            "H7",
            f"SCA soft decline {decline.info.code}: retry only as a CIT with 3DS "
            "while the customer is in session",
            None,
        )
    return None


def _h3_data_change(f: Evidence) -> Denial | None:
    # 3DS authentication is the data change an SCA decline asks for.
    decline = f.data_change_decline(skip_sca=f.action.kind is ActionKind.CIT_3DS)
    if decline is None:
        return None
    advice = decline.advice
    if advice is not None and advice.action is AdviceAction.UPDATE_CREDENTIALS:
        label = f"MAC {advice.code}"
    else:
        label = f"Visa category 3 code {decline.info.code}"
    return Denial("H3", f"{label}: reattempt only after the card data changed", None)


def _h5_advice_delay(f: Evidence) -> Denial | None:
    latest = f.retry_after
    if latest is None or f.action.at >= latest[0]:
        return None
    earliest, code = latest
    return Denial("H5", f"MAC {code}: not before {earliest.isoformat()}", earliest)


def _h6_count(
    f: Evidence, window: dt.timedelta, limit: Timeline[int], *, per_amount: bool
) -> Denial | Headroom | None:
    """H6 stops before the limit: a decline of this attempt must leave the count below it."""
    if f.failed.attempt.network != NETWORK_MASTERCARD:
        return None
    action, cap = f.action, limit.at(f.day)
    if per_amount:
        amount = amount_key(action.amount_minor, action.currency)
        times = f.amount_declines_after(amount, action.at - window)
        counted, whose = (
            "Mastercard declines of this amount in 30 days",
            "card, merchant and amount",
        )
    else:
        times = f.declines_after(action.at - window)
        counted, whose = "Mastercard declines in 24 h", "card and merchant"
    left = cap - 1 - (times.count + 1)
    if left >= 0:
        return (left, "H6", f"{times.count} of {cap} {counted}")
    span = "24 h" if window == dt.timedelta(hours=24) else f"{window.days} days"
    return Denial(
        "H6",
        f"{times.count} Mastercard declines of this {whose} in {span}; "
        f"one more could reach the limit of {cap}",
        times.nth(-left - 1) + window,
    )


def _h6_24h(f: Evidence) -> Denial | Headroom | None:
    limit = f.limits.mastercard_max_declines_24h
    return _h6_count(f, dt.timedelta(hours=24), limit, per_amount=False)


def _h6_30d(f: Evidence) -> Denial | Headroom | None:
    limit = f.limits.mastercard_max_declines_30d
    return _h6_count(f, dt.timedelta(days=30), limit, per_amount=True)


def _h2_visa_cap(f: Evidence) -> Denial | Headroom | None:
    """A reattempt is any attempt of the card, merchant and amount after a decline of them."""
    if f.failed.attempt.network != NETWORK_VISA:
        return None
    action = f.action
    cap = f.limits.visa_max_reattempts.at(f.day)
    window = dt.timedelta(days=f.limits.visa_window_days.at(f.day))
    amount = amount_key(action.amount_minor, action.currency)
    reattempts = f.reattempts_after(amount, action.at - window)
    left = cap - (reattempts.count + 1)
    if left >= 0:
        return (
            left,
            "H2",
            f"{reattempts.count + 1} of {cap} Visa reattempts in {window.days} days",
        )
    return Denial(
        "H2",
        f"{reattempts.count} Visa reattempts of this card, merchant and amount in "
        f"{window.days} days; the cap on {f.day} is {cap}",
        reattempts.nth(-left - 1) + window,
    )


def _internal_budget(f: Evidence) -> Denial | Headroom | None:
    budget = f.limits.internal_max_retries.at(f.day)
    window = dt.timedelta(days=f.limits.internal_window_days.at(f.day))
    first_at = f.payment_first_at
    if f.action.at - first_at > window:
        return Denial(
            "internal_budget",
            f"the payment started {first_at.isoformat()}, more than {window.days} days ago",
            None,
        )
    retries = f.payment_retries
    left = budget - (retries + 1)
    if left >= 0:
        return (left, "internal_budget", f"retry {retries + 1} of {budget} for this payment")
    return Denial(
        "internal_budget", f"{retries} retries of this payment; the budget is {budget}", None
    )


# The order in which permanent denials are reported.
PERMANENT: tuple[Rule, ...] = (
    _h11_unknown,
    _h8_card_present,
    _h12_country,
    _h13_amount,
    _h4_never_retry,
    _h1_hard,
    _h7_sca,
    _h3_data_change,
    _h5_advice_delay,
)
COUNTERS: tuple[Counter, ...] = (_h6_24h, _h6_30d, _h2_visa_cap, _internal_budget)
