"""MAE and its ViT: patches, sin-cos positions, masking, a loss on removed patches, training."""

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sslbook.data import to_float
from sslbook.masking import mask_patches, random_masking
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


def reference_vit(vit, x):
    """The ViT's forward pass written out from Dosovitskiy et al. (2021) Eq. 1-4, another way.

    Patches come from F.unfold (channel-major inside a patch, as the convolution's weight), the
    position embeddings from sincos_pos_embed_2d (checked against MAE's code above), the final
    LayerNorm by its formula.
    """
    p, dim = vit.patch_size, vit.out_dim
    patches = F.unfold(vit.normalize(x), kernel_size=p, stride=p).transpose(1, 2)  # (B, L, 3*p*p)
    weight = vit.patch_embed.weight.reshape(dim, 3 * p * p)  # (dim, 3*p*p), same order
    tokens = patches @ weight.T + vit.patch_embed.bias  # (B, L, dim)
    cls = vit.cls_token.expand(len(x), 1, dim)
    pos = sincos_pos_embed_2d(dim, vit.grid_size, cls_token=True).to(x.dtype)  # (1 + L, dim)
    z = torch.cat([cls, tokens], dim=1) + pos  # (B, 1 + L, dim)
    for block in vit.blocks:
        z = block(z)
    mu, var = z.mean(-1, keepdim=True), z.var(-1, unbiased=False, keepdim=True)
    z = (z - mu) / (var + vit.norm.eps).sqrt() * vit.norm.weight + vit.norm.bias
    return z  # (B, 1 + L, dim)


def randomise_layernorms(vit):
    """Non-trivial LayerNorm affines, so that a skipped or misplaced LayerNorm shows."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in vit.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.copy_(1 + 0.5 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.5 * torch.randn(m.bias.shape, generator=g))


@pytest.mark.parametrize("depth", [0, 2])
def test_vit_pools_the_cls_token_or_the_mean_of_the_patch_tokens(depth):
    torch.manual_seed(0)
    x = torch.rand(3, 3, 32, 32, dtype=torch.float64)
    for pool in ("cls", "mean"):
        vit = ViT(patch_size=8, dim=16, depth=depth, heads=2, pool=pool).double()
        randomise_layernorms(vit)
        z = reference_vit(vit, x)  # (3, 1 + 16, 16)
        expected = z[:, 0] if pool == "cls" else z[:, 1:].mean(dim=1)
        assert vit.out_dim == 16
        torch.testing.assert_close(vit(x), expected)


def test_cls_feature_without_blocks_ignores_the_image():
    """[CLS] learns about the image only through attention: with no blocks it is a constant."""
    vit = ViT(patch_size=8, dim=16, depth=0, heads=2, pool="cls")
    out = vit(torch.rand(4, 3, 32, 32))
    torch.testing.assert_close(out, out[:1].expand(4, -1))
    deep = ViT(patch_size=8, dim=16, depth=1, heads=2, pool="cls")(torch.rand(4, 3, 32, 32))
    assert (deep[0] - deep[1:]).abs().max() > 1e-3


# -----------------------------------------------------------------------------
# masking


@pytest.mark.parametrize(
    "length,ratio,keep",
    [(64, 0.75, 16), (9, 0.5, 4), (16, 0.75, 4), (10, 0.25, 7), (7, 0.5, 3), (64, 0.9, 6)],
)
def test_random_masking_keeps_int_l_times_1_minus_r(length, ratio, keep):
    """MAE's rounding, len_keep = int(L * (1 - r)): L = 9 at 0.5 keeps 4, not 5."""
    x = torch.randn(6, length, 4)
    x_kept, mask, ids_restore = random_masking(x, ratio)
    assert x_kept.shape == (6, keep, 4)
    assert mask.shape == ids_restore.shape == (6, length) and mask.dtype == torch.float32
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert (mask.sum(dim=1) == length - keep).all()


def test_random_masking_keeps_the_tokens_with_the_smallest_noise():
    """The reference's rule: argsort the noise ascending, keep the first len_keep."""
    n, length, keep = 5, 16, 4
    x = torch.randn(n, length, 3)
    _, mask, _ = random_masking(x, 0.75, generator=torch.Generator().manual_seed(3))
    x_kept, _, _ = random_masking(x, 0.75, generator=torch.Generator().manual_seed(3))
    noise = torch.rand(n, length, generator=torch.Generator().manual_seed(3))
    for i in range(n):
        order = sorted(range(length), key=lambda j: noise[i, j].item())  # smallest noise first
        assert torch.equal(x_kept[i], x[i, order[:keep]])
        assert mask[i].nonzero().flatten().tolist() == sorted(order[keep:])


def test_kept_tokens_are_the_unmasked_rows_and_ids_restore_undoes_the_shuffle():
    n, length, keep = 4, 9, 4
    x = torch.randn(n, length, 5)  # distinct rows
    x_kept, mask, ids_restore = random_masking(x, 0.5)
    for i in range(n):
        assert sorted(ids_restore[i].tolist()) == list(range(length))  # a permutation
        unmasked = x[i, mask[i] == 0]  # (4, 5), in image order
        rows = [next(j for j in range(keep) if torch.equal(x_kept[i, j], r)) for r in unmasked]
        assert sorted(rows) == list(range(keep))  # the same rows, each once
    # the shuffled order is [kept, removed]; ids_restore maps it back to image order exactly
    ids_shuffle = ids_restore.argsort(dim=1)
    assert torch.equal(x_kept, x.gather(1, ids_shuffle[:, :keep, None].expand(-1, -1, 5)))
    assert (mask.gather(1, ids_shuffle[:, keep:]) == 1).all()
    removed = x.gather(1, ids_shuffle[:, keep:, None].expand(-1, -1, 5))
    restored = torch.cat([x_kept, removed], dim=1).gather(
        1, ids_restore[..., None].expand(-1, -1, 5)
    )
    assert torch.equal(restored, x)


def test_random_masking_hides_every_position_equally_often():
    # only the mask is wanted: tokens of width 0
    _, mask, _ = random_masking(torch.empty(4000, 64, 0), 0.75, torch.Generator().manual_seed(0))
    assert (mask.sum(dim=1) == 48).all()
    assert (mask.mean(dim=0) - 0.75).abs().max() < 0.035  # each position hidden ~75 % of draws
    assert len({tuple(row.tolist()) for row in mask[:100]}) == 100  # a fresh mask per sample


def test_random_masking_is_reproducible_with_a_generator():
    x = torch.empty(8, 64, 0)
    a = random_masking(x, 0.75, torch.Generator().manual_seed(7))[1]
    b = random_masking(x, 0.75, torch.Generator().manual_seed(7))[1]
    c = random_masking(x, 0.75, torch.Generator().manual_seed(8))[1]
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.1, 1.5])
def test_mask_ratio_outside_open_interval_raises(ratio):
    message = re.escape(f"expected a mask ratio in (0, 1), got {ratio}")
    with pytest.raises(ValueError, match=message):
        random_masking(torch.zeros(1, 16, 4), ratio)
    with pytest.raises(ValueError, match=message):
        tiny_mae(mask_ratio=ratio)
    with pytest.raises(ValueError, match=message):
        tiny_mae().reconstruct(smooth_images(1), mask_ratio=ratio)


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
    assert seen["enc"] == (4, 1 + 4, 32)  # [CLS] + the visible quarter of 16 patches
    assert seen["dec"] == (4, 1 + 16, 32)  # the decoder sees every position


def test_forward_encoder_depends_on_the_visible_patches_only():
    model, imgs = tiny_mae(), torch.rand(3, 3, 32, 32)
    latent, mask, _, _ = encode_decode(model, imgs)  # the same seed draws the same mask below
    removed = mask.bool()
    other_removed = mask_patches(imgs, removed, patch_size=8, fill=0.9)
    other_visible = mask_patches(imgs, ~removed, patch_size=8, fill=0.9)
    torch.testing.assert_close(encode_decode(model, other_removed)[0], latent)
    assert (encode_decode(model, other_visible)[0][:, 0] - latent[:, 0]).abs().max() > 1e-3
    # attention is permutation-equivariant: [CLS] is that of the visible tokens in image order
    visible = model.encoder.embed(imgs)[~removed].view(3, 4, 32)  # (3, 4, 32)
    torch.testing.assert_close(latent[:, 0], model.encoder.forward_blocks(visible)[:, 0])


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


def test_reconstruct_runs_in_eval_mode_and_restores_the_mode():
    model, seen = tiny_mae().train(), []
    model.encoder.blocks[0].register_forward_pre_hook(lambda m, a: seen.append(m.training))
    model.reconstruct(smooth_images(2))
    assert seen == [False] and model.training
    with pytest.raises(ValueError):  # the mode comes back also when reconstruct fails
        model.reconstruct(smooth_images(2), mask_ratio=1.0)
    assert all(m.training for m in model.modules())


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
    fit(model, images, config, device="cpu")
    after = loss_on_fixed_masks()
    if norm_pix_loss:
        # predicting 0, each patch's mean, scores ~1: beating it means the patterns were learned
        assert after < 0.93 * loss_on_fixed_masks(predict_zero=True) < before, (before, after)
    else:
        assert after < 0.3 * before, (before, after)
