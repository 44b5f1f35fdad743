"""The event simulation: payments' first attempts and every retry, cascade and step-up they lead
to, decided chunk by chunk in time order (docs/generator.md, "Retries and recovery" and
"Performance").

Within a chunk the work is vectorised; sequential state is only what must be: the issuer's
velocity (declines per card in the last 24 h, from every attempt decided before the batch) and
the guardrail ledger, which files the chunk's attempts in time order and asks
``guardrail.check`` for every reattempt. A retry re-runs the issuer decision at its own later
time: the balance may have refilled on payday, the outage may be over, the updater may have
refreshed the credential.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from forestgate.payments.action import ActionKind
from forestgate.payments.codes import AdviceAction, Family
from forestgate.payments.features import BRANDS
from forestgate.payments.guardrail import Verdict
from forestgate.payments.history import card_key
from forestgate.training.generator import countries
from forestgate.training.generator import policy as pol
from forestgate.training.generator.arrivals import MOTO, RECURRING, Payments
from forestgate.training.generator.decision import CODES, MACS, Batch, Decision, decide
from forestgate.training.generator.ledger import Ledger, Request
from forestgate.training.generator.merchants import MCCS
from forestgate.training.generator.scenarios import Scenarios
from forestgate.training.generator.world import World

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

DAY_S = 86_400
_KIND_ACTION = {
    pol.K_RETRY: ActionKind.RETRY,
    pol.K_CASCADE: ActionKind.CASCADE,
    pol.K_3DS: ActionKind.CIT_3DS,
    pol.K_CUSTOMER: ActionKind.RETRY,
}

# Pending-attempt fields (one array each); a pending attempt becomes a row when its time comes.
_PENDING = (
    "ts_s", "payment", "parent", "attempt_no", "kind", "policy", "route", "route_prop",
    "delay_prop", "card", "changed", "in_session", "three_ds", "u_prev", "ts_prev", "fixed_cvv",
)  # fmt: skip


@dataclass
class Log:
    """Decided attempts, appended per batch; concatenated once at the end."""

    parts: dict[str, list[npt.NDArray[np.generic]]] = field(default_factory=dict)

    def add(self, **cols: npt.NDArray[np.generic]) -> None:
        for k, v in cols.items():
            self.parts.setdefault(k, []).append(v)

    def columns(self) -> dict[str, npt.NDArray[np.generic]]:
        return {k: np.concatenate(v) for k, v in self.parts.items()}


@dataclass(frozen=True, slots=True)
class Simulation:
    attempts: dict[str, npt.NDArray[np.generic]]
    p_by_route: F64
    dropped_compliant: int
    guardrail_checks: int


class _Sim:
    def __init__(self, world: World, scenarios: Scenarios, payments: Payments, seed: int) -> None:
        self.w = world
        self.sc = scenarios
        self.p = payments
        self.rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
        self.ledger = Ledger(world.rules)
        self.codes = self.ledger.rules.codes
        self.start = dt.datetime.combine(world.horizon.start, dt.time(), tzinfo=dt.UTC)
        self.next_gid = 0
        self.pending: dict[str, npt.NDArray[np.generic]] = {k: np.zeros(0) for k in _PENDING}
        self.log = Log()
        self.p_route: list[F64] = []
        self.recent_card = np.zeros(0, dtype=np.int64)
        self.recent_ts = np.zeros(0, dtype=np.int64)
        self.dropped: set[int] = set()
        self.dropped_compliant = 0
        self.drop_reasons: dict[tuple[str, str, str], int] = {}
        self.checks = 0
        self.cancelled: set[tuple[str, int]] = set()
        r = world.routes
        cards, m = world.cards, world.merchants
        ct = np.where(world.bins.commercial[cards.bin], 3, cards.funding)  # CARD_TYPES order
        ct = np.select([ct == 3, cards.funding == 0, cards.funding == 1], [3, 0, 1], default=2)
        self.card_type = ct.astype(np.int64)
        mcc_codes = [MCCS[i].code for i in m.mcc.tolist()]
        self.mcc_ok = np.array(
            [[code not in r.excluded_mccs[j] for j in range(r.size)] for code in mcc_codes],
            dtype=np.bool_,
        )
        self.card_keys = [
            card_key(par, h) for par, h in zip(cards.par, cards.pan_hash, strict=True)
        ]
        # Counters key on the PAR (H10): a reissued card after a loss shares its old budget.
        accounts: dict[str, int] = {}
        self.account = np.array(
            [accounts.setdefault(k, len(accounts)) for k in self.card_keys], dtype=np.int64
        )
        self.seen_sca = np.zeros(payments.size, dtype=np.bool_)
        self.merchant_ids = m.ids()
        self.cur_codes = np.array(countries.CURRENCIES)
        self.route_ids = list(r.ids)
        self.country_codes = np.array(countries.CODES)
        self.family_of: dict[tuple[int, int], Family] = {}

    # -- helpers --------------------------------------------------------------------------
    def eligible(self, card: I64, merchant: I64, ts: I64) -> B:
        r, cards = self.w.routes, self.w.cards
        return (
            r.networks[:, cards.brand[card]].T
            & r.card_types[:, self.card_type[card]].T
            & r.issuer_ok[:, cards.country[card]].T
            & (ts[:, None] >= r.live_from_s[None, :])
            & self.mcc_ok[merchant]
        )

    def cost_bps(self, card: I64, amount_minor: I64, currency: I64) -> tuple[B, F64]:
        r, cards = self.w.routes, self.w.cards
        local = r.local[:, cards.country[card]].T
        rel = np.where(local, 0, 1)
        ct = self.card_type[card][:, None]
        rr = np.arange(r.size)[None, :]
        cur = currency[:, None]
        bps = (
            r.interchange_bps100[rr, rel, ct] + r.scheme_bps100[rr, rel] + r.markup_bps100[rr]
        ) / 100.0
        fixed = r.interchange_fixed[rr, rel, ct, cur] + r.scheme_fixed[rr, rel, cur]
        fixed = fixed + r.markup_fixed[rr, cur]
        bps = bps + fixed / np.maximum(amount_minor[:, None], 1) * 1e4
        bps = bps + np.where(r.settlement_currency[rr] != cur, r.fx_bps100[rr] / 100.0, 0.0)
        return local, bps

    def velocity(self, card: I64, ts: I64) -> I64:
        if self.recent_card.size == 0:
            return np.zeros(card.size, dtype=np.int64)
        stride = np.int64(1 << 36)
        keys = np.sort(self.recent_card * stride + self.recent_ts)
        hi = np.searchsorted(keys, card * stride + ts, side="left")
        lo = np.searchsorted(keys, card * stride + ts - DAY_S, side="left")
        return (hi - lo).astype(np.int64)

    def family(self, brand: int, code: int) -> Family:
        key = (brand, code)
        fam = self.family_of.get(key)
        if fam is None:
            fam = self.codes.classify(BRANDS[brand], CODES[code], self.w.horizon.start).family
            self.family_of[key] = fam
        return fam

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> Simulation:
        p = self.p
        chunk = self.w.preset.chunk_s
        end = self.w.horizon.end_s
        order = np.argsort(p.ts_s, kind="stable")
        ts_sorted = p.ts_s[order]
        for cs in range(0, end + chunk, chunk):
            ce = cs + chunk
            lo, hi = np.searchsorted(ts_sorted, [cs, ce], side="left")
            firsts = order[lo:hi]
            firsts = self._drop_cancelled(firsts)
            batch = self._first_batch(firsts)
            due = np.asarray(self.pending["ts_s"], dtype=np.int64) < ce
            batch = _concat(batch, _take(self.pending, due))
            self.pending = _take(self.pending, ~due)
            chunk_rows: list[dict[str, npt.NDArray[np.generic]]] = []
            while batch["ts_s"].size:
                rows = self._decide(batch)
                chunk_rows.append(rows)
                new = self._propose(rows)
                new = _take(new, np.asarray(new["ts_s"], dtype=np.int64) < end)
                soon = np.asarray(new["ts_s"], dtype=np.int64) < ce
                self.pending = _concat(self.pending, _take(new, ~soon))
                batch = _take(new, soon)
            if chunk_rows:
                self._validate(chunk_rows)
            if cs >= end and self.pending["ts_s"].size == 0:
                break
        cols = self.log.columns()
        return Simulation(
            attempts=cols,
            p_by_route=np.concatenate(self.p_route) if self.p_route else np.zeros((0, 0)),
            dropped_compliant=self.dropped_compliant,
            guardrail_checks=self.checks,
        )

    def _drop_cancelled(self, firsts: I64) -> I64:
        if not self.cancelled or firsts.size == 0:
            return firsts
        p, m = self.p, self.w.merchants
        keep = np.ones(firsts.size, dtype=np.bool_)
        for i, pay in enumerate(firsts.tolist()):
            recurring = p.channel[pay] == RECURRING and m.retry_policy[p.merchant[pay]] != 2
            if recurring and (self.card_keys[p.card[pay]], int(p.merchant[pay])) in self.cancelled:
                keep[i] = False
        return firsts[keep]

    def _first_batch(self, pay: I64) -> dict[str, npt.NDArray[np.generic]]:
        n = pay.size
        p = self.p
        el = self.eligible(p.card[pay], p.merchant[pay], p.ts_s[pay])
        local, bps = self.cost_bps(p.card[pay], p.amount_minor[pay], p.currency[pay])
        route, prop = pol.choose_routes(self.rng, self.w.routes, el, local, bps)
        return {
            "ts_s": p.ts_s[pay],
            "payment": pay,
            "parent": np.full(n, -1, dtype=np.int64),
            "attempt_no": np.ones(n, dtype=np.int64),
            "kind": np.zeros(n, dtype=np.int64),
            "policy": np.full(n, pol.P_NONE, dtype=np.int64),
            "route": route,
            "route_prop": prop,
            "delay_prop": np.full(n, np.nan),
            "card": p.card[pay],
            "changed": np.zeros(n, dtype=np.bool_),
            "in_session": p.cit[pay].copy(),
            "three_ds": p.three_ds[pay].copy(),
            "u_prev": np.full(n, np.nan),
            "ts_prev": np.full(n, -1, dtype=np.int64),
            "fixed_cvv": np.zeros(n, dtype=np.bool_),
        }

    def _decide(self, b: dict[str, npt.NDArray[np.generic]]) -> dict[str, npt.NDArray[np.generic]]:
        w, p, cards = self.w, self.p, self.w.cards
        pay = b["payment"].astype(np.int64)
        ts = b["ts_s"].astype(np.int64)
        card = b["card"].astype(np.int64)
        n = ts.size
        gid = np.arange(self.next_gid, self.next_gid + n, dtype=np.int64)
        self.next_gid += n
        route = b["route"].astype(np.int64)
        stored = (p.cof_type[pay] != 0) & ~(b["kind"] == pol.K_NEW_CARD)
        expiry_end = w.horizon.expiry_end_s(cards.expiry_month[card])
        stale = stored & (ts >= expiry_end) & (ts < cards.renewal_visible_s[card])
        tight = np.isin(cards.issuer[card], self.sc.tightened_issuers) & (
            ts >= self.sc.by_id("issuer_xb_tightening").start_s
        )
        sc_out = (
            (route == self.sc.outage_route)
            & (ts >= self._event("route_outage_c_br", 0))
            & (ts < self._event("route_outage_c_br", 1))
        )
        batch = self._batch(b, stored=stored, stale=stale, tight=tight, scenario_outage=sc_out)
        d = decide(w, batch, self.rng)
        self.p_route.append(d.p_by_route)
        month = w.horizon.local(ts, np.zeros(n)).month
        shown_expiry = np.where(
            stale | (~stored & (ts < expiry_end)) | (stored & (ts < expiry_end)),
            cards.expiry_month[card],
            cards.renewed_expiry_month[card],
        )
        scenario = p.scenario[pay].copy()
        scenario = np.where(tight & ~d.is_local, self.sc.index("issuer_xb_tightening"), scenario)
        scenario = np.where(sc_out, self.sc.index("route_outage_c_br"), scenario)
        return {
            **{k: np.asarray(v) for k, v in b.items()},
            "gid": gid,
            "eligible": batch.eligible,
            **_decision_columns(d),
            "velocity": batch.velocity,
            "months_to_expiry": shown_expiry - month,
            "scenario": scenario,
        }

    def _batch(
        self,
        b: dict[str, npt.NDArray[np.generic]],
        *,
        stored: B,
        stale: B,
        tight: B,
        scenario_outage: B,
    ) -> Batch:
        """The issuer's view of pending attempts ``b``, with the scenario flags applied."""
        p = self.p
        pay = b["payment"].astype(np.int64)
        ts = b["ts_s"].astype(np.int64)
        card = b["card"].astype(np.int64)
        merchant = p.merchant[pay]
        route = b["route"].astype(np.int64)
        eligible = self.eligible(card, merchant, ts)
        # A route that stopped being eligible (never happens for first attempts) is kept: the
        # policy chose it, the answer says so.
        eligible[np.arange(ts.size), route] = True
        fixed_cvv = b["fixed_cvv"].astype(np.bool_)
        return Batch(
            ts_s=ts,
            card=card,
            merchant=merchant,
            route=route,
            eligible=eligible,
            amount_usd=p.amount_usd[pay],
            cit=p.cit[pay],
            mit_recurring=p.channel[pay] == RECURRING,
            moto=p.channel[pay] == MOTO,
            stored=stored,
            token_intent=p.token_intent[pay],
            cvv_present=p.cvv_present[pay],
            cvv_mismatch=p.cvv_mismatch[pay] & ~fixed_cvv,
            avs_provided=p.avs_provided[pay],
            three_ds=b["three_ds"].astype(np.bool_),
            exemption=(p.exemption[pay] > 0) & ~b["three_ds"].astype(np.bool_),
            is_fraud=p.is_fraud[pay],
            keyed_typo=p.keyed_typo[pay] & ~fixed_cvv & (b["kind"] != pol.K_NEW_CARD),
            expired=stale & ~p.token_intent[pay],
            cancelled=p.subscription_cancelled[pay],
            velocity=self.velocity(card, ts),
            u_prev=b["u_prev"].astype(np.float64),
            dt_prev_s=(ts - b["ts_prev"].astype(np.int64)).astype(np.float64),
            xb_extra=np.where(tight, self.sc.tightening_logit, 0.0),
            scenario_outage=scenario_outage,
        )

    def _event(self, scenario_id: str, which: int) -> int:
        if self.sc.outage_route < 0:
            return 0
        e = self.sc.by_id(scenario_id)
        return e.start_s if which == 0 else e.end_s

    # -- policies ---------------------------------------------------------------------------
    def _propose(
        self, rows: dict[str, npt.NDArray[np.generic]]
    ) -> dict[str, npt.NDArray[np.generic]]:
        """The reattempts the logging policies make of a decided batch's declines, in the order
        below: an attempt one step claims (``handled``) is not offered to the later ones."""
        declined = np.flatnonzero(~rows["approved"].astype(np.bool_))
        if declined.size == 0:
            return {k: np.zeros(0) for k in _PENDING}
        d = self._declines(rows, declined)
        base = _inherited(rows, declined)
        handled = np.zeros(d.size, dtype=np.bool_)
        out: list[dict[str, npt.NDArray[np.generic]]] = []
        # 1. Cascade on technical declines to the incumbent's next route (prob 0.8, logged).
        cascades, handled = self._cascades(d, base, handled)
        out += cascades
        # 2. SCA soft decline of a CIT: the customer steps up with 3DS while in session.
        sca = (d.fam == Family.SCA.value) & d.cit & (d.kind != pol.K_3DS) & ~handled
        stays = sca & (d.u[0] < 0.85) & (d.u[2] < 0.86)
        handled |= sca
        s = self._pending(
            base,
            stays,
            d.ts + 60 + (d.u[1] * 180).astype(np.int64),
            pol.K_3DS,
            pol.P_CUSTOMER,
            prop=1.0,
        )
        s["three_ds"][:] = True
        s["in_session"][:] = True
        out.append(s)
        # 3. Other CIT declines: some customers try again, the same card or another one.
        other_cit = d.cit & ~handled & ~d.testing & (d.kind != pol.K_NEW_CARD) & (d.att < 4)
        out += self._customer_retries(d, base, other_cit)
        handled |= other_cit
        # 4. Merchant-initiated declines: the merchant's retry policy.
        out += self._merchant_retries(d, base, mit=~d.cit & ~handled & ~d.testing)
        return _concat_all(out)

    def _declines(self, rows: dict[str, npt.NDArray[np.generic]], declined: I64) -> _Declines:
        """The declined rows with what the policies decide on. Draws six uniforms per decline,
        and marks payments that met an SCA soft decline."""
        cards = self.w.cards
        pay = rows["payment"][declined].astype(np.int64)
        card = rows["card"][declined].astype(np.int64)
        brand = cards.brand[card]
        code = rows["code"][declined].astype(np.int64)
        mac = rows["mac"][declined].astype(np.int64)
        fam = np.array(
            [self.family(b, c).value for b, c in zip(brand.tolist(), code.tolist(), strict=True)]
        )
        merchant = self.p.merchant[pay]
        u = self.rng.random((6, declined.size))
        # Once a payment met an SCA soft decline, only a 3DS step-up may follow it (H7).
        self.seen_sca[pay[fam == Family.SCA.value]] = True
        return _Declines(
            pay=pay,
            ts=rows["ts_s"][declined].astype(np.int64),
            card=card,
            merchant=merchant,
            route=rows["route"][declined].astype(np.int64),
            kind=rows["kind"][declined].astype(np.int64),
            att=rows["attempt_no"][declined].astype(np.int64),
            code=code,
            fam=fam,
            mac_act=np.array([self._advice(mc)[0] for mc in mac.tolist()]),
            mac_wait=np.array([self._advice(mc)[1] for mc in mac.tolist()], dtype=np.int64),
            cit=self.p.cit[pay],
            testing=self.p.card_testing[pay],
            policy=self.w.merchants.retry_policy[merchant],
            india=cards.country[card] == countries.INDEX["IN"],
            after_sca=self.seen_sca[pay],
            u=u,
        )

    def _cascades(
        self, d: _Declines, base: dict[str, npt.NDArray[np.generic]], handled: B
    ) -> tuple[list[dict[str, npt.NDArray[np.generic]]], B]:
        tech = (d.fam == Family.TECHNICAL.value) & (d.kind != pol.K_CASCADE) & ~d.testing
        tech &= ~d.india
        tech &= ~d.after_sca
        if not tech.any():
            return [], handled
        p = self.p
        el = self.eligible(d.card, d.merchant, d.ts)
        local, bps = self.cost_bps(d.card, p.amount_minor[d.pay], p.currency[d.pay])
        alt = pol.second_best(el, local, bps, d.route, self.w.routes)
        go = tech & (alt >= 0) & (d.u[0] < 0.8) & ~d.legacy
        cascade = self._pending(
            base,
            go,
            d.ts + 1 + (d.u[1] * 4).astype(np.int64),
            pol.K_CASCADE,
            pol.P_CASCADE,
            route=alt,
            prop=0.8,
        )
        return [cascade], handled | go

    def _customer_retries(
        self, d: _Declines, base: dict[str, npt.NDArray[np.generic]], other_cit: B
    ) -> list[dict[str, npt.NDArray[np.generic]]]:
        """Customers in session try the same card again (re-entering its data after a data
        decline), or another card."""
        u, fam = d.u, d.fam
        same_ok = ~d.india & ~d.after_sca & ~(d.mac_act == "never")
        data = np.isin(fam, [Family.DATA.value])
        retry_same = (
            other_cit
            & ~data
            & np.isin(
                fam,
                [
                    Family.GENERIC.value,
                    Family.INSUFFICIENT_FUNDS.value,
                    Family.SUSPECTED_FRAUD.value,
                    Family.TECHNICAL.value,
                ],
            )
            & (u[0] < 0.14)
            & same_ok
        )
        reenter = other_cit & data & (u[0] < 0.3) & same_ok
        reenter &= np.isin(d.code, [CODES.index("N7"), CODES.index("14")])
        new_card = other_cit & ~retry_same & ~reenter & (u[3] < 0.08)
        c = self._pending(
            base,
            retry_same | reenter,
            d.ts + 30 + (u[1] * 270).astype(np.int64),
            pol.K_CUSTOMER,
            pol.P_CUSTOMER,
            prop=1.0,
        )
        c["in_session"][:] = True
        c["changed"][:] = reenter[retry_same | reenter]
        c["fixed_cvv"][:] = reenter[retry_same | reenter] | c["fixed_cvv"]
        if not new_card.any():
            return [c]
        nc = self._pending(
            base,
            new_card,
            d.ts + 60 + (u[1] * 300).astype(np.int64),
            pol.K_NEW_CARD,
            pol.P_CUSTOMER,
            prop=1.0,
        )
        nc["card"] = self._other_cards(nc["card"].astype(np.int64))
        nc["in_session"][:] = True
        nc["u_prev"][:] = np.nan
        nc["three_ds"][:] = False
        return [c, nc]

    def _merchant_retries(
        self, d: _Declines, base: dict[str, npt.NDArray[np.generic]], *, mit: B
    ) -> list[dict[str, npt.NDArray[np.generic]]]:
        """Merchant-initiated declines under the merchant's retry policy: the legacy policy
        retries every day whatever the code said; compliant ones follow the codes."""
        first_ts = self.p.ts_s[d.pay]
        # Legacy: every day, up to LEGACY_MAX retries, whatever the code said.
        leg = mit & d.legacy & (d.att <= pol.LEGACY_MAX)
        legacy = self._pending(
            base,
            leg,
            d.ts + pol.LEGACY_EVERY_S + (d.u[1] * 600).astype(np.int64),
            pol.K_RETRY,
            pol.P_LEGACY,
            prop=1.0,
        )
        comp = mit & ~d.legacy & ~d.india
        # Cancellation or never-retry advice: the schedule stops (and recurring is cancelled).
        stop_codes = np.isin(d.code, [CODES.index(x) for x in ("R0", "R1")]) | (
            d.mac_act == "never"
        )
        for i in np.flatnonzero(comp & stop_codes):
            self.cancelled.add((self.card_keys[d.card[i]], int(d.merchant[i])))
        comp &= ~stop_codes & ~d.after_sca
        # Hard declines: never on this credential (H1); the next charge uses whatever credential
        # the updater has by then. Data declines (expiry, MAC 01/04): once the updater refreshed.
        comp &= d.fam != Family.HARD.value
        needs_change = comp & ((d.fam == Family.DATA.value) | (d.mac_act == "update"))
        changed = self._after_credential_change(d, base, needs_change, first_ts=first_ts)
        soft = comp & ~needs_change & (d.att <= pol.RANDOM_MAX)
        return [
            legacy,
            changed,
            self._fixed_retries(d, base, soft & (d.policy == 0), first_ts=first_ts),
            *self._random_retries(d, base, soft & (d.policy == 1), first_ts=first_ts),
        ]

    def _after_credential_change(
        self, d: _Declines, base: dict[str, npt.NDArray[np.generic]], mask: B, *, first_ts: I64
    ) -> dict[str, npt.NDArray[np.generic]]:
        """Retries of data declines once the account updater has the renewed credential."""
        when = np.where(mask, self.w.cards.renewal_visible_s[d.card], -1)
        when = np.where(when >= 2**61, -1, when)
        ok_change = mask & (when >= 0) & (when + 600 - first_ts <= pol.WINDOW_S) & (d.att <= 7)
        ch = self._pending(
            base,
            ok_change,
            np.maximum(when, d.ts) + 600,
            pol.K_RETRY,
            np.where(d.policy == 0, pol.P_FIXED, pol.P_RANDOM)[ok_change],
            prop=1.0,
        )
        ch["changed"][:] = True
        return ch

    def _fixed_retries(
        self, d: _Declines, base: dict[str, npt.NDArray[np.generic]], fixed: B, *, first_ts: I64
    ) -> dict[str, npt.NDArray[np.generic]]:
        since_first = d.ts - first_ts
        retries = d.att - 1
        fdelay = pol.fixed_delay(retries, since_first, d.mac_wait)
        # Technical trouble clears in minutes: the fixed schedule tries again after an hour.
        fdelay = np.where((d.fam == Family.TECHNICAL.value) & (retries == 0), 3_600, fdelay)
        fixed = fixed & (fdelay >= 0)
        fixed &= since_first + np.maximum(fdelay, 0) <= pol.WINDOW_S
        return self._pending(
            base, fixed, d.ts + np.maximum(fdelay, 0), pol.K_RETRY, pol.P_FIXED, prop=1.0
        )

    def _random_retries(
        self, d: _Declines, base: dict[str, npt.NDArray[np.generic]], rnd: B, *, first_ts: I64
    ) -> list[dict[str, npt.NDArray[np.generic]]]:
        """Randomised delays from the grid with their propensities; one in five retries moves to
        another eligible route, uniformly."""
        u, fam = d.u, d.fam
        fam_r = [
            "technical"
            if f == Family.TECHNICAL.value
            else "insufficient_funds"
            if f == Family.INSUFFICIENT_FUNDS.value
            else "other"
            for f in fam[rnd].tolist()
        ]
        delays = pol.random_delays(self.rng, fam_r, d.mac_wait[rnd])
        full = np.zeros(d.size, dtype=np.int64)
        full[rnd] = delays.delay_s
        dprop = np.ones(d.size)
        dprop[rnd] = delays.propensity
        rnd = rnd & (d.ts - first_ts + full <= pol.WINDOW_S)
        if not rnd.any():
            return []
        el = self.eligible(d.card, d.merchant, d.ts)
        n_el = el.sum(axis=1)
        switch = (u[4] < 0.2) & (n_el > 1)
        cum = np.cumsum(el & (np.arange(el.shape[1])[None, :] != d.route[:, None]), axis=1)
        k = np.minimum((u[5] * np.maximum(n_el - 1, 1)).astype(np.int64), np.maximum(n_el - 2, 0))
        other = np.argmax(cum > k[:, None], axis=1)
        new_route = np.where(switch, other, d.route)
        rprop = np.where(switch, 0.2 / np.maximum(n_el - 1, 1), np.where(n_el > 1, 0.8, 1.0))
        r = self._pending(
            base, rnd, d.ts + full, pol.K_RETRY, pol.P_RANDOM, route=new_route, prop=1.0
        )
        r["delay_prop"] = dprop[rnd]
        r["route_prop"] = rprop[rnd]
        return [r]

    def _advice(self, mac: int) -> tuple[str, int]:
        if mac == 0:
            return "", 0
        info = self.codes.merchant_advice(MACS[mac])
        if info.action is AdviceAction.NEVER_RETRY:
            return "never", 0
        if info.action is AdviceAction.UPDATE_CREDENTIALS:
            return "update", 0
        if info.retry_after is not None:
            return "after", int(info.retry_after.total_seconds())
        return "", 0

    def _other_cards(self, card: I64) -> I64:
        cards = self.w.cards
        pick = self.rng.integers(0, cards.originals, card.size)
        return np.where(pick == card, (pick + 1) % cards.originals, pick).astype(np.int64)

    def _pending(
        self,
        base: dict[str, npt.NDArray[np.generic]],
        mask: B,
        ts: I64,
        kind: int,
        policy: int | I64,
        *,
        route: I64 | None = None,
        prop: float,
    ) -> dict[str, npt.NDArray[np.generic]]:
        out = {k: np.array(v[mask], copy=True) for k, v in base.items()}
        k = int(mask.sum())
        out["ts_s"] = np.asarray(ts)[mask].astype(np.int64)
        out["kind"] = np.full(k, kind, dtype=np.int64)
        out["policy"] = np.broadcast_to(np.asarray(policy, dtype=np.int64), (k,)).copy()
        if route is not None:
            out["route"] = np.asarray(route)[mask].astype(np.int64)
        out["delay_prop"] = np.full(k, prop) if kind != pol.K_RETRY else out["delay_prop"]
        out["route_prop"] = np.full(k, prop) if kind == pol.K_CASCADE else out["route_prop"]
        return out

    # -- the guardrail, in time order ---------------------------------------------------------
    def _validate(self, parts: list[dict[str, npt.NDArray[np.generic]]]) -> None:
        """File a chunk's attempts in the ledger in time order, asking the guardrail about every
        reattempt first: a compliant policy's denied reattempt is dropped with its descendants,
        a legacy one is sent and flagged."""
        rows = {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}
        order = np.lexsort((rows["gid"], rows["ts_s"]))
        rows = {k: v[order] for k, v in rows.items()}
        n = order.size
        keep = np.ones(n, dtype=np.bool_)
        allowed = np.ones(n, dtype=np.bool_)
        rule = np.full(n, "", dtype=object)
        cols = self._ledger_columns(rows)
        for i in range(n):
            if cols["parent"][i] in self.dropped:
                keep[i] = False
                self.dropped.add(cols["gid"][i])
                continue
            at = self.start + dt.timedelta(seconds=cols["ts"][i])
            key = cols["key"][i]
            ckey = self.card_keys[cols["card"][i]]
            mid = self.merchant_ids[cols["merchant"][i]]
            verdict = self._check(cols, i, at=at, key=key, ckey=ckey, mid=mid)
            if verdict is not None and not verdict.allowed:
                if cols["policy"][i] != pol.P_LEGACY:
                    keep[i] = False
                    self._drop(cols, i, verdict.rule or "")
                    continue
                allowed[i] = False
                rule[i] = verdict.rule or ""
            self.ledger.file(key, _ledger_row(cols, i, at=at, ckey=ckey, mid=mid))
        if self.dropped and self.pending["ts_s"].size:
            gone = np.fromiter(self.dropped, np.int64)
            alive = ~np.isin(self.pending["parent"].astype(np.int64), gone)
            self.pending = _take(self.pending, alive)
        kept = {k: v[keep] for k, v in rows.items()}
        kept["guardrail_allowed"] = allowed[keep]
        kept["guardrail_rule"] = rule[keep]
        self.log.add(**kept)
        self._remember_declines(kept)

    def _ledger_columns(self, rows: dict[str, npt.NDArray[np.generic]]) -> dict[str, list[Any]]:
        """The rows' fields the ledger and the guardrail read, as Python lists (the loop over
        them is per row)."""
        p, cards = self.p, self.w.cards
        pay_a = rows["payment"].astype(np.int64)
        card_a = rows["card"].astype(np.int64)
        merchant_a = p.merchant[pay_a]
        return {
            "parent": rows["parent"].astype(np.int64).tolist(),
            "gid": rows["gid"].astype(np.int64).tolist(),
            "pay": pay_a.tolist(),
            "card": card_a.tolist(),
            "merchant": merchant_a.tolist(),
            "key": (self.account[card_a] * self.w.merchants.size + merchant_a).tolist(),
            "ts": rows["ts_s"].astype(np.int64).tolist(),
            "kind": rows["kind"].astype(np.int64).tolist(),
            "policy": rows["policy"].astype(np.int64).tolist(),
            "currency": self.cur_codes[p.currency[pay_a]].tolist(),
            "amount": p.amount_minor[pay_a].tolist(),
            "route": [self.route_ids[x] for x in rows["route"].astype(np.int64).tolist()],
            "changed": rows["changed"].astype(np.bool_).tolist(),
            "session": rows["in_session"].astype(np.bool_).tolist(),
            "mit": (~p.cit[pay_a]).tolist(),
            "code": [CODES[x] for x in rows["code"].astype(np.int64).tolist()],
            "mac": [MACS[x] or None for x in rows["mac"].astype(np.int64).tolist()],
            "approved": rows["approved"].astype(np.bool_).tolist(),
            "network": [BRANDS[x] for x in cards.brand[card_a].tolist()],
            "country": self.country_codes[cards.country[card_a]].tolist(),
            "three_ds": rows["three_ds"].astype(np.bool_).tolist(),
        }

    def _check(
        self, cols: dict[str, list[Any]], i: int, *, at: dt.datetime, key: int, ckey: str, mid: str
    ) -> Verdict | None:
        """The guardrail's verdict on row ``i`` when it is a reattempt, else None."""
        kind = cols["kind"][i]
        if kind not in _KIND_ACTION:
            return None
        self.checks += 1
        return self.ledger.check(
            key,
            ckey,
            mid,
            Request(
                kind=_KIND_ACTION[kind],
                at=at,
                route=cols["route"][i],
                amount_minor=cols["amount"][i],
                currency=cols["currency"][i],
                credential_changed=cols["changed"][i],
                customer_in_session=cols["session"][i],
                is_mit=cols["mit"][i],
                payment_id=_payment_id(cols["pay"][i]),
            ),
        )

    def _drop(self, cols: dict[str, list[Any]], i: int, rule: str) -> None:
        """A compliant policy's reattempt the guardrail denied: never sent, nor what follows it."""
        self.dropped.add(cols["gid"][i])
        self.dropped_compliant += 1
        reason = (pol.POLICIES[cols["policy"][i]], pol.KINDS[cols["kind"][i]], rule)
        self.drop_reasons[reason] = self.drop_reasons.get(reason, 0) + 1

    def _remember_declines(self, kept: dict[str, npt.NDArray[np.generic]]) -> None:
        """Keep the declines the issuer's 24-hour velocity can still see."""
        dec = ~kept["approved"].astype(np.bool_)
        cutoff = int(kept["ts_s"].max()) - DAY_S if kept["ts_s"].size else 0
        self.recent_card = np.concatenate([self.recent_card, kept["card"][dec].astype(np.int64)])
        self.recent_ts = np.concatenate([self.recent_ts, kept["ts_s"][dec].astype(np.int64)])
        young = self.recent_ts >= cutoff - DAY_S
        self.recent_card, self.recent_ts = self.recent_card[young], self.recent_ts[young]


@dataclass(frozen=True, slots=True)
class _Declines:
    """The declined attempts of a batch, one row each, with what the policies decide on."""

    pay: I64
    ts: I64
    card: I64
    merchant: I64
    route: I64
    kind: I64
    att: I64  # attempt number
    code: I64  # index into CODES
    fam: I64  # payments-core Family value of the code
    mac_act: npt.NDArray[np.str_]  # the advice code's action: "", "never", "update" or "after"
    mac_wait: I64  # the advice code's wait, seconds
    cit: B
    testing: B
    policy: I64  # the merchant's retry policy, index into RETRY_POLICIES
    india: B  # India-issued: no automated retry, no cascade (country carve-out)
    after_sca: B  # the payment met an SCA soft decline
    u: F64  # (6, n) uniforms

    @property
    def size(self) -> int:
        return int(self.pay.size)

    @property
    def legacy(self) -> B:
        return np.asarray((self.policy == 2) & ~self.cit)


def _inherited(
    rows: dict[str, npt.NDArray[np.generic]], declined: I64
) -> dict[str, npt.NDArray[np.generic]]:
    """The pending fields a reattempt inherits from its declined parent."""
    n = declined.size
    return {
        "payment": rows["payment"][declined].astype(np.int64),
        "parent": rows["gid"][declined],
        "attempt_no": rows["attempt_no"][declined].astype(np.int64) + 1,
        "card": rows["card"][declined].astype(np.int64),
        "u_prev": rows["u"][declined],
        "ts_prev": rows["ts_s"][declined].astype(np.int64),
        "changed": np.zeros(n, dtype=np.bool_),
        "in_session": np.zeros(n, dtype=np.bool_),
        "three_ds": rows["three_ds"][declined].astype(np.bool_),
        "fixed_cvv": rows["fixed_cvv"][declined].astype(np.bool_),
        "route": rows["route"][declined].astype(np.int64),
        "route_prop": np.ones(n),
        "delay_prop": np.ones(n),
    }


def _decision_columns(d: Decision) -> dict[str, npt.NDArray[np.generic]]:
    return {
        "code": d.code,
        "mac": d.mac,
        "approved": d.approved,
        "family": d.family,
        "p_true": d.p_true,
        "u": d.u,
        "network_token": d.network_token,
        "is_local": d.is_local,
        "acquirer_country": np.array(d.acquirer_country, dtype=object),
        "latency_ms": d.latency_ms,
        "balance_usd": d.balance_usd,
        "next_funding_s": d.next_funding_s,
        "cvv_result": np.array(d.cvv_result, dtype=object),
        "avs_result": np.array(d.avs_result, dtype=object),
    }


def _ledger_row(
    cols: dict[str, list[Any]], i: int, *, at: dt.datetime, ckey: str, mid: str
) -> tuple[object, ...]:
    """Row ``i`` as the ledger files it: guardrail.Attempt's fields in declaration order."""
    return (
        at,
        ckey,
        mid,
        cols["amount"][i],
        cols["currency"][i],
        cols["network"][i],
        cols["code"][i],
        cols["mac"][i],
        cols["approved"][i],
        cols["route"][i],
        False,
        cols["mit"][i],
        cols["country"][i],
        cols["changed"][i],
        cols["three_ds"][i],
        _payment_id(cols["pay"][i]),
    )


def _payment_id(payment: int) -> str:
    return f"PAY{payment:08d}"


def _take(d: dict[str, npt.NDArray[np.generic]], mask: B) -> dict[str, npt.NDArray[np.generic]]:
    return {k: v[mask] for k, v in d.items()}


def _concat(
    a: dict[str, npt.NDArray[np.generic]], b: dict[str, npt.NDArray[np.generic]]
) -> dict[str, npt.NDArray[np.generic]]:
    out = {}
    for k in _PENDING:
        x, y = a[k], b[k]
        if x.size == 0:
            out[k] = np.array(y, copy=True)
        elif y.size == 0:
            out[k] = x
        else:
            out[k] = np.concatenate([x, y.astype(x.dtype, copy=False)])
    return out


def _concat_all(
    parts: list[dict[str, npt.NDArray[np.generic]]],
) -> dict[str, npt.NDArray[np.generic]]:
    parts = [q for q in parts if q["ts_s"].size]
    if not parts:
        return {k: np.zeros(0) for k in _PENDING}
    return {k: np.concatenate([q[k] for q in parts]) for k in _PENDING}


def simulate(world: World, scenarios: Scenarios, payments: Payments, seed: int) -> Simulation:
    return _Sim(world, scenarios, payments, seed).run()


__all__ = ["Simulation", "simulate"]
