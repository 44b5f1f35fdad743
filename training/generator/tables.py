"""The output tables of docs/generator.md, "Tables", as Arrow tables: ``attempts`` (request,
logging, response, economics), ``truth`` (the oracle, never a feature source) and the dimension
tables. Amounts and costs are integers in minor units of the attempt's ``currency``.
"""

from __future__ import annotations

import json

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
    a = sim.attempts
    order = np.lexsort((a["gid"], a["ts_s"]))
    a = {k: v[order] for k, v in a.items()}
    n = order.size
    gid = a["gid"].astype(np.int64)
    new_id = np.empty(int(gid.max()) + 1 if n else 0, dtype=np.int64)
    new_id[gid] = np.arange(n)
    parent = a["parent"].astype(np.int64)
    has_parent = parent >= 0
    parent_idx = np.where(has_parent, new_id[np.maximum(parent, 0)], 0)
    p, cards, m, r = payments, world.cards, world.merchants, world.routes
    pay = a["payment"].astype(np.int64)
    card = a["card"].astype(np.int64)
    merchant = p.merchant[pay]
    route = a["route"].astype(np.int64)
    ts = a["ts_s"].astype(np.int64)
    brand = cards.brand[card]
    visa = brand == 0
    c_country = cards.country[card]
    m_country = m.country[merchant]
    currency = p.currency[pay]
    amount = p.amount_minor[pay]
    approved = a["approved"].astype(np.bool_)
    code = a["code"].astype(np.int64)
    mac = a["mac"].astype(np.int64)
    kind = a["kind"].astype(np.int64)
    channel = p.channel[pay]
    cit = p.cit[pay]
    token = a["network_token"].astype(np.bool_)
    three_ds = a["three_ds"].astype(np.bool_)
    stored = (p.cof_type[pay] != 0) & (kind != pol.K_NEW_CARD)
    exemption = np.where(three_ds, 0, p.exemption[pay])
    local = a["is_local"].astype(np.bool_)
    lt = world.horizon.local(ts, countries.column("utc_offset_h")[m_country])

    codes = world.rules.codes
    info = {
        (b, c): codes.classify(BRANDS[b], CODES[c], world.horizon.start)
        for b in range(len(BRANDS))
        for c in range(len(CODES))
    }
    cat = np.array(
        [
            info[(b, c)].visa_category or 0
            for b, c in zip(brand.tolist(), code.tolist(), strict=True)
        ]
    )
    group = [info[(b, c)].mc_group for b, c in zip(brand.tolist(), code.tolist(), strict=True)]

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
        r,
        route=route,
        local=local,
        card_type=ct.astype(np.int64),
        currency=currency,
        amount_minor=amount,
        approved=approved,
    )
    rule = a["guardrail_rule"]
    violation = ~a["guardrail_allowed"].astype(np.bool_)
    fee_usd = np.array(
        [
            (_FEE_USD.get(str(x), (0, 0))[0 if dom else 1])
            for x, dom in zip(rule.tolist(), (c_country == m_country).tolist(), strict=True)
        ],
        dtype=np.int64,
    )
    fee_usd = np.where(violation, fee_usd, 0)
    integrity = _usd_to(world, fee_usd, currency)
    total = (
        costs.interchange
        + costs.scheme_fee
        + costs.acquirer_fee
        + costs.fx_fee
        + costs.auth_fee
        + integrity
    )
    margin = m.margin[merchant]
    value = np.where(approved, np.round(amount * margin), 0).astype(np.int64)
    fixed30 = _usd_to(world, np.full(n, 30, dtype=np.int64), currency)
    mdr = (amount * m.mdr_bps[merchant] + 5_000) // 10_000
    blended = m.pricing[merchant] == 0
    pass_through = costs.interchange + costs.scheme_fee + costs.acquirer_fee + costs.fx_fee
    revenue = np.where(blended, mdr + fixed30 - pass_through, mdr)
    revenue = np.where(approved, revenue, 0) - costs.auth_fee

    eci = np.where(
        ~cit | (channel == MOTO),
        "",
        np.where(
            three_ds,
            np.where(visa, "05", "02"),
            np.where(exemption > 0, np.where(visa, "07", "06"), np.where(visa, "07", "00")),
        ),
    )
    entry = np.where(
        token, "09", np.where(stored, "10", np.where(visa | (channel == MOTO), "01", "81"))
    )
    cond = np.where((channel == MOTO) | ~cit, "08", "59")
    el = a["eligible"].astype(np.bool_)
    el_lists = [[world.routes.ids[j] for j in np.flatnonzero(row)] for row in el]
    prev_code = np.where(has_parent, code[parent_idx], -1)
    prev_mac = np.where(has_parent, mac[parent_idx], 0)
    since_prev = np.where(has_parent, ts - ts[parent_idx], 0)
    ids = np.arange(n, dtype=np.int64)
    cur_names = np.array(countries.CURRENCIES)
    card_cur = countries.currency_index()[c_country]
    tier = world.bins.tier[cards.bin[card]]
    ip = p.ip_country[pay]
    ipc = np.where(kind == pol.K_NEW_CARD, c_country, ip)
    scenario = a["scenario"].astype(np.int64)
    sc_ids = [e.scenario_id for e in scenarios.events]
    retry_kinds = np.array(pol.KINDS)[kind]

    attempts = pa.table(
        {
            "attempt_id": pa.array(ids),
            "payment_id": pa.array([f"PAY{x:08d}" for x in pay.tolist()]),
            "parent_attempt_id": _opt(parent_idx, ~has_parent, pa.int64()),
            "attempt_no": pa.array(a["attempt_no"].astype(np.int32)),
            "is_retry": pa.array(
                np.isin(kind, [pol.K_RETRY, pol.K_CASCADE, pol.K_3DS, pol.K_CUSTOMER])
            ),
            "is_cascade": pa.array(kind == pol.K_CASCADE),
            "retry_kind": _opt(retry_kinds, kind == 0, pa.string()),
            "ts_utc": _ts(world, ts),
            "local_hour": pa.array(lt.hour.astype(np.int8)),
            "dow": pa.array(lt.dow.astype(np.int8)),
            "dom": pa.array(lt.dom.astype(np.int8)),
            "mti": pa.array(np.full(n, "0100")),
            "processing_code": pa.array(np.full(n, "000000")),
            "amount_minor": pa.array(amount),
            "currency": pa.array(cur_names[currency]),
            "amount_usd": pa.array(np.round(p.amount_usd[pay], 2)),
            "card_currency": pa.array(cur_names[card_cur]),
            "fx_needed": pa.array(currency != card_cur),
            "bin8": pa.array([world.bins.bin8[b] for b in cards.bin[card].tolist()]),
            "brand": _pick(BRANDS, brand),
            "funding": _pick(FUNDING, cards.funding[card]),
            "product_tier": _pick(TIERS, tier),
            "is_commercial": pa.array(world.bins.commercial[cards.bin[card]]),
            "issuer_country": pa.array(np.array(countries.CODES)[c_country]),
            "pan_hash": pa.array([cards.pan_hash[c] for c in card.tolist()]),
            "par": pa.array([cards.par[c] for c in card.tolist()]),
            "months_to_expiry": pa.array(a["months_to_expiry"].astype(np.int32)),
            "mcc": pa.array([MCCS[i].code for i in m.mcc[merchant].tolist()]),
            "merchant_id": pa.array([f"MER{x:05d}" for x in merchant.tolist()]),
            "merchant_country": pa.array(np.array(countries.CODES)[m_country]),
            "route_id": _pick(list(r.ids), route),
            "acquirer_country": pa.array(a["acquirer_country"].astype(str)),
            "is_cross_border": pa.array(~local),
            "is_local_acquiring": pa.array(local),
            "pos_entry_mode": pa.array(entry),
            "pos_condition_code": pa.array(cond),
            "channel": _pick(CHANNELS, channel),
            "cit_mit": pa.array(np.where(cit, "CIT", "MIT")),
            "cof_type": _pick(COF_TYPES, np.where(kind == pol.K_NEW_CARD, 0, p.cof_type[pay])),
            "is_initial_cof": pa.array(p.is_initial_cof[pay]),
            "network_token": pa.array(token),
            "cvv_present": pa.array(p.cvv_present[pay] | (kind == pol.K_NEW_CARD)),
            "avs_provided": pa.array(p.avs_provided[pay]),
            "three_ds": pa.array(three_ds),
            "eci": _opt(eci, eci == "", pa.string()),
            "sca_exemption": _pick(EXEMPTIONS, exemption),
            "challenge": pa.array(p.challenge[pay] & three_ds | (kind == pol.K_3DS)),
            "ip_country": _opt(np.array(countries.CODES)[np.maximum(ipc, 0)], ipc < 0, pa.string()),
            "billing_country": _opt(
                np.array(countries.CODES)[c_country], ~p.avs_provided[pay], pa.string()
            ),
            "customer_in_session": pa.array(a["in_session"].astype(np.bool_)),
            "credential_changed": pa.array(a["changed"].astype(np.bool_)),
            "route_policy_id": pa.array(
                np.where(
                    kind == 0,
                    pol.ROUTE_POLICY,
                    np.array(pol.POLICIES)[a["policy"].astype(np.int64)],
                )
            ),
            "route_propensity": pa.array(a["route_prop"].astype(np.float64)),
            "eligible_routes": pa.array(el_lists, type=pa.list_(pa.string())),
            "retry_policy_id": pa.array(
                [RETRY_POLICIES[i] for i in m.retry_policy[merchant].tolist()]
            ),
            "decided_by": _opt(
                np.array(pol.POLICIES)[a["policy"].astype(np.int64)], kind == 0, pa.string()
            ),
            "delay_propensity": _opt(
                np.nan_to_num(a["delay_prop"].astype(np.float64), nan=1.0), kind == 0, pa.float64()
            ),
            "time_since_prev_attempt_s": _opt(since_prev, ~has_parent, pa.int64()),
            "prev_response_code": _opt(
                np.array(CODES)[np.maximum(prev_code, 0)], ~has_parent, pa.string()
            ),
            "prev_mac": _opt(np.array(MACS)[prev_mac], ~has_parent | (prev_mac == 0), pa.string()),
            "response_code": pa.array(np.array(CODES)[code]),
            "approved": pa.array(approved),
            "visa_category": _opt(cat.astype(np.int8), cat == 0, pa.int8()),
            "mc_group": pa.array(group, type=pa.string()),
            "merchant_advice_code": _opt(np.array(MACS)[mac], mac == 0, pa.string()),
            "cvv_result": pa.array(a["cvv_result"].astype(str)),
            "avs_result": pa.array(a["avs_result"].astype(str)),
            "eci_returned": _opt(eci, (eci == "") | ~approved, pa.string()),
            "auth_latency_ms": pa.array(a["latency_ms"].astype(np.int32)),
            "network_txn_id": pa.array(
                ["N" + s for s in _letters(ids * 7_919 + world.seed % 1_000_003, 11)]
            ),
            "partial_amount": pa.nulls(n, type=pa.int64()),
            "interchange": pa.array(costs.interchange),
            "scheme_fee": pa.array(costs.scheme_fee),
            "acquirer_fee": pa.array(costs.acquirer_fee),
            "fx_fee": pa.array(costs.fx_fee),
            "auth_fee": pa.array(costs.auth_fee),
            "integrity_fee": pa.array(integrity),
            "total_cost": pa.array(total),
            "merchant_value": pa.array(value),
            "platform_revenue": pa.array(revenue.astype(np.int64)),
            "guardrail_violation": pa.array(violation),
            "guardrail_rule": _opt(rule.astype(str), ~violation, pa.string()),
            "scenario_id": _opt(np.array([*sc_ids, ""])[scenario], scenario < 0, pa.string()),
        }
    )
    fraud = p.is_fraud[pay]
    rng = np.random.default_rng(np.random.SeedSequence([world.seed, 11]))
    cb = ts + rng.integers(20 * 86_400, 90 * 86_400, n)
    p_route = sim.p_by_route[gid]
    route_maps = [
        [(world.routes.ids[j], float(row[j])) for j in np.flatnonzero(~np.isnan(row))]
        for row in p_route
    ]
    usd = countries.usd_per_currency()[card_cur]
    exp = np.where(cur_names[card_cur] == "JPY", 1.0, 100.0)
    truth = pa.table(
        {
            "attempt_id": pa.array(ids),
            "p_approve_true": pa.array(a["p_true"].astype(np.float64)),
            "p_approve_true_by_route": pa.array(
                route_maps, type=pa.map_(pa.string(), pa.float64())
            ),
            "is_fraud": pa.array(fraud),
            "chargeback_ts": pa.array(
                world.horizon.start_epoch_s + cb, type=_UTC, mask=~(fraud & approved)
            ),
            "reason_family_true": pa.array(np.array(FAMILIES)[a["family"].astype(np.int64)]),
            "balance_at_attempt": pa.array(
                np.round(a["balance_usd"].astype(np.float64) / usd * exp).astype(np.int64)
            ),
            "next_funding_ts": _ts(world, a["next_funding_s"].astype(np.int64)),
            "velocity_24h": pa.array(a["velocity"].astype(np.int32)),
        }
    )
    return attempts, truth


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
    cards, bins, iss, m, r = world.cards, world.bins, world.issuers, world.merchants, world.routes
    codes_c = np.array(countries.CODES)
    from forestgate.training.generator.countries import PAY_CYCLES

    expiry = cards.expiry_month
    status_s = np.where(cards.status_s >= 2**61, -1, cards.status_s)
    card_ids = np.array(cards.ids())
    tables: dict[str, pa.Table] = {}
    tables["cards"] = pa.table(
        {
            "card_id": pa.array(card_ids),
            "bin8": pa.array([bins.bin8[b] for b in cards.bin.tolist()]),
            "issuer_id": pa.array([f"ISS{i:04d}" for i in cards.issuer.tolist()]),
            "issuer_country": pa.array(codes_c[cards.country]),
            "brand": _pick(BRANDS, cards.brand),
            "funding": _pick(FUNDING, cards.funding),
            "pan_hash": pa.array(cards.pan_hash),
            "par": pa.array(cards.par),
            "expiry": pa.array([f"{e // 12:04d}-{e % 12 + 1:02d}" for e in expiry.tolist()]),
            "renewed_expiry": pa.array(
                [f"{e // 12:04d}-{e % 12 + 1:02d}" for e in cards.renewed_expiry_month.tolist()]
            ),
            "token_provisioned": pa.array(cards.token),
            "pay_cycle": pa.array([PAY_CYCLES[k // 2] for k in cards.cycle_key.tolist()]),
            "status": _pick(STATUS, cards.status),
            "status_change_ts": pa.array(
                world.horizon.start_epoch_s + status_s, type=_UTC, mask=status_s < 0
            ),
            "replaces_card_id": _opt(
                card_ids[np.maximum(cards.replaces, 0)], cards.replaces < 0, pa.string()
            ),
        }
    )
    tables["truth_cards"] = pa.table(
        {
            "card_id": pa.array(card_ids),
            "typical_amount_usd": pa.array(cards.typical_usd),
            "income_usd": pa.array(cards.income_usd),
            "buffer_usd": pa.array(cards.buffer_usd),
            "drain_days": pa.array(cards.drain_days),
            "stressed": pa.array(cards.stressed),
            "pay_phase": pa.array((cards.cycle_key % 2).astype(np.int8)),
        }
    )
    tables["bins"] = pa.table(
        {
            "bin8": pa.array(bins.bin8),
            "issuer_id": pa.array([f"ISS{i:04d}" for i in bins.issuer.tolist()]),
            "issuer_country": pa.array(codes_c[iss.country[bins.issuer]]),
            "brand": _pick(BRANDS, bins.brand),
            "funding": _pick(FUNDING, bins.funding),
            "product_tier": _pick(TIERS, bins.tier),
            "is_commercial": pa.array(bins.commercial),
        }
    )
    tables["issuers"] = pa.table(
        {"issuer_id": pa.array(iss.ids()), "country": pa.array(codes_c[iss.country])}
    )
    tables["truth_issuers"] = pa.table(
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
    )
    tables["merchants"] = pa.table(
        {
            "merchant_id": pa.array(m.ids()),
            "country": pa.array(codes_c[m.country]),
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
    rows = list(r.table)
    tables["routes"] = pa.table(
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
    )
    tables["truth_routes"] = pa.table(
        {
            "route_id": pa.array([rid for rid in r.ids for _ in countries.CODES]),
            "issuer_country": pa.array([c for _ in r.ids for c in countries.CODES]),
            "offset_route": pa.array(np.repeat(r.offset, len(countries.CODES))),
            "offset_route_country": pa.array(r.offset_country.ravel()),
            "outage_count": pa.array(
                np.repeat(np.bincount(r.outages.key, minlength=r.size), len(countries.CODES))
            ),
        }
    )
    cost_rows = []
    for x in rows:
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
    names = [
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
    ]
    tables["route_costs"] = pa.table(
        {k: pa.array([row[i] for row in cost_rows]) for i, k in enumerate(names)}
    )
    cal = PaydayCalendar.build(world.horizon)
    tables["calendar_paydays"] = pa.table(
        {
            "pay_cycle": pa.array([x[0] for x in cal.rows]),
            "phase": pa.array([x[1] for x in cal.rows], type=pa.int8()),
            "date": pa.array([x[2] for x in cal.rows], type=pa.date32()),
        }
    )
    ev = scenarios.events
    tables["scenario_events"] = pa.table(
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
    tables["rules_config"] = _rules_config(world)
    return tables


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
