"""The realism statistics of docs/generator.md, "Realism targets", computed from a generated data
set's Parquet files: what the generator's tests check and what bench/results/generate.md
records."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from forestgate.training.generator import countries

B = npt.NDArray[np.bool_]

TECHNICAL = ("91", "96", "30", "92")
DATA = ("54", "14", "N7")
HARD = ("04", "07", "12", "15", "41", "43", "46", "57", "R0", "R1", "R3")
FRAUD = ("59", "63")

# Target ranges (inclusive) of docs/generator.md, "Realism targets"; None: no bound on that side.
TARGETS: dict[str, tuple[float | None, float | None]] = {
    "first_attempt_approval": (0.85, 0.89),
    "approval_domestic": (0.89, 0.95),
    "approval_xb_nonlocal": (0.71, 0.81),
    "approval_xb_local": (0.80, 0.88),
    "token_uplift_pp": (2.0, 4.0),
    "approval_eea_unauthenticated": (None, 0.30),
    "us_3ds_effect_pp": (-5.0, -1.0),
    "decline_share_05": (0.30, 0.40),
    "decline_share_51": (0.25, 0.35),
    "decline_share_data": (0.08, 0.12),
    "decline_share_technical": (0.03, 0.06),
    "decline_share_hard": (0.03, 0.06),
    "decline_share_sca": (0.05, 0.10),
    "decline_share_fraud": (0.03, 0.05),
    "decline_share_limit": (0.02, 0.03),
    "fraud_bp_approved": (8.0, 15.0),
    "fraud_xb_non_sca_ratio": (5.0, 10.0),
    "recovery_nsf": (0.45, 0.60),
    "recovery_05": (0.25, 0.40),
    "recovery_technical": (0.90, None),
    "recovery_cat1": (0.0, 0.0),
    "violations_compliant": (0.0, 0.0),
}


@dataclass(frozen=True, slots=True)
class Statistics:
    values: dict[str, float]

    def misses(self) -> dict[str, tuple[float, tuple[float | None, float | None]]]:
        """The statistics outside their target ranges."""
        out = {}
        for name, (lo, hi) in TARGETS.items():
            v = self.values[name]
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                out[name] = (v, (lo, hi))
        return out


def _col(table: object, name: str) -> npt.NDArray[np.generic]:
    return np.asarray(table.column(name).to_numpy(zero_copy_only=False))  # type: ignore[attr-defined]


def statistics(out: Path) -> Statistics:
    x = _Columns.read(out)
    v: dict[str, float] = {"attempts": float(x.n), "payments": float(x.first.sum())}
    v |= _approval_rates(x)
    v |= _token_uplift(x)
    unauth = x.in_eea_scope & ~x.three_ds & (x.exemption == "none") & x.first
    v["approval_eea_unauthenticated"] = x.rate(unauth)
    v["eea_unauthenticated_n"] = float(unauth.sum())
    v |= _us_3ds_effect(x)
    v |= _decline_shares(x)
    v |= _fraud_rates(x)
    chains = _Chains.of(x)
    v |= _recovery(x, chains)
    decided = _filled(x.a, "decided_by", "")
    violation = _col(x.a, "guardrail_violation").astype(np.bool_)
    v["violations_compliant"] = float((violation & (decided != "legacy")).sum())
    v["violations_legacy"] = float((violation & (decided == "legacy")).sum())
    v["retries_legacy"] = float((decided == "legacy").sum())
    retry = pc.is_valid(x.a.column("retry_kind")).to_numpy(zero_copy_only=False)
    v["retry_share"] = float(np.asarray(retry).mean())
    v["final_approval"] = float(
        np.bincount(chains.group, weights=x.approved[chains.order], minlength=chains.starts.size)
        .astype(bool)
        .mean()
    )
    return Statistics(v)


_COLUMNS = (
    "payment_id", "attempt_no", "retry_kind", "ts_utc", "approved", "response_code",
    "issuer_country", "merchant_country", "is_local_acquiring", "network_token", "pan_hash",
    "cit_mit", "channel", "three_ds", "sca_exemption", "acquirer_country", "merchant_id",
    "retry_policy_id", "guardrail_violation", "decided_by", "scenario_id", "brand",
    "visa_category", "merchant_advice_code",
)  # fmt: skip


def _filled(table: pa.Table, name: str, fill: object) -> npt.NDArray[np.generic]:
    return np.asarray(table.column(name).fill_null(fill).to_numpy(zero_copy_only=False))


@dataclass(frozen=True, slots=True)
class _Columns:
    """The attempts columns the statistics read, with true fraud from the truth table."""

    a: pa.Table
    first: B  # first attempt of its payment
    testing: B  # card-testing scenario
    approved: B
    code: npt.NDArray[np.str_]
    issuer: npt.NDArray[np.str_]
    merchant_c: npt.NDArray[np.str_]
    local: B
    token: B
    cit: B
    channel: npt.NDArray[np.str_]
    three_ds: B
    exemption: npt.NDArray[np.str_]
    acquirer: npt.NDArray[np.str_]
    fraud: B

    @property
    def n(self) -> int:
        return int(self.a.num_rows)

    @property
    def base(self) -> B:
        """First attempts outside the card-testing attack."""
        return self.first & ~self.testing

    @property
    def domestic(self) -> B:
        return np.asarray(self.issuer == self.merchant_c)

    @property
    def in_eea_scope(self) -> B:
        psd2 = np.array(sorted(countries.PSD2))
        return np.asarray(
            np.isin(self.issuer, psd2)
            & np.isin(self.acquirer, psd2)
            & self.cit
            & (self.channel != "moto")
            & ~self.testing
        )

    def rate(self, mask: B) -> float:
        return float(self.approved[mask].mean()) if mask.any() else float("nan")

    @staticmethod
    def read(out: Path) -> _Columns:
        a = pq.read_table(out / "attempts.parquet", columns=list(_COLUMNS))
        t = pq.read_table(out / "truth.parquet", columns=["is_fraud"])
        return _Columns(
            a=a,
            first=_col(a, "attempt_no") == 1,
            testing=_filled(a, "scenario_id", "") == "card_testing",
            approved=_col(a, "approved").astype(np.bool_),
            code=_col(a, "response_code").astype(str),
            issuer=_col(a, "issuer_country").astype(str),
            merchant_c=_col(a, "merchant_country").astype(str),
            local=_col(a, "is_local_acquiring").astype(np.bool_),
            token=_col(a, "network_token").astype(np.bool_),
            cit=_col(a, "cit_mit").astype(str) == "CIT",
            channel=_col(a, "channel").astype(str),
            three_ds=_col(a, "three_ds").astype(np.bool_),
            exemption=_col(a, "sca_exemption").astype(str),
            acquirer=_col(a, "acquirer_country").astype(str),
            fraud=_col(t, "is_fraud").astype(np.bool_),
        )


def _approval_rates(x: _Columns) -> dict[str, float]:
    """First-attempt approval overall, domestic and cross-border. Domestic: card, merchant and
    acquirer in one country; a domestic payment acquired abroad (no local route for that market)
    is reported on its own."""
    base, domestic, local, cit = x.base, x.domestic, x.local, x.cit
    return {
        "first_attempt_approval": x.rate(base),
        "approval_domestic": x.rate(base & domestic & local),
        "approval_domestic_acquired_abroad": x.rate(base & domestic & ~local),
        "approval_xb_nonlocal": x.rate(base & ~domestic & ~local),
        "approval_xb_local": x.rate(base & ~domestic & local),
        "share_xb_cit": float((~domestic & base & cit).sum() / max(1, (base & cit).sum())),
    }


def _token_uplift(x: _Columns) -> dict[str, float]:
    """Token uplift on the same cards: cards seen with and without a token."""
    pan = _col(x.a, "pan_hash").astype(str)
    sel, token = x.base, x.token
    uniq, inv = np.unique(pan[sel], return_inverse=True)
    has_tok = np.bincount(inv, weights=token[sel], minlength=uniq.size) > 0
    has_pan = np.bincount(inv, weights=~token[sel], minlength=uniq.size) > 0
    both = (has_tok & has_pan)[inv]
    tok_sel = np.zeros(x.n, dtype=np.bool_)
    tok_sel[np.flatnonzero(sel)] = both
    return {
        "token_uplift_pp": 100 * (x.rate(tok_sel & token) - x.rate(tok_sel & ~token)),
        "token_pairs_cards": float((has_tok & has_pan).sum()),
    }


def _us_3ds_effect(x: _Columns) -> dict[str, float]:
    """US issuers, CIT, 3DS vs not, matched on merchant and true fraud (3DS traffic is
    riskier)."""
    us = x.base & x.cit & (x.issuer == "US") & (x.channel != "moto")
    three_ds, fraud = x.three_ds, x.fraud
    merch = _col(x.a, "merchant_id").astype(str)
    diffs: list[tuple[float, float]] = []
    for key in np.unique(merch[us & three_ds]):
        for f in (False, True):
            m = us & (merch == key) & (fraud == f)
            w3, w0 = m & three_ds, m & ~three_ds
            if w3.sum() >= 1 and w0.sum() >= 5:
                diffs.append((float(w3.sum()), x.rate(w3) - x.rate(w0)))
    if not diffs:
        return {"us_3ds_effect_pp": float("nan"), "us_3ds_n": 0.0}
    w = np.array([d[0] for d in diffs])
    return {
        "us_3ds_effect_pp": 100 * float(np.average([d[1] for d in diffs], weights=w)),
        "us_3ds_n": float(w.sum()),
    }


def _decline_shares(x: _Columns) -> dict[str, float]:
    """Shares of first-attempt declines by code family."""
    code = x.code
    brand = _col(x.a, "brand").astype(str)
    dec = x.base & ~x.approved
    n_dec = max(1, int(dec.sum()))

    def share(mask: B) -> float:
        return float((dec & mask).sum() / n_dec)

    sca = (code == "1A") | ((code == "65") & (brand == "mastercard"))
    return {
        "decline_share_05": share(code == "05"),
        "decline_share_51": share(code == "51"),
        "decline_share_data": share(np.isin(code, DATA)),
        "decline_share_technical": share(np.isin(code, TECHNICAL)),
        "decline_share_hard": share(np.isin(code, HARD)),
        "decline_share_sca": share(sca),
        "decline_share_fraud": share(np.isin(code, FRAUD)),
        "decline_share_limit": share((code == "61") | ((code == "65") & (brand == "visa"))),
        "decline_share_sca_outside_eea": share(
            sca & ~np.isin(x.issuer, np.array(sorted(countries.PSD2)))
        ),
    }


def _fraud_rates(x: _Columns) -> dict[str, float]:
    """Fraud among approved first attempts, in basis points: overall, cross-region without 3DS
    and domestic."""
    ok = x.base & x.approved
    region = {c.code: c.region for c in countries.COUNTRIES}
    r_iss = np.array([region[c] for c in x.issuer])
    r_mer = np.array([region[c] for c in x.merchant_c])
    xb_non_sca = ok & (r_iss != r_mer) & ~x.three_ds
    xb_bp = 1e4 * float(x.fraud[xb_non_sca].mean())
    domestic_bp = 1e4 * float(x.fraud[ok & x.domestic].mean())
    return {
        "fraud_bp_approved": 1e4 * float(x.fraud[ok].mean()),
        "fraud_bp_xb_non_sca": xb_bp,
        "fraud_bp_domestic": domestic_bp,
        "fraud_xb_non_sca_ratio": xb_bp / max(domestic_bp, 1e-9),
    }


@dataclass(frozen=True, slots=True)
class _Chains:
    """Attempts grouped by payment: ``order`` sorts them by payment then attempt number,
    ``starts`` is where each payment begins in that order, ``head`` its first attempt's row and
    ``group`` the payment of each sorted attempt."""

    order: npt.NDArray[np.intp]
    starts: npt.NDArray[np.intp]
    head: npt.NDArray[np.intp]
    group: npt.NDArray[np.intp]

    @staticmethod
    def of(x: _Columns) -> _Chains:
        pay = _col(x.a, "payment_id").astype(str)
        order = np.lexsort((_col(x.a, "attempt_no"), pay))
        p_sorted = pay[order]
        starts = np.flatnonzero(np.r_[True, p_sorted[1:] != p_sorted[:-1]])
        group = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, x.n]))
        return _Chains(order=order, starts=starts, head=order[starts], group=group)


def _recovery(x: _Columns, chains: _Chains) -> dict[str, float]:
    """Recovery within 14 days of MIT first-attempt declines, compliant and legacy retry
    policies, by the first decline's code family."""
    a, approved, code = x.a, x.approved, x.code
    order, head, group = chains.order, chains.head, chains.group
    # Parquet keeps timestamps in milliseconds; back to seconds.
    ts = a.column("ts_utc").cast(pa.timestamp("s", tz="UTC")).cast(pa.int64()).to_numpy()
    policy = _col(a, "retry_policy_id").astype(str)
    cat = _filled(a, "visa_category", 0)
    mac = _filled(a, "merchant_advice_code", "")
    t0 = ts[head][group]
    win_ok = approved[order] & (ts[order] - t0 <= 14 * 86_400)
    recovered = np.bincount(group, weights=win_ok, minlength=chains.starts.size) > 0
    # India-issued cards get no automated retry (H12 carve-out): not a policy's to recover.
    h_dec = ~approved[head] & ~x.cit[head] & ~x.testing[head] & (x.issuer[head] != "IN")
    cat1 = (cat[head] == 1) | (mac[head] == "03") | (mac[head] == "21")
    v: dict[str, float] = {}
    for label, mask in (
        ("nsf", code[head] == "51"),
        ("05", (code[head] == "05") & ~cat1),
        ("technical", np.isin(code[head], TECHNICAL)),
        ("cat1", cat1),
    ):
        for pname, pmask in (
            ("", np.isin(policy[head], ["fixed-v1", "randomized-v1"])),
            ("_legacy", policy[head] == "legacy"),
        ):
            sel = h_dec & mask & pmask
            v[f"recovery_{label}{pname}"] = float(recovered[sel].mean()) if sel.any() else 0.0
            v[f"recovery_{label}{pname}_n"] = float(sel.sum())
    return v
