"""Executor against torch over the conversion matrix (coreml_lstm.zoo): the ``fast`` cases (every
axis at least once), each converted with coremltools, saved, loaded back from disk and compared.
The whole matrix runs with ``scripts/parity_matrix.py`` (or COREML_LSTM_FULL_MATRIX=1 here).
The bars: fp32 programs 1e-5 max abs; fp16 programs 5e-2 abs and rel; compressed programs
decompress exactly as coremltools does, then a per-method bar against the original torch weights."""

import os

import pytest

from coreml_lstm.zoo import FP16_BAR, FP32_BAR, cases, run_case

ALL = cases()
RUN = [c for c in ALL if c.fast or os.environ.get("COREML_LSTM_FULL_MATRIX") == "1"]


@pytest.mark.parametrize("case", RUN, ids=[c.name for c in RUN])
def test_executor_matches_torch(case):
    r = run_case(case)
    print(f"{case.name}: max abs {r.max_abs:.3g}, max rel {r.max_rel:.3g}, bar {case.bar:g} {r.detail}")
    assert r.passed, f"{case.name}: max abs {r.max_abs:.3g}, max rel {r.max_rel:.3g} over the bar {case.bar:g} {r.detail}"


def test_the_matrix_covers_every_axis():
    names = {c.name for c in ALL}
    assert {c.target for c in ALL} == {"iOS15", "iOS16", "iOS17", "iOS18"}
    assert {c.precision for c in ALL} == {"fp32", "fp16"}
    assert {c.compress for c in ALL if c.compress} == {"int8", "palettize4", "palettize6", "prune50"}
    assert {c.flexible for c in ALL if c.flexible} == {"range", "enumerated"}
    # flexible length, flexible batch, both, and enumerated batch/length shapes, for each layer kind
    flexible = {(c.flexible, c.axes) for c in ALL if c.flexible}
    assert {("range", (1,)), ("range", (0,)), ("range", (0, 1)), ("enumerated", (1,)), ("enumerated", (0, 1))} <= flexible
    for kind in ("lstm", "gru", "rnn"):
        for suffix in ("-batch-", "-batch-length-", "-enumerated-batch-length-"):
            assert any(n.startswith(kind) and suffix in n for n in names), kind + suffix
    assert all(len(c.shapes((2, 7, 5))) >= 4 for c in ALL if c.flexible and 0 in c.axes)
    assert {c.axes for c in RUN if c.flexible} >= {(0,), (0, 1), (1,)}
    for part in ("bilstm", "bigru", "seqmajor", "h0c0", "embedding", "softmax", "rnn1-relu", "rnn-tanh", "stateful", "gru1", "lstm1"):
        assert any(part in n for n in names), part
    assert FP32_BAR == 1e-5 and FP16_BAR == 5e-2


def test_a_wrong_weight_is_caught(tmp_path):
    """The check can fail: perturb one stored weight of a saved package and the parity breaks."""
    import numpy as np
    import torch

    import coreml_lstm.executor as ex
    from coreml_lstm.zoo import convert

    case = next(c for c in ALL if c.name == "lstm1-fp32")
    module, feeds, path, _ = convert(case, tmp_path)
    blob = path / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    data = bytearray(blob.read_bytes())
    # The first record's data starts at the offset stored in its header (bytes 16..24 after 64).
    offset = int.from_bytes(data[64 + 16 : 64 + 24], "little")
    value = np.frombuffer(bytes(data[offset : offset + 4]), np.float32)[0]
    data[offset : offset + 4] = np.float32(value + 0.5).tobytes()
    blob.write_bytes(bytes(data))
    with torch.no_grad():
        want = module(torch.as_tensor(feeds["x"])).numpy()
    got = ex.load(path).predict(feeds)["y"]
    assert np.max(np.abs(got - want)) > 1e-3


def test_a_run_for_the_outputs_lets_go_of_each_value_after_its_last_reader(tmp_path):
    """A chain of eight unary ops on a 4 MiB input: asked for its outputs only, a run holds about
    the values still to be read (a few), not all eight; with intermediate values kept, all of them."""
    import tracemalloc

    import numpy as np
    import torch
    from torch import nn

    import coreml_lstm
    import coreml_lstm.executor as ex

    class Chain(nn.Module):
        def forward(self, x):
            for f in (torch.sin, torch.cos, torch.tanh, torch.exp, torch.abs, torch.sigmoid, torch.sin, torch.cos):
                x = f(x)
            return x.sum(-1)

    n = 1 << 20
    path, report = coreml_lstm.convert(Chain().eval(), torch.randn(1, n), tmp_path / "chain.mlpackage", samples=1)
    assert report.status == "passed"
    program = ex.load(path)
    x = np.random.default_rng(0).standard_normal((1, n)).astype(np.float32)
    peaks, outs = {}, {}
    for intermediate in (False, True):
        tracemalloc.start()
        outs[intermediate] = program.run({"x": x}, intermediate=intermediate)["output"]
        peaks[intermediate] = tracemalloc.get_traced_memory()[1] / (4 * n)  # in input sizes
        tracemalloc.stop()
    np.testing.assert_array_equal(outs[False], outs[True].reshape(outs[False].shape))
    assert peaks[False] < 4 < 8 <= peaks[True], peaks
    # The values held at once are bounded too (MAX_LIVE_BYTES): six inputs' worth holds the run
    # for the outputs, not the one that keeps all eight.
    import pytest

    from coreml_lstm.errors import PackageError
    from coreml_lstm.executor import limits

    bound = limits.MAX_LIVE_BYTES
    try:
        limits.MAX_LIVE_BYTES = 6 * 4 * n
        np.testing.assert_array_equal(program.run({"x": x}, intermediate=False)["output"], outs[False])
        with pytest.raises(PackageError, match=r"the values this run holds at once reach .* more than the 24.0 MiB a run may hold"):
            program.run({"x": x}, intermediate=True)
    finally:
        limits.MAX_LIVE_BYTES = bound
