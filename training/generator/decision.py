"""The issuer's decision (ground truth, docs/generator.md, "Issuer decision"): for a batch of
attempts, the true approval probability on every eligible route and a sampled answer on the
chosen one.

Order of evaluation: route and issuer infrastructure, hard card states, SCA, data checks, funds,
then the risk decision. Every step but the last is deterministic given the world's state or a
per-attempt uniform; the risk step compares a latent normal ``u`` with the issuer's score, and a
retry of the same payment reuses ``u`` with a correlation that decays with the issuer's suspicion
half-life, so hammering the issuer right after a risk decline fails (docs/generator.md,
"Retries and recovery"). The truth table's probabilities condition on that latent state, so they
are the attempt's real chance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from forestgate.training.generator import countries
from forestgate.training.generator.horizon import DAY_S, HOUR_S
from forestgate.training.generator.merchants import MCCS
from forestgate.training.generator.world import World

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

# Internal family labels of the true reason (before the issuer masks it as 05).
FAMILIES: tuple[str, ...] = (
    "approved",
    "technical",
    "hard",
    "sca",
    "data",
    "insufficient_funds",
    "suspected_fraud",
    "restriction",
    "limit",
    "generic",
)
(F_OK, F_TECH, F_HARD, F_SCA, F_DATA, F_NSF, F_FRAUD, F_RESTRICT, F_LIMIT, F_GENERIC) = range(10)

# Response codes as indices into CODES, MACs into MACS ("" = none).
CODES: tuple[str, ...] = (
    "00", "05", "51", "54", "14", "N7", "1A", "65", "59", "63", "61", "57", "62",
    "41", "43", "46", "04", "07", "R0", "R1", "91", "96", "30", "92",
)  # fmt: skip
C = {code: i for i, code in enumerate(CODES)}
MACS: tuple[str, ...] = ("", "01", "02", "03", "21", "24", "25", "26", "27", "28", "29", "30")
M = {mac: i for i, mac in enumerate(MACS)}
# MAC 24-30 thresholds: the bucket containing the time to the next funding event.
_MAC_WAIT_H = np.array([1, 24, 48, 96, 144, 192])

_PROBIT = 1.7  # logit -> probit scale
_VELOCITY = 0.35  # logit per decline on the card in the last 24 h
_FRAUD_SIGNAL = 3.2  # issuers decline most real fraud
_FOREIGN_MERCHANT = 1.05  # issuer sees a foreign merchant even when acquired locally
_KAPPA_SCALE = 0.6  # of the issuer's kappa: the acquirer-side share of the cross-border penalty
# Calibration constant, set so that the marginal targets of docs/generator.md, "Realism targets"
# hold (docs/generator.md, "Issuer decision"): the country strictness means of "Entities" are
# the risk step alone; every other step declines too.
_BASE = 1.5
# Share of a risk decline's latent that never decays (this issuer, this card, this merchant):
# retrying a 05 later helps less than the suspicion half-life alone would say
# (docs/generator.md, "Retries and recovery").
_PERSISTENT = 0.75
# Issuers that simply refuse one card at one merchant (a silent block, answered 05): every retry
# of that pair fails. Share of (card, merchant) pairs [D].
_BLOCKED_PAIRS = 0.012
_MIT = 0.3
_BALANCE_NOISE = 0.12


@dataclass(frozen=True, slots=True)
class Batch:
    """Attempts to decide; every array has one row per attempt."""

    ts_s: I64
    card: I64
    merchant: I64
    route: I64
    eligible: B  # (n, routes)
    amount_usd: F64
    cit: B
    mit_recurring: B
    moto: B
    stored: B
    token_intent: B
    cvv_present: B
    cvv_mismatch: B
    avs_provided: B
    three_ds: B
    exemption: B
    is_fraud: B
    keyed_typo: B
    expired: B  # the expiry sent is in the past
    cancelled: B
    velocity: I64
    u_prev: F64  # latent risk draw of the previous attempt of the payment (NaN for the first)
    dt_prev_s: F64
    xb_extra: F64  # scenario: extra cross-border penalty (logit) of tightening issuers
    scenario_outage: B  # scenario: forced outage of the chosen route


@dataclass(frozen=True, slots=True)
class Decision:
    code: I64
    mac: I64
    approved: B
    family: I64
    p_true: F64
    p_by_route: F64  # (n, routes), NaN where ineligible
    u: F64
    network_token: B
    is_local: B
    acquirer_country: list[str]
    latency_ms: I64
    balance_usd: F64
    next_funding_s: I64
    cvv_result: list[str]
    avs_result: list[str]


def _phi(x: F64) -> F64:
    """Standard normal CDF; numpy has no erf, so Abramowitz-Stegun 7.1.26 (error < 1.5e-7)."""
    y = np.abs(x) / np.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * y)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    erf = 1.0 - poly * np.exp(-y * y)
    return np.asarray(0.5 * (1.0 + np.sign(x) * erf), dtype=np.float64)


def decide(world: World, batch: Batch, rng: np.random.Generator) -> Decision:
    cards, iss, routes, m = world.cards, world.issuers, world.routes, world.merchants
    n = batch.ts_s.size
    n_r = routes.size
    card = batch.card
    issuer = cards.issuer[card]
    c_country = cards.country[card]
    brand = cards.brand[card]
    funding = cards.funding[card]
    m_country = m.country[batch.merchant]
    rows = np.arange(n)

    # Draws, in a fixed order so the stream does not depend on which branch an attempt takes.
    u_tech, u_hard, u_sca, u_fam, u_mask, u_mac, u_lat = rng.random((7, n))
    z, bal_noise, lat_noise = rng.standard_normal((3, n))

    # -- route-dependent terms, (n, R) -----------------------------------------------------
    local = routes.local[:, c_country].T  # (n, R)
    r_country = np.array(routes.country)
    acq_psd2 = np.isin(r_country, sorted(countries.PSD2))
    issuer_psd2 = np.isin(c_country, [countries.INDEX[c] for c in countries.PSD2])
    # A passported EEA route acquires an EEA card in the card's own country.
    acq_eu = acq_psd2[None, :] | (local & issuer_psd2[:, None])
    token = (
        batch.token_intent[:, None]
        & iss.token_support[issuer][:, None]
        & (routes.token_passthrough[None, :])
    )
    carries_3ds = routes.three_ds[None, :]
    authenticated = batch.three_ds[:, None] & carries_3ds
    exempted = batch.exemption[:, None] & carries_3ds

    out_route = routes.outages.active(
        np.repeat(np.arange(n_r)[None, :], n, 0).ravel(), np.repeat(batch.ts_s, n_r)
    ).reshape(n, n_r)
    out_route[rows, batch.route] |= batch.scenario_outage
    out_issuer = iss.outages.active(issuer, batch.ts_s)
    p_tech = 1 - (1 - 0.8 * out_route) * (1 - routes.glitch_rate[None, :]) * (
        1 - 0.8 * out_issuer[:, None]
    ) * (1 - 0.0015)

    status = np.where(batch.ts_s >= cards.status_s[card], cards.status[card], 0)
    testing_pickup = batch.is_fraud & (u_hard < 0.06)
    hard = (status > 0) | batch.keyed_typo | batch.expired | batch.cancelled | testing_pickup

    in_scope = issuer_psd2[:, None] & acq_eu & batch.cit[:, None] & ~batch.moto[:, None]
    p_sca = np.where(
        in_scope & ~authenticated,
        np.where(
            exempted, 1 - iss.exemption_accept[issuer][:, None], iss.sca_soft[issuer][:, None]
        ),
        0.0,
    )

    # Funds (docs/generator.md, "Entities"): balance drains from the last funding event at the
    # card's own pace.
    offset = countries.column("utc_offset_h")[c_country]
    local_day_f = (batch.ts_s + offset * HOUR_S) / DAY_S
    last, nxt = world.paydays.around(cards.cycle_key[card], np.floor(local_day_f).astype(np.int64))
    tau = local_day_f - last
    balance = cards.buffer_usd[card] + cards.income_usd[card] * np.maximum(
        0.0, 1.0 - tau / cards.drain_days[card]
    )
    balance_seen = balance * np.exp(_BALANCE_NOISE * bal_noise)
    p_funds = _phi((np.log(np.maximum(balance, 1e-6)) - np.log(batch.amount_usd)) / _BALANCE_NOISE)
    funds_ok = batch.amount_usd <= balance_seen
    next_funding_s = ((nxt - offset / 24.0) * DAY_S).astype(np.int64)

    # -- the risk score (logit), (n, R) ---------------------------------------------------
    tier = world.bins.tier[cards.bin[card]]
    product = np.array([0.0, 0.15, 0.25, 0.1])[tier] + np.array([0.15, 0.0, -0.45])[funding]
    mcc = m.mcc[batch.merchant]
    group = np.array([MCCS[i].group for i in range(len(MCCS))])[mcc]
    restricted = np.array([MCCS[i].restricted for i in range(len(MCCS))])[mcc]
    mcc_term = np.where(
        restricted, -0.8, np.where(np.isin(group, ["digital", "travel"]), -0.2, 0.0)
    )
    ratio = np.log(batch.amount_usd / cards.typical_usd[card])
    amount_term = -0.35 * np.maximum(ratio, 0.0) - 0.1 * np.maximum(ratio - 2.0, 0.0)
    hour = np.floor((local_day_f - np.floor(local_day_f)) * 24).astype(np.int64)
    dow = world.horizon.calendar().dow[np.floor(local_day_f).astype(np.int64) + 45]
    calendar = np.where(dow >= 6, -0.1, 0.0) + np.where(hour < 5, -0.15, 0.0)
    payday_night = (funding > 0) & (np.floor(local_day_f) == last) & (hour < 3)
    calendar += np.where(payday_night, 0.25, 0.0)
    us_issuer = c_country == countries.INDEX["US"]
    three_ds_term = np.where(
        us_issuer[:, None] & authenticated, -iss.us_3ds_penalty[issuer][:, None], 0.0
    )
    foreign_m = (m_country != c_country).astype(np.float64)
    kappa = iss.kappa[issuer] + batch.xb_extra
    xb = ~local
    eta = (
        (iss.alpha[issuer] + _BASE)[:, None]
        + (product + mcc_term + amount_term + calendar)[:, None]
        - (_KAPPA_SCALE * kappa)[:, None] * xb
        - _FOREIGN_MERCHANT * foreign_m[:, None]
        + routes.offset[None, :]
        + routes.offset_country[:, c_country].T
        + iss.token_bonus[issuer][:, None] * token
        + 0.15 * batch.cvv_present[:, None]
        + 0.1 * batch.avs_provided[:, None]
        + three_ds_term
        + (_MIT * ~batch.cit)[:, None]
        - (_FRAUD_SIGNAL * batch.is_fraud)[:, None]
        - (_VELOCITY * np.minimum(batch.velocity, 10))[:, None]
    )
    first = np.isnan(batch.u_prev)
    half_life = iss.suspicion_half_life_s[issuer]
    decay = 0.5 ** (np.nan_to_num(batch.dt_prev_s) / half_life)
    rho = np.where(first, 0.0, _PERSISTENT + (1 - _PERSISTENT) * decay)
    rho = np.minimum(rho, 0.995)
    u_prev = np.nan_to_num(batch.u_prev)
    scale = np.sqrt(1 - rho**2)
    p_risk = _phi((eta / _PROBIT + (rho * u_prev)[:, None]) / scale[:, None])
    u = rho * u_prev + scale * z

    not_hard = (~hard).astype(np.float64)
    no_cvv = (~batch.cvv_mismatch).astype(np.float64)
    p_risk = np.where(
        (_pair_hash(card, batch.merchant, world.seed) < _BLOCKED_PAIRS)[:, None], 0.0, p_risk
    )
    p_all = (
        (1 - p_tech) * not_hard[:, None] * (1 - p_sca) * no_cvv[:, None] * p_funds[:, None] * p_risk
    )
    p_by_route = np.where(batch.eligible, p_all, np.nan)

    # -- the answer on the chosen route ---------------------------------------------------
    r = batch.route
    eta_r = eta[rows, r]
    tech = u_tech < p_tech[rows, r]
    sca = ~tech & ~hard & (u_sca < p_sca[rows, r])
    cvv = ~tech & ~hard & ~sca & batch.cvv_mismatch
    nsf = ~tech & ~hard & ~sca & ~cvv & ~funds_ok
    blocked = _pair_hash(card, batch.merchant, world.seed) < _BLOCKED_PAIRS
    risk = ~tech & ~hard & ~sca & ~cvv & ~nsf & ((eta_r / _PROBIT + u <= 0) | blocked)
    approved = ~(tech | hard | sca | cvv | nsf | risk)

    visa = brand == 0
    code = np.full(n, C["00"], dtype=np.int64)
    mac = np.zeros(n, dtype=np.int64)
    family = np.full(n, F_OK, dtype=np.int64)

    route_side = out_route[rows, r] | (u_tech < routes.glitch_rate[r] * 0.5)
    code = np.where(
        tech,
        np.where(route_side & (u_fam < 0.3), C["30"], np.where(u_fam < 0.6, C["91"], C["96"])),
        code,
    )
    family = np.where(tech, F_TECH, family)

    hard_code = np.select(
        [
            status == 1,
            status == 2,
            status == 3,
            batch.cancelled,
            batch.expired,
            batch.keyed_typo,
        ],
        [
            np.where(visa, C["46"], C["05"]),
            C["41"],
            C["43"],
            np.where(visa, np.where(u_fam < 0.5, C["R0"], C["R1"]), C["57"]),
            C["54"],
            C["14"],
        ],
        default=np.where(visa & (u_fam < 0.5), C["07"], C["04"]),
    )
    hard_family = np.select(
        [status > 0, batch.cancelled, batch.expired, batch.keyed_typo],
        [F_HARD, F_HARD, F_DATA, F_DATA],
        default=F_HARD,
    )
    code = np.where(~tech & hard, hard_code, code)
    family = np.where(~tech & hard, hard_family, family)
    code = np.where(sca, np.where(visa, C["1A"], C["65"]), code)
    family = np.where(sca, F_SCA, family)
    code = np.where(cvv, np.where(visa, C["N7"], C["05"]), code)
    family = np.where(cvv, F_DATA, family)
    code = np.where(nsf, C["51"], code)
    family = np.where(nsf, F_NSF, family)

    # Reason of a risk decline, then the issuer's masking of it as 05.
    w_fraud = 0.19 + 2.5 * batch.is_fraud
    w_restrict = 0.025 + 0.5 * restricted + 0.04 * (funding == 2) + 0.02 * foreign_m
    w_limit = 0.13 + 0.05 * (ratio > 1.5)
    w_generic = np.full(n, 0.75)
    total = w_fraud + w_restrict + w_limit + w_generic
    cum1 = w_fraud / total
    cum2 = cum1 + w_restrict / total
    cum3 = cum2 + w_limit / total
    reason = np.where(
        u_fam < cum1,
        F_FRAUD,
        np.where(u_fam < cum2, F_RESTRICT, np.where(u_fam < cum3, F_LIMIT, F_GENERIC)),
    )
    masked = u_mask < iss.generic[issuer]
    risk_code = np.select(
        [reason == F_FRAUD, reason == F_RESTRICT, reason == F_LIMIT],
        [
            np.where(visa, C["59"], C["63"]),
            np.where(u_mask < 0.5, C["57"], C["62"]),
            np.where(visa & (u_mask < 0.3), C["65"], C["61"]),
        ],
        default=C["05"],
    )
    risk_code = np.where(masked & (reason != F_GENERIC), C["05"], risk_code)
    reason = np.where(blocked & (eta_r / _PROBIT + u > 0), F_GENERIC, reason)
    risk_code = np.where(blocked & (eta_r / _PROBIT + u > 0), C["05"], risk_code)
    code = np.where(risk, risk_code, code)
    family = np.where(risk, reason, family)

    # Mastercard Merchant Advice Codes, where the issuer sends them and the route passes them.
    sends_mac = ~visa & iss.mac_support[issuer] & routes.mac_passthrough[r] & ~approved
    wait_h = (next_funding_s - batch.ts_s) / HOUR_S
    bucket = np.searchsorted(_MAC_WAIT_H, wait_h, side="left")
    bucket = np.clip(bucket + np.where(u_mac < 0.1, 1, 0), 0, 6)
    mac_nsf = np.where(batch.mit_recurring, M["24"] + bucket, np.where(u_mac < 0.5, M["02"], 0))
    mac_all = np.select(
        [
            nsf,
            ~tech & hard & batch.cancelled & (status == 0),
            ~tech & hard & batch.expired & (status == 0),
            ~tech & hard,
            risk & (reason == F_FRAUD),
            risk & (reason == F_GENERIC),
        ],
        [
            mac_nsf,
            M["21"],
            M["01"],
            M["03"],
            np.where(u_mac < 0.3, M["03"], 0),
            np.where(u_mac < 0.25, M["02"], 0),
        ],
        default=0,
    )
    mac = np.where(sends_mac, mac_all, mac)

    lat = routes.latency_median_ms[r] * np.exp(0.35 * lat_noise)
    lat = lat + np.where(~local[rows, r], 150.0, 0.0)
    lat = np.where(tech & (u_lat < 0.4), 10_000.0, lat)  # a timeout
    r_country_chosen = r_country[r]
    acquirer_country = np.where(
        local[rows, r] & issuer_psd2 & acq_psd2[r],
        np.array(countries.CODES)[c_country],
        r_country_chosen,
    )
    cvv_result = np.where(~batch.cvv_present, "P", np.where(batch.cvv_mismatch, "N", "M"))
    avs_mismatch = batch.avs_provided & batch.is_fraud & (u_mac > 0.5)
    avs_result = np.where(~batch.avs_provided, "U", np.where(avs_mismatch, "N", "Y"))
    return Decision(
        code=code.astype(np.int64),
        mac=mac.astype(np.int64),
        approved=approved,
        family=family.astype(np.int64),
        p_true=p_by_route[rows, r],
        p_by_route=p_by_route,
        u=u,
        network_token=token[rows, r],
        is_local=local[rows, r],
        acquirer_country=acquirer_country.tolist(),
        latency_ms=np.round(lat).astype(np.int64),
        balance_usd=balance,
        next_funding_s=next_funding_s,
        cvv_result=cvv_result.tolist(),
        avs_result=avs_result.tolist(),
    )


def _pair_hash(card: I64, merchant: I64, seed: int) -> F64:
    """A uniform in [0, 1) fixed per (card, merchant, seed): the same pair, the same answer."""
    x = (
        (card.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))
        ^ (merchant.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F))
        ^ np.uint64(seed % (1 << 63))
    )
    x ^= x >> np.uint64(31)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(29)
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)
