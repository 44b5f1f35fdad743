"""The rulebook of the guardrail: the rules file loaded as ``Rules``, and rules H1-H13
(docs/payments.md, "The guardrail") one function each.

Every rule reads the same ``Facts`` (the history classified once per check) and returns nothing,
a denial (permanent, or lapsing at a known instant) or, for the counting rules, the headroom left.
``guardrail.check`` combines them.
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

    def __repr__(self) -> str:
        return f"Rules(version={self.version!r}, source={str(self.codes.source)!r})"


@dataclass(frozen=True, slots=True)
class Denial:
    """One rule's refusal of a candidate action."""

    rule: str
    reason: str
    earliest: dt.datetime | None  # None: does not lapse by waiting


Headroom = tuple[int, str, str]  # (reattempts left after this one, rule, what is counted)


@dataclass(frozen=True, slots=True)
class Facts:
    """The history as every rule needs it, classified once per check.

    ``infos`` and ``advice`` are parallel to ``attempts``. ``current`` indexes the attempts on the
    current card data (from the last one sent with changed data; none if the action changes it);
    ``payment`` those of the failed payment (its payment_id, else its amount since the last
    approval of that amount). The failed attempt is the latest one.
    """

    action: Action
    rules: Rules
    attempts: tuple[Attempt, ...]
    infos: tuple[CodeInfo, ...]
    advice: tuple[AdviceInfo | None, ...]
    current: range
    payment: tuple[int, ...]
    day: dt.date

    @classmethod
    def of(cls, action: Action, history: History, rules: Rules) -> Facts:
        attempts = history.attempts
        codes = rules.codes
        infos = tuple(codes.classify(a.network, a.response_code, a.at) for a in attempts)
        advice = tuple(
            codes.merchant_advice(a.merchant_advice_code)
            if a.merchant_advice_code is not None and a.network == NETWORK_MASTERCARD
            else None
            for a in attempts
        )
        start = 0
        for i, a in enumerate(attempts):
            if a.credential_changed:
                start = i
        if action.credential_changed:
            start = len(attempts)
        failed = attempts[-1]
        if failed.payment_id is not None:
            payment = tuple(i for i, a in enumerate(attempts) if a.payment_id == failed.payment_id)
        else:
            chain: list[int] = []
            for i, a in enumerate(attempts[:-1]):
                if a.same_amount(failed.amount_minor, failed.currency):
                    chain = [] if a.approved else [*chain, i]
            payment = (*chain, len(attempts) - 1)
        return cls(
            action=action,
            rules=rules,
            attempts=attempts,
            infos=infos,
            advice=advice,
            current=range(start, len(attempts)),
            payment=payment,
            day=action.at.astimezone(dt.UTC).date(),
        )

    @property
    def failed(self) -> Attempt:
        return self.attempts[-1]

    def declines(self, indexes: Sequence[int]) -> list[int]:
        return [i for i in indexes if not self.attempts[i].approved]

    def cancels_recurring(self) -> bool:
        """Whether any decline asked to stop the recurring schedule (MAC 21, Visa R-codes)."""
        for i in self.declines(range(len(self.attempts))):
            advice = self.advice[i]
            if self.infos[i].cancels_recurring or (advice is not None and advice.cancels_recurring):
                return True
        return False


Rule = Callable[[Facts], Denial | None]
Counter = Callable[[Facts], Denial | Headroom | None]


def _h11_unknown(f: Facts) -> Denial | None:
    for i in f.declines(f.payment):
        info, advice = f.infos[i], f.advice[i]
        if not info.known:
            what = "network" if info.description == "unknown network" else "code"
            return Denial(
                "H11", f"unknown {what} {info.network}/{info.code}: no automated retry", None
            )
        if advice is not None and not advice.known:
            return Denial(
                "H11", f"unknown merchant advice code {advice.code}: no automated retry", None
            )
    return None


def _h8_card_present(f: Facts) -> Denial | None:
    if f.failed.card_present or f.action.card_present:
        return Denial("H8", "card-present declines are never reattempted automatically", None)
    return None


def _h12_country(f: Facts) -> Denial | None:
    carve_out = f.rules.limits.carve_out(f.failed.issuer_country)
    if carve_out is not None and f.action.kind in carve_out.deny:
        return Denial(
            "H12",
            f"no automated {f.action.kind} for cards issued in {carve_out.issuer_country}",
            None,
        )
    return None


def _h13_amount(f: Facts) -> Denial | None:
    failed, action = f.failed, f.action
    if not failed.same_amount(action.amount_minor, action.currency):
        return Denial(
            "H13",
            f"a retry keeps the declined amount {failed.amount_minor} {failed.currency}; "
            f"{action.amount_minor} {action.currency} would evade the counters",
            None,
        )
    return None


def _h4_never_retry(f: Facts) -> Denial | None:
    """MAC 03/21 and stop-payment codes: the agreement (MIT) is never charged again; a customer-
    initiated payment of the same amount only after the scheme's window. MAC 03 is about the
    card data (a new credential lifts it); MAC 21 and Visa R-codes about the agreement."""
    action = f.action
    days = f.rules.limits.mastercard_never_retry_days.at(f.day)
    earliest: dt.datetime | None = None
    for i in f.declines(range(len(f.attempts))):
        advice, info = f.advice[i], f.infos[i]
        never = advice is not None and advice.action is AdviceAction.NEVER_RETRY
        stops = info.cancels_recurring or bool(advice and advice.cancels_recurring)
        if not (stops or (never and i in f.current)):
            continue
        label = f"MAC {advice.code}" if advice and never else f"code {info.code}"
        if action.is_mit:
            return Denial("H4", f"{label}: the agreement is never charged again", None)
        attempt = f.attempts[i]
        until = attempt.at + dt.timedelta(days=days)
        if attempt.same_amount(action.amount_minor, action.currency) and action.at < until:
            earliest = until if earliest is None else max(earliest, until)
    if earliest is None:
        return None
    return Denial("H4", f"do-not-retry advice: same card and amount for {days} days", earliest)


def _h1_hard(f: Facts) -> Denial | None:
    """Visa category 1 (and any network's hard decline): never on this credential again."""
    for i in f.declines(f.current):
        info = f.infos[i]
        if info.outcome is Outcome.HARD:
            label = (
                f"Visa category 1 code {info.code}"
                if info.visa_category == 1
                else f"hard decline {info.network}/{info.code}"
            )
            return Denial("H1", f"{label}: only a new credential may be tried", None)
    return None


def _h7_sca(f: Facts) -> Denial | None:
    action = f.action
    step_up = action.kind is ActionKind.CIT_3DS
    if step_up and not (action.customer_in_session and not action.is_mit):
        return Denial("H7", "a 3DS step-up needs a customer-initiated payment in session", None)
    for i in f.declines(f.payment):
        if f.infos[i].family is Family.SCA and not step_up:
            return Denial(
                "H7",
                f"SCA soft decline {f.infos[i].code}: retry only as a CIT with 3DS "
                "while the customer is in session",
                None,
            )
    return None


def _h3_data_change(f: Facts) -> Denial | None:
    for i in f.declines(f.payment):
        if i not in f.current:
            continue
        info, advice = f.infos[i], f.advice[i]
        mac = advice is not None and advice.action is AdviceAction.UPDATE_CREDENTIALS
        if not (info.visa_category == 3 or mac):
            continue
        if info.family is Family.SCA and f.action.kind is ActionKind.CIT_3DS:
            continue  # 3DS authentication is the data change an SCA decline asks for
        label = f"MAC {advice.code}" if advice and mac else f"Visa category 3 code {info.code}"
        return Denial("H3", f"{label}: reattempt only after the card data changed", None)
    return None


def _h5_advice_delay(f: Facts) -> Denial | None:
    earliest: dt.datetime | None = None
    code = ""
    for i in f.declines(f.payment):
        advice = f.advice[i]
        if advice is None or advice.retry_after is None:
            continue
        until = f.attempts[i].at + advice.retry_after
        if f.action.at < until and (earliest is None or until > earliest):
            earliest, code = until, advice.code
    if earliest is None:
        return None
    return Denial("H5", f"MAC {code}: not before {earliest.isoformat()}", earliest)


def _lapse(times: Sequence[dt.datetime], excess: int, window: dt.timedelta) -> dt.datetime:
    """When ``excess`` of the events at ``times`` have left a rolling window."""
    return sorted(times)[excess - 1] + window


def _in_window(f: Facts, window: dt.timedelta) -> list[Attempt]:
    """Attempts in the rolling window (at - window, at]: one exactly ``window`` old is out."""
    start = f.action.at - window
    return [a for a in f.attempts if a.at > start]


def _h6_24h(f: Facts) -> Denial | Headroom | None:
    if f.failed.network != NETWORK_MASTERCARD:
        return None
    limit = f.rules.limits.mastercard_max_declines_24h.at(f.day)
    window = dt.timedelta(hours=24)
    times = [a.at for a in _in_window(f, window) if a.declined]
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


def _h6_30d(f: Facts) -> Denial | Headroom | None:
    if f.failed.network != NETWORK_MASTERCARD:
        return None
    action = f.action
    limit = f.rules.limits.mastercard_max_declines_30d.at(f.day)
    window = dt.timedelta(days=30)
    times = [
        a.at
        for a in _in_window(f, window)
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


def _h2_visa_cap(f: Facts) -> Denial | Headroom | None:
    """A reattempt is any attempt of the card, merchant and amount after a decline of them."""
    if f.failed.network != NETWORK_VISA:
        return None
    action = f.action
    cap = f.rules.limits.visa_max_reattempts.at(f.day)
    window = dt.timedelta(days=f.rules.limits.visa_window_days.at(f.day))
    start = action.at - window
    reattempts: list[dt.datetime] = []
    declined_before = False
    for attempt in f.attempts:
        if not attempt.same_amount(action.amount_minor, action.currency):
            continue
        if declined_before and attempt.at > start:
            reattempts.append(attempt.at)
        declined_before = declined_before or attempt.declined
    left = cap - (len(reattempts) + 1)
    if left >= 0:
        return (left, "H2", f"{len(reattempts) + 1} of {cap} Visa reattempts in {window.days} days")
    return Denial(
        "H2",
        f"{len(reattempts)} Visa reattempts of this card, merchant and amount in "
        f"{window.days} days; the cap on {f.day} is {cap}",
        _lapse(reattempts, -left, window),
    )


def _internal_budget(f: Facts) -> Denial | Headroom | None:
    budget = f.rules.limits.internal_max_retries.at(f.day)
    window = dt.timedelta(days=f.rules.limits.internal_window_days.at(f.day))
    first = f.attempts[f.payment[0]]
    if f.action.at - first.at > window:
        return Denial(
            "internal_budget",
            f"the payment started {first.at.isoformat()}, more than {window.days} days ago",
            None,
        )
    retries = len(f.payment) - 1
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
