import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from anomalia.errors import DataError
from anomalia.evaluation import auprc, auroc, evaluate_scores, threshold_metrics


def test_auroc_equals_sklearn():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 500)
    scores = rng.normal(size=500) + labels
    assert auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))


def test_auroc_by_hand():
    assert auroc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert auroc([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1]) == 0.0
    assert auroc([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4]) == 0.75


def test_auprc_by_hand():
    # ranking: 0.4(1) 0.3(0) 0.2(1) 0.1(0): AP = 0.5 * 1 + 0.5 * 2/3
    assert auprc([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4]) == pytest.approx(0.5 + 1 / 3)


def test_threshold_metrics_by_hand():
    m = threshold_metrics([0, 0, 1, 1, 1], [0.1, 0.6, 0.4, 0.7, 0.9], threshold=0.5)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["accuracy"] == pytest.approx(3 / 5)


def test_evaluate_scores_study_losses():
    m = evaluate_scores([0, 0, 1, 1], [0.1, 0.3, 0.5, 0.9], 0.4, classes=[0, 0, 3, 5])
    assert m["mean_score_normal"] == pytest.approx(0.2)
    assert m["mean_score_anomaly"] == pytest.approx(0.7)
    assert m["mean_score_by_class"] == {0: pytest.approx(0.2), 3: 0.5, 5: 0.9}
    assert m["auroc"] == 1.0 and m["f1"] == 1.0


@pytest.mark.parametrize(
    ("labels", "scores", "match"),
    [
        ([0, 0], [0.1, 0.2], "both"),
        ([0, 1], [0.1, np.nan], "NaN"),
        ([0, 1, 1], [0.1, 0.2], "equal in length"),
        ([0, 2], [0.1, 0.2], "0 \\(normal\\) or 1"),
    ],
)
def test_bad_inputs(labels, scores, match):
    with pytest.raises(DataError, match=match):
        auroc(labels, scores)
