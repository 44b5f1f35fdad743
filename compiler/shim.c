/* ForestGate batch entry point, compiled into every bundle beside TL2cgen's generated code.
 *
 * One ctypes call scores a whole C-contiguous float32 [n, F] batch. The generated predict()
 * tests `missing == -1`, not NaN, so NaN is turned into "missing" here; predict() adds into its
 * result, so the result is zeroed for every row. All buffers are per call, which keeps the
 * function reentrant: concurrent callers need no lock. For double-typed entries, writing
 * `missing` sets only the low 4 bytes; a present value converted from float32 always has its
 * low 29 mantissa bits zero, so it can never read back as missing == -1. */
#include "header.h"

#define FG_NUM_FEATURE @NUM_FEATURE@
#define FG_NUM_OUTPUT (N_TARGET * MAX_N_CLASS)
typedef @LEAF_TYPE@ fg_leaf_t;

int32_t forestgate_abi_version(void) { return 1; }
int32_t forestgate_num_feature(void) { return FG_NUM_FEATURE; }
int32_t forestgate_num_output(void) { return FG_NUM_OUTPUT; }

/* out_col >= 0 writes that output column only (out is [n]); out_col < 0 writes all of them
 * (out is [n, FG_NUM_OUTPUT]). Returns 0, or -1 when the row buffer cannot be allocated. */
int32_t forestgate_predict_f32(const float* x, int64_t n, int32_t out_col, float* out) {
  union Entry* row = (union Entry*)malloc(sizeof(union Entry) * FG_NUM_FEATURE);
  if (row == NULL) return -1;
  fg_leaf_t result[FG_NUM_OUTPUT];
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * FG_NUM_FEATURE;
    for (int32_t j = 0; j < FG_NUM_FEATURE; ++j) {
      if (isnan(xi[j])) {
        row[j].missing = -1;
      } else {
        row[j].fvalue = xi[j];
      }
    }
    for (int32_t k = 0; k < FG_NUM_OUTPUT; ++k) result[k] = 0;
    predict(row, 0, result);
    if (out_col >= 0) {
      out[i] = (float)result[out_col];
    } else {
      for (int32_t k = 0; k < FG_NUM_OUTPUT; ++k) out[i * FG_NUM_OUTPUT + k] = (float)result[k];
    }
  }
  free(row);
  return 0;
}
