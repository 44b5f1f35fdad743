"""The model compiler: trained trees -> Treelite -> TL2cgen C -> verified native bundle.

The pipeline is `source.load_source` -> `codegen.build_library` -> the engine's typed
`Manifest` -> `verify.verify_library`, tied together by `pipeline.compile_model`. These modules
import treelite, tl2cgen and the training frameworks; serving needs none of them and imports
`forestgate.engine` only, so nothing is imported here.
"""

from importlib.util import find_spec

from forestgate.errors import ConfigError


def require_compiler(command: str) -> None:
    """Fail with the install line when the `compile` extra is missing, before any work starts:
    a serving image installs the core only."""
    missing = [name for name in ("treelite", "tl2cgen") if find_spec(name) is None]
    if missing:
        raise ConfigError(
            f"{command} needs {' and '.join(missing)}, which a serving install leaves out: "
            "pip install 'forestgate[compile]'"
        )
