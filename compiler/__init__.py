"""The model compiler: trained trees -> Treelite -> TL2cgen C -> verified native bundle.

The pipeline is `source.load_source` -> `codegen.build_library` -> `bundle.Manifest` ->
`verify.verify_library`, tied together by `pipeline.compile_model`. The serving side needs only
`bundle` and `runtime`, which import nothing beyond numpy and the standard library; the other
modules import treelite, tl2cgen and the training frameworks, so nothing is imported here.
"""
