"""The evaluation report of one training run: `reports/<run>/report.md` with its PNG plots and
`metrics.json`, every number taken from the run itself."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

from forestgate import __version__

matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt

if TYPE_CHECKING:
    from forestgate.training.trainer.evaluate import Quality
    from forestgate.training.trainer.pipeline import ModelRun, RunResult

QUALITY_COLUMNS = ("roc_auc", "pr_auc_decline", "log_loss", "brier", "ece")


def _f(value: float, digits: int = 4) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _pct(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{100 * value:.2f}%"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
    ]


def _plot_curves(result: RunResult, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for run in (result.approval, result.retry):
        c = run.curves
        auc = run.test_calibrated.roc_auc
        axes[0].plot(c["fpr"], c["tpr"], label=f"{run.task} (AUC {auc:.3f})")
        axes[1].plot(
            c["recall"], c["precision"],
            label=f"{run.task} (AP {run.test_calibrated.pr_auc_decline:.3f})",
        )  # fmt: skip
    axes[0].plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle=":")
    axes[0].set(title="ROC, approval positive", xlabel="false positive rate",
                ylabel="true positive rate")  # fmt: skip
    axes[1].set(title="Precision-recall, decline positive", xlabel="recall", ylabel="precision")
    for ax in axes:
        ax.legend(loc="lower right")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_reliability(run: ModelRun, path: Path) -> None:
    segments = [s for s in ("domestic", "cross-border", "CIT", "MIT") if s in run.reliability]
    fig, axes = plt.subplots(1, max(len(segments), 1), figsize=(3.4 * max(len(segments), 1), 3.6))
    axes = axes if hasattr(axes, "__len__") else [axes]
    for ax, seg in zip(axes, segments, strict=False):
        r = run.reliability[seg]
        raw, cal = run.segments[seg]
        ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle=":")
        ax.plot(r["raw_p"], r["raw_rate"], marker="o", markersize=3,
                label=f"raw (ECE {raw.ece:.3f})")  # fmt: skip
        ax.plot(r["cal_p"], r["cal_rate"], marker="s", markersize=3,
                label=f"calibrated (ECE {cal.ece:.3f})")  # fmt: skip
        ax.set(title=f"{run.task}: {seg}", xlabel="predicted", ylabel="observed")
        ax.legend(loc="upper left", fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_policy(result: RunResult, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    # Regret, not net value: the policies differ by about 1 % of their net value, which a bar
    # chart from zero cannot show.
    names = [o.policy for o in result.routing if o.policy != "oracle"]
    regret = [o.regret_usd_per_1000 for o in result.routing if o.policy != "oracle"]
    bars = axes[0].bar(names, regret, color="#4c72b0")
    axes[0].bar_label(bars, fmt="%.0f")
    axes[0].set(title="Routing: regret against the oracle", ylabel="USD per 1,000 payments")
    fams = sorted({o.family for o in result.retries.outcomes if o.family != "all"})
    policies = sorted({o.policy for o in result.retries.outcomes})
    width = 0.8 / max(len(policies), 1)
    by = {(o.policy, o.family): o for o in result.retries.outcomes}
    for i, pol in enumerate(policies):
        xs = [j + i * width for j in range(len(fams))]
        ys = [by[(pol, f)].recovery_snips if (pol, f) in by else 0.0 for f in fams]
        axes[1].bar(xs, [0.0 if not math.isfinite(y) else y for y in ys], width, label=pol)
    axes[1].set_xticks([j + width * (len(policies) - 1) / 2 for j in range(len(fams))], fams,
                       rotation=30, ha="right")  # fmt: skip
    axes[1].set(title="Retry: recovery by decline family (SNIPS)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _quality_rows(run: ModelRun) -> list[list[str]]:
    rows = []
    for seg, (raw, cal) in run.segments.items():
        for stage, q in (("raw", raw), ("calibrated", cal)):
            rows.append([seg, stage, str(q.count), _pct(q.positive_rate), _pct(q.mean_prediction),
                         *(_f(getattr(q, c)) for c in QUALITY_COLUMNS)])  # fmt: skip
    return rows


def _model_section(run: ModelRun, plot: str) -> list[str]:
    sel = run.selection
    lines = [f"## {run.task.capitalize()} model", ""]
    lines += [f"Rows: {run.rows['train']:,} train, {run.rows['valid']:,} validation, "
              f"{run.rows['test']:,} test.", ""]  # fmt: skip
    lines += _table(
        ["framework", "trees kept", "fit s", "valid log loss", "valid ROC-AUC", "valid Brier"],
        [[c.framework, str(c.trees), f"{c.seconds:.1f}", _f(c.valid.log_loss),
          _f(c.valid.roc_auc), _f(c.valid.brier)] for c in sel.candidates],
    )  # fmt: skip
    lines += [f"**Kept:** {sel.reason}.", ""]
    scores = ", ".join(f"{m} {_f(b, 5)}" for m, b in run.choice.brier_by_method.items())
    lines += [
        f"**Calibration:** {run.choice.method}, chosen by two-fold time-split cross-fitting on "
        f"the validation period (mean out-of-half Brier: {scores}), then refitted on all of it.",
        "",
        "Test period, before and after calibration (weighted by nothing: these are the "
        "outcomes the logging policy produced):",
        "",
    ]
    lines += _table(
        ["segment", "scores", "rows", "observed", "mean p", *QUALITY_COLUMNS], _quality_rows(run)
    )
    lines += [f"![reliability]({plot})", ""]
    return lines


def _quality_json(q: Quality) -> dict[str, Any]:
    return {k: (v if not isinstance(v, float) or math.isfinite(v) else None)
            for k, v in q.as_dict().items()}  # fmt: skip


def provenance() -> dict[str, Any]:
    """Which code on which machine: the commit of the source tree when it is a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        done = subprocess.run(
            ["git", "-C", str(here), "describe", "--always", "--dirty"],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
        commit = done.stdout.strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        commit = "?"
    return {
        "forestgate": __version__,
        "commit": commit,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "loadavg_at_report": [round(v, 2) for v in os.getloadavg()],
    }


def write(result: RunResult, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    run_info = provenance()
    _plot_curves(result, out / "roc_pr.png")
    _plot_reliability(result.approval, out / "reliability_approval.png")
    _plot_reliability(result.retry, out / "reliability_retry.png")
    _plot_policy(result, out / "policy.png")
    lines = [
        *_header(result, run_info),
        *_model_section(result.approval, "reliability_approval.png"),
        *_break_even_section(result),
        *_model_section(result.retry, "reliability_retry.png"),
        *_routing_section(result),
        *_retries_section(result),
        *_final_section(result),
    ]
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
    text = json.dumps(_metrics(result, run_info), indent=2, default=float, allow_nan=True)
    (out / "metrics.json").write_text(text.replace("NaN", "null") + "\n", encoding="utf-8")
    return out


def _header(result: RunResult, run_info: dict[str, Any]) -> list[str]:
    req, split, meta = result.request, result.split, result.data_meta
    return [
        f"# Training report `{req.run}`",
        "",
        f"Data: `{req.data}` ({'generated by this run' if result.generated else 'existing'}; "
        f"generator {meta.get('forestgate.generator', '?')}, preset "
        f"{meta.get('forestgate.preset', '?')}, seed {meta.get('forestgate.seed', '?')}). "
        f"Configuration `{req.config}`. Time split from {result.first_day}: "
        f"{split.label('train')}, {split.label('valid')}, {split.label('test')}.",
        "",
        f"Code: forestgate {run_info['forestgate']}, commit `{run_info['commit']}`; Python "
        f"{run_info['python']} on {run_info['machine']}; load average "
        f"{run_info['loadavg_at_report']} when the report was written.",
        "",
        "Every number below comes from this run; `metrics.json` holds them all.",
        "",
        "![ROC and PR](roc_pr.png)",
        "",
    ]


def _break_even_section(result: RunResult) -> list[str]:
    lines = [
        "### Break-even threshold (approval model, test period)",
        "",
        "Attempt a payment iff p > attempt cost / net value of an approval on its logged route "
        '(docs/evaluation.md, "Cost-weighted threshold"), each row with its own money '
        "(multiplier 1); the other rows scale every threshold to show what moving away from "
        "break-even costs. Value captured is the realised net value over that of attempting "
        "exactly the approvals.",
        "",
    ]
    return lines + _table(
        ["threshold multiplier", "attempted", "precision", "recall", "value captured",
         "mean threshold"],
        [[f"x{be.scale:g}", _pct(be.attempted_share), _pct(be.precision), _pct(be.recall),
          _pct(be.value_captured), _f(be.mean_threshold, 5)] for be in result.break_even],
    )  # fmt: skip


def _routing_section(result: RunResult) -> list[str]:
    lines = [
        "## Policy view on held-out time",
        "",
        "**Routing.** For every first attempt of the test period, each eligible route is scored "
        "with the calibrated approval model and the route with the highest expected net value "
        "`p * (amount x merchant margin - approval costs) - attempt fee` is chosen (costs from "
        "the route table, never from the model; expected fraud loss is left out). The logging "
        "policy is the route that was logged; the oracle applies the same rule to the "
        "generator's true probabilities. All three are valued with the true probabilities.",
        "",
    ]
    return lines + _table(
        ["policy", "payments", "approval (first attempt)", "net USD / 1,000", "cost / approved USD",
         "regret USD / 1,000", "same route as oracle"],
        [[o.policy, f"{o.payments:,}", _pct(o.approval_rate), f"{o.net_usd_per_1000:,.2f}",
          f"{o.cost_per_approved_usd:.4f}", f"{o.regret_usd_per_1000:,.2f}",
          _pct(o.agrees_with_oracle)] for o in result.routing],
    )  # fmt: skip


def _retries_section(result: RunResult) -> list[str]:
    rr = result.retries
    lines = [
        "**Retries.** For every decline of the test period whose next reattempt the randomised "
        "policy chose, the model scores each delay of the grid on the decline's route; the "
        "guardrail (payments core) removes what the network rules forbid; the model policy "
        "sends the delay with the highest `p * value * 0.995^days - attempt fee`, or does not "
        "retry when that is negative. The fixed schedule retries 1 day after the decline. "
        "Both are estimated off-policy from the logged randomised delays (IPS and SNIPS; ESS is "
        "the effective sample size of the importance weights, so small ESS means a wide "
        "uncertainty).",
        "",
    ]
    lines += _table(
        ["policy", "decline family", "decisions", "retried", "recovery IPS", "recovery SNIPS",
         "matched", "ESS"],
        [[o.policy, o.family, str(o.decisions), _pct(o.retried_share), _pct(o.recovery_ips),
          _pct(o.recovery_snips), str(o.matched), f"{o.effective_sample_size:.1f}"]
         for o in rr.outcomes],
    )  # fmt: skip
    return [
        *lines,
        f"Guardrail: {rr.guardrail_denied_candidates:,} candidate retries were vetoed before "
        f"scoring; the {rr.checked:,} retries the model chose were re-checked with the payments "
        f"core and **{rr.guardrail_violations} violated a rule**.",
        "",
        "![policy view](policy.png)",
        "",
    ]


def _final_section(result: RunResult) -> list[str]:
    """Final approval, the bundles written and the time each step took."""
    fa = result.final_approval
    lines = [
        "**Final approval.** Logged payments of the test period: first attempt "
        f"{_pct(fa['logged_first_attempt'])}, final (after any retry, cascade or step-up) "
        f"{_pct(fa['logged_final'])}, so {_pct(fa['logged_recovered_share'])} of first-attempt "
        "declines were recovered. Model policy, estimated: expected first-attempt approval "
        f"{_pct(fa['model_first_attempt_expected'])}, with declines recovered at the logged "
        f"share scaled by the model-to-logged SNIPS recovery ratio "
        f"({_f(fa['model_recovery_ratio'], 3)}): {_pct(fa['model_final_estimate'])}. This is "
        "an estimate under that stated assumption, not a simulation of the whole retry chain.",
        "",
        "## Bundles",
        "",
    ]
    for run in (result.approval, result.retry):
        lines.append(f"- `{run.bundle}` ({run.selection.kept.framework}, calibration "
                     f"{run.choice.method})")  # fmt: skip
    secs = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
    return [*lines, "", f"Time: {secs}.", ""]


def _metrics(result: RunResult, run_info: dict[str, Any]) -> dict[str, Any]:
    """Every number of the report, for metrics.json."""
    req, split = result.request, result.split
    return {
        "run": req.run,
        "provenance": run_info,
        "config": req.config,
        "data": result.data_meta,
        "split": {"valid_from_day": split.valid_from, "test_from_day": split.test_from,
                  "days": split.days},
        "models": {
            run.task: {
                "framework": run.selection.kept.framework,
                "calibration": run.choice.method,
                "bundle": str(run.bundle),
                "test": {seg: {"raw": _quality_json(a), "calibrated": _quality_json(b)}
                         for seg, (a, b) in run.segments.items()},
            }
            for run in (result.approval, result.retry)
        },
        "break_even": [be.as_dict() for be in result.break_even],
        "routing": [o.as_dict() for o in result.routing],
        "retries": [o.as_dict() for o in result.retries.outcomes],
        "guardrail_violations": result.retries.guardrail_violations,
        "final_approval": result.final_approval,
    }  # fmt: skip
