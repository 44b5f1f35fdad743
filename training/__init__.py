"""Training side of ForestGate: synthetic transactions, SQL features, model training,
calibration and evaluation."""
