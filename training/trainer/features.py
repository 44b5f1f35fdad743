"""The feature extractor: runs the SQL of training/trainer/sql on DuckDB over a generated data
directory and returns the approval, retry and candidate tables, every feature as
payments/features.py defines it (tests/features checks the two agree row by row).
"""

from __future__ import annotations

import datetime as dt
import math
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from forestgate.errors import InvalidInput
from forestgate.payments import features as pf
from forestgate.payments.codes import ResponseCodes
from forestgate.payments.routetable import RouteTable
from forestgate.training.generator import policy

# Read by training/trainer/sql; every other column of the files is ignored.
REQUIRED: dict[str, tuple[str, ...]] = {
    "attempts.parquet": (
        *("attempt_id", "payment_id", "parent_attempt_id", "attempt_no", "is_retry"),
        *("retry_kind", "ts_utc", "local_hour", "dow", "dom", "amount_minor", "currency"),
        *("amount_usd", "fx_needed", "bin8", "brand", "funding", "product_tier"),
        *("is_commercial", "issuer_country", "pan_hash", "par", "months_to_expiry", "mcc"),
        *("merchant_id", "merchant_country", "route_id", "is_cross_border", "channel"),
        *("cit_mit", "cof_type", "is_initial_cof", "network_token", "cvv_present"),
        *("avs_provided", "three_ds", "sca_exemption", "challenge", "ip_country"),
        *("customer_in_session", "credential_changed", "route_propensity", "eligible_routes"),
        *("decided_by", "delay_propensity", "response_code", "approved"),
        "merchant_advice_code",
    ),
    "bins.parquet": ("bin8", "issuer_id"),
    "merchants.parquet": ("merchant_id", "gross_margin"),
}
# The answer columns are read only as history (earlier attempts) and labels, never as features.
CANDIDATE_SHARE = 0.2
MEMORY_LIMIT = "2GB"
_META = (
    *("attempt_id", "payment_id", "ts_utc", "day", "approved", "is_cross_border", "cit_mit"),
    *("brand", "decline_family", "amount_minor", "currency", "amount_usd", "merchant_value"),
    "propensity",
)
_RATE_KEYS = {
    "route": ("route_id",),
    "issuer_route": ("issuer_id", "route_id"),
    "bin_route": ("bin8", "route_id"),
    "merchant": ("merchant_id",),
}


@dataclass(frozen=True, slots=True)
class FeatureTables:
    approval: pa.Table  # one row per attempt with amount_minor > 0
    retry: pa.Table  # one row per logged MIT retry decided by randomized-v1 (retry_kind 'retry')
    route_candidates: pa.Table  # one row per (first attempt in [candidates_from, end), route)
    retry_candidates: pa.Table  # one row per (randomized-v1 decline in range, grid delay)


def check_inputs(data_dir: Path) -> None:
    """InvalidInput naming the file (and column) if ``data_dir`` cannot be extracted."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InvalidInput(f"{data_dir}: no such data directory")
    for name, columns in REQUIRED.items():
        path = data_dir / name
        if not path.is_file():
            raise InvalidInput(f"{path}: missing; feature extraction needs it")
        try:
            meta = pq.read_metadata(path)
        except (OSError, pa.ArrowException) as exc:
            reason = " ".join(str(exc).split())
            raise InvalidInput(f"{path}: not a readable Parquet file ({reason})") from None
        schema = meta.schema.to_arrow_schema()
        for column in columns:
            if column not in schema.names:
                raise InvalidInput(f"{path}: missing column {column!r}")
        if meta.num_rows == 0:
            raise InvalidInput(f"{path}: no rows")
    ts = pq.read_schema(data_dir / "attempts.parquet").field("ts_utc").type
    if not pa.types.is_timestamp(ts):
        raise InvalidInput(
            f"{data_dir / 'attempts.parquet'}: column 'ts_utc' is {ts}, not a timestamp"
        )


def extract(data_dir: Path, *, candidates_from: dt.datetime | None = None) -> FeatureTables:
    """The four feature tables of ``data_dir`` (a generated data set). Candidate tables cover
    ``candidates_from`` to the end, by default the last 20% of days."""
    data_dir = Path(data_dir)
    check_inputs(data_dir)
    with _connect(data_dir) as con:
        span = con.sql("SELECT min(ts_utc)::DATE, max(ts_utc)::DATE FROM attempts").fetchone()
        if span is None or span[0] is None:
            raise InvalidInput(f"{data_dir / 'attempts.parquet'}: no timestamps")
        first, last = span
        if candidates_from is None:
            candidates_from = held_out_from(first, last)
        if candidates_from.tzinfo is None:
            raise InvalidInput(f"candidates_from must be timezone-aware, got {candidates_from}")
        _run(con, candidates_from_ms=int(candidates_from.timestamp() * 1000))
        approval = _select(con, "approval", pf.APPROVAL_FEATURES, ("route_id",), "attempt_id")
        retry = _select(
            con,
            "retry",
            pf.RETRY_FEATURES,
            ("route_id", "delay_s", "parent_attempt_id"),
            "attempt_id",
        )
        routes = _select(
            con,
            "route_candidate",
            pf.APPROVAL_FEATURES,
            ("route_id", "logged"),
            "attempt_id, route_code",
        )
        retries = _select(
            con,
            "retry_candidate",
            pf.RETRY_FEATURES,
            ("route_id", "delay_s", "logged", "parent_attempt_id"),
            "attempt_id, delay_s",
        )
    return FeatureTables(approval, retry, routes, retries)


def held_out_from(first: dt.date, last: dt.date) -> dt.datetime:
    """Midnight UTC of the first held-out day: the last ``CANDIDATE_SHARE`` of the days from
    ``first`` to ``last`` (inclusive), rounded to whole days."""
    days = (last - first).days + 1
    start = dt.datetime.combine(first, dt.time(), dt.UTC)
    return start + dt.timedelta(days=math.floor((1 - CANDIDATE_SHARE) * days))


def utc_offsets(data_dir: Path) -> dict[str, int]:
    """Each country's UTC offset in seconds as sql/offsets.sql infers it from the log."""
    check_inputs(data_dir)
    with _connect(Path(data_dir)) as con:
        _execute(con, _sql("offsets.sql"))
        rows = con.sql("SELECT country, offset_s FROM offsets ORDER BY country").fetchall()
    return {str(country): int(offset) for country, offset in rows}


def _connect(data_dir: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET threads = 2")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = false")
    # Bounded, spilling to the system temp folder: 1M attempts peak near 6 GB unbounded.
    con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    spill = str(Path(tempfile.gettempdir()) / "forestgate-duckdb").replace("'", "''")
    con.execute(f"SET temp_directory = '{spill}'")
    for name in REQUIRED:
        path = str(data_dir / name).replace("'", "''")
        con.execute(f"CREATE VIEW {name.removesuffix('.parquet')} AS FROM read_parquet('{path}')")
    return con


def _run(con: duckdb.DuckDBPyConnection, *, candidates_from_ms: int) -> None:
    codes = ResponseCodes.load()
    routes = RouteTable.load()
    _reference_tables(con, codes, routes)
    params = {
        "candidates_from_ms": str(candidates_from_ms),
        "epsilon": _double(policy.EPSILON),
        "prior": _double(pf.PRIOR_RATE),
        "route_w": _double(pf.ROUTE_PRIOR_WEIGHT),
        "pair_w": _double(pf.PAIR_PRIOR_WEIGHT),
        "merchant_w": _double(pf.MERCHANT_PRIOR_WEIGHT),
        "hour_ms": _double(pf.HOUR_MS),
        "day_ms": _double(pf.DAY_MS),
        "hour_s": _double(3600),
        **{
            name: _list(values)
            for name, values in {
                "BRANDS": pf.BRANDS,
                "FUNDING": pf.FUNDING,
                "TIERS": pf.TIERS,
                "CHANNELS": pf.CHANNELS,
                "COF_TYPES": pf.COF_TYPES,
                "EXEMPTIONS": pf.EXEMPTIONS,
                "COUNTRIES": pf.COUNTRIES,
                "FAMILIES": pf.FAMILIES,
                "DECLINE_CODES": pf.decline_codes(codes),
            }.items()
        },
    }
    for name in ("offsets.sql", "events.sql", "queries.sql"):
        _execute(con, _sql(name, **params))
    histories: dict[str, tuple[tuple[str, ...], str]] = {"card": (("card_key",), "NOT approved")}
    histories.update({k: (keys, "approved") for k, keys in _RATE_KEYS.items()})
    for name, (keys, hit) in histories.items():
        _execute(con, _sql("history.sql", name=name, keys=", ".join(keys), hit=hit))
    windows = [("card", "24h", pf.CARD_WINDOWS_MS[0]), ("card", "7d", pf.CARD_WINDOWS_MS[1])]
    windows += [(name, "7d", pf.RATE_WINDOW_MS) for name in _RATE_KEYS]
    for name, label, window_ms in windows:
        on = " AND ".join(f"q.{k} = h.{k}" for k in histories[name][0])
        con.execute(_sql("window.sql", name=name, label=label, on=on, window_ms=str(window_ms)))
    _execute(con, _sql("card.sql"))
    _execute(con, _sql("features.sql", **params))


def _reference_tables(
    con: duckdb.DuckDBPyConnection, codes: ResponseCodes, routes: RouteTable
) -> None:
    """The payments core's classifications and the logging policy's weights, as tables."""
    triples = con.sql(
        "SELECT DISTINCT brand, response_code, CAST(ts_utc AS DATE) AS utc_date FROM attempts"
    ).fetchall()
    infos = [codes.classify(str(b), str(c), d) for b, c, d in triples]
    codes_map = pa.table(
        {
            "brand": [str(t[0]) for t in triples],
            "response_code": [str(t[1]) for t in triples],
            "utc_date": pa.array([t[2] for t in triples], type=pa.date32()),
            "family": [i.family.value for i in infos],
            "visa_category": pa.array([i.visa_category for i in infos], type=pa.int8()),
        }
    )
    routes_ref = pa.table(
        {
            "route_id": pf.route_ids(routes),
            "route_code": list(range(len(routes))),
            "local_countries": [sorted(r.local_countries) for r in routes],
        }
    )
    advice = {c: a.retry_after for c, a in codes.advice.items() if a.retry_after is not None}
    advice_ref = pa.table(
        {
            "code": list(advice),
            "wait_s": pa.array([int(w.total_seconds()) for w in advice.values()], pa.int64()),
        }
    )
    # The randomized-v1 policy's own grid weights, so candidate propensities are the ones it
    # drew with (tests check them against the logged delay_propensity).
    weights = policy.GRID_WEIGHTS
    delay_weights = pa.table(
        {
            "family_group": [g for g in weights for _ in policy.GRID_S],
            "delay_s": np.tile(policy.GRID_S, len(weights)),
            "weight": np.concatenate([np.asarray(w, dtype=np.float64) for w in weights.values()]),
        }
    )
    for name, table in {
        "codes_map": codes_map,
        "routes_ref": routes_ref,
        "advice_ref": advice_ref,
        "delay_weights": delay_weights,
    }.items():
        con.register(f"{name}_arrow", table)
        con.execute(f"CREATE TABLE {name} AS FROM {name}_arrow")
        con.unregister(f"{name}_arrow")


def _select(
    con: duckdb.DuckDBPyConnection,
    kind: str,
    names: tuple[str, ...],
    extra: tuple[str, ...],
    order: str,
) -> pa.Table:
    meta = [
        "attempt_id::BIGINT AS attempt_id",
        *_META[1:3],
        "day::INTEGER AS day",
        *_META[4:],
        *extra,
    ]
    feats = [f"coalesce(CAST({n} AS FLOAT), 'NaN'::FLOAT) AS {n}" for n in names]
    query = f"SELECT {', '.join(meta + feats)} FROM features WHERE kind = '{kind}' ORDER BY {order}"
    return con.sql(query).fetch_arrow_table()


def _execute(con: duckdb.DuckDBPyConnection, script: str) -> None:
    # One statement per call: DuckDB scopes named windows to the whole call, not the statement.
    for statement in script.split(";\n"):
        if statement.strip():
            con.execute(statement)


def _sql(file: str, /, **params: str) -> str:
    text = resources.files("forestgate.training.trainer").joinpath("sql", file).read_text()
    return text.format(**params) if params else text


def _double(value: float) -> str:
    return f"'{float(value)!r}'::DOUBLE"


def _list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


__all__ = [
    "REQUIRED",
    "FeatureTables",
    "check_inputs",
    "extract",
    "held_out_from",
    "utc_offsets",
]
