import numpy as np
import pytest

from anomalia.data.protocol import Split, deep_sad_counts, make_split
from anomalia.errors import ConfigError

TRAIN = np.repeat(np.arange(10), 600)
TEST = np.repeat(np.arange(10), 100)


def test_deep_sad_counts():
    assert deep_sad_counts(6000, 0.05, 0.0) == (315, 0)
    assert deep_sad_counts(6000, 0.0, 0.0) == (0, 0)
    n_labelled, n_polluted = deep_sad_counts(6000, 0.1, 0.1)
    assert n_polluted == 666
    assert n_labelled == int(0.1 * (6000 + 666) / 0.9)


def test_counts_ratios_and_labels():
    split = make_split(TRAIN, TEST, normal_class=3, anomaly_ratio=0.05, val_fraction=0.1)
    n_labelled = deep_sad_counts(600, 0.05, 0)[0]
    assert split.train_targets.sum() + split.val_targets.sum() == n_labelled
    assert (split.train_targets == 0).sum() + (split.val_targets == 0).sum() == 600
    assert (TRAIN[split.train_indices[split.train_targets == 0]] == 3).all()
    assert (TRAIN[split.train_indices[split.train_targets == 1]] != 3).all()
    total = len(split.train_indices) + len(split.val_indices)
    assert abs(n_labelled / total - 0.05) < 0.01
    assert len(split.val_indices) == pytest.approx(0.1 * total, abs=2)
    assert len(split.test_indices) == len(TEST)
    np.testing.assert_array_equal(split.test_labels, (TEST != 3).astype(int))


def test_train_and_val_are_disjoint_and_sorted():
    split = make_split(TRAIN, TEST, normal_class=0, pollution=0.1)
    assert not set(split.train_indices) & set(split.val_indices)
    assert len(set(split.train_indices)) == len(split.train_indices)
    assert (np.diff(split.train_indices) > 0).all()


def test_pollution_is_unlabelled():
    split = make_split(TRAIN, TEST, normal_class=0, anomaly_ratio=0.0, pollution=0.1)
    unlabelled = np.r_[split.train_indices, split.val_indices]
    n_polluted = int((TRAIN[unlabelled] != 0).sum())
    assert n_polluted == deep_sad_counts(600, 0, 0.1)[1]
    assert split.train_targets.sum() == 0 and split.val_targets.sum() == 0


def test_seeded_and_reproducible():
    a = make_split(TRAIN, TEST, normal_class=1, seed=5, n_known_anomaly_classes=1)
    b = make_split(TRAIN, TEST, normal_class=1, seed=5, n_known_anomaly_classes=1)
    c = make_split(TRAIN, TEST, normal_class=1, seed=6, n_known_anomaly_classes=1)
    np.testing.assert_array_equal(a.train_indices, b.train_indices)
    assert a.known_anomaly_classes == b.known_anomaly_classes
    assert not np.array_equal(a.train_indices, c.train_indices)


def test_one_known_anomaly_class():
    split = make_split(TRAIN, TEST, normal_class=2, n_known_anomaly_classes=1, seed=1)
    assert len(split.known_anomaly_classes) == 1 and split.known_anomaly_classes[0] != 2
    labelled = np.r_[
        split.train_indices[split.train_targets == 1], split.val_indices[split.val_targets == 1]
    ]
    assert set(TRAIN[labelled]) == set(split.known_anomaly_classes)


def test_anomaly_classes_subset():
    split = make_split(TRAIN, TEST, normal_class=0, anomaly_classes=[4, 5])
    labelled = split.train_indices[split.train_targets == 1]
    assert set(TRAIN[labelled]) <= {4, 5}


def test_save_and_load(tmp_path):
    split = make_split(TRAIN, TEST, normal_class=7, n_known_anomaly_classes=2)
    split.save(tmp_path / "split.npz")
    loaded = Split.load(tmp_path / "split.npz")
    for field in ("train_indices", "train_targets", "val_indices", "val_targets", "test_labels"):
        np.testing.assert_array_equal(getattr(split, field), getattr(loaded, field))
    assert loaded.known_anomaly_classes == split.known_anomaly_classes
    assert loaded.normal_class == 7


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"normal_class": 10}, "normal_class must be a class index in 0..9, got 10"),
        ({"normal_class": -1}, "normal_class"),
        ({"normal_class": 0, "anomaly_ratio": 1.0}, "anomaly_ratio must be in \\[0, 1\\), got 1.0"),
        ({"normal_class": 0, "anomaly_ratio": -0.1}, "anomaly_ratio"),
        ({"normal_class": 0, "pollution": 1.5}, "pollution"),
        ({"normal_class": 0, "val_fraction": 1.0}, "val_fraction"),
        ({"normal_class": 0, "anomaly_classes": [0, 1]}, "anomaly_classes"),
        ({"normal_class": 0, "n_known_anomaly_classes": 0}, "n_known_anomaly_classes"),
        ({"normal_class": 0, "anomaly_classes": [1], "anomaly_ratio": 0.9}, "needs"),
    ],
)
def test_bad_parameters_name_themselves(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        make_split(TRAIN, TEST, **kwargs)


def test_counts_report_the_realised_anomaly_ratio():
    split = make_split(TRAIN, TEST, normal_class=3, anomaly_ratio=0.05)
    n_train = len(split.train_targets)
    assert split.anomaly_ratio == split.train_targets.sum() / n_train
    assert split.anomaly_ratio == pytest.approx(0.05, abs=0.002)
    assert split.counts()["anomaly_ratio"] == pytest.approx(split.anomaly_ratio, rel=1e-3)


def test_anomaly_ratio_none_labels_every_training_anomaly():
    # MVTec-like: 3000 normal images and 150 labelled defects, too few for gamma_l = 0.05
    train = np.r_[np.zeros(3000, int), np.ones(100, int), np.full(50, 2)]
    test = np.r_[np.zeros(100, int), np.ones(50, int), np.full(50, 2)]
    with pytest.raises(ConfigError, match="needs 157 labelled anomalies"):
        make_split(train, test, normal_class=0, anomaly_ratio=0.05)
    split = make_split(train, test, normal_class=0, anomaly_ratio=None, val_fraction=0.1)
    counts = split.counts()
    # validation takes its share of each group, as with a given ratio
    assert counts["train_labelled_anomalies"] + counts["val_labelled_anomalies"] == 150
    assert counts["val_labelled_anomalies"] == 15 and counts["val_normal_or_unlabelled"] == 300
    labelled = split.train_indices[split.train_targets == 1]
    assert set(train[labelled]) == {1, 2}
    assert counts["anomaly_ratio"] == pytest.approx(135 / (2700 + 135), rel=1e-3)
    assert split.anomaly_ratio == 135 / (2700 + 135)


def test_anomaly_ratio_none_respects_the_known_classes():
    split = make_split(TRAIN, TEST, normal_class=0, anomaly_ratio=None, anomaly_classes=[4])
    labelled = np.r_[
        split.train_indices[split.train_targets == 1], split.val_indices[split.val_targets == 1]
    ]
    assert sorted(labelled.tolist()) == np.flatnonzero(TRAIN == 4).tolist()


def test_anomaly_ratio_none_without_training_anomalies_is_one_class():
    train = np.zeros(40, int)  # the anomalies all sit in the test set
    test = np.r_[np.zeros(10, int), np.ones(10, int)]
    split = make_split(train, test, normal_class=0, anomaly_ratio=None, n_classes=2)
    assert split.train_targets.sum() == 0 and split.val_targets.sum() == 0
    assert len(split.train_indices) + len(split.val_indices) == 40
    assert split.anomaly_ratio == 0.0 and split.counts()["anomaly_ratio"] == 0.0


def test_anomaly_ratio_none_leaves_nothing_to_pollute_with():
    with pytest.raises(ConfigError, match="anomaly_ratio=None labels every training anomaly"):
        make_split(TRAIN, TEST, normal_class=0, anomaly_ratio=None, pollution=0.1)
