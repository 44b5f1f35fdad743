/* ForestGate batch entry point, compiled into every bundle beside TL2cgen's generated code.
 *
 * One ctypes call scores a whole C-contiguous float32 [n, F] batch. The generated predict()
 * tests `missing == -1`, not NaN, so NaN is turned into "missing" here; predict() adds into its
 * result, so the result is zeroed for every row. All buffers are per call, which keeps the
 * function reentrant: concurrent callers need no lock. For double-typed entries, writing
 * `missing` sets only the low 4 bytes; a present value converted from float32 always has its
 * low 29 mantissa bits zero, so it can never read back as missing == -1.
 *
 * Rows are scored in blocks of FG_BLOCK_ROWS: each translation unit's trees run over every row
 * of the block before the next unit starts, so a model whose code outgrows the L2 cache reads
 * each unit's code once per block instead of once per row. Per row, the units still add into
 * its result in predict()'s order and fg_finish() then does exactly what predict() does after
 * them (base scores, averaging, the postprocessor), after fg_prepare() did to the row what
 * predict() does before them (quantising it, for a quantised build), so every output is
 * bit-for-bit predict()'s. codegen.py writes fg_prepare(), fg_finish() and the unit table into
 * main.c from the generated predict(); when it cannot, FG_BLOCK_ROWS is 1 and predict() itself
 * is called per row. */
#include "header.h"

#define FG_NUM_FEATURE @NUM_FEATURE@
#define FG_NUM_OUTPUT (N_TARGET * MAX_N_CLASS)
#define FG_BLOCK_ROWS @BLOCK_ROWS@
typedef @LEAF_TYPE@ fg_leaf_t;

#if FG_BLOCK_ROWS > 1
/* Written into main.c by codegen.py from the generated predict(). */
#define FG_NUM_UNITS @NUM_UNITS@
void fg_prepare(union Entry* data);
void fg_finish(union Entry* data, int pred_margin, fg_leaf_t* result);
extern void (*const fg_units[FG_NUM_UNITS])(union Entry*, fg_leaf_t*);
#endif

int32_t forestgate_abi_version(void) { return 1; }
int32_t forestgate_num_feature(void) { return FG_NUM_FEATURE; }
int32_t forestgate_num_output(void) { return FG_NUM_OUTPUT; }
int32_t forestgate_block_rows(void) { return FG_BLOCK_ROWS; }

/* out_col >= 0 writes that output column only (out is [n]); out_col < 0 writes all of them
 * (out is [n, FG_NUM_OUTPUT]). Returns 0, or -1 when the row buffers cannot be allocated. */
int32_t forestgate_predict_f32(const float* x, int64_t n, int32_t out_col, float* out) {
  union Entry* rows = (union Entry*)malloc(sizeof(union Entry) * FG_NUM_FEATURE * FG_BLOCK_ROWS);
  fg_leaf_t* result = (fg_leaf_t*)malloc(sizeof(fg_leaf_t) * FG_NUM_OUTPUT * FG_BLOCK_ROWS);
  if (rows == NULL || result == NULL) {
    free(rows);
    free(result);
    return -1;
  }
  for (int64_t start = 0; start < n; start += FG_BLOCK_ROWS) {
    const int64_t m = n - start < FG_BLOCK_ROWS ? n - start : FG_BLOCK_ROWS;
    for (int64_t r = 0; r < m; ++r) {
      const float* xi = x + (start + r) * FG_NUM_FEATURE;
      union Entry* row = rows + r * FG_NUM_FEATURE;
      for (int32_t j = 0; j < FG_NUM_FEATURE; ++j) {
        if (isnan(xi[j])) {
          row[j].missing = -1;
        } else {
          row[j].fvalue = xi[j];
        }
      }
#if FG_BLOCK_ROWS > 1
      fg_prepare(row);
#endif
      for (int32_t k = 0; k < FG_NUM_OUTPUT; ++k) result[r * FG_NUM_OUTPUT + k] = 0;
    }
#if FG_BLOCK_ROWS > 1
    for (int32_t u = 0; u < FG_NUM_UNITS; ++u) {
      for (int64_t r = 0; r < m; ++r) {
        fg_units[u](rows + r * FG_NUM_FEATURE, result + r * FG_NUM_OUTPUT);
      }
    }
    for (int64_t r = 0; r < m; ++r) {
      fg_finish(rows + r * FG_NUM_FEATURE, 0, result + r * FG_NUM_OUTPUT);
    }
#else
    predict(rows, 0, result);
#endif
    for (int64_t r = 0; r < m; ++r) {
      const fg_leaf_t* res = result + r * FG_NUM_OUTPUT;
      if (out_col >= 0) {
        out[start + r] = (float)res[out_col];
      } else {
        for (int32_t k = 0; k < FG_NUM_OUTPUT; ++k) {
          out[(start + r) * FG_NUM_OUTPUT + k] = (float)res[k];
        }
      }
    }
  }
  free(rows);
  free(result);
  return 0;
}
