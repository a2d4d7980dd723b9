"""scaled_dot_product_attention against torch, with bool and float masks that broadcast."""

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from .kernels import run


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 3), min_size=1, max_size=3), st.integers(1, 5), st.integers(1, 5), st.integers(1, 4), st.integers(1, 4),
       st.sampled_from([None, "bool", "float"]), st.integers(0, 2**16), st.data())
def test_attention_matches_torch(batch, L, S, E, EV, mask, seed, data):
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal(batch + s).astype(np.float32) for s in ([L, E], [S, E], [S, EV]))
    m = None
    if mask is not None:
        # Any shape that broadcasts to (*batch, L, S): drop leading axes, set some to 1.
        full = batch + [L, S]
        shape = full[data.draw(st.integers(0, len(batch))):]
        shape = [1 if data.draw(st.booleans()) else n for n in shape[:-1]] + [S]
        m = rng.random(shape) > 0.3 if mask == "bool" else rng.standard_normal(shape).astype(np.float32)
        if mask == "bool":
            m[..., 0] = True  # no row fully masked (that row is NaN in both)
    got = run("scaled_dot_product_attention", opset="iOS18", query=q, key=k, value=v, attn_mask=m)
    want = F.scaled_dot_product_attention(*(torch.as_tensor(a) for a in (q, k, v)), attn_mask=None if m is None else torch.as_tensor(m))
    np.testing.assert_allclose(got, want.numpy(), atol=1e-5, rtol=1e-5)
