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
    cols = [
        "payment_id", "attempt_no", "retry_kind", "ts_utc", "approved", "response_code",
        "issuer_country", "merchant_country", "is_local_acquiring", "network_token", "pan_hash",
        "cit_mit", "channel", "three_ds", "sca_exemption", "acquirer_country", "merchant_id",
        "retry_policy_id", "guardrail_violation", "decided_by", "scenario_id", "brand",
        "visa_category", "merchant_advice_code",
    ]  # fmt: skip
    a = pq.read_table(out / "attempts.parquet", columns=cols)
    t = pq.read_table(out / "truth.parquet", columns=["is_fraud"])
    n = a.num_rows
    first = _col(a, "attempt_no") == 1
    scenario = np.asarray(a.column("scenario_id").fill_null("").to_numpy(zero_copy_only=False))
    testing = scenario == "card_testing"
    approved = _col(a, "approved").astype(np.bool_)
    code = _col(a, "response_code").astype(str)
    issuer = _col(a, "issuer_country").astype(str)
    merchant_c = _col(a, "merchant_country").astype(str)
    local = _col(a, "is_local_acquiring").astype(np.bool_)
    token = _col(a, "network_token").astype(np.bool_)
    cit = _col(a, "cit_mit").astype(str) == "CIT"
    channel = _col(a, "channel").astype(str)
    three_ds = _col(a, "three_ds").astype(np.bool_)
    exemption = _col(a, "sca_exemption").astype(str)
    acquirer = _col(a, "acquirer_country").astype(str)
    fraud = _col(t, "is_fraud").astype(np.bool_)
    base = first & ~testing
    v: dict[str, float] = {"attempts": float(n), "payments": float(first.sum())}

    def rate(mask: B) -> float:
        return float(approved[mask].mean()) if mask.any() else float("nan")

    v["first_attempt_approval"] = rate(base)
    # Domestic: card, merchant and acquirer in one country. A domestic payment acquired abroad
    # (no local route for that market) is reported on its own.
    domestic = issuer == merchant_c
    v["approval_domestic"] = rate(base & domestic & local)
    v["approval_domestic_acquired_abroad"] = rate(base & domestic & ~local)
    v["approval_xb_nonlocal"] = rate(base & ~domestic & ~local)
    v["approval_xb_local"] = rate(base & ~domestic & local)
    v["share_xb_cit"] = float((~domestic & base & cit).sum() / max(1, (base & cit).sum()))

    # Token uplift on the same cards: cards seen with and without a token.
    pan = _col(a, "pan_hash").astype(str)
    sel = base
    uniq, inv = np.unique(pan[sel], return_inverse=True)
    has_tok = np.bincount(inv, weights=token[sel], minlength=uniq.size) > 0
    has_pan = np.bincount(inv, weights=~token[sel], minlength=uniq.size) > 0
    both = (has_tok & has_pan)[inv]
    tok_sel = np.zeros(n, dtype=np.bool_)
    tok_sel[np.flatnonzero(sel)] = both
    v["token_uplift_pp"] = 100 * (rate(tok_sel & token) - rate(tok_sel & ~token))
    v["token_pairs_cards"] = float((has_tok & has_pan).sum())

    psd2 = np.array(sorted(countries.PSD2))
    in_scope = (
        np.isin(issuer, psd2) & np.isin(acquirer, psd2) & cit & (channel != "moto") & ~testing
    )
    unauth = in_scope & ~three_ds & (exemption == "none") & first
    v["approval_eea_unauthenticated"] = rate(unauth)
    v["eea_unauthenticated_n"] = float(unauth.sum())

    # US issuers, CIT, 3DS vs not, matched on merchant and true fraud (3DS traffic is riskier).
    us = base & cit & (issuer == "US") & (channel != "moto")
    merch = _col(a, "merchant_id").astype(str)
    diffs: list[tuple[float, float]] = []
    for key in np.unique(merch[us & three_ds]):
        for f in (False, True):
            m = us & (merch == key) & (fraud == f)
            w3, w0 = m & three_ds, m & ~three_ds
            if w3.sum() >= 1 and w0.sum() >= 5:
                diffs.append((float(w3.sum()), rate(w3) - rate(w0)))
    if diffs:
        w = np.array([d[0] for d in diffs])
        v["us_3ds_effect_pp"] = 100 * float(np.average([d[1] for d in diffs], weights=w))
        v["us_3ds_n"] = float(w.sum())
    else:
        v["us_3ds_effect_pp"] = float("nan")
        v["us_3ds_n"] = 0.0

    brand = _col(a, "brand").astype(str)
    dec = base & ~approved
    n_dec = max(1, int(dec.sum()))

    def share(mask: B) -> float:
        return float((dec & mask).sum() / n_dec)

    v["decline_share_05"] = share(code == "05")
    v["decline_share_51"] = share(code == "51")
    v["decline_share_data"] = share(np.isin(code, DATA))
    v["decline_share_technical"] = share(np.isin(code, TECHNICAL))
    v["decline_share_hard"] = share(np.isin(code, HARD))
    v["decline_share_sca"] = share((code == "1A") | ((code == "65") & (brand == "mastercard")))
    v["decline_share_fraud"] = share(np.isin(code, FRAUD))
    v["decline_share_limit"] = share((code == "61") | ((code == "65") & (brand == "visa")))
    v["decline_share_sca_outside_eea"] = share(
        ((code == "1A") | ((code == "65") & (brand == "mastercard"))) & ~np.isin(issuer, psd2)
    )

    ok = base & approved
    v["fraud_bp_approved"] = 1e4 * float(fraud[ok].mean())
    region = {c.code: c.region for c in countries.COUNTRIES}
    r_iss = np.array([region[x] for x in issuer])
    r_mer = np.array([region[x] for x in merchant_c])
    xb_non_sca = ok & (r_iss != r_mer) & ~three_ds
    dom_ok = ok & domestic
    v["fraud_bp_xb_non_sca"] = 1e4 * float(fraud[xb_non_sca].mean())
    v["fraud_bp_domestic"] = 1e4 * float(fraud[dom_ok].mean())
    v["fraud_xb_non_sca_ratio"] = v["fraud_bp_xb_non_sca"] / max(v["fraud_bp_domestic"], 1e-9)

    # Recovery within 14 days of MIT first-attempt declines, compliant retry policies.
    pay = _col(a, "payment_id").astype(str)
    # Parquet keeps timestamps in milliseconds; back to seconds.
    ts = a.column("ts_utc").cast(pa.timestamp("s", tz="UTC")).cast(pa.int64()).to_numpy()
    policy = _col(a, "retry_policy_id").astype(str)
    cat = np.asarray(a.column("visa_category").fill_null(0).to_numpy(zero_copy_only=False))
    mac = np.asarray(a.column("merchant_advice_code").fill_null("").to_numpy(zero_copy_only=False))
    order = np.lexsort((_col(a, "attempt_no"), pay))
    p_sorted = pay[order]
    starts = np.flatnonzero(np.r_[True, p_sorted[1:] != p_sorted[:-1]])
    head = order[starts]
    group = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, n]))
    t0 = ts[head][group]
    win_ok = approved[order] & (ts[order] - t0 <= 14 * 86_400)
    recovered = np.bincount(group, weights=win_ok, minlength=starts.size) > 0
    # India-issued cards get no automated retry (H12 carve-out): not a policy's to recover.
    h_dec = ~approved[head] & ~cit[head] & ~testing[head] & (issuer[head] != "IN")
    cat1 = (cat[head] == 1) | (mac[head] == "03") | (mac[head] == "21")
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

    decided = np.asarray(a.column("decided_by").fill_null("").to_numpy(zero_copy_only=False))
    violation = _col(a, "guardrail_violation").astype(np.bool_)
    v["violations_compliant"] = float((violation & (decided != "legacy")).sum())
    v["violations_legacy"] = float((violation & (decided == "legacy")).sum())
    v["retries_legacy"] = float((decided == "legacy").sum())
    retry = pc.is_valid(a.column("retry_kind")).to_numpy(zero_copy_only=False)
    v["retry_share"] = float(np.asarray(retry).mean())
    v["final_approval"] = float(
        np.bincount(group, weights=approved[order], minlength=starts.size).astype(bool).mean()
    )
    return Statistics(v)
