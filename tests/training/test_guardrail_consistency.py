"""Every reattempt in the data, replayed through the payments guardrail against the history
before it: the attempts it denies are exactly the ones flagged as violations, every one of them
by the legacy policy; compliant policies never violate."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow.parquet as pq

from forestgate.payments.action import Action, ActionKind
from forestgate.payments.guardrail import Rules, check
from forestgate.payments.history import Attempt, History, card_key

_KIND = {
    "retry": ActionKind.RETRY,
    "customer": ActionKind.RETRY,
    "cascade": ActionKind.CASCADE,
    "cit_3ds": ActionKind.CIT_3DS,
}
COLUMNS = [
    "attempt_id", "payment_id", "ts_utc", "par", "pan_hash", "merchant_id", "amount_minor",
    "currency", "brand", "response_code", "merchant_advice_code", "approved", "route_id",
    "cit_mit", "issuer_country", "credential_changed", "three_ds", "retry_kind", "is_retry",
    "customer_in_session", "guardrail_violation", "guardrail_rule", "decided_by",
]  # fmt: skip


def _replay(out: Path) -> tuple[set[int], set[int], dict[int, str], Counter[str], dict[int, str]]:
    rules = Rules.load()
    a = pq.read_table(out / "attempts.parquet", columns=COLUMNS).to_pydict()
    order = sorted(range(len(a["attempt_id"])), key=lambda i: (a["ts_utc"][i], a["attempt_id"][i]))
    past: dict[tuple[str, str], list[Attempt]] = defaultdict(list)
    denied: set[int] = set()
    flagged: set[int] = set()
    rule_of: dict[int, str] = {}
    who: dict[int, str] = {}
    checked: Counter[str] = Counter()
    for i in order:
        at = a["ts_utc"][i]
        assert at.tzinfo is not None
        key = card_key(a["par"][i], a["pan_hash"][i])
        merchant = a["merchant_id"][i]
        aid = a["attempt_id"][i]
        if a["guardrail_violation"][i]:
            flagged.add(aid)
        kind = a["retry_kind"][i]
        if a["is_retry"][i]:
            assert kind in _KIND
            checked[kind] += 1
            action = Action(
                kind=_KIND[kind],
                at=at,
                route=a["route_id"][i],
                amount_minor=a["amount_minor"][i],
                currency=a["currency"][i],
                credential_changed=a["credential_changed"][i],
                customer_in_session=a["customer_in_session"][i],
                is_mit=a["cit_mit"][i] == "MIT",
                payment_id=a["payment_id"][i],  # the payment it retries, as the generator asks
            )
            verdict = check(action, History(key, merchant, tuple(past[(key, merchant)])), rules, at)
            if not verdict.allowed:
                denied.add(aid)
                rule_of[aid] = verdict.rule or ""
                who[aid] = a["decided_by"][i]
        past[(key, merchant)].append(
            Attempt(
                at=at,
                card_key=key,
                merchant_id=merchant,
                amount_minor=a["amount_minor"][i],
                currency=a["currency"][i],
                network=a["brand"][i],
                response_code=a["response_code"][i],
                merchant_advice_code=a["merchant_advice_code"][i],
                approved=a["approved"][i],
                route=a["route_id"][i],
                is_mit=a["cit_mit"][i] == "MIT",
                issuer_country=a["issuer_country"][i],
                credential_changed=a["credential_changed"][i],
                three_ds=a["three_ds"][i],
                payment_id=a["payment_id"][i],
            )
        )
    recorded = {
        a["attempt_id"][i]: a["guardrail_rule"][i] for i in order if a["guardrail_violation"][i]
    }
    assert sum(checked.values()) > 3_000
    assert {"retry", "cascade", "cit_3ds", "customer"} <= set(checked)
    return denied, flagged, rule_of, Counter(who.values()), recorded


def test_guardrail_denies_exactly_the_flagged_legacy_violations(small_dir: Path) -> None:
    denied, flagged, rule_of, by_policy, recorded = _replay(small_dir)
    assert denied == flagged
    # Compliant policies never violate; the legacy policy does, against several rules.
    assert set(by_policy) == {"legacy"}
    assert len(denied) > 50
    assert len(set(rule_of.values())) >= 3
    assert {rule_of[aid] for aid in denied} & {"H1", "H4", "H5", "H2", "H3"}
    # The rule the generator recorded is the one the guardrail names.
    assert all(recorded[aid] == rule_of[aid] for aid in denied)


def test_first_attempts_are_not_reattempts(small_dir: Path) -> None:
    a = pq.read_table(
        small_dir / "attempts.parquet", columns=["attempt_no", "is_retry", "retry_kind"]
    )
    rows = a.to_pydict()
    for no, is_retry, kind in zip(
        rows["attempt_no"], rows["is_retry"], rows["retry_kind"], strict=True
    ):
        if no == 1:
            assert not is_retry and kind is None
        elif kind == "new_card":
            assert not is_retry  # another credential: a first try of that card
        else:
            assert is_retry


def test_history_timestamps_are_utc(small_dir: Path) -> None:
    ts = pq.read_table(small_dir / "attempts.parquet", columns=["ts_utc"]).column(0)
    first = ts[0].as_py()
    assert first.utcoffset() == dt.timedelta(0)
