import gzip
import tracemalloc

import numpy as np
import pytest

from anomalia.data.idx import read_idx, write_idx
from anomalia.errors import DataError


@pytest.mark.parametrize("name", ["x-idx3-ubyte", "x-idx3-ubyte.gz"])
def test_round_trip_raw_and_gzip(tmp_path, name):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / name, array)
    np.testing.assert_array_equal(read_idx(tmp_path / name), array)


def test_gzip_detected_from_content_not_name(tmp_path):
    array = np.ones((5, 2), dtype=np.uint8)
    write_idx(tmp_path / "labels", array, compress=True)
    np.testing.assert_array_equal(read_idx(tmp_path / "labels"), array)


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.float32, np.float64])
def test_other_idx_types(tmp_path, dtype):
    array = np.linspace(-3, 3, 12).astype(dtype).reshape(3, 4)
    write_idx(tmp_path / "a", array)
    np.testing.assert_array_equal(read_idx(tmp_path / "a"), array)


def _valid_bytes() -> bytes:
    return bytes([0, 0, 8, 2]) + (3).to_bytes(4, "big") + (4).to_bytes(4, "big") + bytes(range(12))


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "truncated"),
        (b"\x00\x00", "truncated"),
        (_valid_bytes()[:6], "truncated"),
        (_valid_bytes()[:-1], "truncated"),
        (_valid_bytes() + b"\x00", "beyond"),
        (b"\x12\x34\x08\x02" + _valid_bytes()[4:], "not an IDX file"),
        (b"\x00\x00\x07\x02" + _valid_bytes()[4:], "not an IDX file"),
        (b"\x00\x00\x08\x09" + _valid_bytes()[4:], "not an IDX file"),
        (bytes([0, 0, 8, 2]) + (0).to_bytes(4, "big") + (4).to_bytes(4, "big"), "empty"),
    ],
)
def test_corrupt_files_are_clear_errors(tmp_path, payload, message):
    path = tmp_path / "bad-idx"
    path.write_bytes(payload)
    with pytest.raises(DataError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_absurd_header_does_not_allocate(tmp_path):
    path = tmp_path / "huge"
    dims = b"".join((60000).to_bytes(4, "big") for _ in range(3))
    path.write_bytes(bytes([0, 0, 8, 3]) + dims + b"\x00" * 100)
    tracemalloc.start()
    with pytest.raises(DataError, match="absurdly large"):
        read_idx(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 50 * 1024**2


def test_plausible_header_with_missing_payload_is_truncated_without_big_allocation(tmp_path):
    path = tmp_path / "short.gz"
    header = bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in (60000, 28, 28))
    path.write_bytes(gzip.compress(header + b"\x01" * 1000))
    tracemalloc.start()
    with pytest.raises(DataError, match="truncated"):
        read_idx(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 20 * 1024**2


def test_corrupt_gzip_stream(tmp_path):
    path = tmp_path / "x.gz"
    good = gzip.compress(_valid_bytes())
    path.write_bytes(good[:12] + bytes(b ^ 0xFF for b in good[12:]))
    with pytest.raises(DataError, match=str(path)):
        read_idx(path)


def test_checksum_mismatch(tmp_path):
    path = tmp_path / "a"
    path.write_bytes(_valid_bytes())
    with pytest.raises(DataError, match="SHA-256"):
        read_idx(path, expected_sha256="0" * 64)


def test_checksum_match(tmp_path):
    import hashlib

    path = tmp_path / "a.gz"
    path.write_bytes(gzip.compress(_valid_bytes()))
    digest = hashlib.sha256(_valid_bytes()).hexdigest()
    assert read_idx(path, expected_sha256=digest).shape == (3, 4)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such IDX file"):
        read_idx(tmp_path / "nope")


def test_header_whose_size_overflows_int64(tmp_path):
    # Found by the property test: 633276 * 1223254 * 11906389 wraps around in int64.
    path = tmp_path / "overflow"
    dims = (633276, 1223254, 11906389)
    path.write_bytes(bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in dims))
    with pytest.raises(DataError, match="absurdly large"):
        read_idx(path)
