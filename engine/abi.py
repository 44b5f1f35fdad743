"""The shim's ABI: the one ctypes declaration of the C functions every bundle library exports.

compiler/shim.c defines them; this module is the only Python that declares them, so the
runtime, the compiler's verification and the benchmarks call the library the same way.

    int32 forestgate_abi_version(void)
    int32 forestgate_num_feature(void)
    int32 forestgate_num_output(void)
    int32 forestgate_block_rows(void)
    int32 forestgate_predict_f32(const float* x, int64 n, int32 out_col, float* out)

`forestgate_predict_f32` scores a C-contiguous float32 [n, num_feature] batch. With out_col >= 0
it writes that output column only (out is [n]); with out_col < 0 every output (out is
[n, num_output]). It returns 0, or -1 when its per-call buffers cannot be allocated. Its buffers
are per call, so concurrent calls need no lock; ctypes releases the GIL while it runs.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from forestgate.errors import BundleError

ABI_VERSION = 1
ENTRY_POINT = "forestgate_predict_f32"
ALL_OUTPUTS = -1  # out_col value asking for every output column

# (x pointer, rows, out_col, out pointer) -> status; pointers are plain ints (ndarray.ctypes.data).
PredictFn = Callable[[int, int, int, int], int]


@dataclass(frozen=True)
class NativeLibrary:
    """A loaded bundle library with its entry point bound and its self-description read."""

    path: Path
    handle: ctypes.CDLL
    predict: PredictFn
    abi_version: int
    num_feature: int
    num_output: int
    block_rows: int


def load_library(path: Path) -> NativeLibrary:
    """dlopen a bundle library and bind its functions; BundleError when it is not one of ours.

    dlopen caches by path: a changed library reloaded under the same path keeps the old code,
    which is why every build gets a file name of its own.
    """
    try:
        handle = ctypes.CDLL(str(path.resolve()))
    except OSError as exc:
        raise BundleError(f"{path}: cannot load library ({exc})") from None
    try:
        predict = getattr(handle, ENTRY_POINT)
        describe = [
            handle.forestgate_abi_version,
            handle.forestgate_num_feature,
            handle.forestgate_num_output,
        ]
    except AttributeError:
        raise BundleError(f"{path}: not a ForestGate library (no batch entry point)") from None
    # Libraries built before the blocked shim score one row at a time and do not say so.
    blocks = getattr(handle, "forestgate_block_rows", None)
    predict.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32, ctypes.c_void_p]
    predict.restype = ctypes.c_int32
    for function in [*describe, *([blocks] if blocks is not None else [])]:
        function.argtypes = []
        function.restype = ctypes.c_int32
    abi, num_feature, num_output = (int(function()) for function in describe)
    block_rows = 1 if blocks is None else int(blocks())
    if abi != ABI_VERSION:
        raise BundleError(f"{path}: library ABI {abi}, this runtime needs {ABI_VERSION}")
    return NativeLibrary(path, handle, predict, abi, num_feature, num_output, block_rows)
