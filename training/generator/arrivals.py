"""Payments arriving at the platform: when, at which merchant, with which card, channel, amount,
authentication and latent fraud (docs/generator.md, "Time and arrivals", "Transaction
attributes" and "Fraud"). One row per payment; its first authorization attempt is routed and
decided by the simulation.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from forestgate.training.generator import countries
from forestgate.training.generator.cards import NEVER
from forestgate.training.generator.horizon import DAY_S, HOUR_S
from forestgate.training.generator.merchants import MCCS
from forestgate.training.generator.scenarios import Scenarios
from forestgate.training.generator.world import World

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

ECOM, INAPP, RECURRING, UNSCHEDULED, MOTO = range(5)

# Channel mix (docs/generator.md, "Transaction attributes"): e-commerce CIT 55 %, in-app 15 %,
# recurring MIT 20 %, unscheduled 7 %, MOTO 3 %.
_MIX = {ECOM: 0.55, INAPP: 0.15, RECURRING: 0.20, UNSCHEDULED: 0.07, MOTO: 0.03}
# Cross-border share of customer-initiated volume (docs/generator.md, "Time and arrivals").
_XB_SHARE = 0.36
# Local-time diurnal curve, low 02-06.
_DIURNAL = np.array(
    [2.2, 1.3, 0.8, 0.6, 0.6, 0.8, 1.5, 2.8, 4.0, 4.8, 5.2, 5.5,
     5.8, 5.6, 5.3, 5.2, 5.3, 5.6, 6.0, 6.4, 6.5, 6.0, 4.8, 3.3]
)  # fmt: skip
_WEEKDAY = np.array([1.0, 1.02, 1.03, 1.02, 1.05, 0.92, 0.86])  # Mon..Sun


@dataclass(frozen=True, slots=True)
class Payments:
    ts_s: I64
    merchant: I64
    card: I64  # the credential of the first attempt
    holder: I64  # the cardholder's original card (for customer retries with another card)
    channel: I64
    cit: B
    cof_type: I64
    is_initial_cof: B
    amount_usd: F64
    currency: I64  # presentment currency, index into countries.CURRENCIES
    amount_minor: I64
    token_intent: B  # would use a network token where issuer and route support it
    cvv_present: B
    avs_provided: B
    stored_expiry_stale: B  # a stored credential with an expiry the updater has not refreshed
    three_ds: B  # authenticated with 3DS before authorization
    challenge: B
    exemption: I64  # index into EXEMPTIONS
    ip_country: I64  # -1: none (MIT)
    is_fraud: B
    keyed_typo: B  # invalid PAN entered (keyed CITs)
    cvv_mismatch: B
    subscription_cancelled: B  # the cardholder stopped this merchant's recurring payments
    card_testing: B
    scenario: I64  # index into Scenarios.events, -1 for none

    @property
    def size(self) -> int:
        return int(self.ts_s.size)

    def take(self, idx: I64) -> Payments:
        return Payments(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})


def generate_payments(
    rng: np.random.Generator, world: World, scenarios: Scenarios, *, count: int
) -> Payments:
    n_rec_target = int(count * _MIX[RECURRING])
    parts = [
        _customer_payments(rng, world, scenarios, count=int(count * (_MIX[ECOM] + _MIX[INAPP]))),
        _subscription_charges(rng, world, charges=n_rec_target),
        _unscheduled(rng, world, count=int(count * _MIX[UNSCHEDULED])),
        _moto(rng, world, count=int(count * _MIX[MOTO])),
        _card_testing(rng, world, scenarios),
    ]
    raw = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return _finish(rng, world, scenarios, raw)


# -- arrival processes -----------------------------------------------------------------------


def _day_weights(world: World, scenarios: Scenarios, *, customer: bool) -> F64:
    cal = world.horizon.calendar()
    idx = np.arange(world.horizon.days) + (-cal.first_day)
    dow = cal.dow[idx]
    dom = cal.dom[idx]
    dim = cal.days_in_month[idx]
    w = _WEEKDAY[dow - 1].copy()
    w *= np.where((dom >= dim - 2) | (dom <= 2), 1.08, 1.0)
    if customer:
        for day, (vol, _) in scenarios.peak_days.items():
            w[day] *= vol
    return np.asarray(w / w.sum(), dtype=np.float64)


def _times(rng: np.random.Generator, world: World, merchant: I64, day: I64) -> I64:
    hour = rng.choice(24, size=merchant.size, p=_DIURNAL / _DIURNAL.sum())
    offset = countries.column("utc_offset_h")[world.merchants.country[merchant]]
    local = day * DAY_S + hour * HOUR_S + rng.integers(0, HOUR_S, merchant.size)
    ts = local - np.round(offset * HOUR_S).astype(np.int64)
    return _wrap(ts, world.horizon.end_s)


def _wrap(ts: I64, end_s: int) -> I64:
    # Local days at the edges fall a few hours outside the UTC horizon: shift them by a day.
    return np.where(ts < 0, ts + DAY_S, np.where(ts >= end_s, ts - DAY_S, ts)).astype(np.int64)


def _pick_cards(rng: np.random.Generator, world: World, merchant_country: I64, xb: float) -> I64:
    """A cardholder (original card) per payment: domestic, or foreign with probability ``xb``."""
    cards = world.cards
    n = merchant_country.size
    orig_country = cards.country[: cards.originals]
    share = countries.column("card_share")
    foreign = rng.random(n) < xb
    country = merchant_country.copy()
    # Foreign cards come from the other countries in proportion to their card share.
    for ci in range(share.size):
        here = np.flatnonzero(foreign & (merchant_country == ci))
        if here.size:
            p = share.copy()
            p[ci] = 0.0
            country[here] = rng.choice(share.size, size=here.size, p=p / p.sum())
    out = np.empty(n, dtype=np.int64)
    order = np.argsort(orig_country, kind="stable")
    activity = cards.activity[: cards.originals][order]
    sorted_country = orig_country[order]
    for ci in range(share.size):
        here = np.flatnonzero(country == ci)
        if not here.size:
            continue
        lo, hi = np.searchsorted(sorted_country, [ci, ci + 1])
        cum = np.cumsum(activity[lo:hi])
        pick = np.searchsorted(cum, rng.random(here.size) * cum[-1], side="right")
        out[here] = order[lo + np.minimum(pick, hi - lo - 1)]
    return out


def _merchants(rng: np.random.Generator, world: World, weight: F64, n: int) -> I64:
    return rng.choice(world.merchants.size, size=n, p=weight / weight.sum()).astype(np.int64)


def _base(
    merchant: I64, card: I64, ts: I64, channel: int, amount_usd: F64
) -> dict[str, npt.NDArray[np.generic]]:
    n = merchant.size
    return {
        "ts_s": ts,
        "merchant": merchant,
        "holder": card,
        "channel": np.full(n, channel, dtype=np.int64),
        "amount_usd": amount_usd,
        "cof_type": np.zeros(n, dtype=np.int64),
        "is_initial_cof": np.zeros(n, dtype=np.bool_),
        "subscription_cancelled": np.zeros(n, dtype=np.bool_),
        "card_testing": np.zeros(n, dtype=np.bool_),
    }


def _amounts(rng: np.random.Generator, world: World, merchant: I64, card: I64, sd: float) -> F64:
    ticket = world.merchants.ticket_usd[merchant]
    typical = world.cards.typical_usd[card]
    return np.exp(rng.normal(np.log(ticket) + 0.3 * np.log(typical / 45.0), sd))


def _customer_payments(
    rng: np.random.Generator, world: World, scenarios: Scenarios, *, count: int
) -> dict[str, npt.NDArray[np.generic]]:
    m = world.merchants
    merchant = _merchants(rng, world, m.weight * (1 - m.mit_share), count)
    day = rng.choice(
        world.horizon.days, size=count, p=_day_weights(world, scenarios, customer=True)
    )
    ts = _times(rng, world, merchant, day)
    card = _pick_cards(rng, world, m.country[merchant], _XB_SHARE)
    amount = _amounts(rng, world, merchant, card, 0.6)
    for d, (_, amt) in scenarios.peak_days.items():
        amount[day == d] *= amt
    channel = np.where(rng.random(count) < _MIX[INAPP] / (_MIX[INAPP] + _MIX[ECOM]), INAPP, ECOM)
    out = _base(merchant, card, ts, ECOM, amount)
    out["channel"] = channel.astype(np.int64)
    # A returning customer pays with the card stored at the merchant (COF, no CVV).
    stored = rng.random(count) < np.where(channel == INAPP, 0.7, 0.3)
    out["cof_type"] = np.where(stored, 3, 0).astype(np.int64)
    return out


def _subscription_charges(
    rng: np.random.Generator, world: World, *, charges: int
) -> dict[str, npt.NDArray[np.generic]]:
    m = world.merchants
    months = world.horizon.days / 30.4
    n_subs = max(1, int(charges / months))
    merchant = _merchants(rng, world, m.weight * m.mit_share, n_subs)
    card = _pick_cards(rng, world, m.country[merchant], 0.2)
    price = m.ticket_usd[merchant] * rng.lognormal(0.0, 0.3, n_subs)
    # Billing anniversaries cluster on the 1st and otherwise fall on the signup day.
    dom = np.where(rng.random(n_subs) < 0.4, 1, rng.integers(1, 29, n_subs))
    hour = rng.integers(1, 10, n_subs)
    new = rng.random(n_subs) < 0.15
    signup_day = rng.integers(0, world.horizon.days, n_subs)
    cancelled_s = np.where(
        rng.random(n_subs) < 1 - (1 - 0.004) ** months,
        rng.integers(0, world.horizon.end_s, n_subs),
        NEVER,
    )
    cal = world.horizon.calendar()
    days = np.arange(world.horizon.days)
    cal_dom = cal.dom[days - cal.first_day]
    # Every (subscription, day) whose day of month is the billing day.
    sub_idx, day_idx = np.nonzero(cal_dom[None, :] == dom[:, None])
    keep = ~new[sub_idx] | (day_idx > signup_day[sub_idx])
    sub_idx, day_idx = sub_idx[keep], day_idx[keep]
    offset = countries.column("utc_offset_h")[m.country[merchant[sub_idx]]]
    ts = day_idx * DAY_S + hour[sub_idx] * HOUR_S + rng.integers(0, HOUR_S, sub_idx.size)
    ts = _wrap(ts - np.round(offset * HOUR_S).astype(np.int64), world.horizon.end_s)
    out = _base(merchant[sub_idx], card[sub_idx], ts, RECURRING, price[sub_idx])
    out["cof_type"] = np.ones(sub_idx.size, dtype=np.int64)
    out["subscription_cancelled"] = ts >= cancelled_s[sub_idx]
    # New subscriptions start with a customer-initiated, authenticated-where-needed signup.
    signup = np.flatnonzero(new)
    s_off = countries.column("utc_offset_h")[m.country[merchant[signup]]]
    s_ts = signup_day[signup] * DAY_S + rng.integers(8 * HOUR_S, 23 * HOUR_S, signup.size)
    s_ts = _wrap(s_ts - np.round(s_off * HOUR_S).astype(np.int64), world.horizon.end_s)
    first = _base(merchant[signup], card[signup], s_ts, ECOM, price[signup])
    first["cof_type"] = np.ones(signup.size, dtype=np.int64)
    first["is_initial_cof"] = np.ones(signup.size, dtype=np.bool_)
    return {k: np.concatenate([out[k], first[k]]) for k in out}


def _unscheduled(
    rng: np.random.Generator, world: World, *, count: int
) -> dict[str, npt.NDArray[np.generic]]:
    m = world.merchants
    merchant = _merchants(rng, world, m.weight * np.maximum(m.mit_share, 0.05), count)
    day = rng.integers(0, world.horizon.days, count)
    ts = _times(rng, world, merchant, day)
    card = _pick_cards(rng, world, m.country[merchant], 0.2)
    out = _base(merchant, card, ts, UNSCHEDULED, _amounts(rng, world, merchant, card, 0.5))
    out["cof_type"] = np.full(count, 2, dtype=np.int64)
    return out


def _moto(
    rng: np.random.Generator, world: World, *, count: int
) -> dict[str, npt.NDArray[np.generic]]:
    m = world.merchants
    travel = np.array([MCCS[i].group == "travel" for i in m.mcc.tolist()])
    merchant = _merchants(rng, world, m.weight * np.where(travel, 5.0, 0.3), count)
    day = rng.integers(0, world.horizon.days, count)
    ts = _times(rng, world, merchant, day)
    card = _pick_cards(rng, world, m.country[merchant], 0.3)
    return _base(merchant, card, ts, MOTO, _amounts(rng, world, merchant, card, 0.6))


def _card_testing(
    rng: np.random.Generator, world: World, scenarios: Scenarios
) -> dict[str, npt.NDArray[np.generic]]:
    event = scenarios.by_id("card_testing")
    n_cards = max(10, world.preset.attempts // 12_000)
    stolen = rng.choice(world.cards.originals, size=n_cards, replace=False)
    tries = rng.integers(10, 31, n_cards)
    card = np.repeat(stolen, tries)
    start = rng.integers(event.start_s, event.end_s - HOUR_S, n_cards)
    ts = np.repeat(start, tries) + rng.integers(0, HOUR_S, card.size)
    merchant = np.full(card.size, scenarios.card_testing_merchant, dtype=np.int64)
    out = _base(merchant, card, ts, ECOM, rng.uniform(0.5, 5.0, card.size))
    out["card_testing"] = np.ones(card.size, dtype=np.bool_)
    return out


# -- attributes of every payment ---------------------------------------------------------------


def _finish(
    rng: np.random.Generator, world: World, scenarios: Scenarios, raw: dict[str, npt.NDArray[Any]]
) -> Payments:
    order = np.argsort(raw["ts_s"], kind="stable")
    r = {k: v[order] for k, v in raw.items()}
    ts, merchant, holder = (r[k].astype(np.int64) for k in ("ts_s", "merchant", "holder"))
    channel, cof_type = r["channel"].astype(np.int64), r["cof_type"].astype(np.int64)
    testing: B = r["card_testing"].astype(np.bool_)
    cit = (channel == ECOM) | (channel == INAPP) | (channel == MOTO)
    stored = cof_type != 0

    card, stale = _credential(world, ts, holder, cof_type, cit=cit, testing=testing)
    m_country, c_country = world.merchants.country[merchant], world.cards.country[card]
    currency, amount_minor, amount_usd = _presentment(
        world, scenarios, ts=ts, merchant=merchant, c_country=c_country,
        amount_usd=r["amount_usd"].astype(np.float64),
    )  # fmt: skip
    keyed = cit & ~stored
    # Each step below draws from rng in turn: reordering them changes every later draw.
    token_intent, cvv_present, avs_provided = _card_data(
        rng, world, card, channel, keyed=keyed, cit=cit, stored=stored, testing=testing
    )
    is_fraud = testing | _fraud(
        rng, world, merchant, c_country, m_country, token_intent=token_intent, cit=cit
    )
    auth = _authentication(
        rng, world, merchant=merchant, c_country=c_country, m_country=m_country, channel=channel,
        amount_usd=amount_usd, cit=cit, stored=stored, testing=testing, is_fraud=is_fraud,
    )  # fmt: skip
    ip, keyed_typo, cvv_mismatch = _entry_signals(
        rng, c_country, cvv_present, keyed=keyed, cit=cit, testing=testing, is_fraud=is_fraud
    )
    payments = Payments(
        ts_s=ts,
        merchant=merchant,
        card=card.astype(np.int64),
        holder=holder,
        channel=channel,
        cit=cit,
        cof_type=cof_type,
        is_initial_cof=r["is_initial_cof"].astype(np.bool_),
        amount_usd=amount_usd,
        currency=currency.astype(np.int64),
        amount_minor=amount_minor,
        token_intent=token_intent,
        cvv_present=cvv_present,
        avs_provided=avs_provided,
        stored_expiry_stale=stale,
        three_ds=auth.three_ds,
        challenge=auth.challenge,
        exemption=auth.exemption,
        ip_country=ip.astype(np.int64),
        is_fraud=is_fraud,
        keyed_typo=keyed_typo,
        cvv_mismatch=cvv_mismatch,
        subscription_cancelled=r["subscription_cancelled"].astype(np.bool_),
        card_testing=testing,
        scenario=_scenario_labels(scenarios, ts, currency, cit=cit, testing=testing),
    )
    # A failed challenge is abandoned: no authorization is ever sent.
    return payments.take(np.flatnonzero(~auth.failed))


def _credential(
    world: World, ts: I64, holder: I64, cof_type: I64, *, cit: B, testing: B
) -> tuple[I64, B]:
    """The card each payment is sent with, and whether its stored expiry is stale.

    A customer uses the reissued card once it arrived; a stored credential moves to it only when
    the account updater has seen the reissue.
    """
    cards = world.cards
    stored = cof_type != 0
    repl = cards.replacement[holder]
    has_repl = repl >= 0
    repl_safe = np.maximum(repl, 0)
    switch_cit = has_repl & (ts >= cards.issued_s[repl_safe])
    switch_cof = has_repl & (ts >= cards.replacement_visible_s[holder])
    use_repl = np.where(stored & ~cit | (stored & cit & (cof_type == 3)), switch_cof, switch_cit)
    use_repl &= ~testing
    card = np.where(use_repl, repl_safe, holder)
    stale = (
        stored
        & (ts >= world.horizon.expiry_end_s(cards.expiry_month[card]))
        & (ts < cards.renewal_visible_s[card])
    )
    return card, stale


def _presentment(
    world: World, scenarios: Scenarios, *, ts: I64, merchant: I64, c_country: I64, amount_usd: F64
) -> tuple[I64, I64, F64]:
    """Presentment currency, amount in its minor units, and the USD amount that rounds to.

    Merchants that offer it charge a foreign card in the card's currency; the FX shock scenario
    moves the rate of its currency from its start.
    """
    m = world.merchants
    m_country = m.country[merchant]
    cur_of_country = countries.currency_index()
    local_ccy = m.offers_local_currency[merchant] & (m_country != c_country)
    currency = np.where(local_ccy, cur_of_country[c_country], cur_of_country[m_country])
    usd_per = countries.usd_per_currency()
    shock_idx = countries.CURRENCIES.index(scenarios.fx_shock_currency)
    rate = usd_per[currency] * np.where(
        (currency == shock_idx) & (ts >= scenarios.by_id("fx_shock_brl").start_s),
        scenarios.fx_shock_factor,
        1.0,
    )
    exponent = np.where(np.array(countries.CURRENCIES)[currency] == "JPY", 0, 2)
    amount_minor = np.maximum(1, np.round(amount_usd / rate * 10.0**exponent)).astype(np.int64)
    return currency, amount_minor, amount_minor / 10.0**exponent * rate


def _card_data(
    rng: np.random.Generator,
    world: World,
    card: I64,
    channel: I64,
    *,
    keyed: B,
    cit: B,
    stored: B,
    testing: B,
) -> tuple[B, B, B]:
    """Whether each payment would use a network token, sends the CVV and provides AVS data."""
    n = card.size
    token_intent = world.cards.token[card] & (
        (stored & (rng.random(n) < 0.6)) | ((channel == INAPP) & (rng.random(n) < 0.5))
    )
    token_intent &= ~testing
    cvv_present = keyed & (rng.random(n) < 0.95)
    c_country = world.cards.country[card]
    avs_region = np.isin(c_country, [countries.INDEX[c] for c in ("US", "CA", "GB")])
    avs_provided = cit & (rng.random(n) < np.where(avs_region, 0.85, 0.25))
    return token_intent, cvv_present, avs_provided


def _fraud(
    rng: np.random.Generator,
    world: World,
    merchant: I64,
    c_country: I64,
    m_country: I64,
    *,
    token_intent: B,
    cit: B,
) -> B:
    """Latent fraud (docs/generator.md, "Fraud"): base rate by the card's country, multipliers
    by merchant and context."""
    m = world.merchants
    region = np.array([countries.COUNTRIES[i].region for i in range(len(countries.CODES))])
    region_mismatch = region[c_country] != region[m_country]
    psd2 = np.isin(c_country, [countries.INDEX[c] for c in countries.PSD2]) & np.isin(
        m_country, [countries.INDEX[c] for c in countries.PSD2]
    )
    base = countries.column("fraud_bp")[c_country] / 10_000 * 0.9
    mult = m.flag("fraud_mult").astype(np.float64)[merchant] * m.fraud_level[merchant]
    mult = mult * np.where(region_mismatch & ~psd2, 8.0, 1.0)
    mult = mult * np.where(token_intent, 0.7, 1.0) * np.where(cit, 1.0, 0.15)
    return np.asarray(rng.random(merchant.size) < np.minimum(base * mult, 0.5))


@dataclass(frozen=True, slots=True)
class _Authentication:
    three_ds: B
    challenge: B
    failed: B  # a failed challenge: the payment is abandoned before authorization
    exemption: I64  # index into EXEMPTIONS


def _authentication(
    rng: np.random.Generator,
    world: World,
    *,
    merchant: I64,
    c_country: I64,
    m_country: I64,
    channel: I64,
    amount_usd: F64,
    cit: B,
    stored: B,
    testing: B,
    is_fraud: B,
) -> _Authentication:
    """3DS and SCA exemptions (docs/generator.md, "Transaction attributes"; docs/payments.md,
    "SCA and 3DS"): EEA/UK both legs -> 3DS unless an exemption is asked for (low value below
    EUR 30, TRA up to EUR 100) or the merchant's set-up skips it."""
    m = world.merchants
    n = merchant.size
    eur = amount_usd / 1.08
    # The PSP routes EEA/UK cards locally by default, which puts both legs in the EEA: it
    # authenticates every such CIT unless it asks for an exemption.
    card_psd2 = np.isin(c_country, [countries.INDEX[c] for c in countries.PSD2])
    in_scope = card_psd2 & cit & (channel != MOTO) & ~testing
    low_value = in_scope & (eur < 30) & (rng.random(n) < m.exemption_rate[merchant])
    tra = in_scope & ~low_value & (eur <= 100) & (rng.random(n) < 0.5 * m.exemption_rate[merchant])
    misconfig = in_scope & ~low_value & ~tra & (rng.random(n) < m.sca_misconfigured[merchant])
    run_3ds = in_scope & ~low_value & ~tra & ~misconfig
    jp_in = (
        cit
        & (channel != MOTO)
        & np.isin(c_country, [countries.INDEX["JP"], countries.INDEX["IN"]])
        & (c_country == m_country)
    )
    us_merchant = m_country == countries.INDEX["US"]
    us_3ds = (
        cit
        & us_merchant
        & ~testing
        & (rng.random(n) < m.us_3ds_share[merchant] * np.where(is_fraud, 6.0, 1.0))
    )
    run_3ds |= jp_in | us_3ds
    run_3ds &= ~(stored & ~cit)
    challenge = run_3ds & (rng.random(n) < 0.36)
    success = np.where(c_country == countries.INDEX["FR"], 0.75, 0.86)
    success = np.where(c_country == countries.INDEX["GB"], 0.9, success)
    failed = challenge & (rng.random(n) < np.where(is_fraud, 0.9, 1 - success))
    exemption = np.where(low_value, 1, np.where(tra, 2, 0)).astype(np.int64)
    return _Authentication(run_3ds, challenge, failed, exemption)


def _entry_signals(
    rng: np.random.Generator,
    c_country: I64,
    cvv_present: B,
    *,
    keyed: B,
    cit: B,
    testing: B,
    is_fraud: B,
) -> tuple[I64, B, B]:
    """The IP country (-1: none, for MITs), a mistyped PAN and a CVV mismatch: fraud travels and
    mistypes the CVV more often."""
    n = c_country.size
    ip = np.where(cit, c_country, -1)
    travel = cit & (rng.random(n) < np.where(is_fraud, 0.6, 0.05))
    ip = np.where(travel, rng.integers(0, len(countries.CODES), n), ip)
    keyed_typo = keyed & ~testing & (rng.random(n) < 0.005)
    cvv_mismatch = cvv_present & (rng.random(n) < np.where(is_fraud, 0.25, 0.028))
    return ip, keyed_typo, cvv_mismatch


def _scenario_labels(scenarios: Scenarios, ts: I64, currency: I64, *, cit: B, testing: B) -> I64:
    """Each payment's scenario (index into ``scenarios.events``), -1 for none."""
    shock_idx = countries.CURRENCIES.index(scenarios.fx_shock_currency)
    scenario = np.full(ts.size, -1, dtype=np.int64)
    scenario[testing] = scenarios.index("card_testing")
    for i, e in enumerate(scenarios.events):
        if e.kind == "peak_volume":
            scenario[cit & (ts >= e.start_s) & (ts < e.end_s)] = i
        if e.kind == "fx_shock":
            scenario[(currency == shock_idx) & (ts >= e.start_s) & (scenario < 0)] = i
    return scenario
