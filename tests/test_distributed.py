"""Two CPU processes (gloo) against one: NT-Xent's gather, and fit under DDP via sslbook.run."""

import json
import os
import socket
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import sslbook.run as run
from sslbook.distributed import (
    all_reduce_mean,
    barrier,
    data_parallel_loss,
    gather_with_grad,
    init_from_env,
    is_main_process,
    local_rank,
    rank,
    shutdown,
    world_size,
)
from sslbook.losses import nt_xent_loss
from sslbook.train import TrainConfig, fit, load_checkpoint

WORLD, N, D, T = 2, 5, 8, 0.3

needs_dist = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is missing")


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


@needs_dist
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


# fit under DDP: a float64 regression without BatchNorm, so that two processes that each see
# half of every batch must end exactly where one process that sees whole batches ends


def regression_data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 6, generator=g, dtype=torch.float64)
    return x, x @ torch.randn(6, 1, generator=g, dtype=torch.float64)


def regression_model() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 1)).double()


def bn_model() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 1)).double()


SEEN: list[torch.Tensor] = []  # the inputs mse saw, in this process


def mse(model, batch) -> dict:
    x, y = batch
    SEEN.append(x.detach().clone())
    return {"loss": ((model(x) - y) ** 2).mean(), "mean_x": x.mean()}


def train_config(checkpoint_dir=None) -> TrainConfig:
    # 16 samples, global batch 8: 2 steps per epoch, 4 in all; a checkpoint after each epoch
    return TrainConfig(
        epochs=2, batch_size=8, lr=0.05, weight_decay=0.1, warmup_epochs=0.5, log_every=1,
        progress=False, checkpoint_dir=checkpoint_dir,
    )  # fmt: skip


def _ddp_experiment(cfg, device, checkpoint_dir, seed=0) -> dict:
    """Stands in for a chapter's experiment: what every rank runs under ``sslbook.run``."""
    assert world_size() == WORLD and local_rank() == rank() and is_main_process() == (rank() == 0)
    with pytest.raises(ValueError, match="must split evenly over 2 processes"):
        fit(regression_model(), regression_data(), TrainConfig(batch_size=7), loss_fn=mse)
    with pytest.raises(ValueError, match="sync_batchnorm=True needs one GPU per process"):
        fit(
            bn_model(),
            regression_data(),
            TrainConfig(batch_size=8, sync_batchnorm=True),
            loss_fn=mse,
        )
    model = regression_model()
    SEEN.clear()
    history = fit(
        model, regression_data(), train_config(checkpoint_dir), device=device, loss_fn=mse
    )
    out = Path(checkpoint_dir).parent / f"rank{rank()}.pt"
    torch.save({"model": model.state_dict(), "history": history.to_dict(), "seen": SEEN}, out)
    return {"final_loss": history.steps[-1]["loss"]}


def _torchrun_worker(r: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    # the environment torchrun gives each process
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(r), LOCAL_RANK=str(r),
        WORLD_SIZE=str(WORLD),
    )  # fmt: skip
    run.EXPERIMENTS["ddp"] = _ddp_experiment
    argv = ["ddp", "--profile", "smoke", "--out", out_dir, "--device", "cpu"]
    assert run.main([*argv, "--checkpoint-dir", f"{out_dir}/ckpt"]) == 0
    assert not dist.is_initialized()  # run.main left the process group


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_dist
def test_fit_under_torchrun_equals_one_process_on_the_whole_batches(tmp_path):
    mp.spawn(_torchrun_worker, args=(free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    reference = regression_model()
    SEEN.clear()
    ref_history = fit(reference, regression_data(), train_config(), loss_fn=mse)

    # 0) every step, rank r took the r-th half of the batch that one process takes whole
    assert len(SEEN) == 4 and all(len(part["seen"]) == 4 for part in ranks)
    for step, batch in enumerate(SEEN):
        assert torch.equal(torch.cat([part["seen"][step] for part in ranks]), batch)
    # 1) DDP's gradient average over two half batches is the gradient of the whole batch
    for part in ranks:
        for name, value in reference.state_dict().items():
            torch.testing.assert_close(part["model"][name], value, msg=name)
    # 2) the logged loss and extras are global-batch means, the same on every rank
    for key in ("loss", "mean_x"):
        expected = ref_history.series(key)
        for part in ranks:
            steps = [r["step"] for r in part["history"]["steps"]]
            values = [r[key] for r in part["history"]["steps"]]
            assert steps == expected[0]
            torch.testing.assert_close(values, expected[1], msg=key)
    # 3) rank 0's checkpoint holds the plain model's keys, so one process can resume from it
    state = load_checkpoint(tmp_path / "ckpt" / "last.pt")
    assert state["epoch"] == 2 and list(state["model"]) == list(reference.state_dict())
    resumed = regression_model()
    fit(resumed, regression_data(), train_config(tmp_path / "ckpt"), loss_fn=mse)
    torch.testing.assert_close(resumed.state_dict(), state["model"])
    # 4) one result file, written by rank 0, that records the two processes
    result = json.loads((tmp_path / "ddp-smoke.json").read_text())
    assert result["provenance"]["world_size"] == WORLD
    assert result["provenance"]["command"].startswith(f"torchrun --nproc_per_node={WORLD} ")
    assert result["final_loss"] == ranks[0]["history"]["steps"][-1]["loss"]


def _sync_bn_worker(r: int, port: int, out_dir: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(r), LOCAL_RANK=str(r),
        WORLD_SIZE=str(WORLD),
    )  # fmt: skip
    device = init_from_env("cuda")  # cuda:r, NCCL
    try:
        model = bn_model()
        config = replace(train_config(), sync_batchnorm=True)
        fit(model, regression_data(), config, device=device, loss_fn=mse)
        state = {k: v.cpu() for k, v in model.state_dict().items()}
        torch.save({"model": state, "bn": type(model[1])}, f"{out_dir}/rank{r}.pt")
    finally:
        shutdown()


@needs_dist
@pytest.mark.skipif(torch.cuda.device_count() < WORLD, reason=f"needs {WORLD} GPUs")
def test_sync_batchnorm_normalises_with_the_global_batch(tmp_path):
    mp.spawn(_sync_bn_worker, args=(free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    reference = bn_model()  # BatchNorm over whole batches, in one process
    fit(reference, regression_data(), train_config(), device="cuda:0", loss_fn=mse)
    for part in ranks:
        assert part["bn"] is nn.SyncBatchNorm
        for name, value in reference.state_dict().items():  # running statistics included
            torch.testing.assert_close(part["model"][name], value.cpu(), msg=name)


def test_without_a_process_group_everything_is_the_identity():
    x = torch.randn(3, 4)
    assert world_size() == 1 and rank() == 0 and is_main_process()
    assert gather_with_grad(x) is x and all_reduce_mean(x) is x
    barrier()
    assert init_from_env("cpu") == torch.device("cpu") and not dist.is_initialized()
    z1, z2 = views()
    torch.testing.assert_close(nt_xent_loss(z1, z2, T, gather=True), nt_xent_loss(z1, z2, T))
    bn = nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4))
    batch = (torch.randn(5, 6), torch.randn(5, 4))
    loss = data_parallel_loss(bn, mse, torch.device("cpu"), sync_batchnorm=True)
    assert type(bn[1]) is nn.BatchNorm1d
    torch.manual_seed(0)
    torch.testing.assert_close(loss(batch)["loss"], mse(bn, batch)["loss"])
