"""Cards: BIN, keyed hash of a synthetic PAN, PAR, expiry and renewal, status changes with
reissue, token provisioning, and the funding process behind the available balance
(docs/generator.md, "Entities").

A full PAN exists only inside ``_pan_hashes`` for the time it takes to hash it: the output
carries the BIN and a blake2b hash keyed with a per-dataset secret that is never written, so
the hash cannot be reversed by enumerating the BIN's account range.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from forestgate.training.generator import countries
from forestgate.training.generator.horizon import DAY_S, Horizon
from forestgate.training.generator.issuers import Bins, Issuers

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

NEVER = np.int64(2**62)

STATUS: tuple[str, ...] = ("active", "closed", "lost", "stolen")
# Monthly hazards (docs/generator.md, "Entities"): closed 0.5 %, lost or stolen 0.3 %.
_CLOSED_PER_MONTH = 0.005
_LOST_STOLEN_PER_MONTH = 0.003
# A reissued card reaches the cardholder about five days after the loss.
_REISSUE_S = 5 * DAY_S


@dataclass(frozen=True, slots=True)
class Cards:
    bin: I64
    issuer: I64
    country: I64
    brand: I64
    funding: I64
    pan_hash: list[str]
    par: list[str]
    expiry_month: I64  # year * 12 + month - 1 of the printed expiry
    renewed_expiry_month: I64  # after renewal (same PAN)
    renewal_visible_s: I64  # when stored credentials carry the renewed expiry
    token: B  # provisioned with a network token
    typical_usd: F64
    activity: F64
    cycle_key: I64
    income_usd: F64
    buffer_usd: F64
    drain_days: F64
    stressed: B
    status: I64
    status_s: I64
    replacement: I64  # index of the reissued card, -1 if none
    replacement_visible_s: I64  # when stored credentials move to the replacement
    replaces: I64  # index of the card this one replaced, -1 if original
    issued_s: I64
    originals: int  # rows [0, originals) are cardholders' first cards

    @property
    def size(self) -> int:
        return int(self.bin.size)

    def ids(self) -> list[str]:
        return [f"CRD{i:07d}" for i in range(self.size)]


def sample_cards(
    rng: np.random.Generator,
    *,
    count: int,
    issuers: Issuers,
    bins: Bins,
    horizon: Horizon,
    pan_key: bytes,
) -> Cards:
    # Every step draws from rng in turn: reordering them changes every later draw.
    country, issuer, bin_idx = _issuers_and_bins(rng, count=count, issuers=issuers, bins=bins)
    funding = bins.funding[bin_idx]
    start_month = horizon.start.year * 12 + horizon.start.month - 1
    expiry = start_month + rng.integers(1, 37, count)
    token = rng.random(count) < 0.55
    status, status_s = _status_changes(rng, count=count, horizon=horizon)
    reissue = _Reissue.of(status, status_s)
    visible, renewal_visible = _updater_visibility(
        rng, token=token, status=status, status_s=status_s, expiry=expiry, horizon=horizon
    )
    old, n_new = reissue.old, reissue.old.size

    def grow(a: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
        return np.concatenate([a, a[old]])

    all_bin = grow(bin_idx)
    all_token = np.concatenate([token, token[old] & (rng.random(n_new) < 0.8)])
    new_expiry = np.concatenate([expiry, start_month + 36 + rng.integers(0, 12, n_new)])
    spend = _Spending.sample(rng, country=country, funding=funding)
    if not count + n_new:
        return _empty()
    return Cards(
        bin=all_bin.astype(np.int64),
        issuer=grow(issuer).astype(np.int64),
        country=grow(country).astype(np.int64),
        brand=bins.brand[all_bin],
        funding=bins.funding[all_bin],
        pan_hash=_pan_hashes(rng, [bins.bin8[b] for b in all_bin.tolist()], pan_key),
        par=_pars(reissue.accounts(status), bins.brand[all_bin], pan_key),
        expiry_month=new_expiry.astype(np.int64),
        renewed_expiry_month=new_expiry.astype(np.int64) + 36,
        renewal_visible_s=np.concatenate([renewal_visible, np.full(n_new, NEVER)]).astype(np.int64),
        token=all_token.astype(np.bool_),
        typical_usd=grow(spend.typical).astype(np.float64),
        activity=np.concatenate([spend.activity, np.zeros(n_new)]),
        cycle_key=grow(spend.cycle_key).astype(np.int64),
        income_usd=grow(spend.income).astype(np.float64),
        buffer_usd=grow(spend.buffer).astype(np.float64),
        drain_days=grow(spend.drain).astype(np.float64),
        stressed=grow(spend.stressed).astype(np.bool_),
        status=np.concatenate([status, np.zeros(n_new, dtype=np.int64)]),
        status_s=np.concatenate([status_s, np.full(n_new, NEVER, dtype=np.int64)]),
        replacement=reissue.replacement,
        replacement_visible_s=np.concatenate([visible, np.full(n_new, NEVER)]).astype(np.int64),
        replaces=reissue.replaces,
        issued_s=reissue.issued_s,
        originals=count,
    )


def _issuers_and_bins(
    rng: np.random.Generator, *, count: int, issuers: Issuers, bins: Bins
) -> tuple[I64, I64, I64]:
    """Each card's country (by card share), issuer (by volume weight within the country) and a
    BIN of that issuer, uniformly."""
    share = countries.column("card_share")
    country = rng.choice(share.size, size=count, p=share / share.sum()).astype(np.int64)
    issuer = np.empty(count, dtype=np.int64)
    for ci in range(share.size):
        here = np.flatnonzero(country == ci)
        pool = np.flatnonzero(issuers.country == ci)
        w = issuers.weight[pool]
        issuer[here] = pool[rng.choice(pool.size, size=here.size, p=w / w.sum())]
    order = np.argsort(bins.issuer, kind="stable")
    first = np.searchsorted(bins.issuer[order], issuer, side="left")
    n_bins = np.searchsorted(bins.issuer[order], issuer, side="right") - first
    bin_idx = order[first + (rng.random(count) * n_bins).astype(np.int64)]
    return country, issuer, bin_idx


def _status_changes(rng: np.random.Generator, *, count: int, horizon: Horizon) -> tuple[I64, I64]:
    """Status (index into STATUS) each card reaches within the horizon, and when (NEVER: none)."""
    months = horizon.days / 30.0
    status = np.zeros(count, dtype=np.int64)
    status_s = np.full(count, NEVER, dtype=np.int64)
    closed = rng.random(count) < 1 - (1 - _CLOSED_PER_MONTH) ** months
    lost = ~closed & (rng.random(count) < 1 - (1 - _LOST_STOLEN_PER_MONTH) ** months)
    changed = closed | lost
    status[closed] = 1
    status[lost] = np.where(rng.random(int(lost.sum())) < 0.6, 2, 3)
    status_s[changed] = rng.integers(0, horizon.end_s, int(changed.sum()))
    return status, status_s


@dataclass(frozen=True, slots=True)
class _Reissue:
    """Every changed card is reissued: the new cards are appended after the originals."""

    old: I64  # the original cards that were reissued, in order
    replacement: I64  # (originals + reissued,) index of the reissued card, -1 if none
    replaces: I64  # (originals + reissued,) index of the card replaced, -1 if original
    issued_s: I64  # (originals + reissued,)

    @staticmethod
    def of(status: I64, status_s: I64) -> _Reissue:
        count = status.size
        old = np.flatnonzero(status > 0)
        idx_new = count + np.arange(old.size, dtype=np.int64)
        replacement = np.full(count + old.size, -1, dtype=np.int64)
        replacement[old] = idx_new
        replaces = np.concatenate([np.full(count, -1, dtype=np.int64), old])
        issued_s = np.concatenate(
            [np.full(count, -(2**40), dtype=np.int64), status_s[old] + _REISSUE_S]
        )
        return _Reissue(old, replacement, replaces, issued_s)

    def accounts(self, status: I64) -> I64:
        """The account behind each card: the same after loss or theft (same PAR), a new one after
        a closure (the cardholder's new account elsewhere)."""
        count = status.size
        idx_new = count + np.arange(self.old.size, dtype=np.int64)
        reissued = np.where(status[self.old] == 1, idx_new, self.old)
        return np.concatenate([np.arange(count), reissued]).astype(np.int64)


def _updater_visibility(
    rng: np.random.Generator,
    *,
    token: B,
    status: I64,
    status_s: I64,
    expiry: I64,
    horizon: Horizon,
) -> tuple[I64, I64]:
    """When stored credentials move to the reissued card, and when they carry the renewed expiry
    (NEVER: not within the horizon). Account updaters see a reissue within a week with
    probability 0.6, or 0.8 when tokenised."""
    count = status.size
    p_seen = np.where(token, 0.8, 0.6)
    seen = rng.random(count) < p_seen
    visible = np.where(
        seen & (status > 0) & (status != 1),
        status_s + _REISSUE_S + rng.integers(0, 7 * DAY_S, count),
        NEVER,
    )
    renew_seen = rng.random(count) < p_seen
    month_end_s = horizon.expiry_end_s(expiry)
    renewal_visible = np.where(
        renew_seen, month_end_s - 20 * DAY_S + rng.integers(0, 27 * DAY_S, count), NEVER
    )
    return visible, renewal_visible


@dataclass(frozen=True, slots=True)
class _Spending:
    """A cardholder's spending and the funding process behind the available balance."""

    typical: F64
    activity: F64
    cycle_key: I64
    income: F64
    buffer: F64
    drain: F64
    stressed: B

    @staticmethod
    def sample(rng: np.random.Generator, *, country: I64, funding: I64) -> _Spending:
        count = country.size
        typical = rng.lognormal(np.log(45.0), 0.8, count)
        activity = rng.lognormal(0.0, 1.0, count)
        cycle_days, cycle_key = _pay_cycles(rng, country)
        income = typical * rng.lognormal(np.log(25.0), 0.5, count)
        stressed_income = typical * rng.lognormal(np.log(4.0), 0.9, count)
        p_stressed = np.array([0.055, 0.12, 0.22])[funding]
        stressed = rng.random(count) < p_stressed
        income = np.where(stressed, stressed_income, income)
        buffer = np.where(
            stressed,
            typical * rng.lognormal(np.log(0.25), 0.8, count),
            typical * rng.lognormal(np.log(30.0), 0.7, count),
        )
        drain = np.where(
            stressed,
            cycle_days * rng.uniform(0.45, 0.95, count),
            cycle_days * rng.uniform(1.3, 3.0, count),
        )
        return _Spending(typical, activity, cycle_key, income, buffer, drain, stressed)


def _empty() -> Cards:  # pragma: no cover - presets always have cards
    raise ValueError("a world needs cards")


_CYCLE_DAYS = {
    "weekly_fri": 7.0,
    "biweekly_fri": 14.0,
    "semimonthly_1_15": 15.0,
    "semimonthly_15_last": 15.0,
    "monthly_last_workday": 30.0,
    "monthly_25": 30.0,
    "monthly_1": 30.0,
}


def _pay_cycles(rng: np.random.Generator, country: I64) -> tuple[F64, I64]:
    from forestgate.training.generator.countries import COUNTRIES, PAY_CYCLES

    n = country.size
    key = np.zeros(n, dtype=np.int64)
    days = np.zeros(n, dtype=np.float64)
    u = rng.random(n)
    phase = rng.integers(0, 2, n)
    for ci, c in enumerate(COUNTRIES):
        here = country == ci
        names = [name for name, _ in c.pay_cycles]
        cum = np.cumsum([w for _, w in c.pay_cycles])
        pick = np.minimum(np.searchsorted(cum / cum[-1], u[here], side="right"), len(names) - 1)
        cycle_idx = np.array([PAY_CYCLES.index(nm) for nm in names], dtype=np.int64)[pick]
        biweekly = cycle_idx == PAY_CYCLES.index("biweekly_fri")
        key[here] = cycle_idx * 2 + np.where(biweekly, phase[here], 0)
        days[here] = np.array([_CYCLE_DAYS[nm] for nm in names])[pick]
    return days, key


def luhn_check_digit(digits: I64) -> I64:
    """Check digit completing each row of ``digits`` (payload without the check digit)."""
    rev = digits[:, ::-1]
    doubled = rev.copy()
    doubled[:, 0::2] *= 2
    doubled[doubled > 9] -= 9
    return np.asarray((10 - doubled.sum(axis=1) % 10) % 10, dtype=np.int64)


def luhn_valid(text: str) -> bool:
    digits = [int(c) for c in text]
    total = 0
    for i, d in enumerate(reversed(digits)):
        doubled = d * 2 if i % 2 == 1 else d
        total += doubled - 9 if doubled > 9 else doubled
    return total % 10 == 0


def _pan_hashes(rng: np.random.Generator, bin8: list[str], key: bytes) -> list[str]:
    n = len(bin8)
    body = rng.integers(0, 10, size=(n, 7))
    prefix = np.array([[int(c) for c in b] for b in bin8], dtype=np.int64).reshape(n, 8)
    payload = np.concatenate([prefix, body], axis=1)
    check = luhn_check_digit(payload)
    out: list[str] = []
    for row, c in zip(payload.tolist(), check.tolist(), strict=True):
        pan = "".join(map(str, row)) + str(c)
        out.append(_b32(hashlib.blake2b(pan.encode(), key=key, digest_size=16).digest()))
    return out


def _pars(account: I64, brand: I64, key: bytes) -> list[str]:
    """Payment account references: 29 characters, a brand prefix and a keyed hash of the account."""
    out: list[str] = []
    for a, b in zip(account.tolist(), brand.tolist(), strict=True):
        digest = _b32(hashlib.blake2b(f"par:{a}".encode(), key=key, digest_size=16).digest())
        out.append(("V001" if b == 0 else "M001") + digest[:25].upper())
    return out


def _b32(digest: bytes) -> str:
    # Base32, not hex: a hex digest holds a run of 13+ decimal digits often enough to look like a
    # PAN to a scanner; base32's digits are 2-7 only and such runs are vanishingly rare.
    return base64.b32encode(digest).decode().rstrip("=").lower()


def card_currency_index(cards: Cards) -> I64:
    return countries.currency_index()[cards.country]
