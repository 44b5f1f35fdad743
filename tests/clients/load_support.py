"""Support for `forestgate load` tests: a small bundle named `approval` with the approval model's
51 features (the model `make run` serves, so bench/ghz configs run unchanged), a live server on
127.0.0.1:0 in this process, and helpers to run the installed command."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from forestgate.payments.features import APPROVAL_FEATURES
from tests.server.conftest import LiveServer, _serve

FORESTGATE = str(Path(sys.executable).with_name("forestgate"))
REPO = Path(__file__).resolve().parents[2]
PROTO = str(REPO / "protos" / "inference" / "grpc_service.proto")
# It imports inference/model_config.proto (Triton's layout): the import path is protos/.
PROTOS = str(REPO / "protos")
CALL = "inference.GRPCInferenceService/ModelInfer"
NUM_FEATURES = len(APPROVAL_FEATURES)


def compile_demo(root: Path) -> Path:
    """A small XGBoost classifier on the approval features, compiled as approval/1 under root."""
    import xgboost

    from forestgate.compiler.pipeline import compile_model

    rng = np.random.default_rng(7)
    x = rng.normal(size=(400, NUM_FEATURES)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    model = xgboost.XGBClassifier(n_estimators=3, max_depth=2, nthread=1).fit(x, y)
    model.get_booster().feature_names = list(APPROVAL_FEATURES)
    compile_model(model, name="approval", version="1", repository=root)
    return root


def serve_demo(root: Path) -> Iterator[LiveServer]:
    """A live server on 127.0.0.1:0 (in this process) serving the demo model."""
    yield from _serve(compile_demo(root))


def request(rows: int = 1, model: str = "approval", **extra: Any) -> dict[str, Any]:
    """A ModelInfer request as ghz JSON data: typed fp32 contents (bytes would be base64)."""
    values = [0.25 * (i % 7) for i in range(rows * NUM_FEATURES)]
    return {
        "model_name": model,
        **extra,
        "inputs": [
            {
                "name": "input__0",
                "datatype": "FP32",
                "shape": [rows, NUM_FEATURES],
                "contents": {"fp32_contents": values},
            }
        ],
    }


def load(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`forestgate load ARGS` as a subprocess; the timeout only guards a hung run."""
    return subprocess.run(
        [FORESTGATE, "load", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def load_json(target: str, *args: str, data: Any = None) -> dict[str, Any]:
    """A run through server reflection with -O json; fails the test on a non-zero exit."""
    body = json.dumps(request() if data is None else data)
    done = load("--insecure", "--call", CALL, "-d", body, "-O", "json", *args, target)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def served(server: LiveServer) -> int:
    """ModelInfer calls the server has answered, whatever their status."""
    stats = server.running.metrics.methods.get("ModelInfer")  # type: ignore[attr-defined]
    return 0 if stats is None else sum(stats.codes.values())
