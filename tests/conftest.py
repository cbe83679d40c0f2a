import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    # The tests use tiny tensors: extra OpenMP threads only wait for each other, and on a
    # loaded 2-core machine they make the suite several times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
