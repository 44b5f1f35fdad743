"""The generator: a synthetic payments world (entities, arrivals, the issuer's decision, logging
policies) simulated attempt by attempt and written as Parquet tables."""
