"""The reconstruction experiments (autoencoder, denoising, MAE) on tiny random data."""

import pytest
import torch

from sslbook.data import ImageData
from sslbook.experiments import EXPERIMENTS, reconstruction
from sslbook.methods import MAE
from sslbook.models import vit_mini
from sslbook.profiles import profile

TINY = profile("smoke").with_(width=8, batch_size=32, epochs=1, probe_epochs=2, knn_k=10)


@pytest.fixture
def fake_splits(monkeypatch):
    g = torch.Generator().manual_seed(0)

    def make(n):
        images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
        return ImageData(images, torch.arange(n) % 10, tuple("abcdefghij"), "random images")

    monkeypatch.setattr(
        reconstruction, "load_splits", lambda cfg, device=None: (make(64), make(32))
    )


def test_the_three_studies_are_experiments():
    assert EXPERIMENTS["autoencoder"] is reconstruction.run_autoencoder
    assert EXPERIMENTS["denoising"] is reconstruction.run_denoising
    assert EXPERIMENTS["mae"] is reconstruction.run_mae


def test_autoencoder_study_has_a_random_init_row_and_one_row_per_bottleneck(fake_splits, tmp_path):
    result = reconstruction.run_autoencoder(TINY, "cpu", tmp_path, bottlenecks=(16, 32))
    rows = result["rows"]
    assert [(r["model"], r["bottleneck"]) for r in rows] == [
        ("random init", 128),
        ("autoencoder", 16),
        ("autoencoder", 32),
    ]
    for row in rows:
        assert row["mse"] > 0 and 0 <= row["knn"] <= 1 and 0 <= row["linear"] <= 1
    # uniform random pixels: the mean image errs by about the variance of U(0, 1), 1/12
    assert result["mean_image_mse"] == pytest.approx(1 / 12, rel=0.1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["code16", "code32"]
    # trained rows carry their cost; the larger code costs more arithmetic per image
    small, large = rows[1], rows[2]
    assert small["images_per_s"] > 0 and 0 < small["flops_per_image"] < large["flops_per_image"]


def test_denoising_study_reports_each_noise_level(fake_splits):
    result = reconstruction.run_denoising(TINY, "cpu", None, noise_stds=(0.0, 0.3))
    assert [r["noise_std"] for r in result["rows"]] == [0.0, 0.3]
    assert result["bottleneck"] == 128


def test_denoising_seeds_other_than_zero_train_only_the_seed_zero_choice(fake_splits, monkeypatch):
    monkeypatch.setattr(
        reconstruction,
        "reference_choice",
        lambda experiment, cfg, setting: {("denoising", "noise_std"): 0.3}[experiment, setting],
    )
    result = reconstruction.run_denoising(TINY, "cpu", None, seed=1)
    assert [r["noise_std"] for r in result["rows"]] == [0.3]


def test_mae_study_reports_loss_against_predicting_zero(fake_splits):
    result = reconstruction.run_mae(TINY, "cpu", None, mask_ratios=(0.5,))
    random_row, row = result["rows"]
    assert random_row["model"] == "random init" and row["mask_ratio"] == 0.5
    # per-patch normalised targets with the unbiased variance: mean square (n - 1) / n, n = 48
    assert row["zero_loss"] == pytest.approx(47 / 48, abs=1e-3)
    assert len(row["loss_curve"]["step"]) == len(row["loss_curve"]["loss"]) > 0
    assert row["flops_per_image"] > 0 and "flops_per_image" not in random_row


def test_masked_patch_error_averages_over_removed_patches_only():
    torch.manual_seed(0)
    model = MAE(vit_mini(), mask_ratio=0.75)
    images = torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8)
    whole = reconstruction.masked_patch_error(model, images)
    out = model.reconstruct(images, generator=torch.Generator().manual_seed(0))
    assert whole["held_out_loss"] == pytest.approx(out["loss"].item(), rel=1e-5)


def test_mae_encoder_follows_the_profile():
    assert reconstruction.mae_encoder(profile("smoke")).out_dim == 128  # vit_mini
    assert reconstruction.mae_encoder(profile("full")).out_dim == 192  # ViT-Tiny
    with pytest.raises(ValueError, match="unknown ViT 'vit_huge': expected one of"):
        reconstruction.mae_encoder(profile("smoke").with_(vit="vit_huge"))


def test_the_study_chooses_on_validation_scores_and_other_seeds_train_only_that(
    fake_splits, monkeypatch
):
    result = reconstruction.run_autoencoder(TINY, "cpu", None, bottlenecks=(16, 32))
    trained = result["rows"][1:]
    chosen = max(trained, key=lambda r: r["val_linear"])["bottleneck"]
    assert "val_linear" not in result["rows"][0]  # the random-init reference is not a candidate
    assert result["selected"]["bottleneck"] == chosen and "validation" not in result["selected"]
    saved = result["models"]["autoencoder"]
    assert saved["bottleneck"] == chosen
    assert saved["model"].encoder(torch.rand(2, 3, 32, 32)).shape == (2, chosen)
    asked = []

    def seed_zero_choice(experiment, cfg, setting):
        asked.append((experiment, setting))
        return 16

    monkeypatch.setattr(reconstruction, "reference_choice", seed_zero_choice)
    other = reconstruction.run_autoencoder(TINY, "cpu", None, seed=1)
    assert asked == [("autoencoder", "bottleneck")]
    assert [r["bottleneck"] for r in other["rows"][1:]] == [16]
