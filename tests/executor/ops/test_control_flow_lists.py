"""List ops: a list is a value; every write returns a new list."""

import numpy as np
import pytest

from .kernels import run


def call(op_type, opset="iOS15", **inputs):
    """The kernel ``opset`` (default iOS15, the first ML Program opset) picks for ``op_type``."""
    return run(op_type, opset, **inputs)


def test_lists_read_write_scatter_gather():
    ls = call("make_list", elem_shape=[np.int32(2)], init_length=np.int32(2))
    assert call("list_read", ls=ls, index=np.int32(0)).tolist() == [0, 0]  # never written: zeros
    ls1 = call("list_write", ls=ls, index=np.int32(0), value=np.array([1, 3], np.float32))
    ls2 = call("list_write", ls=ls1, index=np.int32(4), value=np.array([2, 4], np.float32))  # grows to 5
    ls3 = call("list_scatter", ls=ls2, indices=np.array([2, 1]), value=np.array([[-1, -2], [-4, -5]], np.float32))
    assert call("list_length", ls=ls3) == 5 and call("list_length", ls=ls) == 2  # the first list is unchanged
    assert call("list_read", ls=ls3, index=np.int32(0)).tolist() == [1, 3]
    got = call("list_gather", ls=ls3, indices=np.array([4, 2, 3]))
    np.testing.assert_array_equal(got, [[2, 4], [-1, -2], [0, 0]])


def test_fixed_lists_and_symbolic_shapes():
    fixed = call("make_list", elem_shape=[np.int32(1)], init_length=np.int32(1), dynamic_length=np.array(False))
    with pytest.raises(ValueError, match="fixed list"):
        call("list_write", ls=fixed, index=np.int32(1), value=np.zeros(1, np.float32))
    sym = call("make_list", elem_shape=["is0"], init_length=np.int32(0), dtype="int32")
    sym = call("list_write", ls=sym, index=np.int32(1), value=np.array([7, 8, 9]))
    np.testing.assert_array_equal(call("list_gather", ls=sym, indices=np.array([0, 1])), [[0, 0, 0], [7, 8, 9]])
    with pytest.raises(ValueError, match="does not match"):
        call("list_write", ls=sym, index=np.int32(0), value=np.array([1]))


def test_a_list_holds_the_bytes_of_its_written_elements():
    """What a run's count of its values adds for a list (program.LiveBytes): the elements written,
    each once, a rewritten one at its new size; slots never written hold nothing."""
    ls = call("make_list", elem_shape=[np.int32(4)], init_length=np.int32(3))
    assert ls.held_bytes == 0
    ls1 = call("list_write", ls=ls, index=np.int32(1), value=np.ones(4, np.float32))
    ls2 = call("list_write", ls=ls1, index=np.int32(1), value=np.ones(4, np.float32))  # rewritten: still one element
    ls3 = call("list_scatter", ls=ls2, indices=np.array([0, 5]), value=np.ones((2, 4), np.float32))
    assert (ls1.held_bytes, ls2.held_bytes, ls3.held_bytes) == (16, 16, 48)
    assert ls3.held_bytes == sum(a.nbytes for a in ls3.items if a is not None)
