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
    n = batch.ts_s.size
    rows = np.arange(n)
    r = batch.route
    draws = _Draws.of(rng, n)
    party = _Parties.of(world, batch)
    access = _Access.of(world, batch, party)
    out_route, p_tech = _p_technical(world, batch, party.issuer)
    status = np.where(
        batch.ts_s >= world.cards.status_s[batch.card], world.cards.status[batch.card], 0
    )
    testing_pickup = batch.is_fraud & (draws.hard < 0.06)
    hard = (status > 0) | batch.keyed_typo | batch.expired | batch.cancelled | testing_pickup
    p_sca = _p_sca(world, batch, party.issuer, access)
    funds = _Funds.of(world, batch, party.c_country, draws.balance)
    score = _RiskScore.of(world, batch, party, access, funds)
    p_risk, u = _p_risk(world, batch, party.issuer, score.eta, draws.z)
    blocked = _pair_hash(batch.card, batch.merchant, world.seed) < _BLOCKED_PAIRS
    p_risk = np.where(blocked[:, None], 0.0, p_risk)
    not_hard = (~hard).astype(np.float64)
    no_cvv = (~batch.cvv_mismatch).astype(np.float64)
    p_all = (
        (1 - p_tech) * not_hard[:, None] * (1 - p_sca) * no_cvv[:, None] * funds.p[:, None] * p_risk
    )
    p_by_route = np.where(batch.eligible, p_all, np.nan)

    eta_r = score.eta[rows, r]
    out = _Outcome.of(
        draws, p_tech=p_tech[rows, r], p_sca=p_sca[rows, r], hard=hard,
        cvv_mismatch=batch.cvv_mismatch, funds_ok=funds.ok,
        risk_decline=(eta_r / _PROBIT + u <= 0) | blocked,
    )  # fmt: skip
    route_side = out_route[rows, r] | (draws.tech < world.routes.glitch_rate[r] * 0.5)
    code, family = _code_before_risk(batch, party, draws, status, out, route_side=route_side)
    reason, risk_code = _risk_reason(
        world, batch, party, draws, score, blocked=blocked & (eta_r / _PROBIT + u > 0)
    )
    code = np.where(out.risk, risk_code, code)
    family = np.where(out.risk, reason, family)
    mac = _advice_code(world, batch, party, draws, out, status=status, funds=funds, reason=reason)
    return Decision(
        code=code.astype(np.int64),
        mac=mac.astype(np.int64),
        approved=out.approved,
        family=family.astype(np.int64),
        p_true=p_by_route[rows, r],
        p_by_route=p_by_route,
        u=u,
        network_token=access.token[rows, r],
        is_local=access.local[rows, r],
        acquirer_country=_acquirer_country(batch, party, access).tolist(),
        latency_ms=_latency_ms(world, batch, draws, access, tech=out.tech),
        balance_usd=funds.balance,
        next_funding_s=funds.next_funding_s,
        cvv_result=_cvv_result(batch).tolist(),
        avs_result=_avs_result(batch, draws).tolist(),
    )


@dataclass(frozen=True, slots=True)
class _Outcome:
    """The answer on the chosen route: the first step that declines names the reason."""

    tech: B
    hard: B
    sca: B
    cvv: B
    nsf: B
    risk: B
    approved: B

    @staticmethod
    def of(
        draws: _Draws,
        *,
        p_tech: F64,
        p_sca: F64,
        hard: B,
        cvv_mismatch: B,
        funds_ok: B,
        risk_decline: B,
    ) -> _Outcome:
        tech = draws.tech < p_tech
        sca = ~tech & ~hard & (draws.sca < p_sca)
        cvv = ~tech & ~hard & ~sca & cvv_mismatch
        nsf = ~tech & ~hard & ~sca & ~cvv & ~funds_ok
        risk = ~tech & ~hard & ~sca & ~cvv & ~nsf & risk_decline
        approved = ~(tech | hard | sca | cvv | nsf | risk)
        return _Outcome(tech, hard, sca, cvv, nsf, risk, approved)


@dataclass(frozen=True, slots=True)
class _Draws:
    """Per-attempt random numbers, drawn in a fixed order so the stream does not depend on which
    branch an attempt takes."""

    tech: F64
    hard: F64
    sca: F64
    fam: F64
    mask: F64
    mac: F64
    lat: F64
    z: F64  # standard normals from here on
    balance: F64
    latency: F64

    @staticmethod
    def of(rng: np.random.Generator, n: int) -> _Draws:
        u_tech, u_hard, u_sca, u_fam, u_mask, u_mac, u_lat = rng.random((7, n))
        z, bal_noise, lat_noise = rng.standard_normal((3, n))
        return _Draws(u_tech, u_hard, u_sca, u_fam, u_mask, u_mac, u_lat, z, bal_noise, lat_noise)


@dataclass(frozen=True, slots=True)
class _Parties:
    """The card's issuer, country, brand and funding, and the merchant's country, per attempt."""

    issuer: I64
    c_country: I64
    brand: I64
    funding: I64
    m_country: I64

    @property
    def visa(self) -> B:
        return np.asarray(self.brand == 0)

    @staticmethod
    def of(world: World, batch: Batch) -> _Parties:
        cards = world.cards
        card = batch.card
        return _Parties(
            issuer=cards.issuer[card],
            c_country=cards.country[card],
            brand=cards.brand[card],
            funding=cards.funding[card],
            m_country=world.merchants.country[batch.merchant],
        )


@dataclass(frozen=True, slots=True)
class _Access:
    """What each route (columns) makes of each attempt (rows): local acquiring, the acquirer's
    SCA regime, and whether the token and the 3DS data get through."""

    local: B  # (n, R)
    r_country: npt.NDArray[np.str_]  # (R,)
    acq_psd2: B  # (R,)
    issuer_psd2: B  # (n,)
    acq_eu: B  # (n, R)
    token: B  # (n, R)
    authenticated: B  # (n, R)
    exempted: B  # (n, R)

    @staticmethod
    def of(world: World, batch: Batch, party: _Parties) -> _Access:
        routes = world.routes
        local = routes.local[:, party.c_country].T
        r_country = np.array(routes.country)
        acq_psd2 = np.isin(r_country, sorted(countries.PSD2))
        issuer_psd2 = np.isin(party.c_country, [countries.INDEX[c] for c in countries.PSD2])
        # A passported EEA route acquires an EEA card in the card's own country.
        acq_eu = acq_psd2[None, :] | (local & issuer_psd2[:, None])
        token = (
            batch.token_intent[:, None]
            & world.issuers.token_support[party.issuer][:, None]
            & (routes.token_passthrough[None, :])
        )
        carries_3ds = routes.three_ds[None, :]
        return _Access(
            local=local,
            r_country=r_country,
            acq_psd2=acq_psd2,
            issuer_psd2=issuer_psd2,
            acq_eu=acq_eu,
            token=token,
            authenticated=batch.three_ds[:, None] & carries_3ds,
            exempted=batch.exemption[:, None] & carries_3ds,
        )


def _p_technical(world: World, batch: Batch, issuer: I64) -> tuple[B, F64]:
    """Route outages (the scenario's forced one included) and the probability of a technical
    decline on every route, (n, R)."""
    routes = world.routes
    n, n_r = batch.ts_s.size, routes.size
    out_route = routes.outages.active(
        np.repeat(np.arange(n_r)[None, :], n, 0).ravel(), np.repeat(batch.ts_s, n_r)
    ).reshape(n, n_r)
    out_route[np.arange(n), batch.route] |= batch.scenario_outage
    out_issuer = world.issuers.outages.active(issuer, batch.ts_s)
    p_tech = 1 - (1 - 0.8 * out_route) * (1 - routes.glitch_rate[None, :]) * (
        1 - 0.8 * out_issuer[:, None]
    ) * (1 - 0.0015)
    return out_route, p_tech


def _p_sca(world: World, batch: Batch, issuer: I64, access: _Access) -> F64:
    """Probability of an SCA soft decline on every route, (n, R)."""
    iss = world.issuers
    in_scope = (
        access.issuer_psd2[:, None] & access.acq_eu & batch.cit[:, None] & ~batch.moto[:, None]
    )
    return np.where(
        in_scope & ~access.authenticated,
        np.where(
            access.exempted,
            1 - iss.exemption_accept[issuer][:, None],
            iss.sca_soft[issuer][:, None],
        ),
        0.0,
    )


@dataclass(frozen=True, slots=True)
class _Funds:
    """Funds (docs/generator.md, "Entities"): balance drains from the last funding event at the
    card's own pace."""

    local_day: F64  # the cardholder's local time in days since the horizon start
    last_payday: I64
    balance: F64
    p: F64  # probability that the balance covers the amount
    ok: B  # whether the balance the issuer sees covers it
    next_funding_s: I64

    @staticmethod
    def of(world: World, batch: Batch, c_country: I64, noise: F64) -> _Funds:
        cards, card = world.cards, batch.card
        offset = countries.column("utc_offset_h")[c_country]
        local_day_f = (batch.ts_s + offset * HOUR_S) / DAY_S
        last, nxt = world.paydays.around(
            cards.cycle_key[card], np.floor(local_day_f).astype(np.int64)
        )
        tau = local_day_f - last
        balance = cards.buffer_usd[card] + cards.income_usd[card] * np.maximum(
            0.0, 1.0 - tau / cards.drain_days[card]
        )
        balance_seen = balance * np.exp(_BALANCE_NOISE * noise)
        p_funds = _phi(
            (np.log(np.maximum(balance, 1e-6)) - np.log(batch.amount_usd)) / _BALANCE_NOISE
        )
        return _Funds(
            local_day=local_day_f,
            last_payday=last,
            balance=balance,
            p=p_funds,
            ok=batch.amount_usd <= balance_seen,
            next_funding_s=((nxt - offset / 24.0) * DAY_S).astype(np.int64),
        )


@dataclass(frozen=True, slots=True)
class _RiskScore:
    """The issuer's risk score (logit) on every route, (n, R), and the terms the reason of a risk
    decline also depends on."""

    eta: F64
    restricted: B  # the merchant's MCC is a restricted one
    ratio: F64  # log of the amount over the card's typical amount
    foreign_m: F64  # 1.0 when the merchant is in another country than the card

    @staticmethod
    def of(
        world: World, batch: Batch, party: _Parties, access: _Access, funds: _Funds
    ) -> _RiskScore:
        cards, iss, routes = world.cards, world.issuers, world.routes
        card, issuer, funding = batch.card, party.issuer, party.funding
        tier = world.bins.tier[cards.bin[card]]
        product = np.array([0.0, 0.15, 0.25, 0.1])[tier] + np.array([0.15, 0.0, -0.45])[funding]
        mcc = world.merchants.mcc[batch.merchant]
        group = np.array([MCCS[i].group for i in range(len(MCCS))])[mcc]
        restricted = np.array([MCCS[i].restricted for i in range(len(MCCS))])[mcc]
        mcc_term = np.where(
            restricted, -0.8, np.where(np.isin(group, ["digital", "travel"]), -0.2, 0.0)
        )
        ratio = np.log(batch.amount_usd / cards.typical_usd[card])
        amount_term = -0.35 * np.maximum(ratio, 0.0) - 0.1 * np.maximum(ratio - 2.0, 0.0)
        calendar = _calendar_term(world, funds, funding)
        us_issuer = party.c_country == countries.INDEX["US"]
        three_ds_term = np.where(
            us_issuer[:, None] & access.authenticated, -iss.us_3ds_penalty[issuer][:, None], 0.0
        )
        foreign_m = (party.m_country != party.c_country).astype(np.float64)
        kappa = iss.kappa[issuer] + batch.xb_extra
        xb = ~access.local
        eta = (
            (iss.alpha[issuer] + _BASE)[:, None]
            + (product + mcc_term + amount_term + calendar)[:, None]
            - (_KAPPA_SCALE * kappa)[:, None] * xb
            - _FOREIGN_MERCHANT * foreign_m[:, None]
            + routes.offset[None, :]
            + routes.offset_country[:, party.c_country].T
            + iss.token_bonus[issuer][:, None] * access.token
            + 0.15 * batch.cvv_present[:, None]
            + 0.1 * batch.avs_provided[:, None]
            + three_ds_term
            + (_MIT * ~batch.cit)[:, None]
            - (_FRAUD_SIGNAL * batch.is_fraud)[:, None]
            - (_VELOCITY * np.minimum(batch.velocity, 10))[:, None]
        )
        return _RiskScore(eta=eta, restricted=restricted, ratio=ratio, foreign_m=foreign_m)


def _calendar_term(world: World, funds: _Funds, funding: I64) -> F64:
    """Weekends and small hours score lower; the night after payday higher on debit/prepaid."""
    local_day_f = funds.local_day
    hour = np.floor((local_day_f - np.floor(local_day_f)) * 24).astype(np.int64)
    dow = world.horizon.calendar().dow[np.floor(local_day_f).astype(np.int64) + 45]
    calendar = np.where(dow >= 6, -0.1, 0.0) + np.where(hour < 5, -0.15, 0.0)
    payday_night = (funding > 0) & (np.floor(local_day_f) == funds.last_payday) & (hour < 3)
    return np.asarray(calendar + np.where(payday_night, 0.25, 0.0), dtype=np.float64)


def _p_risk(world: World, batch: Batch, issuer: I64, eta: F64, z: F64) -> tuple[F64, F64]:
    """Probability of passing the risk step on every route, (n, R), and the latent draw ``u``.

    A retry's latent is correlated with its previous attempt's, so the probability conditions
    on it: the correlation decays with the issuer's suspicion half-life, down to a persistent
    floor.
    """
    first = np.isnan(batch.u_prev)
    half_life = world.issuers.suspicion_half_life_s[issuer]
    decay = 0.5 ** (np.nan_to_num(batch.dt_prev_s) / half_life)
    rho = np.where(first, 0.0, _PERSISTENT + (1 - _PERSISTENT) * decay)
    rho = np.minimum(rho, 0.995)
    u_prev = np.nan_to_num(batch.u_prev)
    scale = np.sqrt(1 - rho**2)
    p_risk = _phi((eta / _PROBIT + (rho * u_prev)[:, None]) / scale[:, None])
    return p_risk, rho * u_prev + scale * z


def _code_before_risk(
    batch: Batch, party: _Parties, draws: _Draws, status: I64, out: _Outcome, *, route_side: B
) -> tuple[I64, I64]:
    """Response code and true family of every decline but a risk one (approved: 00)."""
    visa, u_fam = party.visa, draws.fam
    tech, hard, sca, cvv, nsf = out.tech, out.hard, out.sca, out.cvv, out.nsf
    n = batch.ts_s.size
    code = np.full(n, C["00"], dtype=np.int64)
    family = np.full(n, F_OK, dtype=np.int64)
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
    return code, family


def _risk_reason(
    world: World, batch: Batch, party: _Parties, draws: _Draws, score: _RiskScore, *, blocked: B
) -> tuple[I64, I64]:
    """The true reason of a risk decline and its response code, after the issuer's masking of it
    as 05. ``blocked``: a silently blocked pair the score alone would have approved."""
    visa, u_fam, u_mask = party.visa, draws.fam, draws.mask
    funding = party.funding
    n = batch.ts_s.size
    w_fraud = 0.19 + 2.5 * batch.is_fraud
    w_restrict = 0.025 + 0.5 * score.restricted + 0.04 * (funding == 2) + 0.02 * score.foreign_m
    w_limit = 0.13 + 0.05 * (score.ratio > 1.5)
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
    masked = u_mask < world.issuers.generic[party.issuer]
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
    reason = np.where(blocked, F_GENERIC, reason)
    risk_code = np.where(blocked, C["05"], risk_code)
    return reason, risk_code


def _advice_code(
    world: World,
    batch: Batch,
    party: _Parties,
    draws: _Draws,
    out: _Outcome,
    *,
    status: I64,
    funds: _Funds,
    reason: I64,
) -> I64:
    """Mastercard Merchant Advice Codes (index into MACS), where the issuer sends them and the
    route passes them."""
    r, u_mac = batch.route, draws.mac
    tech, hard, nsf, risk = out.tech, out.hard, out.nsf, out.risk
    sends_mac = (
        ~party.visa
        & world.issuers.mac_support[party.issuer]
        & world.routes.mac_passthrough[r]
        & ~out.approved
    )
    wait_h = (funds.next_funding_s - batch.ts_s) / HOUR_S
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
    return np.where(sends_mac, mac_all, np.zeros(batch.ts_s.size, dtype=np.int64))


def _latency_ms(world: World, batch: Batch, draws: _Draws, access: _Access, *, tech: B) -> I64:
    r = batch.route
    rows = np.arange(r.size)
    lat = world.routes.latency_median_ms[r] * np.exp(0.35 * draws.latency)
    lat = lat + np.where(~access.local[rows, r], 150.0, 0.0)
    lat = np.where(tech & (draws.lat < 0.4), 10_000.0, lat)  # a timeout
    return np.round(lat).astype(np.int64)


def _acquirer_country(batch: Batch, party: _Parties, access: _Access) -> npt.NDArray[np.str_]:
    """The chosen route's acquiring country: a passported EEA route acquires an EEA card in the
    card's own country."""
    r = batch.route
    rows = np.arange(r.size)
    return np.where(
        access.local[rows, r] & access.issuer_psd2 & access.acq_psd2[r],
        np.array(countries.CODES)[party.c_country],
        access.r_country[r],
    )


def _cvv_result(batch: Batch) -> npt.NDArray[np.str_]:
    return np.where(~batch.cvv_present, "P", np.where(batch.cvv_mismatch, "N", "M"))


def _avs_result(batch: Batch, draws: _Draws) -> npt.NDArray[np.str_]:
    avs_mismatch = batch.avs_provided & batch.is_fraud & (draws.mac > 0.5)
    return np.where(~batch.avs_provided, "U", np.where(avs_mismatch, "N", "Y"))


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
