"""deploy/prometheus: promtool checks the configurations and runs the alerts' unit tests, and
every metric, label and label value an alert names is held to what a live `forestgate serve`
exports on /metrics and to the server's own code (status codes, refusal reasons, buckets)."""

from __future__ import annotations

import re
import shutil
import subprocess
import typing
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from forestgate.protos.forestgate.v1 import scoring_pb2_grpc
from forestgate.protos.inference import grpc_service_pb2 as pb
from forestgate.protos.inference import grpc_service_pb2_grpc as pb_grpc
from forestgate.server.batcher import RejectReason
from forestgate.server.metrics import LATENCY_BUCKETS_S
from forestgate.server.tracing.spans import _SERVER_ERRORS
from tests.server.authorizations import score_request
from tests.server.processes import ServeProcess
from tests.trained import Trained

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not installed (Debian's prometheus package ships it; make test installs it "
    "when run as root)",
)
# Labels Prometheus adds to every scraped series, and those the k8s scrape job adds.
TARGET_LABELS = {"job", "instance", "namespace", "pod", "worker_port"}
SELECTOR = re.compile(r"\b(forestgate_[a-z_]+)\s*(\{[^}]*\})?")
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')
GROUPING = re.compile(r"\b(?:by|on)\s*\(([^)]*)\)")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120, check=False
    )


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


@needs_promtool
def test_promtool_accepts_the_compose_config_and_the_rules():
    for args in (("check", "config", "prometheus.yml"), ("check", "rules", "alerts.yml")):
        done = promtool(*args)
        assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_promtool_accepts_the_kubernetes_config():
    done = promtool("check", "config", "kubernetes.yml")
    if "field kubernetes_sd_configs not found" in done.stderr + done.stdout:
        pytest.skip("this promtool was built without Kubernetes discovery (Debian's is)")
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_every_alert_fires_in_its_unit_tests(tmp_path):
    done = promtool("test", "rules", "alerts_test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert fired == {rule["alert"] for rule in rules()}
    # The tests can fail: a rule with its threshold moved misses the expected alert.
    broken = (PROMETHEUS / "alerts.yml").read_text().replace(") > 0.005", ") > 0.01")
    (tmp_path / "alerts.yml").write_text(broken)
    shutil.copy(PROMETHEUS / "alerts_test.yml", tmp_path)
    done = subprocess.run(
        [PROMTOOL or "", "test", "rules", "alerts_test.yml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode != 0 and "ForestGateLatencyP99OverBudget" in done.stdout + done.stderr


def test_the_rules_count_as_errors_what_the_traces_do():
    (expr,) = (rule["expr"] for rule in rules() if rule["alert"] == "ForestGateErrorRate")
    (codes,) = re.findall(r'code=~"([^"]*)"', expr)
    names = {code.value[0]: code.name for code in grpc.StatusCode}
    assert set(codes.split("|")) == {names[number] for number in _SERVER_ERRORS}


def test_the_latency_budget_is_a_bucket_bound():
    (expr,) = (r["expr"] for r in rules() if r["alert"] == "ForestGateLatencyP99OverBudget")
    (budget,) = re.findall(r"\)\s*>\s*([0-9.]+)", expr)
    assert float(budget) in LATENCY_BUCKETS_S


def test_the_rules_name_only_what_a_live_server_exports(trained: Trained, tmp_path):
    repository = tmp_path / "models"
    shutil.copytree(trained.repository, repository)
    (version,) = (p.name for p in (repository / "approval").iterdir() if p.is_dir())
    # A version in the wrong directory fails its load: forestgate_model_load_failed has a sample.
    shutil.copytree(repository / "approval" / version, repository / "approval" / "99")
    server = ServeProcess(repository)
    try:
        server.wait_ready()
        _traffic(server.address)
        series = _exported(server.metrics_ports[0])
    finally:
        assert server.stop() == 0
    assert series["forestgate_model_load_failed"] == [{"model": "approval", "version": "99"}]
    for rule in rules():
        _check_expression(rule["alert"], rule["expr"], series)


def _traffic(address: str) -> None:
    """A Score, a ModelInfer, and a ModelInfer of the wrong width (a refusal, reason invalid)."""
    with grpc.insecure_channel(address) as channel:
        assert scoring_pb2_grpc.ScoringStub(channel).Score(score_request(), timeout=10).routes
        infer = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer
        for width in (_width(channel), 1):
            request = pb.ModelInferRequest(model_name="approval")
            request.inputs.add(name="input__0", datatype="FP32", shape=[1, width])
            request.raw_input_contents.append(np.zeros((1, width), np.float32).tobytes())
            try:
                infer(request, timeout=10)
            except grpc.RpcError as exc:
                assert width == 1 and exc.code() == grpc.StatusCode.INVALID_ARGUMENT


def _width(channel: grpc.Channel) -> int:
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    metadata = stub.ModelMetadata(pb.ModelMetadataRequest(name="approval"), timeout=10)
    return int(metadata.inputs[0].shape[-1])


def _exported(port: int) -> dict[str, list[dict[str, str]]]:
    """Sample name (with _total, _bucket, _count, _sum) -> the label sets of its samples."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    series: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            series.setdefault(sample.name, []).append(dict(sample.labels))
    return series


def _check_expression(alert: str, expr: str, series: dict[str, list[dict[str, str]]]) -> None:
    named = SELECTOR.findall(expr)
    assert named or expr.startswith("up{"), f"{alert}: names no forestgate metric"
    for name, braces in named:
        assert name in series, f"{alert}: {name} is not exported"
        labels = {key for labelset in series[name] for key in labelset}
        for key, _op, value in MATCHER.findall(braces):
            assert key in labels, f"{alert}: {name} has no label {key}"
            _check_values(alert, name, key, value.split("|"), series)
        for grouping in GROUPING.findall(expr):
            keys = {key.strip() for key in grouping.split(",")} - TARGET_LABELS - {"le"}
            exported = {key for n, _ in named for labelset in series[n] for key in labelset}
            assert keys <= exported, f"{alert}: groups by {keys - exported}, not exported"


def _check_values(
    alert: str, name: str, key: str, values: list[str], series: dict[str, list[dict[str, str]]]
) -> None:
    known = {
        "code": {code.name for code in grpc.StatusCode},
        "reason": set(typing.get_args(RejectReason)),
    }.get(key, {labelset[key] for labelset in series[name]})
    assert set(values) <= known, f"{alert}: {name}{{{key}}} never is {set(values) - known}"
