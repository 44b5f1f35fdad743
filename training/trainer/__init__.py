"""The trainer: SQL features over the generated tables, models fitted, calibrated, evaluated and
replayed as policies, then compiled, published and reported."""
