"""The shim's blocked path is derived from the generated predict(); anything not shaped as
expected falls back to calling predict() per row instead of guessing."""

from __future__ import annotations

from forestgate.compiler.codegen import blocked_units

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
    code = blocked_units(MAIN)
    assert code is not None
    assert "#define FG_NUM_UNITS 3\n" in code
    assert "= {predict_unit0, predict_unit1, predict_unit2};" in code
    finish = code.split("static void fg_finish", 1)[1]
    assert "predict_unit" not in finish
    assert "result[0] += 0.5;" in finish and "postprocess(result);" in finish


def test_double_leaves_keep_their_type() -> None:
    double = MAIN.replace("float* result) {\n  unsigned", "double* result) {\n  unsigned")
    code = blocked_units(double)
    assert code is not None and "double* result) {" in code


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
