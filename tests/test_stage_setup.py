"""What every stage sets up for speed changes no result beyond float rounding: glibc's
malloc keeps freed blocks (keep_freed_memory), and no-grad passes of a NormalizedClassifier
run channels-last."""

import platform

import pytest
import torch

from xaibench.models import NormalizedClassifier, build_model
from xaibench.stage_setup import keep_freed_memory


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_keep_freed_memory_is_accepted_by_glibc_and_harmless_twice():
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True
    assert torch.ones(1 << 22).sum().item() == 1 << 22      # a 16 MB block, from the heap now


def test_no_grad_scoring_pass_is_channels_last_and_agrees_with_the_gradient_pass():
    torch.manual_seed(0)
    model = NormalizedClassifier(build_model("catsdogs_cnn", 2, 32), [0.5] * 3, [0.25] * 3).eval()
    seen = []
    model.net[0].register_forward_hook(lambda module, args, out: seen.append(args[0].is_contiguous()))
    pixels = torch.rand(5, 3, 32, 32)
    with torch.no_grad():
        scored = model(pixels)
    graded = model(pixels.clone().requires_grad_(True))
    assert seen == [False, True]      # the no-grad input was channels-last, the gradient one is not
    assert torch.allclose(scored, graded.detach(), atol=1e-5)
    graded.sum().backward()           # and the gradient pass still differentiates
