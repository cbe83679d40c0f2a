"""sslbook.plot draws what it is given: pixels, values, titles and axis labels read back."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from sslbook.plot import (  # noqa: E402
    attention_map,
    augmentation_gallery,
    curves,
    image_grid,
    similarity_heatmap,
    to_image,
    tsne_scatter,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def uint8_images(n, size=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)


def hwc(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) uint8 -> (H, W, 3) float64 in [0, 1], the pixels imshow should receive."""
    return x.permute(1, 2, 0).numpy().astype(np.float64) / 255


def shown(ax) -> np.ndarray:
    (image,) = ax.images
    return np.asarray(image.get_array(), dtype=np.float64)


# ----------------------------------------------------------------------------- images


def test_to_image_scales_uint8_clamps_float_and_rejects_other_shapes():
    x = uint8_images(1)[0]
    np.testing.assert_allclose(to_image(x).numpy(), hwc(x), atol=1e-7)
    f = torch.tensor([-0.5, 0.25, 1.5]).view(3, 1, 1)
    np.testing.assert_array_equal(to_image(f).numpy().ravel(), [0.0, 0.25, 1.0])
    for bad in (torch.zeros(2, 3, 4, 4), torch.zeros(4, 4, 3), torch.zeros(2, 4, 4)):
        with pytest.raises(ValueError, match=r"expected an image of shape \(3, H, W\)"):
            to_image(bad)


def test_image_grid_shows_each_image_in_reading_order_with_its_titles():
    x = uint8_images(5)
    titles = [f"image {i}" for i in range(5)]
    fig = image_grid(x, nrow=3, titles=titles, suptitle="Five images", row_labels=["a", "b"])
    axes = fig.axes
    assert len(axes) == 6  # 2 rows of 3, the last cell empty
    for i in range(5):
        np.testing.assert_allclose(shown(axes[i]), hwc(x[i]), atol=1e-6)
        assert axes[i].get_title() == titles[i]
    assert len(axes[5].images) == 0
    assert fig._suptitle.get_text() == "Five images"
    assert [axes[0].get_ylabel(), axes[3].get_ylabel()] == ["a", "b"]
    # a list of float images works alike
    floats = [x[i].float() / 255 for i in range(2)]
    fig = image_grid(floats, nrow=8)
    assert len(fig.axes) == 2
    np.testing.assert_allclose(shown(fig.axes[1]), hwc(x[1]), atol=1e-6)


def test_image_grid_rejects_images_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        image_grid(torch.zeros(2, 4, 6, 6))


def test_augmentation_gallery_rows_are_the_original_then_its_views():
    x = uint8_images(2, size=8)

    def halve_and_mirror(images):  # a deterministic "augmentation" to a smaller size
        return (images[:, :, ::2, ::2].float() / 255).flip(-1)  # (N, 3, 4, 4)

    fig = augmentation_gallery(x, halve_and_mirror, n_views=2, labels=["cat", "dog"])
    axes = fig.axes
    assert len(axes) == 2 * 3 and fig._suptitle.get_text().startswith("Augmented views")
    for row in range(2):
        original, *views = axes[3 * row : 3 * row + 3]
        # nearest-neighbour downsizing by 2 keeps pixels 0, 2, 4, 6 of every row and column
        np.testing.assert_allclose(shown(original), hwc(x[row, :, ::2, ::2]), atol=1e-6)
        for view in views:
            np.testing.assert_allclose(shown(view), hwc(x[row, :, ::2, ::2].flip(-1)), atol=1e-6)
        assert [ax.get_title() for ax in (original, *views)] == ["original", "view 1", "view 2"]
        assert original.get_ylabel() == ["cat", "dog"][row]


# ----------------------------------------------------------------------------- curves


def test_curves_draw_every_series_with_labelled_axes():
    series = {"SimCLR": ([1, 2, 3], [0.5, 0.4, 0.3]), "MoCo": ([1, 2], [0.6, 0.2])}
    fig = curves(series, "epoch", "kNN accuracy (fraction)", "kNN accuracy during training")
    (ax,) = fig.axes
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "kNN accuracy (fraction)"
    assert ax.get_title() == "kNN accuracy during training"
    assert [line.get_label() for line in ax.lines] == ["SimCLR", "MoCo"]
    for line, (x, y) in zip(ax.lines, series.values(), strict=True):
        np.testing.assert_array_equal(line.get_xdata(), x)
        np.testing.assert_array_equal(line.get_ydata(), y)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["SimCLR", "MoCo"]
    assert ax.get_yscale() == "linear"


def test_curves_on_a_given_axes_with_a_log_scale_and_one_series():
    fig, (left, right) = plt.subplots(1, 2)
    out = curves({"loss": ([0, 1], [1.0, 0.1])}, "step", "loss (nats)", "Loss", ax=right, logy=True)
    assert out is fig and len(left.lines) == 0 and len(right.lines) == 1
    assert right.get_yscale() == "log"
    assert right.get_legend() is None  # one series: the title says what it is


# ----------------------------------------------------------------------------- matrices


def test_similarity_heatmap_shows_the_matrix_on_a_fixed_scale():
    z = torch.nn.functional.normalize(torch.randn(6, 4), dim=1)
    sim = z @ z.T
    labels = [f"v{i}" for i in range(6)]
    fig = similarity_heatmap(sim, "Cosine similarity of 6 views", labels=labels)
    ax, colorbar = fig.axes
    np.testing.assert_allclose(shown(ax), sim.numpy(), atol=1e-7)
    assert ax.images[0].get_clim() == (-1, 1)  # colours comparable between figures
    assert ax.get_title() == "Cosine similarity of 6 views"
    assert ax.get_xlabel() == "view index" and ax.get_ylabel() == "view index"
    assert colorbar.get_ylabel() == "cosine similarity"
    assert [t.get_text() for t in ax.get_xticklabels()] == labels
    assert [t.get_text() for t in ax.get_yticklabels()] == labels


def test_attention_map_titles_and_labels_its_axes():
    weights = torch.softmax(torch.randn(3, 3), dim=-1)
    fig = attention_map(weights, ["[CLS]", "be", "[SEP]"], "layer 1, head 0")
    (ax,) = fig.axes
    np.testing.assert_allclose(shown(ax), weights.numpy(), atol=1e-7)
    assert ax.get_title() == "layer 1, head 0" and ax.get_xlabel() == "attended token"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["[CLS]", "be", "[SEP]"]


def test_attention_map_labels_both_axes():
    fig = attention_map(torch.eye(2), ["a", "b"], "x")
    assert fig.axes[0].get_xlabel() == "attended token"
    assert fig.axes[0].get_ylabel() == "querying token"


# ----------------------------------------------------------------------------- t-SNE


def test_tsne_scatter_draws_one_labelled_group_per_class_and_keeps_clusters_apart():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(2).repeat(20)  # t-SNE's perplexity 30 needs more than 30 points
    features = 20 * torch.eye(2, 5)[labels] + torch.randn(40, 5, generator=g)
    fig = tsne_scatter(features, labels, ["cat", "dog"], "t-SNE of two clusters")
    ax = fig.axes[0]
    assert ax.get_title() == "t-SNE of two clusters"
    assert ax.get_xlabel() == "t-SNE dimension 1" and ax.get_ylabel() == "t-SNE dimension 2"
    groups = ax.collections
    assert [c.get_label() for c in groups] == ["cat", "dog"]
    assert [len(c.get_offsets()) for c in groups] == [20, 20]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["cat", "dog"]
    assert not np.allclose(groups[0].get_facecolor(), groups[1].get_facecolor())
    # the embedding keeps far-apart classes apart: each point's 2-D nearest neighbour agrees
    xy = np.concatenate([c.get_offsets() for c in groups])
    cls = np.repeat([0, 1], 20)
    dist = np.linalg.norm(xy[:, None] - xy[None], axis=-1) + np.diag(np.full(40, np.inf))
    assert (cls[dist.argmin(1)] == cls).all()
