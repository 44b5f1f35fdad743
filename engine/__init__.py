"""The engine: opening a compiled bundle and calling its native library.

`manifest` is the bundle's typed schema, `abi` the one ctypes declaration of the library's
functions, `model.CompiledModel` the loaded model, `calibration` and `reference` the maps and
distributions a manifest carries. numpy and the standard library only: this is what a serving
image needs, and the server imports it, never the compiler.
"""
