"""`forestgate compile` and `forestgate inspect`, run as the installed entry point: summaries on
success; on bad input one error line naming the file and the problem, exit 1, nothing written."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from forestgate.compiler.pipeline import SELF_CHECK_ROWS
from forestgate.engine.model import CompiledModel
from tests.sources import NAMES, NUM_FEATURES, Calibrated, Case

ENTRY_POINT = shutil.which("forestgate", path=str(Path(sys.executable).parent))


def forestgate(
    *args: object, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    assert ENTRY_POINT is not None, f"no forestgate entry point beside {sys.executable}"
    return subprocess.run(
        [ENTRY_POINT, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def compile_cli(
    model: object,
    repository: Path,
    *extra: object,
    name: str = "m",
    version: str = "1",
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return forestgate(
        "compile",
        model,
        "--name",
        name,
        "--version",
        version,
        "--repository",
        repository,
        *extra,
        env=env,
    )


def leftovers(repository: Path) -> list[str]:
    """Files anywhere under the repository, and any hidden build directory, empty or not."""
    if not repository.exists():
        return []
    return sorted(
        str(p.relative_to(repository))
        for p in repository.rglob("*")
        if p.is_file() or p.name.startswith(".")
    )


def assert_one_line_error(
    run: subprocess.CompletedProcess[str], command: str, code: int = 1
) -> str:
    """One line naming the problem; exit 2 for a user error (a file that is not there), 1 when
    the work failed (a model that cannot be compiled)."""
    assert run.returncode == code, run
    assert run.stdout == ""
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"forestgate {command}: error: ")
    return lines[0]


# --- bad input ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bad_models(
    tmp_path_factory: pytest.TempPathFactory, compiled_case: Callable[[str], Case]
) -> Path:
    """One file per way a model file can be wrong (the in-memory refusals of load_source are in
    test_source.py, without a process start each)."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    where = tmp_path_factory.mktemp("bad-models")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4)).astype(np.float32)
    joblib.dump(LogisticRegression().fit(x, x[:, 0] > 0), where / "logistic.joblib")
    for recipe_id, name in (
        ("xgboost-json", "truncated.json"),
        ("xgboost-ubj", "truncated.ubj"),
        ("lightgbm-text", "truncated.txt"),
    ):
        good = Path(compiled_case(recipe_id).trained.model).read_bytes()
        (where / name).write_bytes(good[: len(good) // 2])
    (where / "garbage.txt").write_text("this is not a model\nnor is this\n")
    (where / "garbage.joblib").write_bytes(rng.bytes(512))
    (where / "empty.json").write_bytes(b"")
    (where / "model.onnx").write_bytes(b"\x08\x07\x12\x07pytorch")
    (where / "folder.json").mkdir()
    return where


@pytest.mark.parametrize(
    ("file", "problem"),
    [
        ("logistic.joblib", r"unsupported model type sklearn\.linear_model\._logistic\.Logistic"),
        ("truncated.json", r"not a readable XGBoost JSON file \(.+\)"),
        ("truncated.ubj", r"not a readable XGBoost UBJSON file \(.+\)"),
        ("truncated.txt", r"truncated LightGBM text model"),
        ("garbage.txt", r"not a readable LightGBM text file \(Unknown model format"),
        ("garbage.joblib", r"not a readable model file \(.+\)"),
        ("empty.json", r"file is empty"),
        ("missing.json", r"no such file"),
        ("model.onnx", r"unknown model file type \.onnx; expected an XGBoost"),
        ("folder.json", r"not a file"),
    ],
)
def test_bad_model_file_gives_one_line_naming_file_and_problem(
    bad_models: Path, tmp_path: Path, file: str, problem: str
) -> None:
    repository = tmp_path / "repository"
    run = compile_cli(bad_models / file, repository)
    user_error = file in ("missing.json", "folder.json")
    line = assert_one_line_error(run, "compile", 2 if user_error else 1)
    assert re.search(rf"error: {re.escape(str(bad_models / file))}: {problem}", line), line
    assert leftovers(repository) == []
    assert not (repository / "m" / "1").exists()


@pytest.fixture(scope="module")
def good_model(compiled_case: Callable[[str], Case]) -> Path:
    return Path(compiled_case("xgboost-json").trained.model)


def test_missing_compiler_is_named(good_model: Path, tmp_path: Path) -> None:
    repository = tmp_path / "repository"
    run = compile_cli(good_model, repository, "--toolchain", "no-such-cc")
    line = assert_one_line_error(run, "compile")
    assert "error: no-such-cc: C compiler not found on PATH" in line
    assert leftovers(repository) == []


def test_failing_c_build_is_one_line_and_leaves_no_build_directory(
    good_model: Path, tmp_path: Path
) -> None:
    # `false` is on PATH and exits 1: the build itself fails, inside the hidden build directory.
    repository = tmp_path / "repository"
    line = assert_one_line_error(
        compile_cli(good_model, repository, "--toolchain", "false"), "compile"
    )
    assert "error: tl2cgen/false: compilation failed (" in line
    assert leftovers(repository) == []
    assert list((repository / "m").iterdir()) == []


def test_path_without_gcc_is_reported(good_model: Path, tmp_path: Path) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    repository = tmp_path / "repository"
    env = {**os.environ, "PATH": str(empty_bin)}
    run = compile_cli(good_model, repository, env=env)
    line = assert_one_line_error(run, "compile")
    assert "error: gcc: C compiler not found on PATH" in line
    assert leftovers(repository) == []


def test_unwritable_repository_is_reported(good_model: Path, tmp_path: Path) -> None:
    # The suite runs as root, for whom chmod 0o500 does not stop a write; a directory under a
    # regular file cannot be created by anyone, so that is the unwritable place used here.
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    repository = blocker / "repository"
    run = compile_cli(good_model, repository)
    line = assert_one_line_error(run, "compile")
    assert f"error: {repository / 'm'}: cannot write the bundle here (Not a directory)" in line
    assert blocker.read_text() == "x"


def test_existing_version_is_kept_without_overwrite(good_model: Path, bundle_copy: Path) -> None:
    repository = bundle_copy.parent.parent
    before = {p.name: p.read_bytes() for p in bundle_copy.iterdir()}
    run = compile_cli(
        good_model, repository, name=bundle_copy.parent.name, version=bundle_copy.name
    )
    line = assert_one_line_error(run, "compile")
    assert f"error: {bundle_copy}: bundle already exists (pass --overwrite" in line
    assert [p.name for p in bundle_copy.parent.iterdir()] == [bundle_copy.name]
    assert {p.name: p.read_bytes() for p in bundle_copy.iterdir()} == before


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        (["--name", "../up", "--version", "1"], r"model name '\.\./up' must be 1-128 characters"),
        (["--name", "m", "--version", ".hidden"], r"model version '\.hidden' must be"),
        (["--name", "m", "--version", "1", "--annotate"], r"--annotate needs --sample rows"),
    ],
    ids=["name", "version", "annotate"],
)
def test_bad_options_are_refused(
    good_model: Path, tmp_path: Path, options: list[str], problem: str
) -> None:
    repository = tmp_path / "repository"
    run = forestgate("compile", good_model, "--repository", repository, *options)
    assert re.search(problem, assert_one_line_error(run, "compile"))
    assert leftovers(repository) == []


def test_unknown_option_value_is_an_argparse_usage_error(good_model: Path, tmp_path: Path) -> None:
    run = compile_cli(good_model, tmp_path, "--opt-level", "O9")
    assert run.returncode == 2
    assert "argument --opt-level: invalid choice: 'O9'" in run.stderr
    assert leftovers(tmp_path) == []


def test_schema_mismatch_names_the_schema_file(good_model: Path, tmp_path: Path) -> None:
    schema = tmp_path / "features.yaml"
    schema.write_text("features: [" + ", ".join(NAMES[:-1]) + "]\n")
    repository = tmp_path / "repository"
    run = compile_cli(good_model, repository, "--features", schema)
    line = assert_one_line_error(run, "compile")
    assert f"error: {schema}: lists {NUM_FEATURES - 1} features, {good_model} takes" in line
    assert leftovers(repository) == []


def test_unreadable_sample_names_the_sample_file(good_model: Path, tmp_path: Path) -> None:
    sample = tmp_path / "rows.npy"
    sample.write_bytes(b"not numpy")
    repository = tmp_path / "repository"
    run = compile_cli(good_model, repository, "--sample", sample)
    line = assert_one_line_error(run, "compile")
    assert f"error: {sample}: cannot read sample rows" in line
    assert leftovers(repository) == []


# --- verification failures ------------------------------------------------------------------------


def test_known_lightgbm_divergence_fails_verification_and_writes_nothing(
    zero_split_case: Case, tmp_path: Path
) -> None:
    """Sample rows at exactly -1e-35 hit the documented divergence (test_differential): a real
    verification failure, reported with the worst rows, the offending sample rows among them."""
    sample = np.full((4, NUM_FEATURES), 0.5, dtype=np.float32)
    sample[2:] = np.nan
    sample[:, 2] = np.float32(-1e-35)
    np.save(tmp_path / "rows.npy", sample)
    repository = tmp_path / "repository"
    run = compile_cli(
        zero_split_case.trained.model, repository, "--sample", tmp_path / "rows.npy", name="zero"
    )
    assert run.returncode == 1
    assert run.stdout == ""
    first, report, *worst = run.stderr.splitlines()
    total = zero_split_case.compiled.manifest.verification.rows + len(sample)
    assert first == (
        f"forestgate compile: error: compiled predictions differ from lightgbm on 4 of {total} rows"
    )
    assert report.startswith(f"verification FAILED: {total} rows, max |diff| ")
    worst_rows = {int(re.match(r"  row (\d+): compiled ", w).group(1)) for w in worst}
    assert set(range(total - 4, total)) <= worst_rows
    assert leftovers(repository) == []


def test_zero_tolerance_fails_verification_on_float32_rounding(
    compiled_case: Callable[[str], Case], tmp_path: Path
) -> None:
    """The library writes float32 and scikit-learn averages in float64: a request for exact
    equality cannot be met, and the compile says so instead of writing a bundle."""
    forest = compiled_case("sklearn-RandomForestClassifier-multiclass")
    assert forest.compiled.manifest.verification.max_abs_diff > 0
    repository = tmp_path / "repository"
    run = compile_cli(forest.trained.model, repository, "--atol", "0", "--rtol", "0", name="exact")
    assert run.returncode == 1
    lines = run.stderr.splitlines()
    assert re.fullmatch(
        r"forestgate compile: error: compiled predictions differ from scikit-learn on \d+ of "
        r"\d+ rows",
        lines[0],
    )
    assert "rows over atol=0 + rtol=0 * |source|" in lines[1]
    assert len(lines) == 2 + 5
    assert leftovers(repository) == []


# --- success --------------------------------------------------------------------------------------


def test_compile_prints_a_summary_and_writes_a_bundle_that_inspects(
    compiled_case: Callable[[str], Case], tmp_path: Path
) -> None:
    source = compiled_case("lightgbm-text")
    schema = tmp_path / "features.yaml"
    schema.write_text("features:\n" + "".join(f"  - {{name: {n}, type: float}}\n" for n in NAMES))
    repository = tmp_path / "models"
    run = compile_cli(
        source.trained.model, repository, "--features", schema, name="fraud", version="3"
    )
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    bundle = repository / "fraud" / "3"
    lines = run.stdout.splitlines()
    assert lines[0] == "model:        fraud version 3 (binary)"
    assert lines[1].startswith("source:       lightgbm 4.")
    assert lines[2] == f"features:     {', '.join(NAMES)}"
    assert lines[-2].startswith("verification: passed on ")
    assert lines[-1] == f"bundle: {bundle}"
    files = sorted(p.name for p in bundle.iterdir())
    assert len(files) == 2
    assert (
        files[0]
        == "fraud-3-"
        + json.loads((bundle / "manifest.json").read_text())["library"]["sha256"][:12]
        + ".so"
    )
    assert files[1] == "manifest.json"
    assert leftovers(repository) == [f"fraud/3/{name}" for name in files]

    inspect = forestgate("inspect", bundle)
    assert inspect.returncode == 0, inspect.stderr
    assert inspect.stdout.splitlines()[:3] == lines[:3]
    assert inspect.stdout.splitlines()[-1] == (
        f"self-check: ok (hash, ABI, {NUM_FEATURES} features, {SELF_CHECK_ROWS} stored rows "
        "re-scored)"
    )
    x = np.random.default_rng(5).normal(size=(64, NUM_FEATURES)).astype(np.float32)
    np.testing.assert_array_equal(CompiledModel.open(bundle).predict(x), source.compiled.predict(x))


def test_compile_json_prints_the_manifest(good_model: Path, tmp_path: Path) -> None:
    run = compile_cli(good_model, tmp_path, "--json")
    assert run.returncode == 0, run.stderr
    manifest = json.loads(run.stdout)
    assert (manifest["name"], manifest["version"], manifest["task"]) == ("m", "1", "binary")
    assert manifest["source"]["file"] == good_model.name
    assert manifest == json.loads((tmp_path / "m" / "1" / "manifest.json").read_text())


def test_overwrite_replaces_the_version_and_leaves_one_library(
    compiled_case: Callable[[str], Case], good_model: Path, tmp_path: Path
) -> None:
    other = compiled_case("lightgbm-text").trained.model
    first = compile_cli(good_model, tmp_path)
    assert first.returncode == 0, first.stderr
    again = compile_cli(other, tmp_path, "--overwrite")
    assert again.returncode == 0, again.stderr
    assert [p.name for p in (tmp_path / "m").iterdir()] == ["1"]
    assert len(list((tmp_path / "m" / "1").glob("*.so"))) == 1
    assert CompiledModel.open(tmp_path / "m" / "1").manifest.source.framework == "lightgbm"


# --- inspect --------------------------------------------------------------------------------------


def test_inspect_prints_the_summary_and_passes_the_self_check(reference_bundle: Path) -> None:
    run = forestgate("inspect", reference_bundle)
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    lines = run.stdout.splitlines()
    assert lines[0] == "model:        xgboost-json version 1 (binary)"
    assert any(line.startswith("library:      xgboost-json-1-") for line in lines)
    assert any(line.startswith("verification: passed on ") for line in lines)
    assert lines[-1].startswith(
        f"self-check: ok (hash, ABI, {NUM_FEATURES} features, {SELF_CHECK_ROWS} stored rows"
    )


def test_inspect_json_prints_the_manifest(reference_bundle: Path) -> None:
    run = forestgate("inspect", reference_bundle, "--json")
    assert run.returncode == 0, run.stderr
    *manifest, last = run.stdout.splitlines()
    assert json.loads("\n".join(manifest)) == json.loads(
        (reference_bundle / "manifest.json").read_text()
    )
    assert last.startswith("self-check: ok")


def test_inspect_of_a_changed_library_fails_on_one_line(bundle_copy: Path) -> None:
    library = next(bundle_copy.glob("*.so"))
    data = bytearray(library.read_bytes())
    data[100] ^= 0x01
    library.write_bytes(bytes(data))
    line = assert_one_line_error(forestgate("inspect", bundle_copy), "inspect")
    assert f"error: {library}: sha256 " in line
    assert "does not match the manifest's" in line


def test_inspect_of_changed_self_check_rows_fails_on_one_line(bundle_copy: Path) -> None:
    path = bundle_copy / "manifest.json"
    manifest = json.loads(path.read_text())
    check = manifest["verification"]["self_check"]
    stored = np.frombuffer(base64.b64decode(check["output_f32_b64"]), dtype=np.float32).copy()
    stored[0] = 0.5 if stored[0] != 0.5 else 0.25
    check["output_f32_b64"] = base64.b64encode(stored.tobytes()).decode()
    path.write_text(json.dumps(manifest))
    line = assert_one_line_error(forestgate("inspect", bundle_copy), "inspect")
    assert f"error: {bundle_copy}: library output differs from the manifest's self-check" in line


def test_inspect_of_a_directory_that_is_no_bundle_fails(tmp_path: Path) -> None:
    line = assert_one_line_error(forestgate("inspect", tmp_path), "inspect")
    assert line.endswith(
        f"error: {tmp_path / 'manifest.json'}: no manifest (not a ForestGate bundle)"
    )


def test_inspect_prints_calibration_reference_and_metrics(calibrated: Calibrated) -> None:
    run = forestgate("inspect", calibrated.bundle_dir)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    score = calibrated.reference.score.quantiles
    assert score is not None
    card = lines.index(f"calibration:  isotonic, {calibrated.calibration.breakpoints} breakpoints")
    assert lines[card + 1] == (
        f"reference:    {NUM_FEATURES} features, {calibrated.reference.score.count} rows; score "
        "quantiles "
        f"p0 {score[0]:.4g}, p10 {score[10]:.4g}, p50 {score[50]:.4g}, p90 {score[90]:.4g}, "
        f"p100 {score[100]:.4g}"
    )
    assert (
        lines[card + 2] == 'metrics:      auc=0.8125, rows=3000, split={"train": 0.8, "test": 0.2}'
    )
    assert lines[card + 3].startswith("verification: passed on ")
    assert lines[-1].startswith("self-check: ok")


def test_inspect_of_a_bundle_without_them_says_none(reference_bundle: Path) -> None:
    lines = forestgate("inspect", reference_bundle).stdout.splitlines()
    assert [
        line for line in lines if line.startswith(("calibration:", "reference:", "metrics:"))
    ] == [
        "calibration:  none",
        "reference:    none",
        "metrics:      none",
    ]


def test_inspect_of_a_damaged_map_fails_on_one_line(calibrated_copy: Path) -> None:
    path = calibrated_copy / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["calibration"]["x"][1] = manifest["calibration"]["x"][0]
    path.write_text(json.dumps(manifest))
    line = assert_one_line_error(forestgate("inspect", calibrated_copy), "inspect")
    assert f"error: {path}: field 'calibration.x' is not strictly increasing (x[1] = " in line
