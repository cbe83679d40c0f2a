"""MAE and its ViT: patches, sin-cos positions, masking, a loss on removed patches, training."""

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sslbook.data import to_float
from sslbook.masking import random_mask
from sslbook.methods import MAE
from sslbook.models import ViT, patchify, sincos_pos_embed_2d, unpatchify
from sslbook.train import TrainConfig, fit


def tiny_mae(patch_size=8, **kwargs):
    """32x32 images in 8x8 patches: L = 16 tokens."""
    encoder = ViT(image_size=32, patch_size=patch_size, dim=32, depth=1, heads=2)
    return MAE(encoder, decoder_dim=32, decoder_depth=1, decoder_heads=2, **kwargs)


def smooth_images(n, seed=0):
    """Random 4x4 colour fields upsampled to 32x32: images whose hidden patches can be inferred."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=g)
    x = F.interpolate(coarse, size=32, mode="bilinear", align_corners=False)
    return (x * 255).round().to(torch.uint8)


def identity_view(images, generator=None):
    return to_float(images)


# -----------------------------------------------------------------------------
# ViT: patches and positions


@pytest.mark.parametrize("p", [2, 4, 8])
def test_unpatchify_inverts_patchify_exactly(p):
    x = torch.randn(2, 3, 32, 32)
    patches = patchify(x, p)
    assert patches.shape == (2, (32 // p) ** 2, p * p * 3)
    assert torch.equal(unpatchify(patches, p), x)


def test_patchify_matches_a_naive_loop():
    x = torch.randn(2, 3, 8, 12)  # a 2 x 3 grid of 4x4 patches: rows and columns differ
    p, out = 4, patchify(x, 4)  # (2, 6, 48)
    for n in range(2):
        for i in range(2):
            for j in range(3):
                patch = x[n, :, i * p : (i + 1) * p, j * p : (j + 1) * p]  # (3, p, p)
                assert torch.equal(out[n, i * 3 + j], patch.permute(1, 2, 0).flatten())


def mae_reference_pos_embed(embed_dim, grid_size):
    """util/pos_embed.py of facebookresearch/mae (numpy), with a zero row for the class token."""

    def get_1d(embed_dim, pos):
        omega = np.arange(embed_dim // 2, dtype=np.float64) / (embed_dim / 2.0)
        omega = 1.0 / 10000**omega
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    grid_h = np.arange(grid_size, dtype=np.float32)
    grid_w = np.arange(grid_size, dtype=np.float32)
    grid = np.stack(np.meshgrid(grid_w, grid_h), axis=0).reshape([2, 1, grid_size, grid_size])
    emb = np.concatenate([get_1d(embed_dim // 2, grid[0]), get_1d(embed_dim // 2, grid[1])], 1)
    return np.concatenate([np.zeros([1, embed_dim]), emb], axis=0)


def test_sincos_pos_embed_matches_mae_reference():
    ours = sincos_pos_embed_2d(32, 8, cls_token=True)
    ref = torch.from_numpy(mae_reference_pos_embed(32, 8)).float()
    assert ours.shape == (65, 32)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)


def test_patch_tokens_follow_patchify_order():
    """The patch embedding (a strided convolution) is one linear map applied to patchify's rows."""
    vit = ViT(image_size=16, patch_size=4, dim=8, depth=1, heads=2)
    x = torch.rand(2, 3, 16, 16)
    w = vit.patch_embed.weight.permute(0, 2, 3, 1).flatten(1)  # (dim, p*p*3) in patchify's order
    expected = patchify(vit.normalize(x), 4) @ w.T + vit.patch_embed.bias + vit.pos_embed[:, 1:]
    torch.testing.assert_close(vit.embed(x), expected)


def test_vit_features_and_pooling():
    x = torch.rand(3, 3, 32, 32)
    for pool in ("cls", "mean"):
        vit = ViT(patch_size=8, dim=16, depth=1, heads=2, pool=pool)
        tokens = vit.forward_tokens(x)  # (3, 1 + 16, 16)
        expected = tokens[:, 0] if pool == "cls" else tokens[:, 1:].mean(1)
        assert vit.out_dim == 16 and torch.equal(vit(x), expected)


# -----------------------------------------------------------------------------
# masking


@pytest.mark.parametrize("ratio", [0.75, 0.5, 0.9])
def test_random_masking_keeps_round_l_times_1_minus_r(ratio):
    model, n, length = tiny_mae(), 6, 64
    x = torch.arange(length).float()[None, :, None].expand(n, length, 4)  # token l holds l
    x_masked, mask, ids_restore = model.random_masking(x, ratio)
    keep = round(length * (1 - ratio))
    assert x_masked.shape == (n, keep, 4) and mask.shape == (n, length)
    assert (mask.sum(1) == length - keep).all()
    assert len({tuple(row.tolist()) for row in mask}) == n  # a different mask per sample
    for i in range(n):  # mask is 1 exactly at the tokens that were removed
        kept = set(x_masked[i, :, 0].long().tolist())
        assert kept == set((mask[i] == 0).nonzero().flatten().tolist())
    # ids_restore inverts the shuffle: [kept, removed] gathered with it is the original order
    ids_shuffle = ids_restore.argsort(dim=1)
    shuffled = x.gather(1, ids_shuffle[..., None].expand(-1, -1, 4))
    assert torch.equal(shuffled[:, :keep], x_masked)
    assert torch.equal(shuffled.gather(1, ids_restore[..., None].expand(-1, -1, 4)), x)


def test_masking_draws_the_masks_of_sslbook_random_mask():
    model, x = tiny_mae(), torch.zeros(5, 64, 4)
    _, mask, _ = model.random_masking(x, 0.75, generator=torch.Generator().manual_seed(3))
    expected = random_mask(5, 64, 0.75, generator=torch.Generator().manual_seed(3))
    assert torch.equal(mask.bool(), expected)


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.25, 1.5])
def test_mask_ratio_outside_open_interval_raises(ratio):
    with pytest.raises(ValueError, match=re.escape(str(ratio))):
        tiny_mae(mask_ratio=ratio)
    with pytest.raises(ValueError, match=re.escape(str(ratio))):
        tiny_mae().random_masking(torch.zeros(1, 16, 4), ratio)


# -----------------------------------------------------------------------------
# encoder, decoder, loss


def encode_decode(model, imgs, seed=0):
    g = torch.Generator().manual_seed(seed)
    latent, mask, ids_restore = model.forward_encoder(imgs, model.mask_ratio, generator=g)
    return latent, mask, ids_restore, model.forward_decoder(latent, ids_restore)


def test_encoder_sees_only_the_visible_tokens():
    model = tiny_mae()
    seen = {}
    model.encoder.blocks[0].register_forward_pre_hook(lambda m, a: seen.update(enc=a[0].shape))
    model.decoder_blocks[0].register_forward_pre_hook(lambda m, a: seen.update(dec=a[0].shape))
    model(smooth_images(4))
    assert seen["enc"] == (4, 1 + round(16 * 0.25), 32)  # [CLS] + the visible quarter
    assert seen["dec"] == (4, 1 + 16, 32)  # the decoder sees every position


def test_forward_encoder_equals_encoding_the_kept_patches():
    model, imgs = tiny_mae(), torch.rand(3, 3, 32, 32)
    latent, mask, _, _ = encode_decode(model, imgs)
    ids_keep = (mask == 0).nonzero()[:, 1].view(3, -1)  # (3, 4) visible patches, in order
    # attention is permutation-equivariant: [CLS] does not depend on the order of the others
    torch.testing.assert_close(latent[:, 0], model.encoder.forward_tokens(imgs, ids_keep)[:, 0])


def test_decoder_puts_every_token_back_at_its_patch():
    model, imgs = tiny_mae(), torch.rand(3, 3, 32, 32)
    seen = {}
    model.decoder_blocks[0].register_forward_pre_hook(lambda m, a: seen.update(x=a[0]))
    latent, mask, ids_restore, _ = encode_decode(model, imgs)
    x, pos = seen["x"][:, 1:], model.decoder_pos_embed[0, 1:]  # (3, 16, 32), (16, 32)
    kept = ids_restore.argsort(dim=1)[:, :4]  # patch index of each encoded token, in order
    embedded = model.decoder_embed(latent[:, 1:])  # (3, 4, 32)
    for n in range(3):
        for j, patch in enumerate(kept[n].tolist()):
            torch.testing.assert_close(x[n, patch], embedded[n, j] + pos[patch])
        for patch in mask[n].nonzero().flatten().tolist():
            torch.testing.assert_close(x[n, patch], model.mask_token[0, 0] + pos[patch])


def test_loss_counts_removed_patches_only():
    model, imgs = tiny_mae(), torch.rand(4, 3, 32, 32)
    _, mask, _, pred = encode_decode(model, imgs)
    loss = model.forward_loss(imgs, pred, mask)
    visible_changed = torch.where(mask[..., None] == 0, pred + 5.0, pred)
    assert torch.equal(model.forward_loss(imgs, visible_changed, mask), loss)
    removed = mask[0].nonzero()[0, 0]
    removed_changed = pred.clone()
    removed_changed[0, removed] += 5.0
    assert model.forward_loss(imgs, removed_changed, mask) > loss + 1e-3
    # float64 reference: mean over the removed patches of each patch's mean squared error
    target = model.target(imgs).double()
    per_patch = ((pred.double() - target) ** 2).mean(-1)
    torch.testing.assert_close(loss.double(), per_patch[mask.bool()].mean(), rtol=1e-5, atol=0)


def test_norm_pix_target_matches_manual_per_patch_normalisation():
    imgs = torch.rand(2, 3, 32, 32)
    target = tiny_mae(norm_pix_loss=True).target(imgs)
    patches = patchify(imgs, 8).double()
    for n in range(2):
        for i in range(16):
            v = patches[n, i].numpy()
            expected = (v - v.mean()) / np.sqrt(v.var(ddof=1) + 1e-6)
            np.testing.assert_allclose(target[n, i].numpy(), expected, rtol=1e-4, atol=1e-5)
    assert torch.equal(tiny_mae(norm_pix_loss=False).target(imgs), patchify(imgs, 8))


def test_reconstruct_pastes_the_visible_patches():
    model, images = tiny_mae(), smooth_images(3)
    out = model.reconstruct(images, generator=torch.Generator().manual_seed(0))
    x, visible = to_float(images), out["mask"] == 0
    for key in ("images", "masked", "prediction", "reconstruction"):
        assert out[key].shape == (3, 3, 32, 32)
    assert 0 <= out["prediction"].min() and out["prediction"].max() <= 1
    recon, original = patchify(out["reconstruction"], 8), patchify(x, 8)
    assert torch.equal(recon[visible], original[visible])
    assert torch.equal(recon[~visible], patchify(out["prediction"], 8)[~visible])
    assert (patchify(out["masked"], 8)[~visible] == 0.5).all()


@pytest.mark.parametrize("norm_pix_loss", [False, True])
def test_fit_lowers_the_mae_loss(norm_pix_loss):
    torch.manual_seed(0)
    model = tiny_mae(norm_pix_loss=norm_pix_loss, augment=identity_view)
    images = smooth_images(32)
    x = to_float(images)

    @torch.no_grad()
    def loss_on_fixed_masks(predict_zero=False):  # the same three masks before and after
        losses = []
        for seed in range(3):
            _, mask, _, pred = encode_decode(model, x, seed)
            pred = torch.zeros_like(pred) if predict_zero else pred
            losses.append(model.forward_loss(x, pred, mask))
        return sum(losses) / 3

    before = loss_on_fixed_masks()
    steps = 200 if norm_pix_loss else 30  # learning the patterns takes longer than the colours
    config = TrainConfig(epochs=steps, batch_size=32, lr=3e-3, progress=False, log_every=50)
    fit(model, lambda m, batch: m(batch[0]), images, config, device="cpu")
    after = loss_on_fixed_masks()
    if norm_pix_loss:
        # predicting 0, each patch's mean, scores ~1: beating it means the patterns were learned
        assert after < 0.93 * loss_on_fixed_masks(predict_zero=True) < before, (before, after)
    else:
        assert after < 0.3 * before, (before, after)
