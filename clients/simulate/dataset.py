"""The held-out payments of a generated data set: each first attempt of the last days (as
`forestgate train` holds them out) with its request columns, its true approval probability on
every eligible route, what the log answered, and the log's later attempts of the same payment.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from forestgate.clients.simulate import SimulateError
from forestgate.training.trainer.features import held_out_from

# Every column the simulator reads; any other column of the files is ignored.
REQUEST_COLUMNS = (
    *("attempt_id", "payment_id", "ts_utc", "amount_minor", "currency", "amount_usd"),
    *("card_currency", "bin8", "brand", "funding", "product_tier", "is_commercial"),
    *("issuer_country", "pan_hash", "par", "months_to_expiry", "mcc", "merchant_id"),
    *("merchant_country", "channel", "cit_mit", "cof_type", "is_initial_cof", "network_token"),
    *("cvv_present", "avs_provided", "three_ds", "eci", "sca_exemption", "challenge"),
    *("ip_country", "customer_in_session", "credential_changed", "pos_entry_mode"),
    "eligible_routes",
)
ANSWER_COLUMNS = ("route_id", "approved", "response_code", "merchant_advice_code")
LOG_COLUMNS = ("parent_attempt_id", "retry_kind", *ANSWER_COLUMNS)
FILES = {
    "attempts.parquet": (*REQUEST_COLUMNS, *LOG_COLUMNS),
    "truth.parquet": ("attempt_id", "p_approve_true_by_route", "reason_family_true"),
    "bins.parquet": ("bin8", "issuer_id"),
    "merchants.parquet": ("merchant_id", "gross_margin"),
    "routes.parquet": ("route_id", "mac_passthrough"),
}


@dataclass(frozen=True, slots=True)
class LoggedAttempt:
    """An attempt of the log: when, where, its true chance on every route and its answer."""

    at: dt.datetime
    route_id: str
    p_by_route: dict[str, float]
    approved: bool
    response_code: str
    merchant_advice_code: str  # "" when none
    true_family: str  # the generator's reason family ("approved", "technical", ...)
    kind: str = ""  # retry_kind: "" for a first attempt, "retry", "cascade", "cit_3ds", ...

    @property
    def step_up(self) -> bool:
        return self.kind == "cit_3ds"


@dataclass(frozen=True, slots=True)
class Payment:
    """One held-out payment: its first attempt's request, that attempt as logged, and the log's
    reattempts of it (oldest first)."""

    index: int  # position in the held-out set: keys the common random numbers
    row: dict[str, Any]  # the first attempt's REQUEST_COLUMNS
    issuer_id: str
    gross_margin: float
    first: LoggedAttempt
    reattempts: tuple[LoggedAttempt, ...]

    @property
    def payment_id(self) -> str:
        return str(self.row["payment_id"])

    @property
    def eligible_routes(self) -> tuple[str, ...]:
        return tuple(self.row["eligible_routes"])

    @property
    def is_cit(self) -> bool:
        return bool(self.row["cit_mit"] == "CIT")


def check_directory(data_dir: Path) -> None:
    """SimulateError naming the file or column when ``data_dir`` is not a generated data set."""
    if not data_dir.is_dir():
        raise SimulateError(f"--data: {data_dir} is not a directory")
    for name, columns in FILES.items():
        path = data_dir / name
        if not path.is_file():
            raise SimulateError(f"--data: {path} is missing; write one with `forestgate generate`")
        try:
            names = pq.read_schema(path).names
        except (OSError, pa.ArrowException) as exc:
            raise SimulateError(f"--data: {path} is not a readable Parquet file ({exc})") from None
        missing = [c for c in columns if c not in names]
        if missing:
            raise SimulateError(f"--data: {path} has no column {missing[0]!r}")


def read(data_dir: Path, name: str) -> pa.Table:
    return pq.read_table(data_dir / name, columns=list(FILES[name]))


def held_out(attempts: pa.Table) -> pa.Table:
    """First attempts with an amount and a card that has not expired (ForestGate refuses an
    expired card as invalid input, so neither arm can be compared on it), from the first
    held-out day on, in time order."""
    ts = attempts.column("ts_utc")
    start = held_out_from(pc.min(ts).as_py().date(), pc.max(ts).as_py().date())
    first = pc.and_(
        pc.and_(
            pc.is_null(attempts.column("parent_attempt_id")),
            pc.greater(attempts.column("amount_minor"), 0),
        ),
        pc.greater_equal(attempts.column("months_to_expiry"), 0),
    )
    mask = pc.and_(first, pc.greater_equal(ts, pa.scalar(start, ts.type)))
    return attempts.filter(mask).sort_by([("ts_utc", "ascending"), ("attempt_id", "ascending")])


@dataclass(frozen=True, slots=True)
class DataSet:
    payments: list[Payment]
    attempts: pa.Table  # the whole log (FILES columns): the truth model learns from it
    issuers: dict[str, str]  # bin8 -> issuer_id
    mac_routes: set[str]  # routes that pass Mastercard advice codes through


def load(data_dir: Path, *, limit: int | None = None) -> DataSet:
    """The held-out payments of ``data_dir`` in time order, at most ``limit`` of them."""
    check_directory(data_dir)
    attempts = read(data_dir, "attempts.parquet")
    firsts = held_out(attempts)
    if limit is not None:
        firsts = firsts.slice(0, limit)
    if firsts.num_rows == 0:
        raise SimulateError(f"--data: {data_dir} has no held-out first attempts")
    ids = set(firsts.column("payment_id").to_pylist())
    later = attempts.filter(
        pc.and_(
            pc.is_in(attempts.column("payment_id"), pa.array(sorted(ids))),
            pc.is_valid(attempts.column("parent_attempt_id")),
        )
    ).sort_by([("ts_utc", "ascending"), ("attempt_id", "ascending")])
    truth = _truth(read(data_dir, "truth.parquet"), firsts, later)
    issuer = _lookup(read(data_dir, "bins.parquet"), "bin8", "issuer_id")
    margin = _lookup(read(data_dir, "merchants.parquet"), "merchant_id", "gross_margin")
    by_payment: dict[str, list[LoggedAttempt]] = {}
    for row in later.to_pylist():
        if row["retry_kind"] == "new_card":
            continue  # another card: its truth is not this payment's
        by_payment.setdefault(row["payment_id"], []).append(_logged(row, truth))
    routes = read(data_dir, "routes.parquet").to_pylist()
    payments = [
        Payment(
            index=i,
            row={c: row[c] for c in REQUEST_COLUMNS},
            issuer_id=str(issuer[row["bin8"]]),
            gross_margin=float(margin[row["merchant_id"]]),
            first=_logged(row, truth),
            reattempts=tuple(by_payment.get(row["payment_id"], ())),
        )
        for i, row in enumerate(firsts.to_pylist())
    ]
    mac_routes = {str(r["route_id"]) for r in routes if r["mac_passthrough"]}
    return DataSet(payments, attempts, issuer, mac_routes)


def _truth(truth: pa.Table, *tables: pa.Table) -> dict[int, tuple[dict[str, float], str]]:
    wanted = pa.concat_arrays([t.column("attempt_id").combine_chunks() for t in tables])
    rows = truth.filter(pc.is_in(truth.column("attempt_id"), wanted)).to_pylist()
    return {
        int(r["attempt_id"]): (dict(r["p_approve_true_by_route"]), str(r["reason_family_true"]))
        for r in rows
    }


def _logged(row: dict[str, Any], truth: dict[int, tuple[dict[str, float], str]]) -> LoggedAttempt:
    p_by_route, family = truth[int(row["attempt_id"])]
    return LoggedAttempt(
        at=row["ts_utc"],
        route_id=str(row["route_id"]),
        p_by_route={k: float(v) for k, v in p_by_route.items() if v is not None},
        approved=bool(row["approved"]),
        response_code=str(row["response_code"]),
        merchant_advice_code=row["merchant_advice_code"] or "",
        true_family=family,
        kind=row["retry_kind"] or "",
    )


def _lookup(table: pa.Table, key: str, value: str) -> dict[Any, Any]:
    return dict(zip(table.column(key).to_pylist(), table.column(value).to_pylist(), strict=True))
