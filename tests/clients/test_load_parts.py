"""The parts of `forestgate load` without a network: templates, schedules, ghz's statistics and
its output formats, option merging and units."""

from __future__ import annotations

import argparse
import io
import itertools
import json
import re

import numpy as np
import pytest

from forestgate.clients.load import LoadError, flags
from forestgate.clients.load import options as options_module
from forestgate.clients.load.gojson import go_float, report_json
from forestgate.clients.load.options import LoadOptions
from forestgate.clients.load.printers import csv, histogram_lines, nano_unit, summary, tabwriter
from forestgate.clients.load.report import build_report, go_seconds, histogram, latencies
from forestgate.clients.load.results import Calls, Overflow, Recorder, RunResult, go_error
from forestgate.clients.load.schedule import RateSchedule, WorkerSchedule
from forestgate.clients.load.template import CallData, MethodNames, Template
from forestgate.clients.load.units import parse_bytes, parse_duration
from tests.clients import ghz_format

NAMES = MethodNames("inference.S.M", "S", "M", "Req", "Resp")


def render(text: str, n: int = 7, worker: str = "g1c0") -> str:
    return Template(text).render(CallData(NAMES, worker, n))


# Templates


def test_template_variables_and_functions():
    assert render("{{.RequestNumber}}/{{.WorkerID}}/{{ .MethodName }}") == "7/g1c0/M"
    assert render("{{.FullyQualifiedName}} {{.ServiceName}} {{.InputName}} {{.OutputName}}") == (
        "inference.S.M S Req Resp"
    )
    assert re.fullmatch(r"[0-9a-f-]{36}", render("{{.UUID}}"))
    stamp = render("{{.TimestampUnix}} {{.TimestampUnixMilli}} {{.TimestampUnixNano}}").split()
    assert int(stamp[1]) // 1000 == int(stamp[0]) and int(stamp[2]) // 1_000_000 == int(stamp[1])
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)", render("{{.Timestamp}}")
    )
    assert len(render("{{randomString 12}}")) == 12
    assert 2 <= len(render("{{randomString 0}}")) <= 16
    assert all(3 <= int(render("{{randomInt 3 6}}")) < 6 for _ in range(50))
    assert re.fullmatch(r"[0-9a-f-]{36}", render("{{newUUID}}"))
    assert render('{{ "quoted" }} {{`raw`}} {{42}}') == "quoted raw 42"
    assert render("a  {{- .RequestNumber -}}  b {{/* note */}}c") == "a7b c"


def test_template_uuid_is_one_per_call():
    data = CallData(NAMES, "g0c0", 0)
    first, second = Template("{{.UUID}} {{.UUID}}").render(data).split()
    assert first == second
    assert Template("{{.UUID}}").render(CallData(NAMES, "g0c0", 1)) != first


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{.Missing}}", "can't evaluate field Missing"),
        ("{{upper .WorkerID}}", 'function "upper" not defined'),
        ("{{if .WorkerID}}x{{end}}", "not supported"),
        ("{{.WorkerID 3}}", "non-function"),
        ("{{.WorkerID", "unclosed action"),
    ],
)
def test_template_errors_are_one_line(text, message):
    with pytest.raises(LoadError, match=re.escape(message)):
        render(text)


def test_template_functions_can_be_disabled():
    with pytest.raises(LoadError, match="not defined"):
        Template("{{newUUID}}", functions=False)
    assert not Template('{"a": 1}').has_actions


# Schedules (ghz's load/pacer.go and load/worker_ticker.go)


def dues(schedule: RateSchedule, n: int) -> list[int]:
    return list(itertools.islice(schedule.dues(), n))


def per_second(schedule: RateSchedule, seconds: int) -> list[int]:
    """Calls due in each second (k, k+1]: call h is due when h + 1 calls are, as ghz paces."""
    counts = [0] * seconds
    for due in schedule.dues():
        if due > seconds * 1_000_000_000:
            break
        counts[(due - 1) // 1_000_000_000] += 1
    return counts


def test_const_rate_sends_call_h_at_h_plus_one_intervals():
    assert dues(RateSchedule("const", rps=4), 5) == [250_000_000 * i for i in range(1, 6)]


def test_step_rate_holds_the_end_rate_once_passed():
    step = RateSchedule("step", start=10, step=10, end=30, step_ns=1_000_000_000)
    assert per_second(step, 6) == [10, 20, 30, 30, 30, 30]
    assert step.rate_at(0) == 10 and step.rate_at(2_500_000_000) == 30
    assert step.rate_at(10_000_000_000) == 30


def test_step_down_and_max_duration_and_line():
    down = RateSchedule("step", start=30, step=-10, end=10, step_ns=1_000_000_000)
    assert per_second(down, 5) == [30, 20, 10, 10, 10]
    capped = RateSchedule("step", start=10, step=5, step_ns=1_000_000_000, max_ns=2_000_000_000)
    assert per_second(capped, 4) == [10, 15, 20, 20]  # end unset: start + step * 2 steps
    line = RateSchedule("line", start=5, step=5, end=15, step_ns=1_000_000_000)
    assert per_second(line, 4) == [5, 10, 15, 15]
    to_zero = RateSchedule("step", start=2, step=-1, step_ns=1_000_000_000)
    assert len(list(to_zero.dues())) == 3  # 2 + 1, then nothing to hold: the schedule ends


def test_worker_schedules():
    assert list(WorkerSchedule("const", count=5).events()) == [(0, 5)]
    up = WorkerSchedule("step", start=2, step=2, end=6, step_ns=10)
    assert list(up.events()) == [(0, 2), (10, 2), (20, 2)]
    down = WorkerSchedule("step", start=6, step=-2, end=2, step_ns=10, max_ns=15)
    assert list(down.events()) == [(0, 6), (10, -2), (20, -2)]


# ghz's statistics (runner/reporter.go) and formats


def run_result(latencies_ns, statuses=None, errors=None, texts=("",), total_ns=10**9) -> RunResult:
    n = len(latencies_ns)
    calls = Calls(
        latency_ns=np.array(latencies_ns, dtype=np.int64),
        end_ns=np.arange(1, n + 1, dtype=np.int64) * 1000,
        lag_ns=np.zeros(n, dtype=np.int64),
        status=np.array(statuses or [0] * n, dtype=np.int8),
        error=np.array(errors or [0] * n, dtype=np.int32),
        error_texts=list(texts),
        overflow=Overflow(),
    )
    return RunResult(calls, start_ns=0, start_wall_ns=1_700_000_000 * 10**9, finish_ns=total_ns,
                     end_reason="normal", open_loop=False, scheduled=0, last_due_ns=0)  # fmt: skip


def test_percentiles_follow_ghz_rank_rule():
    values = np.sort(go_seconds(np.arange(1, 11, dtype=np.int64) * 1_000_000))  # 1..10 ms
    got = dict(latencies(values))
    # ip = p/100 * 10; whole ranks step back one: p10 -> sorted[0], p25 -> sorted[2], ...
    assert got == {10: 1_000_000, 25: 3_000_000, 50: 5_000_000, 75: 8_000_000,
                   90: 9_000_000, 95: 10_000_000, 99: 10_000_000}  # fmt: skip


def test_histogram_is_eleven_non_cumulative_marks():
    values = np.sort(go_seconds(np.array([10, 10, 20, 55, 100], dtype=np.int64) * 1_000_000))
    buckets = histogram(values)
    assert [round(m * 1000, 3) for m, _, _ in buckets] == [
        10,
        19,
        28,
        37,
        46,
        55,
        64,
        73,
        82,
        91,
        100,
    ]
    assert [c for _, c, _ in buckets] == [2, 0, 1, 0, 0, 1, 0, 0, 0, 0, 1]
    assert buckets[0][2] == 0.4


def test_average_counts_errors_but_percentiles_do_not():
    texts = ["", "rpc error: code = Internal desc = boom"]
    result = run_result([1_000_000, 3_000_000, 50_000_000], statuses=[0, 0, 13], errors=[0, 0, 1],
                        texts=texts)  # fmt: skip
    report = build_report(result, LoadOptions(call="a.B/C", host="h:1"))
    assert report.count == 3 and report.average_ns == 18_000_000
    assert (report.fastest_ns, report.slowest_ns) == (1_000_000, 3_000_000)
    assert report.status_distribution == {"OK": 2, "Internal": 1}
    assert report.error_distribution == {texts[1]: 1}
    assert report.rps == 3.0
    counted = build_report(result, LoadOptions(call="a.B/C", host="h:1", count_errors=True))
    assert counted.slowest_ns == 50_000_000
    skipped = build_report(result, LoadOptions(call="a.B/C", host="h:1", skip_first=2))
    assert skipped.count == 1 and skipped.status_distribution == {"Internal": 1}


def test_json_has_ghz_shape_units_and_go_number_text():
    result = run_result([1_500_000, 2_000_000, 2_500_000])
    options = LoadOptions(call="a.B/C", host="h:1", insecure=True, data={"b": 1, "a": "<x>"})
    text = report_json(build_report(result, options))
    report = ghz_format.parse(json.loads(text), extra_keys=("forestgate",))
    assert report["total"] == 1_000_000_000 and report["average"] == 2_000_000
    assert report["histogram"][0]["mark"] == 0.0015
    assert '"rps":3,' in text  # Go writes 3, not 3.0
    assert '"data":{"a":"\\u003cx\\u003e","b":1}' in text  # maps sorted, HTML escaped
    assert re.search(r"\.000001(Z|[+-]\d\d:\d\d)$", report["details"][0]["timestamp"])


@pytest.mark.parametrize(
    ("value", "text"),
    [(3.0, "3"), (0.0, "0"), (1156.3378484317677, "1156.3378484317677"), (1e-05, "0.00001"),
     (5e-07, "5e-7"), (1.5e-07, "1.5e-7"), (0.0015527898, "0.0015527898"), (1e21, "1e+21"),
     (123456789.0, "123456789")],
)  # fmt: skip
def test_go_float_text(value, text):
    assert go_float(value) == text


def test_summary_text_is_ghz_layout():
    result = run_result([10_000_000, 20_000_000, 30_000_000], total_ns=2_000_000_000)
    text = summary(build_report(result, LoadOptions(call="a.B/C", host="h:1", name="n")))
    assert text.startswith(
        "\nSummary:\n  Name:\t\tn\n  Count:\t3\n  Total:\t2.00 s\n  Slowest:\t30.00 ms\n"
        "  Fastest:\t10.00 ms\n  Average:\t20.00 ms\n  Requests/sec:\t1.50\n\n"
        "Response time histogram:\n  10.000 [1] |∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎\n"
    )
    assert "\nLatency distribution:\n  10 % in 10.00 ms \n  25 % in 10.00 ms \n" in text
    assert "\n\nStatus code distribution:\n  [OK]   3 responses   \n\n\nForestGate:\n" in text


def test_the_tools_own_cpu_is_reported_and_summed_over_processes():
    from dataclasses import replace

    from forestgate.clients.load.processes import merge

    result = replace(run_result([1_000_000] * 4, total_ns=2_000_000_000), cpu_ns=1_500_000_000)
    report = build_report(result, LoadOptions(call="a.B/C", host="h:1"))
    assert report.forestgate["cpu"] == 1_500_000_000
    assert "\nForestGate:\n  99.9 % in 1.00 ms\n  Load CPU:\t1.50 s (75% of one core)\n" in (
        summary(report)
    )
    ghz_format.parse(json.loads(report_json(report)), extra_keys=("forestgate",))
    other = replace(run_result([2_000_000]), cpu_ns=700_000_000)
    assert merge([result, other], start_wall_ns=0).cpu_ns == 2_200_000_000


def test_printer_helpers():
    assert [nano_unit(v) for v in (9999, 10_000, 999_999_999, 1_500_000_000)] == [
        "9999 ns", "0.01 ms", "1000.00 ms", "1.50 s"]  # fmt: skip
    assert tabwriter([("  [OK]", "5 responses"), ("  [NotFound]", "12 responses")]) == (
        "  [OK]         5 responses    \n  [NotFound]   12 responses   \n"
    )
    lines = histogram_lines([(0.001, 1, 0.5), (0.0105, 1, 0.5)])
    bar = "∎" * 40
    assert lines == f"  1.000  [1] |{bar}\n  10.500 [1] |{bar}\n"
    result = run_result([1_234_567, 2_000_000], statuses=[0, 5], errors=[0, 1], texts=["", "x"])
    assert (
        csv(build_report(result, LoadOptions()))
        == "\nduration (ms),status,error\n1.23,OK,\n2.00,NotFound,x\n"
    )


def test_go_error_text_and_recorder_overflow():
    import grpc

    assert go_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded") == (
        "rpc error: code = DeadlineExceeded desc = context deadline exceeded"
    )
    assert go_error(grpc.StatusCode.CANCELLED, "x").startswith("rpc error: code = Canceled desc")
    recorder = Recorder(capacity=2)
    for i in range(4):
        recorder.add(1000 * (i + 1), i, 0, 0, 0)
    calls = recorder.result()
    assert len(calls.latency_ns) == 2 and calls.overflow.count == 2
    assert calls.overflow.statuses == {"OK": 2}


def test_merged_calls_are_in_completion_order():
    a, b = Recorder(), Recorder()
    a.add(5, 30, 0, 0, 0)
    a.add(5, 10, 5, a.error_id("missing"), 0)
    b.add(7, 20, 0, b.error_id("other"), 0)
    merged = Calls.merge([a.result(), b.result()])
    assert list(merged.end_ns) == [10, 20, 30]
    assert [merged.error_texts[i] for i in merged.error] == ["missing", "other", ""]


# Options and units


def parse(argv: list[str], stdin: str = "") -> LoadOptions:
    parser = argparse.ArgumentParser()
    flags.add_arguments(parser)
    return options_module.from_arguments(parser.parse_args(argv), stdin=io.StringIO(stdin))


def test_flags_config_and_defaults_merge_like_ghz(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('call = "a.B/C"\nhost = "h:1"\ntotal = 9\nconcurrency = 4\ntimeout = "2s"\n')
    options = parse(["--config", str(config), "-c", "3", "x:2"])
    assert (options.call, options.host, options.total, options.concurrency) == (
        "a.B/C",
        "x:2",
        9,
        3,
    )
    assert options.timeout_ns == 2_000_000_000 and options.concurrency_start == 1
    plain = parse(["--call", "a.B/C", "h:1"])
    assert (plain.total, plain.concurrency, plain.timeout_ns, plain.concurrency_start) == (
        200, 50, 20_000_000_000, 0)  # fmt: skip
    assert parse(["--call", "a.B/C", "-z", "1s", "h:1"]).count_limit == 2**31 - 1
    assert parse(["--call", "a.B/C", "-x", "1s", "h:1"]).count_limit == 200
    assert parse(["--call", "a.B/C", "-d", "@", "h:1"], stdin='{"a": 1}').data == {"a": 1}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--call", "a.B/C", "-d", "{}", "-D", "f.json", "h:1"], "one source of request data"),
        (["--call", "a.B/C", "--format", "xml", "h:1"], "--format"),
        (["--call", "a.B/C", "--async", "h:1"], "--async needs --rps"),
        (["--call", "a.B/C", "--skipFirst", "300", "h:1"], "skip more requests"),
        (["--call", "a.B/C", "--procs", "2", "--concurrency-schedule", "line",
          "--concurrency-start", "1", "--concurrency-end", "4", "h:1"], "--procs"),
        (["--call", "a.B/C", "-m", '{"a": 1}', "h:1"], "--metadata"),
    ],
)  # fmt: skip
def test_option_errors(argv, message):
    with pytest.raises(LoadError, match=re.escape(message)):
        parse(argv)


def test_config_rejects_unknown_keys(tmp_path):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"call": "a.B/C", "totl": 5}))
    with pytest.raises(LoadError, match="unknown key 'totl'"):
        parse(["--config", str(config), "h:1"])


def test_units():
    assert parse_duration("1m30s", what="x") == 90_000_000_000
    assert parse_duration("250ms", what="x") == 250_000_000
    assert parse_duration("1.5h", what="x") == 5_400_000_000_000
    assert parse_duration("10us", what="x") == parse_duration("10µs", what="x") == 10_000
    for bad in ("10", "s", "1d", "-1s"):
        with pytest.raises(LoadError):
            parse_duration(bad, what="x")
    assert parse_bytes("4 MB", what="x") == 4_000_000
    assert parse_bytes("4MiB", what="x") == 4 * 1024 * 1024
