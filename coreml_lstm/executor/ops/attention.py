"""Attention (MIL ``transformers`` family, iOS18): scaled_dot_product_attention."""

from __future__ import annotations

import numpy as np

from ..limits import check_broadcast, check_shape
from ..program import Kernel
from ..registry import kernel


@kernel("scaled_dot_product_attention", opset="iOS18")
class ScaledDotProductAttention(Kernel):
    """softmax(Q K^T / sqrt(E) + M) V over the last axis, as torch's scaled_dot_product_attention.

    Shapes: query (B, *, L, E), key (B, *, S, E), value (B, *, S, EV) -> (B, *, L, EV); the
    optional attn_mask broadcasts to (B, *, L, S). A bool mask keeps the positions where it is
    True (the others get -inf); a float mask is added to the scores. A row whose every position
    is masked gives NaN, as the definition (and torch) does.
    """

    def compute(self, *, query, key, value, attn_mask=None):
        q, k, v = (np.asarray(a, np.float32) for a in (query, key, value))
        if not q.ndim == k.ndim == v.ndim or q.ndim < 3:
            raise ValueError(f"scaled_dot_product_attention: query, key, value of ranks {q.ndim}, {k.ndim}, {v.ndim}")
        if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
            raise ValueError(f"scaled_dot_product_attention: query {q.shape}, key {k.shape}, value {v.shape} do not fit")
        # The (B, *, L, S) scores, their exp and the weights are float32 temporaries of that size.
        batch = check_broadcast(q.shape[:-2], k.shape[:-2], v.shape[:-2], what="scaled_dot_product_attention")
        score_shape = batch + (q.shape[-2], k.shape[-2])
        if attn_mask is not None:
            score_shape = check_broadcast(score_shape, np.shape(attn_mask), what="scaled_dot_product_attention (its scores)")
        check_shape(score_shape, 4, "scaled_dot_product_attention (its scores)")
        check_shape(score_shape[:-1] + v.shape[-1:], 4, "scaled_dot_product_attention")
        scores = np.matmul(q, np.swapaxes(k, -1, -2)) * np.float32(1.0 / np.sqrt(q.shape[-1]))  # (B, *, L, S)
        if attn_mask is not None:
            mask = np.asarray(attn_mask)
            if mask.dtype == np.bool_:
                scores = np.where(mask, scores, np.float32(-np.inf))
            else:
                scores = scores + mask.astype(np.float32)
        with np.errstate(invalid="ignore"):
            e = np.exp(scores - np.max(scores, axis=-1, keepdims=True))
            weights = e / np.sum(e, axis=-1, keepdims=True)
        return np.matmul(weights, v)
