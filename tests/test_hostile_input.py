"""Property-based tests: readers and the config loader given random input raise clear errors
(DataError / ConfigError) and never crash otherwise or return a wrong array."""

import contextlib
import gzip

import numpy as np
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from anomalia.config import RunConfig, from_dict, load_yaml
from anomalia.data.idx import read_idx
from anomalia.errors import ConfigError, DataError

FILE_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def check_reader(path, data):
    path.write_bytes(data)
    try:
        array = read_idx(path)
    except DataError as err:
        assert str(path) in str(err)
        return
    # Accepted: the array must be exactly what the header announced.
    raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    n_dims = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(n_dims))
    assert array.shape == dims
    assert 4 + 4 * n_dims + array.nbytes == len(raw)


@FILE_SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes(tmp_path, data):
    check_reader(tmp_path / "random", data)


@FILE_SETTINGS
@given(st.binary(max_size=300))
def test_random_gzip_payload(tmp_path, data):
    check_reader(tmp_path / "random.gz", gzip.compress(data))


@FILE_SETTINGS
@given(
    type_code=st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x07, 0xFF]),
    dims=st.lists(st.integers(0, 2**32 - 1), min_size=0, max_size=5),
    payload=st.binary(max_size=200),
)
def test_random_headers(tmp_path, type_code, dims, payload):
    header = bytes([0, 0, type_code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    check_reader(tmp_path / "header", header + payload)


def test_valid_file_with_random_content_reads_back(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    from anomalia.data.idx import write_idx

    write_idx(tmp_path / "a.gz", array)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), array)


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=3)
    ),
    max_leaves=12,
)
known_keys = st.sampled_from(["method", "model", "data", "train", "output_dir", "name", "plots"])
section_keys = st.sampled_from(
    [
        "normal_class",
        "anomaly_ratio",
        "n_epochs",
        "lr",
        "betas",
        "anomaly_classes",
        "seed",
        "devices",
        "progress_bar",
        "bogus",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        known_keys | st.text(max_size=8),
        yaml_values | st.dictionaries(section_keys, yaml_values, max_size=4),
        max_size=5,
    )
)
def test_random_configs(data):
    try:
        config = from_dict(RunConfig, data)
    except ConfigError as err:
        assert str(err)
        return
    assert isinstance(config, RunConfig)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(max_size=200))
@example("?")  # a mapping whose only key is null: once a TypeError, not a ConfigError
def test_random_yaml_text(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    try:
        data = load_yaml(path)
    except ConfigError as err:
        assert str(path) in str(err)
        return
    assert isinstance(data, dict)
    with contextlib.suppress(ConfigError):
        from_dict(RunConfig, data)


def test_yaml_with_unknown_key_round_trip(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"train": {"n_epochs": 3, "epochs": 4}}))
    try:
        from_dict(RunConfig, load_yaml(path))
    except ConfigError as err:
        assert "train.epochs" in str(err)
    else:
        raise AssertionError("unknown key accepted")
