"""NT-Xent over two CPU processes (gloo) equals NT-Xent over the concatenated batch."""

import os
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sslbook.distributed import gather_with_grad, rank, world_size
from sslbook.losses import nt_xent_loss

WORLD, N, D, T = 2, 5, 8, 0.3


def views(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(WORLD * N, D, generator=g), torch.randn(WORLD * N, D, generator=g)


def _worker(r: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=r, world_size=WORLD)
    try:
        assert world_size() == WORLD and rank() == r
        z1, z2 = (v[r * N : (r + 1) * N].clone().requires_grad_() for v in views())
        loss = nt_xent_loss(z1, z2, T, gather=True)
        loss.backward()
        torch.save({"loss": loss.detach(), "g1": z1.grad, "g2": z2.grad}, f"{out_dir}/{r}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_gathered_nt_xent_matches_the_single_process_loss_and_gradients():
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_worker, args=(os.path.join(tmp, "init"), tmp), nprocs=WORLD, join=True)
        parts = [torch.load(f"{tmp}/{r}.pt") for r in range(WORLD)]
    z1, z2 = (v.clone().requires_grad_() for v in views())
    reference = nt_xent_loss(z1, z2, T)
    reference.backward()
    # each rank's loss is the mean over its own anchors: their mean is the global loss
    torch.testing.assert_close(torch.stack([p["loss"] for p in parts]).mean(), reference)
    # DDP averages gradients over ranks; gather_with_grad makes that average exact
    for r, p in enumerate(parts):
        rows = slice(r * N, (r + 1) * N)
        torch.testing.assert_close(p["g1"] / WORLD, z1.grad[rows])
        torch.testing.assert_close(p["g2"] / WORLD, z2.grad[rows])


def test_without_a_process_group_everything_is_the_identity():
    x = torch.randn(3, 4)
    assert world_size() == 1 and rank() == 0 and gather_with_grad(x) is x
    z1, z2 = views()
    torch.testing.assert_close(nt_xent_loss(z1, z2, T, gather=True), nt_xent_loss(z1, z2, T))
