import numpy as np
import pytest

from anomalia.data.sampler import BalancedBatchSampler
from anomalia.errors import ConfigError

TARGETS = np.r_[np.zeros(100, dtype=int), np.ones(7, dtype=int)]


def test_every_batch_is_half_and_half():
    batches = list(BalancedBatchSampler(TARGETS, batch_size=8))
    assert len(batches) == len(BalancedBatchSampler(TARGETS, batch_size=8)) == 25
    for batch in batches:
        assert (TARGETS[batch] == 0).sum() == 4
        assert (TARGETS[batch] == 1).sum() == 4


def test_normals_once_per_epoch_anomalies_resampled_evenly():
    batches = list(BalancedBatchSampler(TARGETS, batch_size=10, normal_fraction=0.7))
    flat = np.concatenate(batches)
    normals = flat[TARGETS[flat] == 0]
    assert sorted(normals) == list(range(100))
    counts = np.bincount(flat[TARGETS[flat] == 1] - 100, minlength=7)
    assert counts.max() - counts.min() <= 1


def test_short_last_batch_keeps_proportion():
    batches = list(BalancedBatchSampler(TARGETS, batch_size=16))
    last = batches[-1]
    assert (TARGETS[last] == 0).sum() == 100 % 8
    assert (TARGETS[last] == 1).sum() == 100 % 8


def test_no_anomalies_plain_batches():
    batches = list(BalancedBatchSampler(np.zeros(50, dtype=int), batch_size=16))
    assert [len(b) for b in batches] == [16, 16, 16, 2]
    assert sorted(np.concatenate(batches)) == list(range(50))


def test_epochs_differ_and_replay():
    sampler = BalancedBatchSampler(TARGETS, batch_size=8, seed=3)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    sampler.set_epoch(0)
    assert list(sampler) == first
    assert first != second


def test_distributed_shards_are_disjoint(monkeypatch):
    shards = []
    for rank in range(2):
        sampler = BalancedBatchSampler(TARGETS, batch_size=8)
        monkeypatch.setattr(BalancedBatchSampler, "_world", staticmethod(lambda r=rank: (r, 2)))
        shards.append(list(sampler))
        assert len(shards[-1]) == len(sampler) == 12
    normals = [set(np.concatenate(s)) - set(range(100, 107)) for s in shards]
    assert not normals[0] & normals[1]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 8, "normal_fraction": 1.0}, "normal_fraction"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        BalancedBatchSampler(TARGETS, **kwargs)


def test_needs_normals():
    with pytest.raises(ConfigError, match="no normal images"):
        BalancedBatchSampler(np.ones(5, dtype=int), batch_size=4)
