"""CompiledModel: a verified bundle's native library, called through one ctypes call per batch.

Measured here (bench/results/engine.md): a ctypes call into the bundle's batch entry point costs
a few microseconds, against ~27 us for `tl2cgen.Predictor` with a `DMatrix`; so this is the only
call path. Importing this module loads numpy and the standard library, nothing else.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt

from forestgate.engine.abi import ALL_OUTPUTS, NativeLibrary, load_library
from forestgate.engine.calibration import Calibration
from forestgate.engine.manifest import MANIFEST_FILE, Manifest, read_manifest, sha256_file
from forestgate.errors import BundleError, InvalidInput


class CompiledModel:
    """One model version, opened from its bundle directory.

    Two ways to score. `predict` checks its input and may be called from several threads at
    once: the entry point keeps all state in per-call buffers and ctypes releases the GIL, so
    threads score in parallel. `score` is the serving path: the caller (the batcher) has already
    checked the rows once, so it is the native call and nothing else. `close` waits for
    `predict` calls in flight and refuses new ones; the library itself stays mapped.
    """

    def __init__(self, bundle_dir: Path, manifest: Manifest, library: NativeLibrary) -> None:
        self.bundle_dir = bundle_dir
        self.manifest = manifest
        self.name = manifest.name
        self.version = manifest.version
        self.num_features = manifest.num_features
        column = manifest.library.output_column
        self._out_col = ALL_OUTPUTS if column is None else column
        self.output_width = 1 if column is not None else manifest.library.outputs_per_row
        self.calibration: Calibration | None = manifest.calibration
        self._library = library
        self._native_predict = library.predict
        self._open = True
        # Guards the open flag and the count of predict calls, not the native call itself.
        self._lifecycle = threading.Lock()
        self._in_flight = 0
        self._idle = threading.Condition(self._lifecycle)

    @classmethod
    def open(cls, bundle_dir: str | Path, *, check_hash: bool = True) -> CompiledModel:
        """Open a bundle, refusing it when the manifest, hash, verification or ABI do not hold."""
        bundle_dir = Path(bundle_dir)
        manifest = read_manifest(bundle_dir)
        if not manifest.verification.passed:
            raise BundleError(
                f"{bundle_dir / MANIFEST_FILE}: bundle failed verification when it was compiled"
            )
        lib_path = bundle_dir / manifest.library.file
        if not lib_path.is_file():
            raise BundleError(f"{lib_path}: library named in the manifest is missing")
        if check_hash:
            actual = sha256_file(lib_path)
            if actual != manifest.library.sha256:
                raise BundleError(
                    f"{lib_path}: sha256 {actual[:16]}... does not match the manifest's "
                    f"{manifest.library.sha256[:16]}... (library changed after compilation)"
                )
        library = load_library(lib_path)
        if library.num_feature != manifest.num_features:
            raise BundleError(
                f"{lib_path}: library takes {library.num_feature} features, "
                f"manifest lists {manifest.num_features}"
            )
        if library.num_output != manifest.library.outputs_per_row:
            raise BundleError(
                f"{lib_path}: library writes {library.num_output} outputs per row, "
                f"manifest says {manifest.library.outputs_per_row}"
            )
        return cls(bundle_dir, manifest, library)

    @property
    def output_shape(self) -> list[int]:
        """Output shape with -1 for the batch dimension: [-1] or [-1, K]."""
        return [-1] if self.output_width == 1 else [-1, self.output_width]

    def check_input(self, x: object, name: str = "input") -> npt.NDArray[np.float32]:
        """Return x if it is a C-contiguous float32 [n >= 1, F] array, else raise InvalidInput."""
        if not isinstance(x, np.ndarray):
            raise InvalidInput(f"{name}: expected a numpy array, got {type(x).__name__}")
        if x.dtype != np.float32:
            raise InvalidInput(f"{name}: expected dtype float32, got {x.dtype}")
        if x.ndim != 2:
            raise InvalidInput(
                f"{name}: expected shape [n, {self.num_features}], got {list(x.shape)}"
            )
        if x.shape[1] != self.num_features:
            raise InvalidInput(
                f"{name}: expected {self.num_features} features per row, got {x.shape[1]}"
            )
        if x.shape[0] == 0:
            raise InvalidInput(f"{name}: expected at least one row, got 0")
        if not x.flags.c_contiguous:
            raise InvalidInput(f"{name}: expected a C-contiguous array")
        return x

    def predict(
        self, x: npt.NDArray[np.float32], out: npt.NDArray[np.float32] | None = None
    ) -> npt.NDArray[np.float32]:
        """Score a float32 [n, F] batch; returns float32 [n] (binary, regression) or [n, K].

        `out`, when given, must be a C-contiguous float32 array of the result's shape; passing a
        preallocated one saves an allocation per batch.
        """
        x = self.check_input(x)
        n = x.shape[0]
        shape: tuple[int, ...] = (n,) if self.output_width == 1 else (n, self.output_width)
        if out is None:
            out = np.empty(shape, dtype=np.float32)
        elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise InvalidInput(f"out: expected a C-contiguous float32 array of shape {list(shape)}")
        with self._lifecycle:
            if not self._open:
                raise BundleError(f"{self.name}/{self.version}: model is closed")
            self._in_flight += 1
        try:
            self.score(x, out)
        finally:
            with self._lifecycle:
                self._in_flight -= 1
                if self._in_flight == 0:
                    self._idle.notify_all()
        return out

    def score(self, rows: npt.NDArray[np.float32], out: npt.NDArray[np.float32]) -> None:
        """The serving path: rows must be C-contiguous float32 [n >= 1, F] and out C-contiguous
        float32 [n] or [n, K]. Nothing is checked; the batcher checked the rows once already."""
        if self._native_predict(rows.ctypes.data, rows.shape[0], self._out_col, out.ctypes.data):
            raise MemoryError(f"{self.name}/{self.version}: native predict could not allocate")

    def calibrate(self, scores: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """The calibration map applied to `predict`'s output: float32 of the same shape."""
        return self._calibration_map().apply(scores).astype(np.float32)

    def predict_calibrated(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Calibrated probability of the positive class, float32 [n]; binary models with a
        calibration map only (`predict` stays the raw library output)."""
        return self.calibrate(self.predict(x))

    def _calibration_map(self) -> Calibration:
        if self.calibration is None:
            raise InvalidInput(
                f"{self.name}/{self.version}: no calibration map (manifest field 'calibration' "
                "is null)"
            )
        return self.calibration

    def self_check(self) -> int:
        """Re-score the rows stored in the manifest at compile time and demand the same bits.

        Also serves as the warm-up before a model takes traffic. Returns the rows checked."""
        check = self.manifest.verification.self_check
        where = self.bundle_dir / MANIFEST_FILE
        try:
            x, want = check.arrays(self.num_features)
        except ValueError as exc:
            raise BundleError(
                f"{where}: field 'verification.self_check' is malformed ({exc})"
            ) from None
        got = self.predict(np.ascontiguousarray(x)).reshape(check.rows, -1)
        if got.shape != want.shape or not np.array_equal(got, want, equal_nan=True):
            diff = float(np.nanmax(np.abs(got - want))) if got.shape == want.shape else float("nan")
            raise BundleError(
                f"{self.bundle_dir}: library output differs from the manifest's self-check rows "
                f"(max |diff| {diff:.3g})"
            )
        return check.rows

    def close(self) -> None:
        """Refuse new `predict` calls and wait for the ones in flight. The library stays mapped:
        dlclose under a live reference would crash, and each version has its own file name."""
        with self._lifecycle:
            self._open = False
            while self._in_flight:
                self._idle.wait()

    def __repr__(self) -> str:
        return f"CompiledModel({self.name!r}, {self.version!r}, features={self.num_features})"
