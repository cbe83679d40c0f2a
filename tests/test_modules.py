"""eval_mode and train_mode: a temporary mode, and every submodule's own mode restored after."""

import pytest
import torch.nn as nn

from sslbook.modules import eval_mode, train_mode


def mixed_net() -> nn.Sequential:
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Dropout())
    net.train()
    net[1].eval()  # a frozen batch norm inside a network that trains
    return net


@pytest.mark.parametrize("mode,training", [(eval_mode, False), (train_mode, True)])
def test_mode_holds_inside_and_each_submodule_gets_its_own_back(mode, training):
    net = mixed_net()
    before = [m.training for m in net.modules()]
    with mode(net) as inside:
        assert inside is net and all(m.training == training for m in net.modules())
    assert [m.training for m in net.modules()] == before
    with pytest.raises(RuntimeError, match="boom"), mode(net):
        raise RuntimeError("boom")
    assert [m.training for m in net.modules()] == before
