"""ForestGate: real-time scoring of card authorizations with compiled tree ensembles."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("forestgate")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
