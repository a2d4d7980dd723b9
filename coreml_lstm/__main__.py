"""``python -m coreml_lstm`` and ``torchrun --nproc_per_node N -m coreml_lstm``: the coreml-lstm command."""

from .cli import main

if __name__ == "__main__":
    main(prog_name="coreml-lstm")
