"""Training side of ForestGate: the synthetic-payments generator (``generator``), the trainer that
learns from its tables (``trainer``), and the command line both share."""
