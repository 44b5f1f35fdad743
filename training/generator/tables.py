"""The output tables of docs/generator.md, "Tables", as Arrow tables: ``attempts`` (request,
logging, response, economics), ``truth`` (the oracle, never a feature source) and the dimension
tables. Amounts and costs are integers in minor units of the attempt's ``currency``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from forestgate.payments.features import BRANDS, CHANNELS, COF_TYPES, EXEMPTIONS, FUNDING, TIERS
from forestgate.payments.limits import LIMIT_NAMES
from forestgate.payments.money import Money, Rounding
from forestgate.training.generator import countries
from forestgate.training.generator import policy as pol
from forestgate.training.generator.arrivals import MOTO, Payments
from forestgate.training.generator.cards import STATUS
from forestgate.training.generator.decision import CODES, FAMILIES, MACS
from forestgate.training.generator.horizon import PaydayCalendar
from forestgate.training.generator.merchants import MCCS, PRICING, RETRY_POLICIES
from forestgate.training.generator.routes import CARD_TYPES, RELATIONS, attempt_costs
from forestgate.training.generator.scenarios import Scenarios
from forestgate.training.generator.simulate import Simulation
from forestgate.training.generator.world import World

I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

# Scheme integrity fees per denied reattempt [V4][M9], USD minor units.
_FEE_USD = {"H1": (10, 15), "H2": (10, 15), "H4": (50, 50), "H6": (50, 50)}
_UTC = pa.timestamp("s", tz="UTC")


def _ts(world: World, seconds: I64) -> pa.Array:
    return pa.array(world.horizon.start_epoch_s + np.asarray(seconds, dtype=np.int64), type=_UTC)


def _pick(labels: tuple[str, ...] | list[str], idx: I64) -> pa.Array:
    return pa.DictionaryArray.from_arrays(
        pa.array(np.asarray(idx, dtype=np.int32)), pa.array(list(labels), type=pa.string())
    ).dictionary_decode()


def _opt(
    values: npt.NDArray[np.generic], missing: npt.NDArray[np.bool_], typ: pa.DataType
) -> pa.Array:
    return pa.array(values, type=typ, mask=np.asarray(missing, dtype=np.bool_))


def _letters(values: I64, width: int) -> list[str]:
    """Base-26 letters: identifiers that can never look like a card number."""
    v = np.asarray(values, dtype=np.int64).copy()
    chars = np.empty((v.size, width), dtype="<U1")
    for j in range(width - 1, -1, -1):
        chars[:, j] = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))[v % 26]
        v //= 26
    return ["".join(row) for row in chars.tolist()]


def attempts_and_truth(
    world: World, scenarios: Scenarios, payments: Payments, sim: Simulation
) -> tuple[pa.Table, pa.Table]:
    x = _Rows.of(world, payments, sim)
    eci = _eci(x, payments)
    attempts = pa.table(
        {
            **_identity_columns(world, x),
            **_card_columns(world, x, payments),
            **_acceptance_columns(world, x, payments, eci),
            **_logging_columns(world, x),
            **_response_columns(world, x, eci),
            **_economics_columns(world, x),
            "guardrail_violation": pa.array(x.violation),
            "guardrail_rule": _opt(x.a["guardrail_rule"].astype(str), ~x.violation, pa.string()),
            "scenario_id": _scenario_ids(scenarios, x.a["scenario"].astype(np.int64)),
        }
    )
    return attempts, _truth(world, x, payments, sim)


@dataclass(frozen=True, slots=True)
class _Rows:
    """The simulation's attempts in output order (time, then decision order), with the
    per-attempt facts several column groups read."""

    a: dict[str, npt.NDArray[np.generic]]  # the simulation's columns, reordered
    gid: I64
    ids: I64  # attempt_id: the row number
    has_parent: B
    parent_idx: I64  # the parent's row (0 where there is none)
    pay: I64
    card: I64
    merchant: I64
    route: I64
    ts: I64
    kind: I64
    brand: I64
    c_country: I64
    m_country: I64
    currency: I64
    amount: I64
    approved: B
    code: I64
    mac: I64
    local: B
    three_ds: B
    violation: B

    @property
    def n(self) -> int:
        return int(self.ids.size)

    @property
    def visa(self) -> B:
        return np.asarray(self.brand == 0)

    @staticmethod
    def of(world: World, p: Payments, sim: Simulation) -> _Rows:
        a = sim.attempts
        order = np.lexsort((a["gid"], a["ts_s"]))
        a = {k: v[order] for k, v in a.items()}
        n = order.size
        gid = a["gid"].astype(np.int64)
        new_id = np.empty(int(gid.max()) + 1 if n else 0, dtype=np.int64)
        new_id[gid] = np.arange(n)
        parent = a["parent"].astype(np.int64)
        has_parent = parent >= 0
        pay = a["payment"].astype(np.int64)
        card = a["card"].astype(np.int64)
        merchant = p.merchant[pay]
        return _Rows(
            a=a,
            gid=gid,
            ids=np.arange(n, dtype=np.int64),
            has_parent=has_parent,
            parent_idx=np.where(has_parent, new_id[np.maximum(parent, 0)], 0),
            pay=pay,
            card=card,
            merchant=merchant,
            route=a["route"].astype(np.int64),
            ts=a["ts_s"].astype(np.int64),
            kind=a["kind"].astype(np.int64),
            brand=world.cards.brand[card],
            c_country=world.cards.country[card],
            m_country=world.merchants.country[merchant],
            currency=p.currency[pay],
            amount=p.amount_minor[pay],
            approved=a["approved"].astype(np.bool_),
            code=a["code"].astype(np.int64),
            mac=a["mac"].astype(np.int64),
            local=a["is_local"].astype(np.bool_),
            three_ds=a["three_ds"].astype(np.bool_),
            violation=~a["guardrail_allowed"].astype(np.bool_),
        )


def _identity_columns(world: World, x: _Rows) -> dict[str, pa.Array]:
    """Which attempt of which payment, when (UTC and the merchant's local clock), and the
    message type."""
    kind, n = x.kind, x.n
    lt = world.horizon.local(x.ts, countries.column("utc_offset_h")[x.m_country])
    return {
        "attempt_id": pa.array(x.ids),
        "payment_id": pa.array([f"PAY{v:08d}" for v in x.pay.tolist()]),
        "parent_attempt_id": _opt(x.parent_idx, ~x.has_parent, pa.int64()),
        "attempt_no": pa.array(x.a["attempt_no"].astype(np.int32)),
        "is_retry": pa.array(
            np.isin(kind, [pol.K_RETRY, pol.K_CASCADE, pol.K_3DS, pol.K_CUSTOMER])
        ),
        "is_cascade": pa.array(kind == pol.K_CASCADE),
        "retry_kind": _opt(np.array(pol.KINDS)[kind], kind == 0, pa.string()),
        "ts_utc": _ts(world, x.ts),
        "local_hour": pa.array(lt.hour.astype(np.int8)),
        "dow": pa.array(lt.dow.astype(np.int8)),
        "dom": pa.array(lt.dom.astype(np.int8)),
        "mti": pa.array(np.full(n, "0100")),
        "processing_code": pa.array(np.full(n, "000000")),
    }


def _card_columns(world: World, x: _Rows, p: Payments) -> dict[str, pa.Array]:
    """The amount and currencies, then the card: BIN, brand, funding, tier, issuer country,
    keyed PAN hash, PAR and the months to the expiry sent."""
    cards, card = world.cards, x.card
    cur_names = np.array(countries.CURRENCIES)
    card_cur = countries.currency_index()[x.c_country]
    return {
        "amount_minor": pa.array(x.amount),
        "currency": pa.array(cur_names[x.currency]),
        "amount_usd": pa.array(np.round(p.amount_usd[x.pay], 2)),
        "card_currency": pa.array(cur_names[card_cur]),
        "fx_needed": pa.array(x.currency != card_cur),
        "bin8": pa.array([world.bins.bin8[b] for b in cards.bin[card].tolist()]),
        "brand": _pick(BRANDS, x.brand),
        "funding": _pick(FUNDING, cards.funding[card]),
        "product_tier": _pick(TIERS, world.bins.tier[cards.bin[card]]),
        "is_commercial": pa.array(world.bins.commercial[cards.bin[card]]),
        "issuer_country": pa.array(np.array(countries.CODES)[x.c_country]),
        "pan_hash": pa.array([cards.pan_hash[c] for c in card.tolist()]),
        "par": pa.array([cards.par[c] for c in card.tolist()]),
        "months_to_expiry": pa.array(x.a["months_to_expiry"].astype(np.int32)),
    }


def _eci(x: _Rows, p: Payments) -> npt.NDArray[np.str_]:
    """Electronic commerce indicator of each attempt ("" for MIT and MOTO)."""
    cit, channel, visa = p.cit[x.pay], p.channel[x.pay], x.visa
    exemption = np.where(x.three_ds, 0, p.exemption[x.pay])
    return np.where(
        ~cit | (channel == MOTO),
        "",
        np.where(
            x.three_ds,
            np.where(visa, "05", "02"),
            np.where(exemption > 0, np.where(visa, "07", "06"), np.where(visa, "07", "00")),
        ),
    )


def _acceptance_columns(
    world: World, x: _Rows, p: Payments, eci: npt.NDArray[np.str_]
) -> dict[str, pa.Array]:
    """Merchant and route, then how the payment was accepted: entry mode, channel, stored
    credential, token, CVV/AVS, 3DS and exemption, IP and billing country, session."""
    pay, kind, visa = x.pay, x.kind, x.visa
    codes_c = np.array(countries.CODES)
    channel, cit = p.channel[pay], p.cit[pay]
    token = x.a["network_token"].astype(np.bool_)
    stored = (p.cof_type[pay] != 0) & (kind != pol.K_NEW_CARD)
    entry = np.where(
        token, "09", np.where(stored, "10", np.where(visa | (channel == MOTO), "01", "81"))
    )
    ipc = np.where(kind == pol.K_NEW_CARD, x.c_country, p.ip_country[pay])
    return {
        "mcc": pa.array([MCCS[i].code for i in world.merchants.mcc[x.merchant].tolist()]),
        "merchant_id": pa.array([f"MER{v:05d}" for v in x.merchant.tolist()]),
        "merchant_country": pa.array(codes_c[x.m_country]),
        "route_id": _pick(list(world.routes.ids), x.route),
        "acquirer_country": pa.array(x.a["acquirer_country"].astype(str)),
        "is_cross_border": pa.array(~x.local),
        "is_local_acquiring": pa.array(x.local),
        "pos_entry_mode": pa.array(entry),
        "pos_condition_code": pa.array(np.where((channel == MOTO) | ~cit, "08", "59")),
        "channel": _pick(CHANNELS, channel),
        "cit_mit": pa.array(np.where(cit, "CIT", "MIT")),
        "cof_type": _pick(COF_TYPES, np.where(kind == pol.K_NEW_CARD, 0, p.cof_type[pay])),
        "is_initial_cof": pa.array(p.is_initial_cof[pay]),
        "network_token": pa.array(token),
        "cvv_present": pa.array(p.cvv_present[pay] | (kind == pol.K_NEW_CARD)),
        "avs_provided": pa.array(p.avs_provided[pay]),
        "three_ds": pa.array(x.three_ds),
        "eci": _opt(eci, eci == "", pa.string()),
        "sca_exemption": _pick(EXEMPTIONS, np.where(x.three_ds, 0, p.exemption[pay])),
        "challenge": pa.array(p.challenge[pay] & x.three_ds | (kind == pol.K_3DS)),
        "ip_country": _opt(codes_c[np.maximum(ipc, 0)], ipc < 0, pa.string()),
        "billing_country": _opt(codes_c[x.c_country], ~p.avs_provided[pay], pa.string()),
        "customer_in_session": pa.array(x.a["in_session"].astype(np.bool_)),
        "credential_changed": pa.array(x.a["changed"].astype(np.bool_)),
    }


def _logging_columns(world: World, x: _Rows) -> dict[str, pa.Array]:
    """The logging policy: who decided the attempt, with which propensities, among which routes,
    and what the previous attempt of the payment answered."""
    a, kind = x.a, x.kind
    policies = np.array(pol.POLICIES)[a["policy"].astype(np.int64)]
    el = a["eligible"].astype(np.bool_)
    prev_code = np.where(x.has_parent, x.code[x.parent_idx], -1)
    prev_mac = np.where(x.has_parent, x.mac[x.parent_idx], 0)
    return {
        "route_policy_id": pa.array(np.where(kind == 0, pol.ROUTE_POLICY, policies)),
        "route_propensity": pa.array(a["route_prop"].astype(np.float64)),
        "eligible_routes": pa.array(
            [[world.routes.ids[j] for j in np.flatnonzero(row)] for row in el],
            type=pa.list_(pa.string()),
        ),
        "retry_policy_id": pa.array(
            [RETRY_POLICIES[i] for i in world.merchants.retry_policy[x.merchant].tolist()]
        ),
        "decided_by": _opt(policies, kind == 0, pa.string()),
        "delay_propensity": _opt(
            np.nan_to_num(a["delay_prop"].astype(np.float64), nan=1.0), kind == 0, pa.float64()
        ),
        "time_since_prev_attempt_s": _opt(
            np.where(x.has_parent, x.ts - x.ts[x.parent_idx], 0), ~x.has_parent, pa.int64()
        ),
        "prev_response_code": _opt(
            np.array(CODES)[np.maximum(prev_code, 0)], ~x.has_parent, pa.string()
        ),
        "prev_mac": _opt(np.array(MACS)[prev_mac], ~x.has_parent | (prev_mac == 0), pa.string()),
    }


def _response_columns(world: World, x: _Rows, eci: npt.NDArray[np.str_]) -> dict[str, pa.Array]:
    """The issuer's answer: code, its Visa category and Mastercard group from the payments
    core, advice code, CVV/AVS results, latency and the network transaction id."""
    codes = world.rules.codes
    info = {
        (b, c): codes.classify(BRANDS[b], CODES[c], world.horizon.start)
        for b in range(len(BRANDS))
        for c in range(len(CODES))
    }
    pairs = list(zip(x.brand.tolist(), x.code.tolist(), strict=True))
    cat = np.array([info[pair].visa_category or 0 for pair in pairs])
    a, mac = x.a, x.mac
    return {
        "response_code": pa.array(np.array(CODES)[x.code]),
        "approved": pa.array(x.approved),
        "visa_category": _opt(cat.astype(np.int8), cat == 0, pa.int8()),
        "mc_group": pa.array([info[pair].mc_group for pair in pairs], type=pa.string()),
        "merchant_advice_code": _opt(np.array(MACS)[mac], mac == 0, pa.string()),
        "cvv_result": pa.array(a["cvv_result"].astype(str)),
        "avs_result": pa.array(a["avs_result"].astype(str)),
        "eci_returned": _opt(eci, (eci == "") | ~x.approved, pa.string()),
        "auth_latency_ms": pa.array(a["latency_ms"].astype(np.int32)),
        "network_txn_id": pa.array(
            ["N" + s for s in _letters(x.ids * 7_919 + world.seed % 1_000_003, 11)]
        ),
        "partial_amount": pa.nulls(x.n, type=pa.int64()),
    }


def _economics_columns(world: World, x: _Rows) -> dict[str, pa.Array]:
    """Costs on the route (integrity fees for denied reattempts included), the merchant's value
    of an approval and the platform's revenue, in minor units of the attempt's currency."""
    cards, m, card, merchant = world.cards, world.merchants, x.card, x.merchant
    ct = np.select(
        [
            world.bins.commercial[cards.bin[card]],
            cards.funding[card] == 0,
            cards.funding[card] == 1,
        ],
        [3, 0, 1],
        default=2,
    )
    costs = attempt_costs(
        world.routes,
        route=x.route,
        local=x.local,
        card_type=ct.astype(np.int64),
        currency=x.currency,
        amount_minor=x.amount,
        approved=x.approved,
    )
    rule, domestic = x.a["guardrail_rule"].tolist(), (x.c_country == x.m_country).tolist()
    fee_usd = np.array(
        [
            (_FEE_USD.get(str(r), (0, 0))[0 if dom else 1])
            for r, dom in zip(rule, domestic, strict=True)
        ],
        dtype=np.int64,
    )
    integrity = _usd_to(world, np.where(x.violation, fee_usd, 0), x.currency)
    pass_through = costs.interchange + costs.scheme_fee + costs.acquirer_fee + costs.fx_fee
    mdr = (x.amount * m.mdr_bps[merchant] + 5_000) // 10_000
    fixed30 = _usd_to(world, np.full(x.n, 30, dtype=np.int64), x.currency)
    revenue = np.where(m.pricing[merchant] == 0, mdr + fixed30 - pass_through, mdr)
    revenue = np.where(x.approved, revenue, 0) - costs.auth_fee
    value = np.where(x.approved, np.round(x.amount * m.margin[merchant]), 0).astype(np.int64)
    return {
        "interchange": pa.array(costs.interchange),
        "scheme_fee": pa.array(costs.scheme_fee),
        "acquirer_fee": pa.array(costs.acquirer_fee),
        "fx_fee": pa.array(costs.fx_fee),
        "auth_fee": pa.array(costs.auth_fee),
        "integrity_fee": pa.array(integrity),
        "total_cost": pa.array(pass_through + costs.auth_fee + integrity),
        "merchant_value": pa.array(value),
        "platform_revenue": pa.array(revenue.astype(np.int64)),
    }


def _scenario_ids(scenarios: Scenarios, scenario: I64) -> pa.Array:
    ids = [e.scenario_id for e in scenarios.events]
    return _opt(np.array([*ids, ""])[scenario], scenario < 0, pa.string())


def _truth(world: World, x: _Rows, p: Payments, sim: Simulation) -> pa.Table:
    """The oracle: true approval probabilities (on the chosen route and every eligible one),
    fraud and its chargeback time, the true decline family, balance and next funding."""
    a, n = x.a, x.n
    fraud = p.is_fraud[x.pay]
    rng = np.random.default_rng(np.random.SeedSequence([world.seed, 11]))
    cb = x.ts + rng.integers(20 * 86_400, 90 * 86_400, n)
    p_route = sim.p_by_route[x.gid]
    route_maps = [
        [(world.routes.ids[j], float(row[j])) for j in np.flatnonzero(~np.isnan(row))]
        for row in p_route
    ]
    card_cur = countries.currency_index()[x.c_country]
    usd = countries.usd_per_currency()[card_cur]
    exp = np.where(np.array(countries.CURRENCIES)[card_cur] == "JPY", 1.0, 100.0)
    return pa.table(
        {
            "attempt_id": pa.array(x.ids),
            "p_approve_true": pa.array(a["p_true"].astype(np.float64)),
            "p_approve_true_by_route": pa.array(
                route_maps, type=pa.map_(pa.string(), pa.float64())
            ),
            "is_fraud": pa.array(fraud),
            "chargeback_ts": pa.array(
                world.horizon.start_epoch_s + cb, type=_UTC, mask=~(fraud & x.approved)
            ),
            "reason_family_true": pa.array(np.array(FAMILIES)[a["family"].astype(np.int64)]),
            "balance_at_attempt": pa.array(
                np.round(a["balance_usd"].astype(np.float64) / usd * exp).astype(np.int64)
            ),
            "next_funding_ts": _ts(world, a["next_funding_s"].astype(np.int64)),
            "velocity_24h": pa.array(a["velocity"].astype(np.int32)),
        }
    )


def _usd_to(world: World, usd_minor: I64, currency: I64) -> I64:
    """USD minor units in each attempt's currency, through the payments core's exchange rates."""
    out = np.zeros(usd_minor.size, dtype=np.int64)
    for value in np.unique(usd_minor).tolist():
        if value == 0:
            continue
        for ci, cur in enumerate(countries.CURRENCIES):
            sel = (usd_minor == value) & (currency == ci)
            if sel.any():
                out[sel] = world.rates.convert(
                    Money(value, "USD"), cur, rounding=Rounding.HALF_UP
                ).amount_minor
    return out


def dimension_tables(world: World, scenarios: Scenarios) -> dict[str, pa.Table]:
    return {
        **_card_tables(world),
        "bins": _bins_table(world),
        **_issuer_tables(world),
        "merchants": _merchants_table(world),
        **_route_tables(world),
        "route_costs": _route_costs_table(world),
        "calendar_paydays": _paydays_table(world),
        "scenario_events": _scenarios_table(world, scenarios),
        "rules_config": _rules_config(world),
    }


def _card_tables(world: World) -> dict[str, pa.Table]:
    """``cards`` (what a PSP would know) and ``truth_cards`` (the latent spending and funding)."""
    cards, bins = world.cards, world.bins
    status_s = np.where(cards.status_s >= 2**61, -1, cards.status_s)
    card_ids = np.array(cards.ids())

    def months(values: I64) -> list[str]:
        return [f"{e // 12:04d}-{e % 12 + 1:02d}" for e in values.tolist()]

    return {
        "cards": pa.table(
            {
                "card_id": pa.array(card_ids),
                "bin8": pa.array([bins.bin8[b] for b in cards.bin.tolist()]),
                "issuer_id": pa.array([f"ISS{i:04d}" for i in cards.issuer.tolist()]),
                "issuer_country": pa.array(np.array(countries.CODES)[cards.country]),
                "brand": _pick(BRANDS, cards.brand),
                "funding": _pick(FUNDING, cards.funding),
                "pan_hash": pa.array(cards.pan_hash),
                "par": pa.array(cards.par),
                "expiry": pa.array(months(cards.expiry_month)),
                "renewed_expiry": pa.array(months(cards.renewed_expiry_month)),
                "token_provisioned": pa.array(cards.token),
                "pay_cycle": pa.array(
                    [countries.PAY_CYCLES[k // 2] for k in cards.cycle_key.tolist()]
                ),
                "status": _pick(STATUS, cards.status),
                "status_change_ts": pa.array(
                    world.horizon.start_epoch_s + status_s, type=_UTC, mask=status_s < 0
                ),
                "replaces_card_id": _opt(
                    card_ids[np.maximum(cards.replaces, 0)], cards.replaces < 0, pa.string()
                ),
            }
        ),
        "truth_cards": pa.table(
            {
                "card_id": pa.array(card_ids),
                "typical_amount_usd": pa.array(cards.typical_usd),
                "income_usd": pa.array(cards.income_usd),
                "buffer_usd": pa.array(cards.buffer_usd),
                "drain_days": pa.array(cards.drain_days),
                "stressed": pa.array(cards.stressed),
                "pay_phase": pa.array((cards.cycle_key % 2).astype(np.int8)),
            }
        ),
    }


def _bins_table(world: World) -> pa.Table:
    bins = world.bins
    return pa.table(
        {
            "bin8": pa.array(bins.bin8),
            "issuer_id": pa.array([f"ISS{i:04d}" for i in bins.issuer.tolist()]),
            "issuer_country": pa.array(
                np.array(countries.CODES)[world.issuers.country[bins.issuer]]
            ),
            "brand": _pick(BRANDS, bins.brand),
            "funding": _pick(FUNDING, bins.funding),
            "product_tier": _pick(TIERS, bins.tier),
            "is_commercial": pa.array(bins.commercial),
        }
    )


def _issuer_tables(world: World) -> dict[str, pa.Table]:
    """``issuers`` (identifier and country) and ``truth_issuers`` (the latent parameters)."""
    iss = world.issuers
    return {
        "issuers": pa.table(
            {
                "issuer_id": pa.array(iss.ids()),
                "country": pa.array(np.array(countries.CODES)[iss.country]),
            }
        ),
        "truth_issuers": pa.table(
            {
                "issuer_id": pa.array(iss.ids()),
                "volume_weight": pa.array(iss.weight),
                "alpha": pa.array(iss.alpha),
                "kappa": pa.array(iss.kappa),
                "generic_propensity": pa.array(iss.generic),
                "mac_support": pa.array(iss.mac_support),
                "token_support": pa.array(iss.token_support),
                "token_bonus": pa.array(iss.token_bonus),
                "sca_soft_decline_prob": pa.array(iss.sca_soft),
                "exemption_accept_prob": pa.array(iss.exemption_accept),
                "us_3ds_penalty": pa.array(iss.us_3ds_penalty),
                "suspicion_half_life_h": pa.array(iss.suspicion_half_life_s / 3600.0),
                "outage_count": pa.array(np.bincount(iss.outages.key, minlength=iss.size)),
            }
        ),
    }


def _merchants_table(world: World) -> pa.Table:
    m = world.merchants
    return pa.table(
        {
            "merchant_id": pa.array(m.ids()),
            "country": pa.array(np.array(countries.CODES)[m.country]),
            "mcc": pa.array(m.mcc_codes()),
            "mcc_group": pa.array([MCCS[i].group for i in m.mcc.tolist()]),
            "business_model": pa.array([MCCS[i].model for i in m.mcc.tolist()]),
            "gross_margin": pa.array(m.margin),
            "pricing": _pick(PRICING, m.pricing),
            "mdr_bps": pa.array(m.mdr_bps),
            "mit_share": pa.array(m.mit_share),
            "offers_local_currency": pa.array(m.offers_local_currency),
            "retry_policy_id": _pick(RETRY_POLICIES, m.retry_policy),
            "fraud_level": pa.array(m.fraud_level),
        }
    )


def _route_tables(world: World) -> dict[str, pa.Table]:
    """``routes`` (the route table and its behaviour) and ``truth_routes`` (the latent quality
    offsets per issuer country, and outage counts)."""
    r = world.routes
    rows = list(r.table)
    n_c = len(countries.CODES)
    return {
        "routes": pa.table(
            {
                "route_id": pa.array(list(r.ids)),
                "acquirer": pa.array([x.acquirer for x in rows]),
                "country": pa.array(list(r.country)),
                "settlement_currency": pa.array([x.settlement_currency for x in rows]),
                "local_countries": pa.array([sorted(x.local_countries) for x in rows]),
                "networks": pa.array([sorted(x.networks) for x in rows]),
                "card_types": pa.array([sorted(t.value for t in x.card_types) for x in rows]),
                "live_from_ts": _ts(world, r.live_from_s),
                "latency_median_ms": pa.array(r.latency_median_ms),
                "token_passthrough": pa.array(r.token_passthrough),
                "mac_passthrough": pa.array(r.mac_passthrough),
                "three_ds": pa.array(r.three_ds),
            }
        ),
        "truth_routes": pa.table(
            {
                "route_id": pa.array([rid for rid in r.ids for _ in countries.CODES]),
                "issuer_country": pa.array([c for _ in r.ids for c in countries.CODES]),
                "offset_route": pa.array(np.repeat(r.offset, n_c)),
                "offset_route_country": pa.array(r.offset_country.ravel()),
                "outage_count": pa.array(
                    np.repeat(np.bincount(r.outages.key, minlength=r.size), n_c)
                ),
            }
        ),
    }


_ROUTE_COST_COLUMNS = (
    "route_id",
    "relation",
    "card_type",
    "interchange_bps",
    "interchange_fixed_minor",
    "scheme_fee_bps",
    "scheme_fee_fixed_minor",
    "acquirer_markup_bps",
    "acquirer_markup_fixed_minor",
    "fx_spread_bps",
    "per_attempt_fee_minor",
    "settlement_currency",
)


def _route_costs_table(world: World) -> pa.Table:
    """The route table's fees, one row per (route, relation, card type) it prices."""
    cost_rows = []
    for x in world.routes.table:
        for rel in RELATIONS:
            for ctype in CARD_TYPES:
                fee = x.interchange[rel].get(ctype)
                if fee is None:
                    continue
                cost_rows.append(
                    (
                        x.route_id,
                        rel.value,
                        ctype.value,
                        str(fee.bps),
                        fee.fixed_minor,
                        str(x.scheme_fee[rel].bps),
                        x.scheme_fee[rel].fixed_minor,
                        str(x.acquirer_markup.bps),
                        x.acquirer_markup.fixed_minor,
                        str(x.fx_spread_bps),
                        x.per_attempt_fee_minor,
                        x.settlement_currency,
                    )
                )
    return pa.table(
        {k: pa.array([row[i] for row in cost_rows]) for i, k in enumerate(_ROUTE_COST_COLUMNS)}
    )


def _paydays_table(world: World) -> pa.Table:
    cal = PaydayCalendar.build(world.horizon)
    return pa.table(
        {
            "pay_cycle": pa.array([x[0] for x in cal.rows]),
            "phase": pa.array([x[1] for x in cal.rows], type=pa.int8()),
            "date": pa.array([x[2] for x in cal.rows], type=pa.date32()),
        }
    )


def _scenarios_table(world: World, scenarios: Scenarios) -> pa.Table:
    ev = scenarios.events
    return pa.table(
        {
            "scenario_id": pa.array([e.scenario_id for e in ev]),
            "kind": pa.array([e.kind for e in ev]),
            "start_ts": _ts(world, np.array([e.start_s for e in ev])),
            "end_ts": _ts(world, np.array([e.end_s for e in ev])),
            "affected": pa.array([e.affected for e in ev]),
            "magnitude": pa.array([e.magnitude for e in ev]),
            "description": pa.array([e.description for e in ev]),
        }
    )


def _rules_config(world: World) -> pa.Table:
    rules = world.rules
    rows: list[tuple[str, str, str, str | None, str | None]] = []
    limits = rules.limits
    for name in LIMIT_NAMES:
        for period in getattr(limits, name).periods:
            rows.append(
                (
                    "guardrail",
                    name,
                    str(period.value),
                    period.start.isoformat() if period.start else None,
                    period.end.isoformat() if period.end else None,
                )
            )
    for period in rules.codes.visa_categories.periods:
        for code, cat in sorted(period.value.items()):
            rows.append(
                (
                    "visa_category",
                    code,
                    str(cat),
                    period.start.isoformat() if period.start else None,
                    period.end.isoformat() if period.end else None,
                )
            )
    for code, advice in sorted(rules.codes.advice.items()):
        hours = int(advice.retry_after.total_seconds() // 3600) if advice.retry_after else None
        rows.append(
            (
                "merchant_advice_code",
                code,
                json.dumps({"action": advice.action.value, "retry_after_hours": hours}),
                None,
                None,
            )
        )
    for c in limits.country_carve_outs:
        rows.append(
            (
                "country_carve_out",
                c.issuer_country,
                ",".join(sorted(k.value for k in c.deny)),
                None,
                None,
            )
        )
    names = ["section", "key", "value", "effective_from", "effective_to"]
    table = pa.table(
        {k: pa.array([row[i] for row in rows], type=pa.string()) for i, k in enumerate(names)}
    )
    return table.append_column("rules_version", pa.array([rules.version] * table.num_rows))


__all__ = ["attempts_and_truth", "dimension_tables"]
