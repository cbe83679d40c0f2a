"""Tests of sslbook.flops: exact counts of a linear layer, state left as it was, MFU arithmetic."""

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from sslbook.flops import (
    method_flops_per_image,
    mfu,
    peak_flops,
    training_flops,
    training_flops_per_image,
)
from sslbook.methods import MoCo, SimCLR
from sslbook.models import backbone

B, I, O = 5, 7, 3  # noqa: E741 - batch, in and out features


def linear_loss(model, batch):
    return model(batch[0]).sum()


def test_linear_layer_costs_2bio_forward_and_twice_that_backward():
    layer = nn.Linear(I, O)
    x = torch.randn(B, I, requires_grad=True)  # as deep in a network: the input needs a gradient
    assert training_flops(linear_loss, layer, (x,)) == 2 * B * I * O * 3
    assert training_flops_per_image(layer, linear_loss, (x,)) == 2 * I * O * 3
    # the first layer's input needs no gradient: its backward is one matmul (the weight's), not two
    assert training_flops(linear_loss, layer, (torch.randn(B, I),)) == 2 * B * I * O * 2


def test_counting_leaves_gradients_state_and_rng_as_they_were():
    torch.manual_seed(0)
    method = MoCo(backbone("small_cnn", 8), proj_hidden=16, proj_dim=8, queue_size=8).eval()
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    before = {k: v.clone() for k, v in method.state_dict().items()}
    rng = torch.get_rng_state()
    flops = method_flops_per_image(method, images)
    assert flops > 0
    # the forward ran in train mode (it enqueued keys, moved BN statistics), but nothing stayed
    assert all(torch.equal(v, before[k]) for k, v in method.state_dict().items())
    assert all(p.grad is None for p in method.parameters())
    assert torch.equal(torch.get_rng_state(), rng) and not method.training


def test_a_training_step_costs_between_two_and_three_forward_passes():
    torch.manual_seed(0)
    method = SimCLR(backbone("small_cnn", 8), proj_hidden=16, proj_dim=8)
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        method(images)
    forward = counter.get_total_flops() / len(images)
    step = method_flops_per_image(method, images)
    # backward = 2x forward, less the first convolution's unneeded input gradient
    assert 2 * forward < step < 3 * forward


def test_mfu_is_achieved_flops_over_peak():
    assert mfu(6e9, 1000.0, 12e12) == pytest.approx(0.5)
    assert mfu(6e9, 1000.0, 2 * 12e12) == pytest.approx(0.25)  # two GPUs: twice the peak
    with pytest.raises(ValueError, match="positive"):
        mfu(1.0, 1.0, 0.0)


def test_peak_flops_is_unknown_on_the_cpu_and_in_float32():
    assert peak_flops("cpu") is None and peak_flops("cpu", torch.float16) is None
    if torch.cuda.is_available():
        assert peak_flops("cuda", torch.float32) is None


@pytest.mark.parametrize(
    "name, dtype, peak",
    [
        ("NVIDIA A100-SXM4-80GB", torch.bfloat16, 312e12),
        ("NVIDIA H100 80GB HBM3", torch.bfloat16, 989e12),
        ("NVIDIA H100 PCIe", torch.bfloat16, 756e12),
        ("NVIDIA H100 NVL", torch.bfloat16, None),
        ("NVIDIA H200", torch.bfloat16, 989e12),
        ("NVIDIA L4", torch.bfloat16, 121e12),
        ("NVIDIA L40S", torch.bfloat16, None),
        ("NVIDIA A10G", torch.float16, 125e12),
        ("Tesla T4", torch.float16, 65e12),
        ("Tesla T4", torch.bfloat16, None),
        ("Tesla V100-SXM2-16GB", torch.float16, 125e12),
    ],
)
def test_peak_flops_reads_the_table_by_device_name(monkeypatch, name, dtype, peak):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    assert peak_flops("cuda", dtype) == peak
