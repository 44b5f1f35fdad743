"""`forestgate train` end to end: generate (when the data directory is empty) -> features ->
train -> calibrate -> evaluate -> compile -> report, in one call.

Nothing reaches the model repository until every step before compilation has succeeded;
publish.py then compiles both bundles and places them together, so a failure leaves the
repository as it was.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from forestgate.errors import InvalidInput
from forestgate.payments.features import APPROVAL_FEATURES, RETRY_FEATURES
from forestgate.training.directories import directory, writable
from forestgate.training.generator.presets import preset as check_preset
from forestgate.training.generator.presets import seed as check_seed
from forestgate.training.trainer import calibrate, evaluate, features, publish, replay, train

F64 = npt.NDArray[np.float64]
# The break-even threshold and multiples of it, to show what moving away from it costs.
THRESHOLD_SCALES = (0.5, 1.0, 2.0, 10.0, 50.0)
Log = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Request:
    data: Path
    repository: Path
    report: Path  # reports root; this run writes report/<run>/
    config: str
    preset: str  # generator preset used only when `data` is empty
    seed: int
    run: str


def validate(
    *,
    data: object,
    repository: object,
    report: object,
    config: object = "full",
    preset: object = "default",
    seed: object = 0,
    run: object = None,
) -> Request:
    """A checked request, or InvalidInput naming the argument, before any work starts."""
    paths = {
        name: directory(name, value)
        for name, value in (("data", data), ("repository", repository), ("report", report))
    }
    if config not in train.CONFIGS:
        raise InvalidInput(f"config: expected one of {', '.join(train.CONFIGS)}, got {config!r}")
    chosen = check_preset(preset).name
    run_id = run if run is not None else dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    if not isinstance(run_id, str) or not run_id or "/" in run_id or run_id.startswith("."):
        raise InvalidInput(f"run: expected a plain directory name, got {run_id!r}")
    seed_value = check_seed(seed)
    # Where the run writes, checked before minutes of work rather than after them.
    for name in ("repository", "report"):
        writable(name, paths[name])
    return Request(
        paths["data"], paths["repository"], paths["report"], str(config), chosen, seed_value,
        run_id,
    )  # fmt: skip


@dataclass
class ModelRun:
    """Everything measured about one model (approval or retry) in one run."""

    task: str
    selection: train.Selection
    choice: calibrate.Choice
    test_raw: evaluate.Quality
    test_calibrated: evaluate.Quality
    segments: dict[str, tuple[evaluate.Quality, evaluate.Quality]]  # raw, calibrated
    reliability: dict[str, dict[str, F64]]  # segment -> arrays for the plot
    curves: dict[str, F64]
    rows: dict[str, int]
    bundle: Path | None = None
    version: str | None = None


@dataclass
class RunResult:
    request: Request
    generated: bool
    data_meta: dict[str, str]
    split: train.TimeSplit
    first_day: dt.date
    approval: ModelRun
    retry: ModelRun
    break_even: list[evaluate.BreakEven]  # one per THRESHOLD_SCALES, 1.0 the break-even
    routing: list[replay.PolicyOutcome]
    retries: replay.RetryReplay
    final_approval: dict[str, float]
    seconds: dict[str, float] = field(default_factory=dict)
    report_dir: Path | None = None


def _prepare_data(request: Request, log: Log) -> bool:
    """Generate into an empty (or missing) data directory; otherwise check what is there."""
    if not request.data.exists() or not any(request.data.iterdir()):
        from forestgate.training.generator.generate import generate
        from forestgate.training.generator.generate import validate as gen_validate

        log(f"generating the {request.preset} preset (seed {request.seed}) into {request.data}")
        generate(gen_validate(request.preset, request.seed, request.data))
        return True
    features.check_inputs(request.data)
    return False


def _horizon(data: Path) -> tuple[dt.date, int, dict[str, str]]:
    path = data / "attempts.parquet"
    table = pq.read_table(path, columns=["ts_utc"])
    ts = table.column("ts_utc")
    first = pc.min(ts).as_py()
    last = pc.max(ts).as_py()
    if first is None:
        raise InvalidInput(f"{path}: no attempts")
    days = (last.date() - first.date()).days + 1
    meta = {
        k.decode(): v.decode()
        for k, v in (pq.read_schema(path).metadata or {}).items()
        if k.startswith(b"forestgate.")
    }
    return first.date(), days, meta


def _segment_masks(table: pa.Table) -> dict[str, npt.NDArray[np.bool_]]:
    cross = table.column("is_cross_border").to_numpy(zero_copy_only=False).astype(np.bool_)
    cit = np.asarray(table.column("cit_mit").to_pylist(), dtype=object) == "CIT"
    return {
        "all": np.ones(table.num_rows, dtype=np.bool_),
        "domestic": ~cross,
        "cross-border": cross,
        "CIT": cit,
        "MIT": ~cit,
    }


def _model_run(
    task: str, table: pa.Table, names: tuple[str, ...], split: train.TimeSplit, request: Request
) -> tuple[ModelRun, train.Dataset]:
    data = train.dataset(task, table, names, split, label="approved")
    config = train.CONFIGS[request.config]
    selection = train.select(data, config, seed=request.seed)
    kept = selection.kept
    masks = split.masks(data.day)
    xv, yv, wv = data.part("valid")
    ts = table.column("ts_utc").cast(pa.int64()).to_numpy(zero_copy_only=False)
    try:
        choice = calibrate.choose(kept.predict(xv), yv, wv, ts[masks["valid"]])
    except ValueError as exc:  # too few of one outcome in half of the validation period
        raise InvalidInput(f"{task}: {exc}") from None
    test = masks["test"]
    raw = kept.predict(data.x[test])
    cal = choice.calibration.apply(raw)
    y = data.y[test]
    segments = {}
    reliability = {}
    for seg, mask in _segment_masks(table.filter(pa.array(test))).items():
        if mask.sum() < 20 or np.unique(y[mask]).size < 2:
            continue
        segments[seg] = (evaluate.quality(y[mask], raw[mask]), evaluate.quality(y[mask], cal[mask]))
        mp_raw, rate_raw, _ = evaluate.reliability(y[mask], raw[mask])
        mp_cal, rate_cal, _ = evaluate.reliability(y[mask], cal[mask])
        reliability[seg] = {"raw_p": mp_raw, "raw_rate": rate_raw, "cal_p": mp_cal,
                            "cal_rate": rate_cal}  # fmt: skip
    run = ModelRun(
        task=task,
        selection=selection,
        choice=choice,
        test_raw=segments["all"][0],
        test_calibrated=segments["all"][1],
        segments=segments,
        reliability=reliability,
        curves=evaluate.curves(y, cal),
        rows={s: int(m.sum()) for s, m in masks.items()},
    )
    return run, data


def _score(run: ModelRun, data: train.Dataset, table: pa.Table) -> F64:
    return run.choice.calibration.apply(
        run.selection.kept.predict(train.matrix(table, data.features))
    )


def _final_approval(
    approval: pa.Table, test_mask: npt.NDArray[np.bool_], routing: list[replay.PolicyOutcome],
    retries: replay.RetryReplay,
) -> dict[str, float]:  # fmt: skip
    """First-attempt approval and the realised final approval of the logged payments in the
    test period, and the model policy's estimate (see the report for how it is built)."""
    test = approval.filter(pa.array(test_mask))
    first = np.asarray(test.column("attempt_no").to_numpy(zero_copy_only=False)) == 1
    pay = np.asarray(test.column("payment_id").to_pylist(), dtype=object)
    ok = test.column("approved").to_numpy(zero_copy_only=False).astype(np.bool_)
    first_pay = set(pay[first].tolist())
    approved_pay = set(pay[ok].tolist()) & first_pay
    first_ok = float(ok[first].mean())
    final = len(approved_pay) / max(len(first_pay), 1)
    recovered = (final - first_ok) / max(1 - first_ok, 1e-12)
    by = {(o.policy, o.family): o for o in retries.outcomes}
    logged = by.get(("logging policy (randomised)", "all"))
    model = by.get(("model", "all"))
    ratio = (
        model.recovery_snips / logged.recovery_snips
        if model and logged and logged.recovery_snips > 0 and np.isfinite(model.recovery_snips)
        else float("nan")
    )
    model_first = next(o.approval_rate for o in routing if o.policy == "model")
    return {
        "logged_first_attempt": first_ok,
        "logged_final": final,
        "logged_recovered_share": recovered,
        "model_first_attempt_expected": model_first,
        "model_recovery_ratio": ratio,
        "model_final_estimate": model_first + (1 - model_first) * min(recovered * ratio, 1.0),
    }


def run(request: Request, log: Log = print) -> RunResult:
    started = time.perf_counter()
    seconds: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        seconds[name] = now - since
        return now

    generated = _prepare_data(request, log)
    t = lap("generate" if generated else "check", started)
    first_day, days, meta = _horizon(request.data)
    split = train.TimeSplit.of(days)
    test_from = dt.datetime.combine(
        first_day + dt.timedelta(days=split.test_from), dt.time(), tzinfo=dt.UTC
    )
    log(f"features: {request.data} ({days} days; test from {test_from.date()})")
    tables = features.extract(request.data, candidates_from=test_from)
    t = lap("features", t)
    log("training the approval model (xgboost and lightgbm)")
    approval, approval_data = _model_run(
        "approval", tables.approval, APPROVAL_FEATURES, split, request
    )
    log(f"  {approval.selection.reason}; calibration: {approval.choice.method}")
    log("training the retry model (xgboost and lightgbm)")
    retry, retry_data = _model_run("retry", tables.retry, RETRY_FEATURES, split, request)
    log(f"  {retry.selection.reason}; calibration: {retry.choice.method}")
    t = lap("train", t)

    test_mask = split.masks(approval_data.day)["test"]
    break_even = _break_even(request.data, tables.approval, approval, approval_data, test_mask)
    routing = replay.routing(
        request.data, tables.route_candidates,
        _score(approval, approval_data, tables.route_candidates),
    )  # fmt: skip
    retries = _retry_replay(request.data, tables.retry_candidates, retry, retry_data)
    final = _final_approval(tables.approval, test_mask, routing, retries)
    t = lap("evaluate", t)

    result = RunResult(
        request=request, generated=generated, data_meta=meta, split=split, first_day=first_day,
        approval=approval, retry=retry, break_even=break_even, routing=routing, retries=retries,
        final_approval=final, seconds=seconds,
    )  # fmt: skip
    publish.compile_bundles(result, {"approval": approval_data, "retry": retry_data}, log)
    t = lap("compile", t)
    from forestgate.training.trainer import report

    result.report_dir = report.write(result, request.report / request.run)
    lap("report", t)
    seconds["total"] = time.perf_counter() - started
    (result.report_dir / "seconds.json").write_text(json.dumps(seconds, indent=2) + "\n")
    publish.log_mlflow(result, log)
    return result


def _break_even(
    data: Path, approval_table: pa.Table, approval: ModelRun, approval_data: train.Dataset,
    test_mask: npt.NDArray[np.bool_],
) -> list[evaluate.BreakEven]:  # fmt: skip
    """The break-even threshold on the test period, and multiples of it, each attempt with the
    money of its logged route."""
    test_rows = approval_table.filter(pa.array(test_mask))
    money = replay.money(
        data,
        pa.table({
            "attempt_id": test_rows.column("attempt_id"),
            "route_id": test_rows.column("route_id"),
            "logged": pa.array(np.ones(test_rows.num_rows, dtype=np.bool_)),
        }),
    )  # fmt: skip
    p_test = approval.choice.calibration.apply(
        approval.selection.kept.predict(approval_data.x[test_mask])
    )
    y_test = approval_data.y[test_mask]
    return [
        evaluate.break_even(
            y_test, p_test, net_value=money.margin_usd, attempt_cost=money.attempt_usd, scale=s
        )
        for s in THRESHOLD_SCALES
    ]


def _retry_replay(
    data: Path, candidates: pa.Table, retry: ModelRun, retry_data: train.Dataset
) -> replay.RetryReplay:
    """The retry policy replayed off-policy; a retry the guardrail denies fails the run."""
    retry_money = replay.money(
        data,
        pa.table({
            "attempt_id": candidates.column("parent_attempt_id"),
            "route_id": candidates.column("route_id"),
            "logged": candidates.column("logged"),
        }),
    )  # fmt: skip
    retries = replay.retries(
        data, candidates, _score(retry, retry_data, candidates),
        value_usd=retry_money.margin_usd, attempt_usd=retry_money.attempt_usd,
    )  # fmt: skip
    if retries.guardrail_violations:
        raise RuntimeError(
            f"the retry policy chose {retries.guardrail_violations} retries the guardrail denies"
        )
    return retries
