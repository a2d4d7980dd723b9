"""coreml-lstm: recurrent sequence models from PyTorch to Core ML, with a parity check anywhere."""

__version__ = "0.1.0"

__all__ = ["__version__", "Forecaster"]


def __getattr__(name):
    # Lazy: `import coreml_lstm.executor` must not pull in torch or coremltools.
    if name == "Forecaster":
        from .api import Forecaster

        return Forecaster
    raise AttributeError(f"module 'coreml_lstm' has no attribute {name!r}")
