"""compile_model: what a verified bundle records, how options resolve, and that a failure at any
stage (options, verification, the C build) raises and leaves nothing in the repository."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from forestgate.compiler.codegen import CompileOptions, resolve_options
from forestgate.compiler.pipeline import compile_model
from forestgate.engine.calibration import Calibration
from forestgate.engine.manifest import Manifest, ModelStats
from forestgate.engine.model import CompiledModel
from forestgate.engine.reference import Reference
from forestgate.errors import BundleError, CompileError, InvalidInput, VerificationError
from tests.sources import NUM_FEATURES, Calibrated, Case, Rows


def everything_under(repository: Path) -> list[str]:
    if not repository.exists():
        return []
    return sorted(str(p.relative_to(repository)) for p in repository.rglob("*"))


@pytest.fixture(scope="module")
def good_file(compiled_case: Callable[[str], Case]) -> Path:
    return Path(compiled_case("xgboost-json").trained.model)


def test_manifest_records_source_library_and_verification(case: Case) -> None:
    manifest = case.compiled.manifest
    library = case.bundle_dir / manifest.library.file
    digest = hashlib.sha256(library.read_bytes()).hexdigest()
    assert manifest.library.sha256 == digest
    assert manifest.library.file == f"{case.id}-1-{digest[:12]}.so"
    assert sorted(p.name for p in case.bundle_dir.iterdir()) == sorted(
        [library.name, "manifest.json"]
    )
    assert manifest.task == case.task
    assert manifest.source.framework == case.recipe.framework
    if isinstance(case.trained.model, Path):
        assert manifest.source.file == case.trained.model.name
        source_digest = hashlib.sha256(case.trained.model.read_bytes()).hexdigest()
        assert manifest.source.file_sha256 == source_digest
    else:
        assert manifest.source.file is None
    assert manifest.verification.passed is True
    assert manifest.verification.max_abs_diff <= 1e-5
    # Treelite stores XGBoost thresholds as float32, LightGBM and scikit-learn ones as float64;
    # "auto" quantizes only large float64 models (bench/results/engine.md), and these are small.
    float64 = case.recipe.framework != "xgboost"
    assert manifest.model_stats.threshold_type == ("float64" if float64 else "float32")
    assert manifest.compiler.resolved.quantize is False


def test_verification_failure_raises_with_worst_rows_and_writes_nothing(
    zero_split_case: Case, tmp_path: Path
) -> None:
    """A real failure, not a fake: sample rows at exactly -1e-35 meet the known LightGBM
    divergence (test_differential.test_lightgbm_zero_threshold_divergence)."""
    sample = np.full((3, NUM_FEATURES), 0.25, dtype=np.float32)
    sample[:, 2] = np.float32(-1e-35)
    repository = tmp_path / "repository"
    with pytest.raises(VerificationError, match=r"differ from lightgbm on 3 of \d+ rows") as err:
        compile_model(
            zero_split_case.trained.model,
            name="zero",
            version="1",
            repository=repository,
            sample=sample,
        )
    first, *worst = err.value.report.splitlines()
    total = int(re.match(r"verification FAILED: (\d+) rows, ", first).group(1))
    assert "3 rows over atol=1e-05 + rtol=1e-05 * |source|" in first
    assert len(worst) == 5
    listed = {int(re.match(r"  row (\d+): compiled ", line).group(1)) for line in worst}
    assert {total - 3, total - 2, total - 1} <= listed  # the sample rows come last
    assert everything_under(repository) == ["zero"]  # the parent stays, empty


def test_failed_c_build_writes_nothing(good_file: Path, tmp_path: Path) -> None:
    # `false` exists and exits non-zero: the toolchain check passes, the build itself fails.
    repository = tmp_path / "repository"
    with pytest.raises(CompileError, match=r"^tl2cgen/false: compilation failed \(.+\)$"):
        compile_model(
            good_file,
            name="m",
            version="1",
            repository=repository,
            options=CompileOptions(toolchain="false"),
        )
    assert everything_under(repository) == ["m"]


def test_existing_version_is_kept_and_overwrite_replaces_it(
    compiled_case: Callable[[str], Case], good_file: Path, tmp_path: Path
) -> None:
    first = compile_model(good_file, name="m", version="1", repository=tmp_path)
    library = first.bundle_dir / first.manifest.library.file
    with pytest.raises(CompileError, match=r"m/1: bundle already exists"):
        compile_model(good_file, name="m", version="1", repository=tmp_path)
    assert everything_under(tmp_path) == ["m", "m/1", f"m/1/{library.name}", "m/1/manifest.json"]
    other = compiled_case("lightgbm-text").trained.model
    second = compile_model(other, name="m", version="1", repository=tmp_path, overwrite=True)
    new_library = second.manifest.library.file
    assert new_library != library.name
    assert everything_under(tmp_path) == ["m", "m/1", f"m/1/{new_library}", "m/1/manifest.json"]
    assert CompiledModel.open(second.bundle_dir).manifest.source.framework == "lightgbm"


def test_options_and_sample_rows_are_used_and_recorded(
    compiled_case: Callable[[str], Case], tmp_path: Path
) -> None:
    source = compiled_case("lightgbm-multiclass")
    sample = np.random.default_rng(2).normal(size=(300, NUM_FEATURES)).astype(np.float32)
    options = CompileOptions(
        parallel_comp=3, quantize="off", opt_level="O1", nthread=1, annotate=True
    )
    result = compile_model(
        source.trained.model,
        name="tuned",
        version="1",
        repository=tmp_path,
        options=options,
        sample=sample,
    )
    resolved = asdict(result.manifest.compiler.resolved)
    assert resolved == {
        "parallel_comp": 3,
        "quantize": False,
        "opt_level": "O1",
        "nthread": 1,
        "toolchain": "gcc",
        "annotate": True,
    }
    # The sample rows were verified on top of the threshold sample.
    assert result.verification.rows == source.compiled.manifest.verification.rows + 300
    tuned = CompiledModel.open(result.bundle_dir)
    np.testing.assert_allclose(tuned.predict(sample), source.compiled.predict(sample), atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"parallel_comp": -1}, "parallel_comp must be >= 0, got -1"),
        ({"quantize": "maybe"}, "quantize must be auto, on or off, got 'maybe'"),
        ({"opt_level": "O9"}, "opt_level must be one of"),
        ({"nthread": -2}, "nthread must be >= 0, got -2"),
    ],
)
def test_bad_compile_options_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(CompileError, match=re.escape(message)):
        CompileOptions(**kwargs)


def test_auto_options_follow_model_size() -> None:
    def stats(nodes: int, threshold_type: str) -> ModelStats:
        return ModelStats(
            num_trees=10,
            num_nodes=nodes,
            max_depth=6,
            num_features=7,
            threshold_type=threshold_type,
            leaf_output_type=threshold_type,
        )

    small = resolve_options(CompileOptions(nthread=2), stats(1_000, "float32"))
    large = resolve_options(CompileOptions(nthread=2), stats(200_000, "float64"))
    assert (small.parallel_comp, small.opt_level, small.quantize) == (2, "Os", False)
    assert (large.parallel_comp, large.opt_level, large.quantize) == (32, "Os", True)
    middle = resolve_options(CompileOptions(), stats(25_001, "float32"))
    assert (middle.parallel_comp, middle.opt_level, middle.quantize) == (12, "Os", False)
    # quantize is for large float64 models only: never float32 (XGBoost), never small ones
    big_f32 = resolve_options(CompileOptions(), stats(200_000, "float32"))
    small_f64 = resolve_options(CompileOptions(), stats(1_000, "float64"))
    assert (big_f32.quantize, small_f64.quantize) == (False, False)


@pytest.mark.parametrize(
    ("name", "version", "message"),
    [
        ("../escape", "1", "model name '../escape' must be"),
        (".hidden", "1", "model name '.hidden' must be"),
        ("m", "", "model version '' must be"),
        ("m", "..", "model version '..' must be"),
        ("m", "1/2", "model version '1/2' must be"),
    ],
)
def test_names_that_are_not_safe_directory_names_are_refused(
    good_file: Path, tmp_path: Path, name: str, version: str, message: str
) -> None:
    with pytest.raises(BundleError, match=f"^{re.escape(message)}"):
        compile_model(good_file, name=name, version=version, repository=tmp_path)
    assert everything_under(tmp_path) == []


def test_sample_of_the_wrong_width_is_refused(good_file: Path, tmp_path: Path) -> None:
    with pytest.raises(
        CompileError, match=rf"sample: expected shape \[n, {NUM_FEATURES}\], got \[4, 3\]"
    ):
        compile_model(
            good_file,
            name="m",
            version="1",
            repository=tmp_path,
            sample=np.zeros((4, 3), np.float32),
        )
    assert everything_under(tmp_path) == []


# --- calibration, reference distributions, training metrics -------------------------------------


def test_calibration_reference_and_metrics_are_recorded(calibrated: Calibrated) -> None:
    model = CompiledModel.open(calibrated.bundle_dir)
    manifest = model.manifest
    assert manifest.calibration == calibrated.calibration
    assert manifest.reference == calibrated.reference
    assert manifest.training_metrics == calibrated.metrics
    assert model.calibration == calibrated.calibration
    # written with allow_nan=False, read back field for field
    text = (calibrated.bundle_dir / "manifest.json").read_text()
    assert json.loads(text)["calibration"]["method"] == "isotonic"
    assert Manifest.from_dict(json.loads(manifest.to_json()), "again") == manifest


def test_calibrated_prediction_is_the_map_on_the_raw_output(calibrated: Calibrated) -> None:
    model = CompiledModel.open(calibrated.bundle_dir)
    x = np.random.default_rng(3).normal(size=(200, NUM_FEATURES)).astype(np.float32)
    x[::7, 1] = np.nan
    raw = model.predict(x)
    got = model.predict_calibrated(x)
    assert got.dtype == np.float32 and got.shape == raw.shape
    np.testing.assert_allclose(got, calibrated.isotonic.predict(raw.astype(np.float64)), atol=1e-7)
    np.testing.assert_array_equal(model.calibrate(raw), got)
    assert np.max(np.abs(got - raw)) > 0.01


def test_model_without_a_map_has_no_calibrated_prediction(reference_bundle: Path) -> None:
    model = CompiledModel.open(reference_bundle)
    assert model.calibration is None
    assert model.manifest.reference is None and model.manifest.training_metrics is None
    with pytest.raises(InvalidInput, match=r"no calibration map \(manifest field 'calibration'"):
        model.predict_calibrated(np.zeros((1, NUM_FEATURES), np.float32))


@pytest.mark.parametrize("recipe", ["xgboost-regressor", "lightgbm-multiclass"])
def test_calibration_of_a_model_that_is_not_binary_is_refused(
    compiled_case: Callable[[str], Case], tmp_path: Path, recipe: str
) -> None:
    source = compiled_case(recipe)
    with pytest.raises(CompileError, match=r"calibration: .* a calibration map applies to binary"):
        compile_model(
            source.trained.model, name="m", version="1", repository=tmp_path,
            calibration=Calibration.platt(1.0, 0.0),
        )  # fmt: skip
    assert everything_under(tmp_path) == []


def test_mismatched_reference_and_unstorable_metrics_are_refused(
    good_file: Path, rows: Rows, tmp_path: Path
) -> None:
    scores = np.zeros(rows.x.shape[0])
    wrong = Reference.fit(rows.x, scores, [f"x{i}" for i in range(NUM_FEATURES)])
    cases: list[tuple[dict[str, Any], str]] = [
        ({"reference": wrong}, r"reference: fitted on features \['x0', .*but .* takes \['f0'"),
        ({"training_metrics": {"auc": float("nan")}}, "training_metrics: not storable as JSON"),
        ({"training_metrics": {"auc": np.float32(0.5)}}, "training_metrics: not storable"),
        ({"training_metrics": [0.5]}, "training_metrics: expected a dict, got list"),
        ({"calibration": {"method": "platt"}}, "calibration: expected a Calibration, got dict"),
    ]
    for kwargs, message in cases:
        with pytest.raises(CompileError, match=message):
            compile_model(good_file, name="m", version="1", repository=tmp_path, **kwargs)
    assert everything_under(tmp_path) == []
