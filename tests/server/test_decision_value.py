"""A route's expected net value on the hot path equals the payments core's reference,
economics.expected_net_value, for every float32 probability and margin."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from forestgate.payments.economics import expected_net_value
from forestgate.server.decisions.value import EXACT_MARGIN, RoutePrice


@settings(max_examples=2000, deadline=None)
@given(
    p=st.floats(0, 1, width=32),
    value=st.integers(0, 2 * EXACT_MARGIN),
    approval=st.integers(0, 10**6),
    fraud=st.integers(0, 10**5),
    attempt=st.integers(0, 10**4),
)
def test_net_value_equals_the_reference(
    p: float, value: int, approval: int, fraud: int, attempt: int
) -> None:
    price = RoutePrice("A-US", approval, attempt, fraud)
    p64 = float(np.float32(p))
    assert price.net(p64, value) == expected_net_value(p64, value, approval, fraud, attempt)


def test_an_exact_half_rounds_to_even_like_the_reference() -> None:
    price = RoutePrice("A-US", 0, 0, 0)
    assert price.net(0.5, 5) == expected_net_value(0.5, 5, 0, 0, 0) == 2
    assert price.net(0.5, 7) == expected_net_value(0.5, 7, 0, 0, 0) == 4
