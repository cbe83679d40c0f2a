import pytest

from sslbook.experiments import EXPERIMENTS, scaling
from sslbook.profiles import profile


def test_scaling_is_a_registered_experiment():
    assert EXPERIMENTS["scaling"] is scaling.run


def test_each_axis_moves_alone_from_the_profile_setting():
    cfg = profile("cpu")
    runs = scaling.settings(cfg, 10_000)
    base = {"batch_size": cfg.batch_size, "width": cfg.width, "train_size": 10_000}
    assert runs[0] == {"axis": "reference"} | base
    assert len(runs) == 1 + len(scaling.AXES) * len(scaling.FRACTIONS)
    for row in runs[1:]:
        changed = {k for k in base if row[k] != base[k]}
        assert changed == {row["axis"]}, row
    widths = sorted(r["width"] for r in runs if r["axis"] == "width")
    assert widths == [cfg.width // 4, cfg.width // 2]


def test_unknown_axis_is_refused_before_any_training():
    with pytest.raises(ValueError, match="unknown scaling axes.*depth"):
        scaling.run(profile("smoke"), axes=("depth",))
