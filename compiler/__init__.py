"""The model compiler: trained trees -> Treelite -> TL2cgen C -> verified native bundle.

The pipeline is `source.load_source` -> `codegen.build_library` -> the engine's typed
`Manifest` -> `verify.verify_library`, tied together by `pipeline.compile_model`. These modules
import treelite, tl2cgen and the training frameworks; serving needs none of them and imports
`forestgate.engine` only, so nothing is imported here.
"""
