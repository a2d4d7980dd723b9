"""coreml-lstm: recurrent sequence models from PyTorch to Core ML, with a parity check anywhere.

    import coreml_lstm
    path, report = coreml_lstm.convert(model, example, "model.mlpackage", inputs={"x": (1, "1..512", 6)})
    report = coreml_lstm.verify(model, "model.mlpackage")

Everything is imported lazily: ``import coreml_lstm.executor`` pulls in neither torch nor
coremltools.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "Forecaster", "convert", "verify"]


def __getattr__(name):
    # Lazy: `import coreml_lstm.executor` must not pull in torch or coremltools.
    if name == "Forecaster":
        from .api import Forecaster

        return Forecaster
    if name == "convert":
        from .user_model import convert

        return convert
    if name == "verify":
        # The module coreml_lstm.verify, callable as the function (see its _VerifyModule).
        import importlib

        return importlib.import_module(".verify", __name__)
    raise AttributeError(f"module 'coreml_lstm' has no attribute {name!r}")
