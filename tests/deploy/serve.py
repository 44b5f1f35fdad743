"""What `forestgate serve` makes of a deployment's command line and environment: the settings
the compose and Kubernetes tests hold their ports, probes and workers to."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence

from forestgate.server import settings as settings_module


def served(command: Sequence[str], environ: Mapping[str, str]) -> settings_module.Settings:
    """The settings of `forestgate <command>`, whose first word must be serve; no FORESTGATE_*
    variable may be one the server does not know (it would be ignored without a word)."""
    assert command[0] == "serve"
    unknown = {
        key for key in environ
        if key.startswith(settings_module.ENV_PREFIX)
        and key.removeprefix(settings_module.ENV_PREFIX).lower() not in settings_module.HELP
    }  # fmt: skip
    assert unknown == set()
    parser = argparse.ArgumentParser()
    settings_module.add_arguments(parser)
    return settings_module.from_sources(parser.parse_args(list(command[1:])), environ)
