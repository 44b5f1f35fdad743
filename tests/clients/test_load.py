"""`forestgate load` end to end: the installed command against a live server, as users run it."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clients import ghz_format
from tests.clients.load_support import (
    CALL,
    FORESTGATE,
    NUM_FEATURES,
    PROTO,
    PROTOS,
    REPO,
    load,
    load_json,
    request,
    serve_demo,
    served,
)
from tests.server.conftest import LiveServer

EXTRA = ("forestgate",)


@pytest.fixture(scope="module")
def load_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    yield from serve_demo(tmp_path_factory.mktemp("load-repository"))


def test_reflection_run_reports_ghz_json_with_exact_counts(load_server):
    report = load_json(load_server.address, "-n", "200", "-c", "8")
    ghz_format.parse(report, extra_keys=EXTRA)
    assert report["count"] == 200
    assert report["statusCodeDistribution"] == {"OK": 200}
    assert report["errorDistribution"] == {}
    assert report["endReason"] == "normal"
    assert len(report["details"]) == 200
    assert sum(b["count"] for b in report["histogram"]) == 200
    assert report["options"]["call"] == CALL
    assert report["options"]["host"] == load_server.address
    assert report["options"]["total"] == 200 and report["options"]["concurrency"] == 8
    assert report["fastest"] <= report["latencyDistribution"][2]["latency"] <= report["slowest"]
    assert report["histogram"][0]["mark"] == pytest.approx(report["fastest"] / 1e9, abs=1e-9)
    assert report["forestgate"]["openLoop"] is False
    assert report["forestgate"]["p99.9"] <= report["slowest"]


def test_the_tools_own_cpu_covers_the_run_only(load_server):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    report = load_json(load_server.address, "-z", "400ms", "-c", "4", "--duration-stop", "ignore")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    whole_ns = 1e9 * (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    cpu = report["forestgate"]["cpu"]
    # Busy sending for the whole run, but without start-up, schema and report: less than the
    # process's own total, and at most every core for the run's length.
    assert 0.05 * report["total"] < cpu < whole_ns
    assert cpu <= (os.cpu_count() or 1) * report["total"] * 1.05


def test_pretty_is_the_same_report_indented(load_server):
    done = load("--insecure", "--call", CALL, "-d", json.dumps(request()), "-n", "20", "-c", "2",
                "-O", "pretty", load_server.address)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith('{\n  "date": "')
    report = ghz_format.parse(json.loads(done.stdout), extra_keys=EXTRA)
    assert report["count"] == 20


@pytest.mark.parametrize("source", ["proto", "protoset"])
def test_proto_and_protoset_give_the_method_without_reflection(load_server, source, tmp_path):
    if source == "proto":
        schema = ["--proto", PROTO, "-i", PROTOS]
    else:
        protoset = tmp_path / "inference.protoset"
        from grpc_tools import protoc

        assert protoc.main(["protoc", f"-I{PROTOS}", "--include_imports",
                            f"--descriptor_set_out={protoset}", PROTO]) == 0  # fmt: skip
        schema = ["--protoset", str(protoset)]
    report = load_json(load_server.address, *schema, "-n", "30", "-c", "3")
    assert report["statusCodeDistribution"] == {"OK": 30}
    assert report["options"][source]


def test_templates_render_per_call_and_arrays_go_round_robin(load_server):
    # model_version "{{.RequestNumber}}": only call 1 asks for a version that exists (1).
    versioned = request(model_version="{{.RequestNumber}}", id="{{.WorkerID}}-{{.UUID}}")
    report = load_json(load_server.address, "-n", "6", "-c", "1", data=versioned)
    assert report["statusCodeDistribution"] == {"OK": 1, "NotFound": 5}
    assert all("has no version '" in e for e in report["errorDistribution"])
    assert any("has no version '5'" in e for e in report["errorDistribution"])
    # An array alternates: even calls go to a model that does not exist.
    mixed = [request(), request(model="{{.MethodName}}-model")]
    report = load_json(load_server.address, "-n", "20", "-c", "4", data=mixed)
    assert report["statusCodeDistribution"] == {"OK": 10, "NotFound": 10}
    assert report["errorDistribution"] == {
        "rpc error: code = NotFound desc = model 'ModelInfer-model' is not loaded": 10
    }
    assert [d["status"] for d in report["details"]].count("NotFound") == 10
    ghz_format.parse(report, extra_keys=EXTRA)


def test_open_loop_reports_intended_against_actual_rate(load_server):
    report = load_json(load_server.address, "--rps", "400", "-n", "120", "-c", "4")
    extra = report["forestgate"]
    assert report["count"] == 120 and report["statusCodeDistribution"] == {"OK": 120}
    assert extra["openLoop"] is True and extra["latencyFrom"] == "scheduled send time"
    assert extra["intendedRps"] == 400 and extra["scheduled"] == 120
    assert extra["actualRps"] > 0 and extra["actualRps"] == pytest.approx(report["rps"])
    assert set(extra["sendLag"]) == {"p50", "p99", "max"}
    assert report["options"]["rps"] == 400


def test_step_schedule_runs_from_flags(load_server):
    report = load_json(load_server.address, "--load-schedule", "step", "--load-start", "200",
                       "--load-step", "200", "--load-end", "600", "--load-step-duration", "100ms",
                       "-n", "150", "-c", "4")  # fmt: skip
    assert report["count"] == 150
    assert report["options"]["load-schedule"] == "step"
    assert report["options"]["load-step-duration"] == 100_000_000
    assert report["forestgate"]["intendedRps"] > 200


def test_binary_data_one_message_or_length_delimited(load_server, tmp_path):
    from google.protobuf.internal.encoder import _VarintBytes

    from forestgate.protos.inference import grpc_service_pb2 as pb

    messages = []
    for model in ("approval", "absent"):
        message = pb.ModelInferRequest(model_name=model)
        tensor = message.inputs.add(name="input__0", datatype="FP32", shape=[1, NUM_FEATURES])
        tensor.contents.fp32_contents.extend([0.5] * NUM_FEATURES)
        messages.append(message.SerializeToString())
    single = tmp_path / "one.bin"
    single.write_bytes(messages[0])
    base = ["--insecure", "--call", CALL, "-O", "json", "-c", "1"]
    done = load(*base, "-B", str(single), "-n", "4", load_server.address)
    assert json.loads(done.stdout)["statusCodeDistribution"] == {"OK": 4}, done.stderr
    delimited = b"".join(_VarintBytes(len(m)) + m for m in messages)
    done_bytes = subprocess.run(
        [FORESTGATE, "load", *base, "-b", "-n", "6", load_server.address],
        input=delimited, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    report = json.loads(done_bytes.stdout)
    assert report["statusCodeDistribution"] == {"OK": 3, "NotFound": 3}
    assert report["options"]["binary"] is True


def test_concurrency_step_schedule_and_templated_metadata(load_server):
    metadata = json.dumps({"x-request-id": "{{.RequestNumber}}", "x-worker": "{{.WorkerID}}"})
    report = load_json(load_server.address, "--concurrency-schedule", "step",
                       "--concurrency-start", "1", "--concurrency-step", "1",
                       "--concurrency-end", "3", "--concurrency-step-duration", "50ms",
                       "-c", "3", "-n", "150", "-m", metadata)  # fmt: skip
    assert report["count"] == 150 and report["statusCodeDistribution"] == {"OK": 150}
    assert report["options"]["concurrency-schedule"] == "step"
    assert report["options"]["metadata"]["x-request-id"] == "{{.RequestNumber}}"


def test_procs_merge_every_call_into_one_report(load_server):
    report = load_json(load_server.address, "-n", "200", "-c", "8", "--procs", "2")
    ghz_format.parse(report, extra_keys=EXTRA)
    assert report["count"] == 200 and report["statusCodeDistribution"] == {"OK": 200}
    assert report["forestgate"]["procs"] == 2
    assert report["forestgate"]["cpu"] > 0  # both processes' CPU, summed
    stamps = [d["timestamp"] for d in report["details"]]
    assert len(stamps) == 200


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["-n", "40"], "normal"),
        (["-z", "300ms"], "timeout"),
        (["-x", "300ms", "-n", "10000000"], "timeout"),
        (["-z", "300ms", "--rps", "100"], "timeout"),
    ],
)
def test_runs_stop_by_themselves(load_server, args, reason):
    report = load_json(load_server.address, "-c", "2", *args)
    assert report["endReason"] == reason
    assert report["count"] > 0
    if reason == "normal":
        assert report["count"] == 40


def test_ctrl_c_prints_the_partial_report(load_server):
    before = served(load_server)
    process = subprocess.Popen(
        [FORESTGATE, "load", "--insecure", "--call", CALL, "-d", json.dumps(request()),
         "-z", "60s", "-c", "2", "-O", "json", load_server.address],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        while served(load_server) < before + 20:  # the load is running
            assert process.poll() is None, process.stderr.read()  # type: ignore[union-attr]
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    report = ghz_format.parse(json.loads(out), extra_keys=EXTRA)
    assert report["endReason"] == "cancel"
    assert report["count"] >= 20
    assert set(report["statusCodeDistribution"]) <= {"OK", "Canceled"}


SERVICE = "inference.GRPCInferenceService"
BAD_INPUT = [
    (["--insecure", "--call", CALL, "127.0.0.1:1"], "cannot connect to 127.0.0.1:1"),
    (["--insecure", "--call", "inference.GRPCInferenceService/Nope"], "method named 'Nope'"),
    (["--insecure", "--call", "inference.Nowhere/ModelInfer"], "cannot find service"),
    (["--insecure", "--proto", PROTO, "-i", PROTOS, "--call", f"{SERVICE}.Nope"], "Nope"),
    (["--insecure", "--call", CALL, "-d", '{"model_nam": "x"}'], "has no field named"),
    (["--insecure", "--call", CALL, "-d", '{"inputs": 3}'], "does not match"),
    (["--insecure", "--call", CALL, "-d", '{"id": "{{.Nope}}"}'], "can't evaluate field Nope"),
    (["--insecure", "--call", CALL, "-d", "{oops"], "invalid JSON"),
    (["--insecure", "--call", CALL, "--load-schedule", "step", "--load-start", "10",
      "--load-end", "50", "--load-step", "10"], "load step duration"),
    (["--insecure", "--call", CALL, "--load-schedule", "line", "--load-start", "10",
      "--load-end", "10", "--load-step", "5"], "load start cannot equal load end"),
    (["--insecure", "--call", CALL, "--load-schedule", "step", "--load-start", "10",
      "--load-end", "50", "--load-step-duration", "1s"], "invalid load step"),
    (["--insecure", "--call", CALL, "--load-schedule", "sine"], "--load-schedule"),
    (["--insecure", "--call", CALL, "--concurrency-schedule", "step", "--concurrency-start",
      "1", "--concurrency-end", "5"], "concurrency step duration"),
    (["--insecure", "--call", CALL, "-c", "2", "--connections", "3"], "connections"),
    (["--insecure", "--call", CALL, "-z", "ten seconds"], "--duration"),
    (["--insecure", "--call", CALL, "-n", "-5"], "--total"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), BAD_INPUT)
def test_bad_input_is_one_line_and_sends_nothing(load_server, args, message):
    before = served(load_server)
    target = [] if any(a.startswith("127.0.0.1:") for a in args) else [load_server.address]
    done = load(*args, *target)
    assert done.returncode == 2  # a user error, as for a bad flag
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("forestgate load: error: "), done.stderr
    assert message in lines[0]
    assert served(load_server) == before


def test_config_file_keys_are_flags_and_flags_win(load_server, tmp_path):
    config = tmp_path / "run.json"
    config.write_text(json.dumps({
        "call": CALL, "insecure": True, "host": "127.0.0.1:1", "total": 5000,
        "concurrency": 3, "data": request(), "timeout": "5s", "tags": {"team": "risk"},
    }))  # fmt: skip
    report = load_json_config(config, "-n", "30", load_server.address)
    assert report["count"] == 30 and report["options"]["concurrency"] == 3
    assert report["options"]["timeout"] == 5_000_000_000
    assert report["tags"] == {"team": "risk"}
    assert report["options"]["host"] == load_server.address


def load_json_config(config: Path, *args: str) -> dict:
    done = load("--config", str(config), "-O", "json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize(
    "config", sorted((REPO / "bench" / "ghz").glob("modelinfer-*.json")), ids=lambda p: p.name
)
def test_bench_ghz_configs_run_unchanged(load_server, config):
    report = load_json_config(config, "-n", "60", load_server.address)
    assert report["count"] == 60 and report["statusCodeDistribution"] == {"OK": 60}
    assert report["options"]["call"] == CALL
    ghz_format.parse(report, extra_keys=EXTRA)


def test_csv_and_html_outputs(load_server, tmp_path):
    base = ["--insecure", "--call", CALL, "-d", json.dumps(request()), "-n", "25", "-c", "2"]
    done = load(*base, "-O", "csv", load_server.address)
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "duration (ms),status,error" and len(lines) == 26
    assert all(line.endswith(",OK,") for line in lines[1:])
    page = tmp_path / "report.html"
    done = load(*base, "-O", "html", "-o", str(page), load_server.address)
    assert done.returncode == 0 and done.stdout == ""
    text = page.read_text()
    assert "<svg" in text and "<script" not in text and "http" not in text.split("<svg", 1)[0]


def test_summary_is_ghz_text(load_server):
    done = load("--insecure", "--call", CALL, "-d", json.dumps(request()), "-n", "30", "-c", "3",
                "--name", "smoke", load_server.address)  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert text.startswith("\nSummary:\n  Name:\t\tsmoke\n  Count:\t30\n  Total:\t")
    assert "\nResponse time histogram:\n" in text and "\nLatency distribution:\n  10 % in " in text
    assert "Status code distribution:\n  [OK]   30 responses   \n" in text
    assert text.count("|") == 11
