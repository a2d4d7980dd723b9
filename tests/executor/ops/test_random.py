"""Random ops are out of scope: a program using one is refused when it is loaded."""

import pytest

from coreml_lstm.errors import UnsupportedOpError
from coreml_lstm.executor import registry
from coreml_lstm.executor.program import Op


@pytest.mark.parametrize("op_type", ["random_bernoulli", "random_categorical", "random_normal", "random_uniform"])
def test_random_ops_fail_at_load_time(op_type):
    op = Op(op_type, "noise", {}, {}, [])
    with pytest.raises(UnsupportedOpError, match=f"'noise' \\({op_type}\\) draws random numbers.*out of scope"):
        registry.lookup(op_type, "CoreML8")(op, None)  # what Program._op does for every op at load
