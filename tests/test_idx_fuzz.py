"""The IDX reader on random and malformed input: `parse_idx` and `_raw_bytes` give a correct array or
a GenexpError, never anything else (IndexError, ValueError, OverflowError, MemoryError, an
allocation the header asks for)."""

from __future__ import annotations

import gzip
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from genexp import GenexpError
from genexp.data.mnist import MAX_IDX_BYTES, MAX_IDX_DIMS, _raw_bytes, parse_idx, write_idx

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def header(dims: list[int], dtype: int = 0x08) -> bytes:
    return bytes([0, 0, dtype, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


def parse_or_refuse(raw: bytes) -> np.ndarray | None:
    """parse_idx(raw), checked against the bytes when it gives an array; None when refused."""
    try:
        array = parse_idx(raw)
    except GenexpError as e:
        assert "\n" not in str(e)
        return None
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    assert raw[:3] == b"\x00\x00\x08" and array.dtype == np.uint8 and array.shape == shape
    assert array.tobytes() == raw[4 + 4 * ndim :]  # exactly the payload, nothing more or less
    return array


def read_file_or_refuse(raw: bytes, name: str) -> bytes | None:
    """_raw_bytes of `raw` written as `name` in a fresh temporary folder; None when refused."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / name
        path.write_bytes(raw)
        try:
            return _raw_bytes(path)
        except GenexpError as e:
            assert str(path) in str(e) and "\n" not in str(e)
            return None


# ---- random input -------------------------------------------------------------------------------------
@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes(raw):
    parse_or_refuse(raw)


@FUZZ
@given(
    dtype=st.sampled_from([0x08, 0x08, 0x08, 0x09, 0x0B, 0x0D, 0x0E]),
    ndim=st.integers(0, 255),
    rest=st.binary(max_size=300),
)
def test_random_headers(dtype, ndim, rest):
    raw = bytes([0, 0, dtype, ndim]) + rest
    array = parse_or_refuse(raw)
    assert array is None or dtype == 0x08


@st.composite
def idx_files(draw):
    """A valid-looking header with random dims (small, zero or up to 2**32 - 1), then the exact payload,
    or one cut short, extended or missing: (bytes, whether they are a well-formed file)."""
    ndim = draw(st.integers(0, 6) | st.integers(7, 40))
    dims = draw(st.lists(st.integers(0, 7) | st.integers(0, 2**32 - 1), min_size=ndim, max_size=ndim))
    n = math.prod(dims)
    how = draw(st.sampled_from(["exact", "short", "long", "header_only", "cut_header"]))
    if how == "exact" and n <= 4096:
        payload = draw(st.binary(min_size=n, max_size=n))
    elif how == "short" and 0 < n <= 4096:
        payload = draw(st.binary(min_size=0, max_size=n - 1))
    else:
        payload = draw(st.binary(max_size=64))
    head = header(dims)
    if how == "header_only":
        payload = b""
    if how == "cut_header":  # the file ends inside its header (a payload after it could complete the header)
        head, payload = head[: draw(st.integers(0, max(0, len(head) - 1)))], b""
    raw = head + payload
    small = math.prod(d for d in dims if d) <= MAX_IDX_BYTES  # a bigger claim is refused, even with a 0 dim
    well_formed = how != "cut_header" and len(payload) == n and ndim <= MAX_IDX_DIMS and small
    return raw, well_formed


@FUZZ
@given(idx_files())
def test_random_dims_and_truncated_payloads(file):
    raw, well_formed = file
    array = parse_or_refuse(raw)
    assert (array is not None) == well_formed


@FUZZ
@given(idx_files(), st.sampled_from(["keep", "truncate", "flip", "garbage_after"]), st.data())
def test_gzip_wrapped_through_a_file(file, damage, data):
    raw, well_formed = file
    gz = gzip.compress(raw, mtime=0)
    if damage == "truncate":
        gz = gz[: data.draw(st.integers(0, len(gz) - 1))]
    elif damage == "flip":
        i = data.draw(st.integers(0, len(gz) - 1))
        gz = gz[:i] + bytes([gz[i] ^ data.draw(st.integers(1, 255))]) + gz[i + 1 :]
    elif damage == "garbage_after":
        gz += data.draw(st.binary(min_size=1, max_size=32))
    content = read_file_or_refuse(gz, "x-idx3-ubyte.gz")
    if damage == "keep":
        assert content == raw
    if content is not None:
        array = parse_or_refuse(content)
        if content == raw:
            assert (array is not None) == well_formed


@FUZZ
@given(st.binary(max_size=300), st.sampled_from(["x.gz", "x-idx1-ubyte"]))
def test_random_files(raw, name):
    content = read_file_or_refuse(raw, name)
    if content is not None:
        parse_or_refuse(content)


# ---- what must always come back -------------------------------------------------------------------------
@FUZZ
@given(arrays(np.uint8, array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6)), st.booleans())
def test_written_arrays_read_back(array, compressed):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / ("a.gz" if compressed else "a")
        write_idx(array, path)
        np.testing.assert_array_equal(parse_idx(_raw_bytes(path)), array)


# ---- the cases the fuzzer found or must never miss ------------------------------------------------------
@pytest.mark.parametrize(
    "dims",
    [
        [2**32 - 1, 2**32 - 1, 2**32 - 1],  # a 2**96-element claim: refused before any allocation
        [65536, 65536, 65536, 65536],  # 2**64 elements: wrapped to 0 in int64, and so "matched" 0 bytes
        [2**32 - 1],
        [0, 2**32 - 1, 2**32 - 1],  # 0 elements, but a shape numpy refuses ("array is too big")
        [1] * 17,  # more dimensions than any IDX file has (numpy allows 32 or 64)
        [1] * 255,
    ],
)
def test_huge_or_deep_headers_are_refused(dims):
    with pytest.raises(GenexpError):
        parse_idx(header(dims))


def test_a_gzip_bomb_is_cut_off(tmp_path):
    path = tmp_path / "bomb-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(header([4096, 28, 28]) + bytes(4096 * 784)))
    with pytest.raises(GenexpError, match="more than 1000 bytes"):
        _raw_bytes(path, limit=1000)
    raw_path = tmp_path / "big-idx3-ubyte"
    raw_path.write_bytes(bytes(2000))
    with pytest.raises(GenexpError, match="larger than 1000 bytes"):
        _raw_bytes(raw_path, limit=1000)


def test_a_corrupt_deflate_stream_is_one_line(tmp_path):
    """zlib.error is neither an OSError nor an EOFError: it must not escape as itself."""
    gz = bytearray(gzip.compress(header([100]) + bytes(range(100)), mtime=0))
    gz[12:20] = b"\xff" * 8  # inside the deflate data
    path = tmp_path / "bad-idx1-ubyte.gz"
    path.write_bytes(bytes(gz))
    with pytest.raises(GenexpError, match="corrupted or truncated"):
        parse_idx(_raw_bytes(path))
