"""The online state's live behaviour: late attempts keep the window counts exact, history
expires by event time while the card totals stay, and a snapshot restores the same state."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forestgate.errors import InvalidInput
from forestgate.payments import snapshot
from forestgate.payments.codes import ResponseCodes
from forestgate.payments.features import (
    APPROVAL_FEATURES,
    DAY_MS,
    LONGEST_WINDOW_MS,
    RETRY_FEATURES,
    RETRY_HORIZON_MS,
    Answer,
)
from forestgate.payments.routetable import RouteTable
from forestgate.training.generator import policy
from tests.attempts import OFFSETS, ROUTES, T0_MS, Stream, new_state, request, stream

# Decided in arrival order (FeatureState's docstring): everything else must not depend on it.
ORDER_DEPENDENT = (
    "card_recoveries",
    "card_days_since_recovery",
    "payday_dom_gap",
    "payday_dow_gap",
)
ORDER_FREE = [i for i, name in enumerate(APPROVAL_FEATURES) if name not in ORDER_DEPENDENT]


def probes(after_ms: int) -> list[tuple[str, int]]:
    return [(f"card-{c}", after_ms + k * DAY_MS // 3) for c in range(3) for k in range(4)]


def rows(attempts: Stream, after_ms: int, seed: int) -> np.ndarray:
    state = new_state()
    for req, ans in attempts:
        state.observe(req, ans)
    return np.stack(
        [
            state.approval_rows(request(10**6 + i, ts, card=card, merchant="m-1"), ROUTES)
            for i, (card, ts) in enumerate(probes(after_ms))
        ]
    )


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_late_attempts_leave_every_order_free_feature_unchanged(seed: int) -> None:
    in_order = stream(120, seed=seed)
    shuffled = in_order.copy()
    random.Random(seed).shuffle(shuffled)
    after = in_order[-1][0].ts_ms + 1
    expected, got = rows(in_order, after, seed), rows(shuffled, after, seed)
    np.testing.assert_array_equal(got[..., ORDER_FREE], expected[..., ORDER_FREE])


def test_a_late_attempt_is_counted_where_its_time_falls() -> None:
    state = new_state()
    state.observe(request(1, T0_MS + 10 * 3_600_000), Answer(False, "05"))
    state.observe(request(2, T0_MS), Answer(False, "05"))  # 10 h late
    probe = request(3, T0_MS + 30 * 3_600_000)  # 24 h window: (T0 + 6 h, T0 + 30 h]
    card = state.card_counts(probe.card_key, anchor_ms=probe.ts_ms)
    assert (card.attempts_24h, card.declines_24h, card.attempts_7d) == (1, 1, 2)


def test_history_expires_by_event_time_and_card_totals_stay() -> None:
    state = new_state(lateness_ms=DAY_MS)
    days = 40
    for d in range(days):
        req = request(d + 1, T0_MS + d * DAY_MS, route=ROUTES[0] if d < 5 else ROUTES[1])
        state.observe(req, Answer(d % 2 == 0, "00" if d % 2 == 0 else "05"))
    kept_days = (LONGEST_WINDOW_MS + DAY_MS) // DAY_MS
    card = state.cards["card-1"]
    assert len(card.recent.ts) == kept_days  # one a day with ts > watermark - history
    assert card.approvals == days // 2, "the all-time totals are kept"
    assert ("route", ROUTES[0]) not in state.rates, "a key idle past the history is dropped"
    assert len(state.payments) == len(state.declines) * 2 == RETRY_HORIZON_MS // DAY_MS


def test_a_retry_can_be_consulted_within_the_retry_horizon_only() -> None:
    assert RETRY_HORIZON_MS == policy.WINDOW_S * 1000
    state = new_state()
    decline = request(1, T0_MS)
    state.observe(decline, Answer(False, "51"))
    state.observe(request(2, T0_MS + RETRY_HORIZON_MS - 1, card="other"), Answer(True, "00"))
    assert state.retry_rows(decline, [(3600, ROUTES[1])]).shape == (1, len(RETRY_FEATURES))
    state.observe(request(3, T0_MS + RETRY_HORIZON_MS, card="other"), Answer(True, "00"))
    with pytest.raises(InvalidInput, match="not an observed decline"):
        state.retry_rows(decline, [(3600, ROUTES[1])])


def test_a_snapshot_restores_the_same_state() -> None:
    state = new_state(lateness_ms=3_600_000)
    for req, ans in stream(300, seed=7):
        state.observe(req, ans)
    data = snapshot.snapshot(state)
    again = snapshot.restore(
        data, routes=RouteTable.load(), codes=ResponseCodes.load(), utc_offset_s=OFFSETS
    )
    assert snapshot.snapshot(again) == data
    assert again.lateness_ms == 3_600_000
    probe = request(999, T0_MS + 4 * DAY_MS)
    np.testing.assert_array_equal(
        again.approval_rows(probe, ROUTES), state.approval_rows(probe, ROUTES)
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{", "not JSON"),
        (b'{"format": "other", "version": 1}', "not an online feature snapshot"),
        (b'{"format": "forestgate-online-features", "version": 99}', "version 99"),
        (b'{"format": "forestgate-online-features", "version": 1}', "damaged"),
    ],
)
def test_a_foreign_or_damaged_snapshot_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        snapshot.restore(
            data, routes=RouteTable.load(), codes=ResponseCodes.load(), utc_offset_s=OFFSETS
        )


def test_no_routes_and_no_candidates_give_empty_rows_of_full_width() -> None:
    state = new_state()
    decline = request(1, T0_MS)
    state.observe(decline, Answer(False, "05"))
    assert state.approval_rows(request(2, T0_MS + 1), []).shape == (0, len(APPROVAL_FEATURES))
    assert state.retry_rows(decline, []).shape == (0, len(RETRY_FEATURES))
