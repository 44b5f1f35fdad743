"""The shim's blocked path is derived from the generated predict(); anything not shaped as
expected falls back to calling predict() per row instead of guessing."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from forestgate.compiler import codegen
from forestgate.compiler.codegen import CompileOptions, blocked_units
from forestgate.compiler.pipeline import compile_model
from forestgate.engine.model import CompiledModel

MAIN = """\
void predict(union Entry* data, int pred_margin, float* result) {
  unsigned int tmp;
  predict_unit0(data, result);
  predict_unit1(data, result);
  predict_unit2(data, result);

  // Apply base_scores
  result[0] += 0.5;

  // Apply postprocessor
  if (!pred_margin) { postprocess(result); }
}

void postprocess(float* result) {
}
"""


def test_units_are_tabled_and_the_rest_of_predict_becomes_fg_finish() -> None:
    blocked = blocked_units(MAIN)
    assert blocked is not None and blocked.units == 3
    code = blocked.helpers
    assert (
        "fg_units[3])(union Entry*, float*) = {predict_unit0, predict_unit1, predict_unit2};"
        in code
    )
    finish = code.split("void fg_finish", 1)[1].split("void (*const fg_units", 1)[0]
    assert "predict_unit" not in finish
    assert "result[0] += 0.5;" in finish and "postprocess(result);" in finish


def test_what_predict_does_before_its_units_becomes_fg_prepare() -> None:
    quantised = MAIN.replace(
        "  unsigned int tmp;\n",
        "  for (int i = 0; i < 8; ++i) {\n    data[i].qvalue = quantize(data[i].fvalue, i);\n  }\n"
        "  unsigned int tmp;\n",
    )
    blocked = blocked_units(quantised)
    assert blocked is not None
    prepare = blocked.helpers.split("void fg_prepare", 1)[1].split("void fg_finish", 1)[0]
    assert "quantize(data[i].fvalue, i)" in prepare
    assert "quantize" not in blocked.helpers.split("void fg_finish", 1)[1]


def test_double_leaves_keep_their_type() -> None:
    double = MAIN.replace("float* result) {\n  unsigned", "double* result) {\n  unsigned")
    blocked = blocked_units(double)
    assert blocked is not None and "double* result) {" in blocked.helpers


def test_unexpected_shapes_fall_back_to_per_row_predict() -> None:
    assert blocked_units("int main(void) { return 0; }") is None
    # A unit after the base score was added: reordering it would change the sums.
    late = MAIN.replace("  predict_unit2(data, result);\n", "").replace(
        "  result[0] += 0.5;\n", "  result[0] += 0.5;\n  predict_unit2(data, result);\n"
    )
    assert blocked_units(late) is None
    # Units out of order or with a gap.
    assert blocked_units(MAIN.replace("predict_unit1(data", "predict_unit7(data")) is None
    assert blocked_units(MAIN.replace("  predict_unit0(data, result);\n", "")) is None


def test_a_quantised_build_takes_the_blocked_path_and_scores_like_row_by_row(
    tmp_path: Path,
) -> None:
    """Quantising rewrites each row before the units run: fg_prepare() must do it per row."""
    import lightgbm

    rng = np.random.default_rng(5)
    x = rng.normal(size=(2_000, 6)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    model = lightgbm.LGBMClassifier(n_estimators=20, num_leaves=15, verbose=-1, n_jobs=1)
    model.fit(x, y)
    result = compile_model(
        model, name="quantised", version="1", repository=tmp_path,
        options=CompileOptions(quantize="on"),
    )  # fmt: skip
    assert result.manifest.compiler.resolved.quantize is True
    compiled = CompiledModel.open(result.bundle_dir)
    library = ctypes.CDLL(str(result.bundle_dir / result.manifest.library.file))
    assert library.forestgate_block_rows() == codegen.BLOCK_ROWS
    n = codegen.BLOCK_ROWS + 37
    rows = x[:n].copy()
    rows[::7, 2] = np.nan
    whole = compiled.predict(rows)
    one_by_one = np.concatenate([compiled.predict(rows[i : i + 1]) for i in range(n)])
    np.testing.assert_array_equal(whole, one_by_one)
    np.testing.assert_allclose(whole, model.predict_proba(rows)[:, 1], rtol=1e-5, atol=1e-5)
