"""Demo bundles for `make run`: two small models trained on synthetic rows and compiled.

They stand in until the training pipeline (`forestgate train`) builds the real approval and
retry models; they are small so a fresh checkout serves within a minute.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import numpy.typing as npt

DEMO_FEATURES = [
    "amount_log", "is_cross_border", "is_card_present", "is_tokenized", "card_age_days",
    "attempts_24h", "declines_24h", "hours_since_approval", "amount_vs_typical",
    "issuer_route_approval_30d", "bin_route_approval_30d", "merchant_risk", "hour_of_day",
    "days_to_payday", "is_recurring", "route_index",
]  # fmt: skip


def synthetic_rows(n: int, seed: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Rows with a plausible approval signal and some missing values."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(DEMO_FEATURES))).astype(np.float32)
    for j in (1, 2, 3, 14):
        x[:, j] = rng.random(n) < 0.3
    logit = 2.0 - 0.6 * x[:, 0] - 0.8 * x[:, 1] + 0.5 * x[:, 3] - 0.7 * np.abs(x[:, 6])
    logit += 1.2 * x[:, 9] - 0.4 * x[:, 11] * x[:, 1]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    x[rng.random(x.shape) < 0.05] = np.nan
    return x, y


def build(repository: Path) -> list[Path]:
    import lightgbm
    import xgboost

    from forestgate.compiler.pipeline import compile_model

    x, y = synthetic_rows(20_000, seed=7)
    xgb_model = xgboost.XGBClassifier(n_estimators=60, max_depth=6, learning_rate=0.1, nthread=2)
    xgb_model.fit(x, y)
    xgb_model.get_booster().feature_names = DEMO_FEATURES
    lgb_model = lightgbm.LGBMClassifier(n_estimators=60, num_leaves=31, verbose=-1, n_jobs=2)
    lgb_model.fit(x, y, feature_name=DEMO_FEATURES)
    built = []
    for name, model in (("demo-xgb", xgb_model), ("demo-lgb", lgb_model)):
        result = compile_model(
            model, name=name, version="1", repository=repository, overwrite=True,
            features=None, sample=x[:500],
        )  # fmt: skip
        print(f"built {result.bundle_dir} (verified, max |diff| "
              f"{result.verification.max_abs_diff:.2g})")  # fmt: skip
        built.append(result.bundle_dir)
    return built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repository", type=Path, default=Path("models"))
    build(parser.parse_args().repository)


if __name__ == "__main__":
    main()
