"""The count of the bytes a run holds at once (program.LiveBytes): memory, not arrays.

A view counts at the bytes of the memory it views, once however many values view it and for as
long as any of them is held; the program's constants are counted before the run begins; a nested
block's values go when the block ends; the bound is passed only by memory really held.
"""

import numpy as np
import pytest

from coreml_lstm.errors import PackageError
from coreml_lstm.executor import limits
from coreml_lstm.executor.program import LiveBytes, Op

MIB = 1 << 20


def mib(n: float) -> np.ndarray:
    return np.zeros(int(n * MIB), np.uint8)


def test_a_view_counts_at_its_memory_once_while_any_view_is_held():
    live = LiveBytes(0, ())
    a = mib(4)
    live.add(a)
    head = a[:10]  # 10 bytes of its own, but it keeps all 4 MiB alive
    live.add(head)
    live.add(a.reshape(2, -1))
    assert live.total == 4 * MIB
    live.drop(a)
    live.drop(a.reshape(2, -1))
    assert live.total == 4 * MIB  # the head still holds the memory
    live.drop(head)
    assert live.total == 0


def test_the_same_array_twice_counts_once():
    live = LiveBytes(0, ())
    a = mib(1)
    live.add(a)
    live.add(a)
    assert live.total == MIB
    live.drop(a)
    assert live.total == MIB
    live.drop(a)
    assert live.total == 0


def test_the_constants_start_the_count_and_a_view_of_one_adds_nothing():
    c = mib(2)
    live = LiveBytes(c.nbytes, {id(c)})
    live.add(c[1:].reshape(1, -1))
    assert live.total == 2 * MIB
    live.drop(c[1:])
    assert live.total == 2 * MIB  # the program still holds it


def _put(live, scope, name, value):
    """What the runner does with a nested block's value: into its scope, and counted."""
    scope[name] = value
    live.add_nested(value)


def test_a_nested_block_is_counted_exactly_near_the_bound_and_its_values_go_with_it(monkeypatch):
    monkeypatch.setattr(limits, "MAX_LIVE_BYTES", 6 * MIB)
    live = LiveBytes(0, ())
    main = {"outer": mib(4)}
    live.add(main["outer"])
    block = dict(main)
    start = live.enter(block)
    for i in range(3):  # views of a value of the main block: first counted each at 4 MiB...
        _put(live, block, f"v{i}", main["outer"].reshape(2, -1))
    assert live.total == 16 * MIB
    live.check(Op("reshape", "v", {}, {}, []))  # ...so near the bound the count is made exact: no error
    assert live.total == 4 * MIB
    _put(live, block, "mine", mib(1))
    _put(live, block, "head", block["mine"][:5])
    inner_block = dict(block)
    inner = live.enter(inner_block)
    _put(live, inner_block, "again", block["mine"].reshape(1, -1))  # the outer block counts it
    _put(live, inner_block, "big", mib(1.5))
    assert live.total == 6.5 * MIB
    with pytest.raises(PackageError, match=r"^op 'big' \(fill\): the values this run holds at once reach 6.5 MiB, more than the 6.0 MiB a run may hold"):
        live.check(Op("fill", "big", {}, {}, []))
    live.leave(inner)
    assert live.total == 5 * MIB
    live.leave(start)
    assert live.total == 4 * MIB and live.seen is None  # back to the main block, counted as it was
    block = dict(main)
    start = live.enter(block)  # the next block counts by the upper bound again
    _put(live, block, "first", main["outer"][:1])
    assert live.total == 8 * MIB
    live.leave(start)
    assert live.total == 4 * MIB


def test_a_block_entered_before_the_count_turned_exact_gives_back_only_what_it_counted(monkeypatch):
    monkeypatch.setattr(limits, "MAX_LIVE_BYTES", 3 * MIB)
    live = LiveBytes(0, ())
    main = {"outer": mib(2)}
    live.add(main["outer"])
    block = dict(main)
    start = live.enter(block)
    _put(live, block, "a", main["outer"][1:])
    inner_block = dict(block)
    inner = live.enter(inner_block)  # at 4 MiB, the upper bound
    _put(live, inner_block, "b", main["outer"][2:])
    live.check(None)  # 6 MiB by the upper bound: exact, 2 MiB
    assert live.total == 2 * MIB
    live.leave(inner)  # not back to the 4 MiB it began at: it counted nothing
    assert live.total == 2 * MIB
    live.leave(start)
    assert live.total == 2 * MIB


def test_a_value_a_block_overwrote_is_not_counted_exactly():
    """The exact count reads what the scopes hold: a value a block's name no longer holds is gone."""
    live = LiveBytes(0, ())
    block = {}
    start = live.enter(block)
    _put(live, block, "x", mib(1))
    _put(live, block, "x", mib(2))  # the same name again (no valid program does it): 1 MiB let go
    live.exact()
    assert live.total == 2 * MIB
    live.leave(start)
    assert live.total == 0
