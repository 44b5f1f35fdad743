"""The rulebook of the guardrail: the rules file loaded as ``Rules``, and rules H1-H13 of
reference/payments.md section 2.5 one function each.

Each rule looks at the candidate action, the card+merchant history and the failed attempt (the
latest one) and returns nothing, a denial (permanent, or lapsing at a known instant) or, for the
counting rules, the headroom left. ``guardrail.check`` combines them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from forestgate.payments.action import Action, ActionKind
from forestgate.payments.codes import (
    NETWORK_MASTERCARD,
    NETWORK_VISA,
    AdviceAction,
    AdviceInfo,
    CodeInfo,
    Family,
    Outcome,
    ResponseCodes,
    load_rules_file,
)
from forestgate.payments.history import Attempt, History
from forestgate.payments.limits import Limits


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


@dataclass(frozen=True, slots=True)
class Denial:
    """One rule's refusal of a candidate action."""

    rule: str
    reason: str
    earliest: dt.datetime | None  # None: does not lapse by waiting


Rule = Callable[[Action, History, Rules, Attempt], Denial | None]
Counter = Callable[[Action, History, Rules, Attempt], "Denial | tuple[int, str, str] | None"]


def _day(at: dt.datetime) -> dt.date:
    return at.astimezone(dt.UTC).date()


def _info(rules: Rules, attempt: Attempt) -> CodeInfo:
    return rules.codes.classify(attempt.network, attempt.response_code, attempt.at)


def _advice(rules: Rules, attempt: Attempt) -> AdviceInfo | None:
    if attempt.merchant_advice_code is None or attempt.network != NETWORK_MASTERCARD:
        return None
    return rules.codes.merchant_advice(attempt.merchant_advice_code)


def _declines(history: History, failed: Attempt) -> tuple[Attempt, ...]:
    return tuple(a for a in history.payment(failed) if a.declined)


def cancels_recurring(history: History, rules: Rules) -> bool:
    for attempt in history.attempts:
        if attempt.approved:
            continue
        advice = _advice(rules, attempt)
        if _info(rules, attempt).cancels_recurring or (advice and advice.cancels_recurring):
            return True
    return False


def _h11_unknown(action: Action, history: History, rules: Rules, failed: Attempt) -> Denial | None:
    for attempt in _declines(history, failed):
        info = _info(rules, attempt)
        if not info.known:
            what = "network" if info.description == "unknown network" else "code"
            return Denial(
                "H11",
                f"unknown {what} {attempt.network}/{attempt.response_code}: no automated retry",
                None,
            )
        advice = _advice(rules, attempt)
        if advice is not None and not advice.known:
            return Denial(
                "H11", f"unknown merchant advice code {advice.code}: no automated retry", None
            )
    return None


def _h8_card_present(
    action: Action, history: History, rules: Rules, failed: Attempt
) -> Denial | None:
    if failed.card_present or action.card_present:
        return Denial("H8", "card-present declines are never reattempted automatically", None)
    return None


def _h12_country(action: Action, history: History, rules: Rules, failed: Attempt) -> Denial | None:
    carve_out = rules.limits.carve_out(failed.issuer_country)
    if carve_out is not None and action.kind in carve_out.deny:
        return Denial(
            "H12",
            f"no automated {action.kind} for cards issued in {carve_out.issuer_country}",
            None,
        )
    return None


def _h13_amount(action: Action, history: History, rules: Rules, failed: Attempt) -> Denial | None:
    if not failed.same_amount(action.amount_minor, action.currency):
        return Denial(
            "H13",
            f"a retry keeps the declined amount {failed.amount_minor} {failed.currency}; "
            f"{action.amount_minor} {action.currency} would evade the counters",
            None,
        )
    return None


def _h4_never_retry(
    action: Action, history: History, rules: Rules, failed: Attempt
) -> Denial | None:
    """MAC 03/21 and stop-payment codes: never again under the agreement (MIT); a customer-
    initiated payment of the same amount only after the scheme's window."""
    days = rules.limits.mastercard_never_retry_days.at(_day(action.at))
    current = set(history.since_credential_change())
    earliest: dt.datetime | None = None
    for attempt in history.attempts:
        if attempt.approved:
            continue
        advice = _advice(rules, attempt)
        never = advice is not None and advice.action is AdviceAction.NEVER_RETRY
        cancels = _info(rules, attempt).cancels_recurring or bool(
            advice and advice.cancels_recurring
        )
        if not (never or cancels):
            continue
        label = f"MAC {advice.code}" if never and advice else f"code {attempt.response_code}"
        if (cancels or attempt in current) and action.is_mit:
            return Denial("H4", f"{label}: the agreement is never charged again", None)
        if attempt.same_amount(action.amount_minor, action.currency):
            until = attempt.at + dt.timedelta(days=days)
            if action.at < until and (cancels or attempt in current):
                earliest = max(earliest or until, until)
    if earliest is not None:
        return Denial(
            "H4", f"do-not-retry advice: same card and amount blocked for {days} days", earliest
        )
    return None


def _h1_hard(action: Action, history: History, rules: Rules, failed: Attempt) -> Denial | None:
    """Visa category 1 (and any network's hard decline): never on this credential again."""
    if action.credential_changed:
        return None
    for attempt in history.since_credential_change():
        if attempt.approved:
            continue
        info = _info(rules, attempt)
        if info.outcome is Outcome.HARD:
            label = (
                f"Visa category 1 code {info.code}"
                if info.visa_category == 1
                else f"hard decline {info.network}/{info.code}"
            )
            return Denial("H1", f"{label}: only a new credential may be tried", None)
    return None


def _h7_sca(action: Action, history: History, rules: Rules, failed: Attempt) -> Denial | None:
    in_session_cit = action.customer_in_session and not action.is_mit
    if action.kind is ActionKind.CIT_3DS and not in_session_cit:
        return Denial("H7", "a 3DS step-up needs a customer-initiated payment in session", None)
    for attempt in _declines(history, failed):
        if _info(rules, attempt).family is Family.SCA and action.kind is not ActionKind.CIT_3DS:
            return Denial(
                "H7",
                f"SCA soft decline {attempt.response_code}: retry only as a CIT with 3DS "
                "while the customer is in session",
                None,
            )
    return None


def _h3_data_change(
    action: Action, history: History, rules: Rules, failed: Attempt
) -> Denial | None:
    if action.credential_changed:
        return None
    current = set(history.since_credential_change())
    for attempt in _declines(history, failed):
        if attempt not in current:
            continue
        info = _info(rules, attempt)
        advice = _advice(rules, attempt)
        needs_data = info.visa_category == 3 or (
            advice is not None and advice.action is AdviceAction.UPDATE_CREDENTIALS
        )
        if not needs_data:
            continue
        if info.family is Family.SCA and action.kind is ActionKind.CIT_3DS:
            continue  # 3DS authentication is the data change an SCA decline asks for
        label = (
            f"MAC {advice.code}"
            if advice and advice.action is AdviceAction.UPDATE_CREDENTIALS
            else f"Visa category 3 code {info.code}"
        )
        return Denial("H3", f"{label}: reattempt only after the card data changed", None)
    return None


def _h5_advice_delay(
    action: Action, history: History, rules: Rules, failed: Attempt
) -> Denial | None:
    earliest: dt.datetime | None = None
    code = ""
    for attempt in _declines(history, failed):
        advice = _advice(rules, attempt)
        if advice is None or advice.retry_after is None:
            continue
        until = attempt.at + advice.retry_after
        if action.at < until and (earliest is None or until > earliest):
            earliest, code = until, advice.code
    if earliest is None:
        return None
    return Denial("H5", f"MAC {code}: not before {earliest.isoformat()}", earliest)


def _lapse(times: Sequence[dt.datetime], excess: int, window: dt.timedelta) -> dt.datetime:
    """When ``excess`` of the events at ``times`` have left a rolling window."""
    return sorted(times)[excess - 1] + window


def _h6_24h(
    action: Action, history: History, rules: Rules, failed: Attempt
) -> Denial | tuple[int, str, str] | None:
    if failed.network != NETWORK_MASTERCARD:
        return None
    limit = rules.limits.mastercard_max_declines_24h.at(_day(action.at))
    window = dt.timedelta(hours=24)
    times = [a.at for a in history.in_window(action.at, window) if a.declined]
    # Stop before the limit: a decline of this attempt must leave the count below it.
    left = limit - 1 - (len(times) + 1)
    if left >= 0:
        return (left, "H6", f"{len(times)} of {limit} Mastercard declines in 24 h")
    return Denial(
        "H6",
        f"{len(times)} Mastercard declines of this card and merchant in 24 h; "
        f"one more could reach the limit of {limit}",
        _lapse(times, -left, window),
    )


def _h6_30d(
    action: Action, history: History, rules: Rules, failed: Attempt
) -> Denial | tuple[int, str, str] | None:
    if failed.network != NETWORK_MASTERCARD:
        return None
    limit = rules.limits.mastercard_max_declines_30d.at(_day(action.at))
    window = dt.timedelta(days=30)
    times = [
        a.at
        for a in history.in_window(action.at, window)
        if a.declined and a.same_amount(action.amount_minor, action.currency)
    ]
    left = limit - 1 - (len(times) + 1)
    if left >= 0:
        return (
            left,
            "H6",
            f"{len(times)} of {limit} Mastercard declines of this amount in 30 days",
        )
    return Denial(
        "H6",
        f"{len(times)} Mastercard declines of this card, merchant and amount in 30 days; "
        f"one more could reach the limit of {limit}",
        _lapse(times, -left, window),
    )


def _h2_visa_cap(
    action: Action, history: History, rules: Rules, failed: Attempt
) -> Denial | tuple[int, str, str] | None:
    if failed.network != NETWORK_VISA:
        return None
    day = _day(action.at)
    cap = rules.limits.visa_max_reattempts.at(day)
    window = dt.timedelta(days=rules.limits.visa_window_days.at(day))
    same = [a for a in history.attempts if a.same_amount(action.amount_minor, action.currency)]
    reattempts: list[dt.datetime] = []
    declined_before = False
    for attempt in same:
        if declined_before and action.at - window < attempt.at:
            reattempts.append(attempt.at)
        declined_before = declined_before or attempt.declined
    left = cap - (len(reattempts) + 1)
    if left >= 0:
        return (left, "H2", f"{len(reattempts) + 1} of {cap} Visa reattempts in {window.days} days")
    return Denial(
        "H2",
        f"{len(reattempts)} Visa reattempts of this card, merchant and amount in "
        f"{window.days} days; the cap on {day} is {cap}",
        _lapse(reattempts, -left, window),
    )


def _internal_budget(
    action: Action, history: History, rules: Rules, failed: Attempt
) -> Denial | tuple[int, str, str] | None:
    day = _day(action.at)
    budget = rules.limits.internal_max_retries.at(day)
    window = dt.timedelta(days=rules.limits.internal_window_days.at(day))
    payment = history.payment(failed)
    first = payment[0]
    if action.at - first.at > window:
        return Denial(
            "internal_budget",
            f"the payment failed {first.at.isoformat()}, more than {window.days} days ago",
            None,
        )
    retries = len(payment) - 1
    left = budget - (retries + 1)
    if left >= 0:
        return (left, "internal_budget", f"retry {retries + 1} of {budget} for this payment")
    return Denial(
        "internal_budget", f"{retries} retries of this payment; the budget is {budget}", None
    )


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
