"""CompiledModel: input checks, output shapes, thread safety, lifecycle, and refusing bundles whose
library, manifest or self-check rows were changed after compilation."""

from __future__ import annotations

import base64
import ctypes
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from forestgate.compiler import codegen
from forestgate.compiler.pipeline import SELF_CHECK_ROWS
from forestgate.engine.model import CompiledModel
from forestgate.errors import BundleError, InvalidInput
from tests.sources import NUM_CLASSES, NUM_FEATURES, Calibrated, Case

F = NUM_FEATURES


def batch(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, F)).astype(np.float32)
    x[rng.random(x.shape) < 0.05] = np.nan
    return x


@pytest.fixture(scope="module")
def binary(compiled_case: Callable[[str], Case]) -> CompiledModel:
    return compiled_case("xgboost-json").compiled


# --- input checks -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        (batch(4).astype(np.float64), "expected dtype float32, got float64"),
        (batch(4).astype(np.float16), "expected dtype float32, got float16"),
        (batch(4).tolist(), "expected a numpy array, got list"),
        (batch(1)[0], rf"expected shape \[n, {F}\], got \[{F}\]"),
        (batch(4).reshape(2, 2, F), rf"expected shape \[n, {F}\], got \[2, 2, {F}\]"),
        (batch(4)[:, : F - 1].copy(), f"expected {F} features per row, got {F - 1}"),
        (np.zeros((4, F + 1), np.float32), f"expected {F} features per row, got {F + 1}"),
        (np.zeros((0, F), np.float32), "expected at least one row, got 0"),
        (np.asfortranarray(batch(4)), "expected a C-contiguous array"),
        (np.zeros((4, 2 * F), np.float32)[:, ::2], "expected a C-contiguous array"),
    ],
    ids=[
        "float64",
        "float16",
        "list",
        "1-d",
        "3-d",
        "too-few",
        "too-many",
        "empty",
        "fortran",
        "strided",
    ],
)
def test_bad_input_is_refused_naming_what_was_expected(
    binary: CompiledModel, x: Any, expected: str
) -> None:
    with pytest.raises(InvalidInput, match=f"^input: {expected}"):
        binary.predict(x)


@pytest.mark.parametrize(
    "out",
    [
        np.empty(5, np.float32),
        np.empty((4, 1), np.float32),
        np.empty(4, np.float64),
        np.empty(8, np.float32)[::2],
    ],
    ids=["short", "2-d", "float64", "strided"],
)
def test_bad_out_is_refused_naming_the_expected_shape(
    binary: CompiledModel, out: np.ndarray
) -> None:
    with pytest.raises(InvalidInput, match=r"^out: expected a C-contiguous float32 array .*\[4\]"):
        binary.predict(batch(4), out=out)


def test_out_is_filled_in_place(binary: CompiledModel) -> None:
    x = batch(6)
    out = np.full(6, -1.0, np.float32)
    assert binary.predict(x, out=out) is out
    np.testing.assert_array_equal(out, binary.predict(x))
    assert ((out > 0) & (out < 1)).all()


# --- output shapes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recipe_id", "width"),
    [
        ("xgboost-json", None),
        ("lightgbm-multiclass", NUM_CLASSES),
        ("xgboost-multiclass", NUM_CLASSES),
        ("sklearn-RandomForestClassifier-multiclass", NUM_CLASSES),
        ("sklearn-GradientBoostingRegressor-regression", None),
        ("lightgbm-regressor", None),
    ],
)
def test_output_shape_is_n_or_n_by_classes(
    compiled_case: Callable[[str], Case], recipe_id: str, width: int | None
) -> None:
    model = compiled_case(recipe_id).compiled
    got = model.predict(batch(5))
    assert got.dtype == np.float32
    assert got.shape == ((5,) if width is None else (5, width))
    assert model.output_shape == ([-1] if width is None else [-1, width])
    assert list(model.manifest.output.shape) == model.output_shape
    if compiled_case(recipe_id).task == "multiclass":
        np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-5)


def test_rows_are_scored_independently_of_their_batch(case: Case) -> None:
    """The shim scores blocks of BLOCK_ROWS rows unit by unit; these rows span two full blocks
    and a partial one, and every output must be bit-for-bit the row's own."""
    model = case.compiled
    library = ctypes.CDLL(str(case.bundle_dir / model.manifest.library.file))
    assert library.forestgate_block_rows() == codegen.BLOCK_ROWS  # the blocked path is in use
    n = 2 * codegen.BLOCK_ROWS + 9
    x = batch(n, seed=3)
    whole = model.predict(x)
    one_by_one = np.concatenate([model.predict(x[i : i + 1]) for i in range(n)])
    np.testing.assert_array_equal(whole, one_by_one)


def test_self_check_passes_for_every_source(case: Case) -> None:
    assert case.compiled.self_check() == SELF_CHECK_ROWS


# --- threads and lifecycle ----------------------------------------------------------------------


def test_concurrent_predicts_match_sequential(binary: CompiledModel) -> None:
    batches = [batch(50_000, seed=s) for s in range(4)]
    sequential = [binary.predict(x) for x in batches]
    start = threading.Barrier(4)
    results: dict[int, list[np.ndarray]] = {i: [] for i in range(4)}

    def score(i: int) -> None:
        start.wait()
        for _ in range(10):
            results[i].append(binary.predict(batches[i]))

    threads = [threading.Thread(target=score, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        assert len(results[i]) == 10
        for got in results[i]:
            np.testing.assert_array_equal(got, sequential[i])


def test_predict_after_close_is_refused(reference_bundle: Path) -> None:
    model = CompiledModel.open(reference_bundle)
    model.predict(batch(2))
    model.close()
    with pytest.raises(BundleError, match="model is closed"):
        model.predict(batch(2))


def test_close_waits_for_a_call_in_flight(reference_bundle: Path) -> None:
    x = batch(2_000_000, seed=1)  # ~40 ms of native work
    expected = CompiledModel.open(reference_bundle).predict(x)
    for _attempt in range(5):
        model = CompiledModel.open(reference_bundle)
        out = np.full(len(x), np.nan, dtype=np.float32)
        worker = threading.Thread(target=model.predict, args=(x,), kwargs={"out": out})
        worker.start()
        # The lifecycle counter is the only sign that the native call has started.
        while model._in_flight == 0 and worker.is_alive():
            time.sleep(0)
        if model._in_flight == 0:
            worker.join()
            continue  # the call finished before it was seen in flight; try again
        model.close()
        written_when_closed = out.copy()  # the native call fills `out` row by row
        worker.join()
        np.testing.assert_array_equal(written_when_closed, expected)
        with pytest.raises(BundleError, match="model is closed"):
            model.predict(x[:1])
        return
    pytest.fail("never caught a predict call in flight")


# --- refusing changed bundles -------------------------------------------------------------------


def edit_manifest(bundle: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


def test_the_copy_opens_before_it_is_damaged(bundle_copy: Path) -> None:
    model = CompiledModel.open(bundle_copy)
    assert model.self_check() == SELF_CHECK_ROWS


def test_changed_library_is_refused_by_its_hash(bundle_copy: Path) -> None:
    library = next(bundle_copy.glob("*.so"))
    data = bytearray(library.read_bytes())
    data[len(data) // 2] ^= 0xFF
    library.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=rf"{library.name}: sha256 .* does not match"):
        CompiledModel.open(bundle_copy)


def test_missing_library_is_refused(bundle_copy: Path) -> None:
    library = next(bundle_copy.glob("*.so"))
    library.unlink()
    with pytest.raises(BundleError, match=rf"{library.name}: library named in the manifest"):
        CompiledModel.open(bundle_copy)


def _delete(*path: str | int) -> Callable[[dict[str, Any]], None]:
    def edit(m: dict[str, Any]) -> None:
        for key in path[:-1]:
            m = m[key]
        del m[path[-1]]

    return edit


def _set(value: Any, *path: str | int) -> Callable[[dict[str, Any]], None]:
    def edit(m: dict[str, Any]) -> None:
        for key in path[:-1]:
            m = m[key]
        m[path[-1]] = value

    return edit


def _drop_last_feature(m: dict[str, Any]) -> None:
    m["features"].pop()
    del m["num_features"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set(F + 1, "num_features"), f"field 'num_features' is {F + 1}, expected {F}, the"),
        (_delete("task"), "field 'task' is missing"),
        (_delete("library"), "field 'library' is missing"),
        (_delete("library", "sha256"), "field 'library.sha256' is missing"),
        (_set("forestgate.bundle/2", "format"), "field 'format' is 'forestgate.bundle/2'"),
        (_set("ranking", "task"), "field 'task' is 'ranking'"),
        (_set("../evil.so", "library", "file"), "'library.file' is '../evil.so', expected a"),
        (_set([], "features"), r"field 'features' is \[\], expected at least one feature"),
        (_set(False, "verification", "passed"), "bundle failed verification"),
        (_set("0" * 64, "library", "sha256"), "does not match the manifest's 00000000"),
        (_drop_last_feature, f"library takes {F} features, manifest lists {F - 1}"),
        (
            _set(3, "library", "outputs_per_row"),
            "library writes 1 outputs per row, manifest says 3",
        ),
    ],
    ids=[
        "num_features",
        "no-task",
        "no-library",
        "no-sha256",
        "format",
        "task",
        "library-path",
        "no-features",
        "not-verified",
        "sha256",
        "feature-count",
        "outputs",
    ],
)
def test_changed_manifest_is_refused_naming_the_field(
    bundle_copy: Path, edit: Callable[[dict[str, Any]], None], message: str
) -> None:
    edit_manifest(bundle_copy, edit)
    with pytest.raises(BundleError, match=message) as raised:
        CompiledModel.open(bundle_copy)
    assert str(bundle_copy) in str(raised.value)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set("spline", "calibration", "method"), "field 'calibration.method' is 'spline'"),
        (_set([0.5, 0.4], "calibration", "x"), "field 'calibration.x' has 2 breakpoints but"),
        (_set([1.0, 0.0], "calibration", "y"), "but 'calibration.y' has 2; they must have"),
        (lambda m: m["calibration"]["y"].reverse(), "field 'calibration.y' is decreasing"),
        (_delete("calibration", "y"), "field 'calibration.y' is missing"),
        (_set("binary", "calibration"), "field 'calibration' must be an object or null"),
        (_set("regression", "task"), "field 'calibration' is set, but task is 'regression'"),
        (_set(0, "reference", "score", "count"), "field 'reference.score.count' is 0"),
        (_set("amount", "reference", "features", 0, "name"), "field 'reference.features' names"),
        (_set([0.5], "training_metrics"), "'training_metrics' is [0.5], expected an object"),
    ],
    ids=[
        "method", "x-length", "y-length", "y-decreasing", "no-y", "not-object", "task",
        "reference-count", "reference-names", "metrics",
    ],
)  # fmt: skip
def test_changed_calibration_or_reference_is_refused_naming_the_field(
    calibrated_copy: Path, edit: Callable[[dict[str, Any]], None], message: str
) -> None:
    edit_manifest(calibrated_copy, edit)
    with pytest.raises(BundleError, match=re.escape(message)) as raised:
        CompiledModel.open(calibrated_copy)
    assert str(calibrated_copy / "manifest.json") in str(raised.value)


def test_the_calibrated_copy_opens_before_it_is_damaged(calibrated_copy: Path) -> None:
    model = CompiledModel.open(calibrated_copy)
    assert model.calibration is not None and model.self_check() == SELF_CHECK_ROWS


def test_bundle_written_before_these_fields_existed_still_opens(bundle_copy: Path) -> None:
    edit_manifest(bundle_copy, _delete("calibration"))
    edit_manifest(bundle_copy, _delete("reference"))
    edit_manifest(bundle_copy, _delete("training_metrics"))
    assert "calibration" not in (bundle_copy / "manifest.json").read_text()
    model = CompiledModel.open(bundle_copy)
    assert model.calibration is None and model.manifest.reference is None
    assert model.self_check() == SELF_CHECK_ROWS


def test_manifest_that_is_not_json_is_refused(bundle_copy: Path) -> None:
    path = bundle_copy / "manifest.json"
    path.write_text(path.read_text()[:-20])
    with pytest.raises(BundleError, match=r"manifest.json: manifest is not valid JSON"):
        CompiledModel.open(bundle_copy)


def test_directory_without_manifest_is_refused(bundle_copy: Path) -> None:
    (bundle_copy / "manifest.json").unlink()
    with pytest.raises(BundleError, match=r"manifest.json: no manifest \(not a ForestGate bundle"):
        CompiledModel.open(bundle_copy)


def _change_stored_output(m: dict[str, Any]) -> None:
    check = m["verification"]["self_check"]
    out = np.frombuffer(base64.b64decode(check["output_f32_b64"]), dtype=np.float32).copy()
    out[3] += 0.25
    check["output_f32_b64"] = base64.b64encode(out.tobytes()).decode()


def _change_stored_input(m: dict[str, Any]) -> None:
    check = m["verification"]["self_check"]
    x = np.frombuffer(base64.b64decode(check["input_f32_b64"]), dtype=np.float32).copy()
    x[:] = 0.5  # every stored row becomes the same ordinary row
    check["input_f32_b64"] = base64.b64encode(x.tobytes()).decode()


@pytest.mark.parametrize(
    "edit", [_change_stored_output, _change_stored_input], ids=["output", "input"]
)
def test_changed_self_check_rows_are_refused_by_the_self_check(
    bundle_copy: Path, edit: Callable[[dict[str, Any]], None]
) -> None:
    edit_manifest(bundle_copy, edit)
    model = CompiledModel.open(bundle_copy)  # the manifest is still well-formed
    with pytest.raises(BundleError, match="library output differs from the manifest's self-che"):
        model.self_check()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set(9, "verification", "self_check", "rows"), "56 inputs and 8 outputs, not whole rows"),
        (_set("@@@", "verification", "self_check", "output_f32_b64"), "malformed (not base64"),
        (_set("AAAA", "verification", "self_check", "input_f32_b64"), "not whole float32 values"),
        (_delete("verification", "self_check"), "'verification.self_check' is missing"),
    ],
    ids=["row-count", "base64", "short-input", "missing"],
)
def test_malformed_self_check_rows_are_refused_when_the_manifest_is_read(
    bundle_copy: Path, edit: Callable[[dict[str, Any]], None], message: str
) -> None:
    edit_manifest(bundle_copy, edit)
    with pytest.raises(BundleError, match=re.escape(message)) as raised:
        CompiledModel.open(bundle_copy)
    assert "verification.self_check" in str(raised.value)


# --- import boundary ----------------------------------------------------------------------------

TRAINING_STACK = ("xgboost", "lightgbm", "sklearn", "treelite", "tl2cgen")


def loaded_modules(code: str) -> set[str]:
    """Top-level modules a fresh interpreter has loaded after running `code`."""
    probe = (
        f"import sys\n{code}\nprint('modules:', *sorted({{m.split('.')[0] for m in sys.modules}}))"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    last = run.stdout.splitlines()[-1].split()
    assert last[0] == "modules:", run.stdout
    return set(last[1:])


def test_runtime_import_loads_no_training_stack() -> None:
    loaded = loaded_modules("import forestgate.engine.model")
    assert "numpy" in loaded  # the probe sees what the import brought in
    assert loaded.isdisjoint(TRAINING_STACK), sorted(loaded & set(TRAINING_STACK))


def test_inspect_command_loads_no_training_stack(reference_bundle: Path) -> None:
    loaded = loaded_modules(
        f"from forestgate.cli import main\nassert main(['inspect', {str(reference_bundle)!r}]) == 0"
    )
    assert loaded.isdisjoint(TRAINING_STACK), sorted(loaded & set(TRAINING_STACK))


def test_calibrated_bundle_is_read_without_the_training_stack(calibrated: Calibrated) -> None:
    loaded = loaded_modules(
        "from forestgate.cli import main\n"
        f"assert main(['inspect', {str(calibrated.bundle_dir)!r}]) == 0\n"
        "from forestgate.engine.model import CompiledModel\n"
        f"m = CompiledModel.open({str(calibrated.bundle_dir)!r})\n"
        "import numpy as np\n"
        f"m.predict_calibrated(np.zeros((2, {F}), np.float32))"
    )
    assert loaded.isdisjoint(TRAINING_STACK), sorted(loaded & set(TRAINING_STACK))


def test_import_probe_sees_the_training_stack_when_it_is_loaded() -> None:
    """The probe itself can fail: the compiler pipeline does load the stack."""
    assert {"treelite", "tl2cgen"} <= loaded_modules("import forestgate.compiler.pipeline")
