"""Property: no sequence of allowed actions, however generated, exceeds a cap or retries a
never-retry code.

Hypothesis drives one card at one merchant through random sequences of new payments and candidate
actions (random kinds, delays, routes, amounts, flags), sometimes waiting exactly until a denial's
``earliest_retry_at``. Only allowed reattempts become attempts, with random outcomes. After each,
an oracle written independently of the guardrail recounts the scheme caps and the never-retry
conditions from the raw attempt list.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings, target
from hypothesis import strategies as st

from forestgate.payments.codes import Family, Outcome
from forestgate.payments.guardrail import Action, Attempt, History, Rules, Verdict, check
from tests.payments.factory import CARD, LOOSE_BUDGET, MERCHANT, rules_with

UTC = dt.UTC
# Mostly retryable answers, so runs reach the caps; each never-retry kind present.
CODES = {
    "visa": ["05"] * 4
    + ["51"] * 4
    + ["91", "91", "59", "61", "54", "N7", "14", "41", "1A", "R0", "Z9"],
    "mastercard": ["05"] * 4 + ["51"] * 4 + ["91", "91", "83", "82", "79", "54", "41", "65", "Z9"],
    "amex": ["100", "100", "116", "116", "909", "130", "200", "5X"],
}
MACS = [None] * 36 + ["01", "02", "03", "04", "21", "24", "25", "26", "27", "28", "29", "30", "99"]
KINDS = ["new"] + ["retry"] * 5 + ["cascade"] * 3 + ["cit_3ds", "no_retry"]
WAITS = [0, 1, 59, 60, 3599, 3600, 86_399, 86_400, 3 * 86_400]

TIGHT = (
    (r"\{to: 2025-05-25, value: 15,", "{to: 2025-05-25, value: 3,"),
    (r"\{from: 2025-05-25, value: 20,", "{from: 2025-05-25, value: 5,"),
    (r"    - \{value: 10, source:", "    - {value: 4, source:"),
    (r"    - \{value: 35, source:", "    - {value: 6, source:"),
    *LOOSE_BUDGET,
)


class RuleSets(dict[str, Rules]):
    """The rules files a property runs under, by name."""

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        # Hypothesis prints dataclasses field by field: the code tables would run to 50 kB.
        printer.text(f"RuleSets({', '.join(self)})")


@pytest.fixture(scope="module")
def rule_sets(
    rules: Rules, loose_rules: Rules, tmp_path_factory: pytest.TempPathFactory
) -> RuleSets:
    tight = rules_with(Path(tmp_path_factory.mktemp("tight")), *TIGHT)
    return RuleSets(packaged=rules, loose=loose_rules, tight=tight)


@dataclass(frozen=True)
class Step:
    """One move: wait, then a new payment or a candidate action, and the issuer's answer if the
    guardrail lets it through."""

    kind: str
    wait_s: int | None  # None: wait until the last denial's earliest_retry_at
    amount_delta: int = 0
    route: str = "A-US"
    credential_changed: bool = False
    customer_in_session: bool = False
    is_mit: bool = True
    card_present: bool = False
    approved: bool = False
    code: str = "05"
    mac: str | None = None

    def __repr__(self) -> str:
        # Compact, so a failing 80-step scenario stays readable.
        flags = "".join(
            letter
            for letter, on in (
                ("C", self.credential_changed),
                ("S", self.customer_in_session),
                ("M", self.is_mit),
                ("P", self.card_present),
            )
            if on
        )
        wait = "earliest" if self.wait_s is None else f"+{self.wait_s}s"
        answer = "approved" if self.approved else f"{self.code}/{self.mac}"
        delta = f" amount{self.amount_delta:+d}" if self.amount_delta else ""
        return f"Step({self.kind} {wait} {self.route} {flags or '-'}{delta} -> {answer})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))  # Hypothesis's printer would list every field


def steps(
    network: str, max_wait_s: int, codes: list[str], macs: list[str | None]
) -> st.SearchStrategy[Step]:
    return st.builds(
        Step,
        kind=st.sampled_from(KINDS),
        wait_s=st.one_of(
            st.none(),
            st.sampled_from(WAITS),
            st.integers(min_value=0, max_value=max_wait_s),
            st.integers(min_value=0, max_value=max_wait_s),
        ),
        amount_delta=st.sampled_from([0] * 18 + [1, -1]),
        route=st.sampled_from(["A-US", "A-EU", "D-XB"]),
        credential_changed=st.sampled_from([False] * 5 + [True]),
        customer_in_session=st.booleans(),
        is_mit=st.booleans(),
        card_present=st.sampled_from([False] * 19 + [True]),
        approved=st.sampled_from([False] * 5 + [True]),
        code=st.sampled_from(codes),
        mac=st.sampled_from(macs) if network == "mastercard" else st.none(),
    )


Scenario = tuple[str, dt.datetime, str, list[Step]]


@st.composite
def scenarios(
    draw: st.DrawFn,
    networks: tuple[str, ...] = ("visa", "visa", "mastercard", "mastercard", "amex"),
    tempos_s: tuple[int, ...] = (600, 2 * 3600, 86_400, 5 * 86_400),
    codes: dict[str, list[str]] | None = None,
    macs: list[str | None] | None = None,
) -> Scenario:
    network = draw(st.sampled_from(networks))
    # Both sides of the Visa 15 -> 20 change on 2025-05-25.
    earliest, latest = dt.datetime(2025, 4, 20), dt.datetime(2025, 6, 30)
    start = draw(st.datetimes(min_value=earliest, max_value=latest, timezones=st.just(UTC)))
    issuer = draw(st.sampled_from(["US", "DE", "BR", "IN"]))
    # The tempo of one run: minutes apart reach the 24 h limits, days apart the 30-day windows.
    max_wait_s = draw(st.sampled_from(tempos_s))
    step = steps(network, max_wait_s, (codes or CODES)[network], macs or MACS)
    return network, start, issuer, draw(st.lists(step, min_size=1, max_size=80))


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenario=scenarios())
# Hand-written runs that reach the rules random ones rarely do: the never-retry window passing,
# a payment outliving the internal window, the cap change at midnight.
@example(
    scenario=(
        "mastercard",
        dt.datetime(2025, 6, 1, tzinfo=UTC),
        "US",
        [
            Step("new", 0, mac="21"),
            Step("retry", 60),
            Step("retry", None),
            Step("retry", None, is_mit=False, customer_in_session=True),
        ],
    )
)
@example(
    scenario=(
        "mastercard",
        dt.datetime(2025, 6, 1, tzinfo=UTC),
        "US",
        [
            Step("new", 0, mac="03"),
            Step("retry", None),
            Step("retry", 31 * 86_400),
            Step("cit_3ds", 0, is_mit=False, customer_in_session=True),
        ],
    )
)
@example(
    scenario=(
        "visa",
        dt.datetime(2025, 6, 1, tzinfo=UTC),
        "DE",
        [Step("new", 0), *[Step("retry", 4 * 86_400) for _ in range(5)]],
    )
)
@example(
    scenario=(
        "visa",
        dt.datetime(2025, 5, 24, 12, tzinfo=UTC),
        "US",
        [
            Step("new", 0, code="51"),
            *[Step("retry", 1800, code="51") for _ in range(24)],
            Step("retry", None, code="51"),
            Step("retry", 0, code="51"),
        ],
    )
)
@example(
    scenario=(
        "mastercard", dt.datetime(2025, 6, 1, tzinfo=UTC), "US",
        [Step("new", 0, mac="30"), Step("retry", 3600), Step("retry", None),
         Step("retry", 1, mac="24"), Step("retry", None)],
    )
)  # fmt: skip
@pytest.mark.parametrize("rule_set", ["packaged", "loose", "tight"])
def test_no_sequence_of_allowed_actions_breaks_a_rule(
    rule_sets: RuleSets, rule_set: str, scenario: Scenario
) -> None:
    run(rule_sets[rule_set], rule_set, scenario)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    scenario=scenarios(
        networks=("mastercard",),
        tempos_s=(300, 3600, 6 * 3600, 3 * 86_400),
        codes={"mastercard": ["05", "51", "91", "96"]},
        macs=[None, None, None, "02", "24"],
    )
)
@pytest.mark.parametrize("rule_set", ["packaged", "tight"])
def test_hammering_mastercard_never_reaches_the_excessive_attempt_limits(
    rule_sets: RuleSets, rule_set: str, scenario: Scenario
) -> None:
    run(rule_sets[rule_set], rule_set, scenario)


def answer(network: str, step: Step, issuer: str) -> dict[str, Any]:
    """The Attempt fields a step decides: the issuer's answer, the route, the card."""
    approval = "000" if network == "amex" else "00"
    return {
        "card_key": CARD,
        "merchant_id": MERCHANT,
        "currency": "USD",
        "network": network,
        "response_code": approval if step.approved else step.code,
        "merchant_advice_code": None if step.approved else step.mac,
        "approved": step.approved,
        "route": step.route,
        "issuer_country": issuer,
    }


def run(rules: Rules, rule_set: str, scenario: Scenario) -> None:
    """Play one scenario through the guardrail, checking every allowed reattempt."""
    network, now, issuer, plan = scenario
    attempts: list[Attempt] = []
    reattempt: list[bool] = []  # parallel to attempts: was it a guardrail-allowed reattempt
    last_verdict: Verdict | None = None
    payments = 0
    allowed = 0
    for step in plan:
        if step.wait_s is None and last_verdict and last_verdict.earliest_retry_at:
            now = max(now, last_verdict.earliest_retry_at)
        else:
            now += dt.timedelta(seconds=step.wait_s or 0)

        if step.kind == "new" or not attempts:
            payments += 1
            first = Attempt(
                **answer(network, step, issuer),
                at=now,
                amount_minor=1000 + (payments % 3) * 250,
                payment_id=f"p{payments}",
                is_mit=step.is_mit,
                card_present=step.card_present,
            )
            attempts.append(first)
            reattempt.append(False)
            continue
        failed = attempts[-1]
        act = Action(
            kind=step.kind,
            at=now,
            route=step.route,
            amount_minor=failed.amount_minor + step.amount_delta,
            currency="USD",
            card_present=step.card_present,
            credential_changed=step.credential_changed,
            customer_in_session=step.customer_in_session,
            is_mit=step.is_mit,
        )
        hist = History(CARD, MERCHANT, tuple(attempts))
        verdict = check(act, hist, rules, now)
        # H9: the route never changes the verdict.
        assert check(dataclasses.replace(act, route="Z-ELSEWHERE"), hist, rules, now) == verdict
        if verdict.allowed:
            assert verdict.earliest_retry_at is None
        elif verdict.earliest_retry_at is not None:
            assert verdict.earliest_retry_at > now, verdict
        last_verdict = verdict
        event(f"{rule_set}: {'allowed' if verdict.allowed else 'denied'} by {verdict.rule}")
        if not (verdict.allowed and act.is_reattempt):
            continue
        new = Attempt(
            **answer(network, step, issuer),
            at=now,
            amount_minor=act.amount_minor,
            payment_id=failed.payment_id,
            is_mit=act.is_mit,
            card_present=act.card_present,
            credential_changed=act.credential_changed,
            three_ds=act.kind == "cit_3ds",
        )
        assert_within_rules(rules, attempts, reattempt, new, act)
        attempts.append(new)
        reattempt.append(True)
        allowed += 1
    target(float(allowed), label="allowed reattempts")
    event(f"{rule_set}: {min(allowed, 20) // 5 * 5}+ allowed reattempts")


def assert_within_rules(
    rules: Rules, before: list[Attempt], flags: list[bool], new: Attempt, act: Action
) -> None:
    """The oracle: recount everything from the raw attempts, without the guardrail's helpers."""
    oracle = Oracle(rules, before, new, act)
    oracle.request_rules()
    oracle.credential_rules()
    oracle.payment_rules()
    oracle.counters(flags)


class Oracle:
    """Each rule family rechecked from the raw attempts for one allowed reattempt `new`."""

    def __init__(self, rules: Rules, before: list[Attempt], new: Attempt, act: Action) -> None:
        self.codes = rules.codes
        self.limits = rules.limits
        self.before = before
        self.new = new
        self.act = act
        self.day = new.at.astimezone(UTC).date()
        # The current credential: attempts since the last one sent with changed data.
        epoch: list[Attempt] = []
        if not new.credential_changed:
            for a in before:
                epoch = [a] if a.credential_changed else [*epoch, a]
        self.epoch = epoch
        self.payment = [a for a in before if a.payment_id == new.payment_id]

    def info(self, a: Attempt) -> tuple[Outcome, Family, bool, bool]:
        c = self.codes.classify(a.network, a.response_code, a.at)
        return c.outcome, c.family, c.known, c.cancels_recurring

    def request_rules(self) -> None:
        """H8, H11, H12, H13: what the retry itself may be."""
        prev, new = self.before[-1], self.new
        assert not prev.approved, "retried an approval"
        assert self.info(prev)[2], f"H11: retried unknown code {prev.response_code}"
        if prev.merchant_advice_code and prev.network == "mastercard":
            assert self.codes.merchant_advice(prev.merchant_advice_code).known, "H11: unknown MAC"
        assert not prev.card_present and not new.card_present, "H8"
        assert (prev.amount_minor, prev.currency) == (new.amount_minor, new.currency), "H13"
        carve_out = self.limits.carve_out(new.issuer_country)
        assert carve_out is None or self.act.kind not in carve_out.deny, "H12"

    def credential_rules(self) -> None:
        """H1 and H4: what earlier declines on this card rule out."""
        new = self.new
        for a in self.epoch:
            if not a.approved:
                assert self.info(a)[0] is not Outcome.HARD, (
                    f"H1: retried after hard {a.response_code}"
                )
        for a in self.before:
            if a.approved:
                continue
            mac = a.merchant_advice_code if a.network == "mastercard" else None
            stop = mac == "21" or self.info(a)[3]
            if stop or (mac == "03" and a in self.epoch):
                assert not new.is_mit, f"H4: MIT after {mac or a.response_code}"
                if (a.amount_minor, a.currency) == (new.amount_minor, new.currency):
                    assert new.at >= a.at + dt.timedelta(days=30), "H4: within 30 days"

    def payment_rules(self) -> None:
        """H3, H5 and H7: what this payment's own declines ask for."""
        new, act = self.new, self.act
        delay = {"24": 1, "25": 24, "26": 48, "27": 96, "28": 144, "29": 192, "30": 240}
        for a in self.payment:
            if a.approved:
                continue
            mac = a.merchant_advice_code if a.network == "mastercard" else None
            if mac in delay:
                assert new.at >= a.at + dt.timedelta(hours=delay[mac]), f"H5: MAC {mac}"
            if self.info(a)[1] is Family.SCA:
                assert act.kind == "cit_3ds" and act.customer_in_session and not act.is_mit, "H7"
            category = self.codes.classify(a.network, a.response_code, a.at).visa_category
            if a in self.epoch and (category == 3 or mac in ("01", "04")):
                assert self.info(a)[1] is Family.SCA and act.kind == "cit_3ds", "H3: data unchanged"

    def counters(self, flags: list[bool]) -> None:
        """H2, H6 and the internal budget, counted over every attempt including the new one."""
        new, limits, day = self.new, self.limits, self.day
        everything = [*self.before, new]
        if new.network == "visa":
            window = dt.timedelta(days=limits.visa_window_days.at(day))
            counted = [
                a
                for a, was_reattempt in zip(everything, [*flags, True], strict=True)
                if was_reattempt
                and a.amount_minor == new.amount_minor
                and new.at - window < a.at <= new.at
            ]
            assert len(counted) <= limits.visa_max_reattempts.at(day), "H2: Visa cap exceeded"
        if new.network == "mastercard":
            declines = [a for a in everything if not a.approved]
            last_24h = [a for a in declines if new.at - dt.timedelta(hours=24) < a.at]
            assert len(last_24h) < limits.mastercard_max_declines_24h.at(day), "H6: 24 h limit"
            same_30d = [
                a
                for a in declines
                if a.amount_minor == new.amount_minor and new.at - dt.timedelta(days=30) < a.at
            ]
            assert len(same_30d) < limits.mastercard_max_declines_30d.at(day), "H6: 30 d limit"
        retries = sum(
            1
            for a, f in zip(self.before, flags, strict=True)
            if f and a.payment_id == new.payment_id
        )
        assert retries + 1 <= limits.internal_max_retries.at(day), "internal budget"
        window = dt.timedelta(days=limits.internal_window_days.at(day))
        assert new.at - self.payment[0].at <= window, "internal window"
