"""seeded(seed): the draws of torch.manual_seed(seed) inside, the caller's RNG untouched outside."""

import pytest
import torch

from sslbook.device import seeded


def test_seeded_draws_what_manual_seed_draws():
    with seeded(3):
        inside = torch.rand(5), torch.randn(2, 3), torch.randperm(10), torch.nn.Linear(4, 2).weight
    torch.manual_seed(3)
    reference = torch.rand(5), torch.randn(2, 3), torch.randperm(10), torch.nn.Linear(4, 2).weight
    for got, expected in zip(inside, reference, strict=True):
        assert torch.equal(got, expected)


def test_seeded_leaves_the_callers_sequence_where_it_was():
    torch.manual_seed(1)
    first = torch.rand(3)
    state = torch.get_rng_state()
    with seeded(5):
        torch.rand(100)
    assert torch.equal(torch.get_rng_state(), state)
    after = torch.rand(3)
    torch.manual_seed(1)
    assert torch.equal(torch.rand(3), first) and torch.equal(torch.rand(3), after)


def test_seeded_restores_the_state_when_the_block_raises():
    state = torch.get_rng_state()
    with pytest.raises(RuntimeError, match="boom"), seeded(0):
        torch.rand(10)
        raise RuntimeError("boom")
    assert torch.equal(torch.get_rng_state(), state)
