"""`forestgate serve` as a process: start-up, metrics scrape, SIGTERM drain, workers, reloads."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from forestgate.protos.inference import grpc_service_pb2 as pb
from forestgate.protos.inference import grpc_service_pb2_grpc as pb_grpc
from tests.server.conftest import rows
from tests.server.processes import FORESTGATE


def _request(x: np.ndarray, model: str = "fraud", version: str = "") -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model, model_version=version)
    request.inputs.add(name="input__0", datatype="FP32", shape=list(x.shape))
    request.raw_input_contents.append(x.tobytes())
    return request


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def _sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        head = line.split("{", 1)[0].split(" ", 1)[0]
        if head == name and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} {labels} not in metrics")


def test_metrics_endpoint_counts_what_was_served(serving):
    server = serving()
    server.wait_ready()
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        for i in range(7):
            stub.ModelInfer(_request(rows(1 + i)), timeout=10)
        with pytest.raises(grpc.RpcError):
            stub.ModelInfer(_request(rows(1), model="nope"), timeout=10)
    text = _scrape(server.metrics_ports[0])
    assert _sample(text, "forestgate_requests_total", method="ModelInfer", code="OK") == 7
    assert _sample(text, "forestgate_requests_total", method="ModelInfer", code="NOT_FOUND") == 1
    assert _sample(text, "forestgate_request_latency_seconds_count", method="ModelInfer") == 8
    assert _sample(text, "forestgate_batch_rows_sum", model="fraud") == sum(range(1, 8))
    assert _sample(text, "forestgate_compute_seconds_count", model="fraud") >= 1
    assert _sample(text, "forestgate_queue_wait_seconds_count", model="fraud") == 7
    assert _sample(text, "forestgate_model_loaded", model="fraud", version="2") == 1
    assert _sample(text, "forestgate_queue_rows", model="fraud") == 0
    assert server.stop() == 0


def test_sigterm_goes_not_serving_refuses_new_calls_and_exits_zero(serving):
    server = serving("--grace-period-s", "1")
    server.wait_ready()
    watched: list[int] = []

    async def scenario() -> object:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            health = health_pb2_grpc.HealthStub(channel)
            watch = health.Watch(health_pb2.HealthCheckRequest(service=""))

            async def follow() -> None:
                with contextlib.suppress(grpc.aio.AioRpcError):
                    async for reply in watch:
                        watched.append(reply.status)

            follower = asyncio.create_task(follow())
            assert (await stub.ModelInfer(_request(rows(2)), timeout=10)).raw_output_contents
            server.proc.send_signal(signal.SIGTERM)
            # Health goes NOT_SERVING once the drain has begun; only then must calls be refused.
            deadline = time.monotonic() + 30
            while health_pb2.HealthCheckResponse.NOT_SERVING not in watched:
                assert time.monotonic() < deadline, f"no NOT_SERVING after SIGTERM: {watched}"
                await asyncio.sleep(0.01)
            late = await asyncio.gather(
                stub.ModelInfer(_request(rows(1)), timeout=5), return_exceptions=True
            )
            await follower
            return late[0]

    late = asyncio.run(scenario())
    assert isinstance(late, grpc.aio.AioRpcError)
    assert late.code() == grpc.StatusCode.UNAVAILABLE
    assert server.wait_exit() == 0
    assert watched == [health_pb2.HealthCheckResponse.SERVING,
                       health_pb2.HealthCheckResponse.NOT_SERVING]  # fmt: skip
    assert any(line["msg"] == "stopped cleanly" for line in server.lines)


def test_second_signal_exits_at_once(serving):
    # An open health Watch keeps the graceful stop waiting for its 30 s grace period.
    server = serving("--grace-period-s", "30")
    server.wait_ready()

    async def scenario() -> None:
        async with grpc.aio.insecure_channel(server.address) as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
            await watch.read()
            server.proc.send_signal(signal.SIGTERM)
            while not server.logged("draining"):
                await asyncio.sleep(0.01)
            assert server.proc.poll() is None, "still inside its grace period"
            server.proc.send_signal(signal.SIGTERM)
            watch.cancel()

    asyncio.run(scenario())
    # Well inside the 30 s grace period that the first signal started.
    assert server.wait_exit(10) == 1
    assert server.logged("second signal: exiting at once")
    assert not server.logged("stopped cleanly")


def test_workers_share_the_port(serving):
    server = serving("--workers", "2", "--port", "0", "--metrics-port", "-1")
    server.wait_ready(workers=2)
    port = server.ports[0]
    assert server.ports == [port, port]  # port 0 resolved once, in the parent, for both
    pids = {line["pid"] for line in server.lines if "listening" in str(line["msg"])}
    assert len(pids) == 2
    for _ in range(4):  # a new channel is a new connection, balanced by the kernel
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
                _request(rows(1)), timeout=10
            )
            assert len(reply.raw_output_contents[0]) == 4
    assert server.stop() == 0


def test_reload_under_load_fails_no_request(serving, model_repository, tmp_path):
    repository = tmp_path / "repo"
    shutil.copytree(model_repository, repository)
    server = serving(repository=repository)
    server.wait_ready()
    stop = threading.Event()
    outcomes: list[object] = []

    def hammer() -> None:
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            while not stop.is_set():
                try:
                    reply = stub.ModelInfer(_request(rows(3)), timeout=10)
                    outcomes.append(reply.model_version)
                except grpc.RpcError as exc:
                    outcomes.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            for round_ in range(6):
                if round_ == 3:  # a new version appears on disk and becomes the latest
                    _compile_fraud_version(repository, "3")
                stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="fraud"))
                time.sleep(0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    failures = [o for o in outcomes if isinstance(o, Exception)]
    assert not failures, failures[:3]
    assert len(outcomes) > 50
    assert outcomes[-1] == "3"
    assert server.stop() == 0


def _compile_fraud_version(repository: Path, version: str) -> None:
    import xgboost

    from forestgate.compiler.pipeline import compile_model

    x = rows(500, seed=5)
    y = (np.nan_to_num(x[:, 0]) > 0).astype(int)
    model = xgboost.XGBClassifier(n_estimators=4, max_depth=2, nthread=1).fit(x, y)
    compile_model(model, name="fraud", version=version, repository=repository)


def test_bundle_in_the_wrong_directory_is_refused(serving, model_repository, tmp_path):
    repository = tmp_path / "repo"
    shutil.copytree(model_repository, repository)
    shutil.copytree(repository / "fraud" / "2", repository / "fraud" / "5")
    server = serving(repository=repository)
    server.wait_ready()
    errors = [str(line["msg"]) for line in server.lines if line["level"] == "ERROR"]
    assert any("manifest is for fraud/2" in e and "fraud/5" in e for e in errors), errors
    with grpc.insecure_channel(server.address) as channel:
        reply = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(_request(rows(1)), timeout=9)
    assert reply.model_version == "2"
    assert server.stop() == 0


def test_bad_bundle_is_skipped_and_reported(serving, model_repository, tmp_path):
    repository = tmp_path / "repo"
    shutil.copytree(model_repository, repository)
    library = next((repository / "classes" / "1").glob("*.so"))
    data = bytearray(library.read_bytes())
    data[len(data) // 2] ^= 0xFF
    library.write_bytes(bytes(data))
    server = serving(repository=repository)
    server.wait_ready()
    errors = [line for line in server.lines if line["level"] == "ERROR"]
    assert any("classes" in str(e["msg"]) and "sha256" in str(e["msg"]) for e in errors)
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        index = stub.RepositoryIndex(pb.RepositoryIndexRequest())
        states = {(m.name, m.version): (m.state, m.reason) for m in index.models}
        assert states[("fraud", "2")][0] == "READY"
        assert states[("classes", "1")][0] == "UNAVAILABLE"
        assert "sha256" in states[("classes", "1")][1]
        assert stub.ModelInfer(_request(rows(1)), timeout=10).raw_output_contents
    assert server.stop() == 0


def test_invalid_setting_fails_at_start_naming_it(model_repository):
    result = subprocess.run(
        [FORESTGATE, "serve", "--model-repository", str(model_repository), "--max-batch-rows",
         "0"], capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "max_batch_rows" in result.stderr
    env_result = subprocess.run(
        [FORESTGATE, "serve", "--model-repository", str(model_repository)],
        capture_output=True, text=True, timeout=60, check=False,
        env={"FORESTGATE_PORT": "http", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert env_result.returncode == 2
    assert "FORESTGATE_PORT" in env_result.stderr
