"""Feed files from anyone (runner.read_arrays: ``run --inputs``, ``--state``, ``verify --inputs``).

The property, for every file: its arrays, or one FeedError line naming the file (and the entry,
where one is to blame), before anything larger than the bounds is allocated. Never a traceback,
never an object array, never a number silently changed.
"""

from __future__ import annotations

import io
import json
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st
from numpy.lib import format as npformat

from coreml_lstm.errors import CoreMLLSTMError, FeedError
from coreml_lstm.executor import limits
from coreml_lstm.runner import read_arrays

from .strategies import examples


def refused(path) -> str:
    with pytest.raises(FeedError) as info:
        read_arrays(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: "), message
    return message


def npz_with(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def npy_header(shape, descr="<f4") -> bytes:
    """A .npy file that declares ``shape`` and holds no data."""
    buf = io.BytesIO()
    npformat.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()


# -- .json ---------------------------------------------------------------------------------------


def test_json_feeds_read_as_arrays(tmp_path):
    p = tmp_path / "f.json"
    p.write_text(json.dumps({"x": [[1.5, 2], [3, 4]], "ids": [1, -(2**63), 2**63 - 1], "flag": True}))
    got = read_arrays(p)
    assert got["x"].dtype == np.float64 and got["x"].tolist() == [[1.5, 2], [3, 4]]
    assert got["ids"].dtype == np.int64 and got["ids"].tolist() == [1, -(2**63), 2**63 - 1]
    assert got["flag"].dtype == np.bool_


@pytest.mark.parametrize("text, line", [
    (b'{"x": [1, 2, "\xff"]}', "not UTF-8 text (byte 0xff at line 1)"),
    (b'{"x":\n [1,\n 2,}', "invalid JSON at line 3: Expecting value"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply to read"),
    (b'{"x": [1, ' + b"9" * 5000 + b"]}", "'x' holds the integer " + "9" * 32 + "..., beyond int64"),
    (b'{"x": [1, 18446744073709551616]}', "'x' holds the integer 18446744073709551616, beyond int64"),
    (b'{"x": [-1, 9223372036854775808]}', "'x' holds the integer 9223372036854775808, beyond int64"),  # was float64, changed
    (b'{"x": [1, null]}', "'x' is not an array of numbers"),
    (b'{"x": ' + b"[" * 40 + b"1" + b"]" * 40 + b"}", "'x' is nested 40 deep; an array has at most 32 dimensions"),
    (b'{"x": [[1, 2], [3]]}', "'x' is not a rectangular array (its rows differ in length)"),
    (b"[1, 2]", "expected a JSON object of named arrays"),
], ids=["not UTF-8", "not JSON", "nested 100,000 deep", "5,000 digits", "2**64", "2**63 beside -1", "null", "40 deep", "ragged", "a list"])
def test_a_bad_json_feed_is_one_line_naming_the_file_and_the_entry(tmp_path, text, line):
    p = tmp_path / "f.json"
    p.write_bytes(text)
    message = refused(p)
    assert message.startswith(f"{p}: {line}"), message


def test_a_json_feed_past_the_tensor_bound_is_refused_before_it_is_made(tmp_path, monkeypatch):
    p = tmp_path / "f.json"
    p.write_text(json.dumps({"x": [[0.5] * 1000] * 1000}))
    monkeypatch.setattr(limits, "MAX_TENSOR_BYTES", 1 << 20)
    assert refused(p).startswith(f"{p}: 'x' of shape (1000, 1000) would need 7.6 MiB, more than the 1.0 MiB a tensor may take")


def test_a_json_file_too_large_to_parse_within_the_bound_is_refused_unread(tmp_path, monkeypatch):
    p = tmp_path / "f.json"
    p.write_text(json.dumps({"x": [0.0] * 10_000}))
    monkeypatch.setattr(limits, "MAX_LIVE_BYTES", 32 * 1000)
    assert refused(p).startswith(f"{p}: {p.stat().st_size} bytes of JSON, more than the 1000 a feed file may be")


# -- .npz ----------------------------------------------------------------------------------------


def test_npz_feeds_read_as_arrays(tmp_path):
    p = tmp_path / "f.npz"
    np.savez(p, x=np.arange(6, dtype=np.float32).reshape(2, 3), s=np.array(["a", "bc"]), f=np.asfortranarray(np.ones((2, 3))))
    got = read_arrays(p)
    assert got["x"].tolist() == [[0, 1, 2], [3, 4, 5]] and got["s"].tolist() == ["a", "bc"] and got["f"].shape == (2, 3)
    np.savez_compressed(p, y=np.zeros(5, np.int32))
    assert read_arrays(p)["y"].dtype == np.int32


def refused_at_peak(path) -> tuple[str, int]:
    """:func:`refused`'s message and the peak of the memory Python allocated meanwhile."""
    tracemalloc.start()
    try:
        return refused(path), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_tiny_npz_declaring_a_huge_array_is_refused_before_allocating(tmp_path):
    p = npz_with(tmp_path / "f.npz", {"x.npy": npy_header((1 << 20, 1 << 20))})
    message, peak = refused_at_peak(p)
    assert message.startswith(f"{p}: 'x' of shape (1048576, 1048576) would need 4.0 TiB, more than the"), message
    assert peak < 1 << 20, peak


def test_an_npz_member_declaring_more_than_it_holds_is_refused_before_allocating(tmp_path):
    p = npz_with(tmp_path / "f.npz", {"x.npy": npy_header((1000, 1000))})  # 4 MB declared, none held
    message, peak = refused_at_peak(p)
    assert message == f"{p}: 'x' declares shape (1000, 1000) of float32 (4000000 bytes) but holds 0 bytes of data; truncated?", message
    assert peak < 1 << 20, peak


@pytest.mark.parametrize("members, line", [
    ({"x.npy": np.lib.format.magic(1, 0)}, "'x' is not a readable .npy array"),
    ({"notes.txt": b"hello"}, "member 'notes.txt' is not a .npy array"),
    ({"x.npy": npy_header((2,), "|O")}, "'x' holds Python objects (dtype object), which a feed file may not"),
    ({"x.npy": npy_header((2,), [("a", "<f4"), ("b", "<i4")])}, "'x' has a structured dtype"),
    ({"x.npy": b"\x93NUMPY\x03\x00" + b"\x00" * 8}, "'x' is not a readable .npy array"),
], ids=["no header", "a text member", "objects", "structured", "format 3.0"])
def test_a_bad_npz_member_is_one_line_naming_it(tmp_path, members, line):
    p = npz_with(tmp_path / "f.npz", members)
    message = refused(p)
    assert message.startswith(f"{p}: {line}"), message


def test_a_file_that_is_not_a_zip_is_one_line(tmp_path):
    p = tmp_path / "f.npz"
    np.save(tmp_path / "f.npy", np.ones(3))
    (tmp_path / "f.npy").rename(p)
    assert refused(p).startswith(f"{p}: not a readable .npz file (")


def test_npz_feeds_together_past_the_live_bound_are_refused(tmp_path, monkeypatch):
    p = tmp_path / "f.npz"
    np.savez(p, **{f"x{i}": np.zeros(1000) for i in range(10)})
    monkeypatch.setattr(limits, "MAX_LIVE_BYTES", 50_000)
    assert refused(p) == (f"{p}: 'x6' takes the feeds to 54.7 KiB, more than the 48.8 KiB a run may hold "
                          "(COREML_LSTM_MAX_LIVE_BYTES raises it)")


# -- random bytes ------------------------------------------------------------------------------


def _property(path):
    """read_arrays(path): arrays of plain dtypes, or the one-line FeedError naming the file."""
    try:
        arrays = read_arrays(path)
    except FeedError as exc:
        assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc), str(exc)
        event("refused")
        return
    except CoreMLLSTMError as exc:  # pragma: no cover - the wrong class
        raise AssertionError(f"{type(exc).__name__}, not FeedError: {exc}") from None
    assert all(isinstance(a, np.ndarray) and not a.dtype.hasobject for a in arrays.values())
    event("read")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=30,
)


@settings(max_examples=examples(60))
@given(feeds=st.dictionaries(st.text(max_size=5), json_values, max_size=4), cut=st.one_of(st.none(), st.integers(0, 200)),
       flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4))
@example(feeds={"x": [[1, 2], [3]]}, cut=None, flips=[])
def test_random_json_feed_files_read_or_are_one_line(tmp_path_factory, feeds, cut, flips):
    data = bytearray(json.dumps(feeds).encode())
    for where, byte in flips:
        if data:
            data[where % len(data)] = byte
    if cut is not None:
        data = data[:cut]
    path = tmp_path_factory.mktemp("j") / "f.json"
    path.write_bytes(bytes(data))
    _property(path)


@st.composite
def npz_bytes(draw):
    arrays = draw(st.dictionaries(st.text("abcxyz_", min_size=1, max_size=4), st.sampled_from([
        np.zeros((2, 3), np.float32), np.arange(5), np.array(["a", "bc"]), np.ones((0, 4)), np.array(3.5), np.eye(3, dtype=np.float16),
    ]), min_size=1, max_size=3))
    buf = io.BytesIO()
    (np.savez_compressed if draw(st.booleans()) else np.savez)(buf, **arrays)
    return bytearray(buf.getvalue())


@settings(max_examples=examples(60))
@given(data=npz_bytes(), flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 7)), max_size=6),
       cut=st.one_of(st.none(), st.floats(0, 1)))
def test_random_bytes_of_npz_feed_files_read_or_are_one_line(tmp_path_factory, data, flips, cut):
    for where, bit in flips:
        data[int(where * len(data))] ^= 1 << bit
    if cut is not None:
        data = data[: int(cut * len(data))]
    path = tmp_path_factory.mktemp("z") / "f.npz"
    path.write_bytes(bytes(data))
    saved = limits.MAX_TENSOR_BYTES
    limits.MAX_TENSOR_BYTES = 64 << 20  # a flipped shape must not eat the machine
    try:
        _property(path)
    finally:
        limits.MAX_TENSOR_BYTES = saved


@settings(max_examples=examples(30))
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".json", ".npz"]))
def test_random_bytes_as_feed_files_are_one_line(tmp_path_factory, data, suffix):
    path = tmp_path_factory.mktemp("b") / f"f{suffix}"
    path.write_bytes(data)
    _property(path)


def test_an_npz_of_a_zip_version_zipfile_lacks_is_one_line(tmp_path):
    """zipfile raised NotImplementedError ('zip file version 10.9') through read_arrays."""
    path = tmp_path / "v.npz"
    np.savez(path, x=np.ones(3, np.float32))
    data = bytearray(path.read_bytes())
    at = data.index(b"PK\x01\x02")  # the central directory entry: 'version needed to extract' at +6
    data[at + 6 : at + 8] = (109).to_bytes(2, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(FeedError, match=r"^.*v\.npz: not a readable \.npz file \(NotImplementedError: zip file version 10\.9\)$"):
        read_arrays(path)
