"""Published mean AUROCs (percent) that benchmark tables are compared against.

Transcribed from the project's reference sheet; each carries its source and a tag saying how
well it is sourced: [V] read in the primary source, [S] transcribed by another paper that names
the source, [U] unverified. All are means over the ten one-class-normal experiments.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Published:
    method: str
    auroc: float  # percent
    tag: str
    source: str


#: Fashion-MNIST, Deep SAD protocol: labelled anomalies from ONE class (k_l = 1), no pollution;
#: keyed by gamma_l.
DEEP_SAD_FMNIST: dict[float, list[Published]] = {}
_ROWS: list[tuple[str, list[float | None], str, str]] = [
    ("supervised classifier", [None, 74.4, 76.8, 79.0, 81.4], "S", "Ruff et al. 2020 via AGAD"),
    ("SS-DGM", [None, 65.1, 71.4, 72.9, 74.7], "S", "Ruff et al. 2020 via AGAD"),
    ("SSAD hybrid", [91.2, 89.4, 90.5, 91.0, 89.7], "S", "Ruff et al. 2020 via AGAD"),
    ("Deep SAD", [89.2, 90.0, 90.5, 91.3, 91.0], "S", "Ruff et al., ICLR 2020, via AGAD"),
    ("ESAD", [94.0, 95.3, 95.6, 95.8, 95.9], "S", "Huang et al. 2021, via AGAD"),
    ("AGAD", [99.9, 100.0, 100.0, 100.0, 100.0], "S", "AGAD 2023, own table; treat with caution"),
]
for _method, _values, _tag, _source in _ROWS:
    for _gamma, _value in zip((0.0, 0.01, 0.05, 0.10, 0.20), _values, strict=True):
        if _value is not None:
            DEEP_SAD_FMNIST.setdefault(_gamma, []).append(Published(_method, _value, _tag, _source))

#: Fashion-MNIST one-class (gamma_l = 0): mean and, where published, per class 0..9.
ONE_CLASS_FMNIST: list[tuple[Published, tuple[float, ...] | None]] = [
    (Published("Deep SVDD", 89.2, "S", "via ARNet/AGAD"), None),
    (
        Published("GEOM", 93.5, "S", "Golan & El-Yaniv 2018"),
        (99.4, 97.6, 91.1, 89.9, 92.1, 93.4, 83.3, 98.9, 90.8, 99.2),
    ),
    (
        Published("ARNet", 93.9, "S", "ARNet"),
        (92.7, 99.3, 89.1, 93.6, 90.8, 93.1, 85.0, 98.4, 97.8, 98.4),
    ),
    (Published("PANDA (ImageNet-pretrained)", 95.6, "S", "PANDA"), None),
]

#: Kim et al. 2020 (the two-discriminator GAN), labelled anomalies of unknown ratio.
KIM_2020_FMNIST = Published(
    "Kim et al. 2020 (dual GAN), ratio unknown", 98.6, "U", "public leaderboard"
)


def published_for(anomaly_ratio: float, n_known_anomaly_classes: int | None) -> list[Published]:
    """Published means whose protocol matches (gamma_l, k_l) on Fashion-MNIST."""
    if anomaly_ratio == 0:
        rows = [p for p, _ in ONE_CLASS_FMNIST]
        return rows + [p for p in DEEP_SAD_FMNIST.get(0.0, []) if p not in rows]
    if n_known_anomaly_classes == 1:
        return list(DEEP_SAD_FMNIST.get(round(anomaly_ratio, 4), []))
    return [KIM_2020_FMNIST]
