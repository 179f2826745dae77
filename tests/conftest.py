import os
import random

import pytest
import torch

if not torch.cuda.is_available():
    # Without a GPU the Triton kernels run on CPU tensors through Triton's interpreter; it must be on
    # before umsnet_fast.kernels (triton.jit) is imported. It changes nothing for code without Triton.
    os.environ.setdefault("TRITON_INTERPRET", "1")

from umsnet_fast.testing import randomize_


def pytest_collection_modifyitems(config, items):
    _gpu_suite_filter(config, items)
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
    if not torch.cuda.is_available():
        for item in items:
            if item.get_closest_marker("cuda") is not None:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture
def randomized():
    """randomize_(model, seed): every parameter and buffer random (see umsnet_fast.testing)."""
    return randomize_


def pytest_addoption(parser):
    parser.addoption("--gpu-suite", action="store_true",
                     help="only the tests that run on a GPU: those marked cuda, and every test of the modules "
                          "that set RUNS_ON_GPU = True (their tests use CUDA when there is one); "
                          "bench/device_check.sh runs these")


def _gpu_suite_filter(config, items):
    if not config.getoption("--gpu-suite"):
        return
    keep, drop = [], []
    for item in items:
        on_gpu = item.get_closest_marker("cuda") is not None or getattr(item.module, "RUNS_ON_GPU", False)
        (keep if on_gpu else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
