"""load_model builds on the meta device and assigns the checkpoint's tensors."""

import pytest
import torch
from torch import nn

from xaibench.models import MODELS, NormalizedClassifier, build_model, load_model, save_model


def _saved(tmp_path, name, image_size, **options):
    torch.manual_seed(0)
    net = build_model(name, 2, image_size, **options)
    model = NormalizedClassifier(net, [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]).eval()
    path = tmp_path / f"{name}.pt"
    save_model(path, model, name, 2, image_size, options)
    return model, path


def test_a_vgg16_checkpoint_loads_without_initialising_and_gives_the_same_outputs(tmp_path, monkeypatch):
    model, path = _saved(tmp_path, "vgg16", 32, width=4)
    pixels = torch.rand(3, 3, 32, 32)

    def refuse(tensor, *args, **kwargs):  # an initialiser run on real storage would be the wasted build
        assert tensor.is_meta, "load_model ran a weight initialiser on a real tensor"
        return tensor

    for name in ("normal_", "kaiming_normal_", "kaiming_uniform_", "constant_", "uniform_"):
        monkeypatch.setattr(nn.init, name, refuse)
    loaded = load_model(path)
    monkeypatch.undo()

    assert not loaded.training
    assert loaded.state_dict().keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
        assert loaded.state_dict()[key].is_contiguous()
    with torch.no_grad():
        assert torch.equal(loaded(pixels), model(pixels))


class _WithHiddenBuffer(nn.Module):
    """A buffer outside the state dict: it stays on meta, so the load builds the usual way."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.register_buffer("scale", torch.full((1,), 2.0), persistent=False)

    def forward(self, x):
        return self.linear(x.mean((2, 3))) * self.scale


class _ComputesWhileBuilding(nn.Linear):
    """A builder that reads a value of its tensors (impossible on meta)."""

    def __init__(self):
        super().__init__(3, 2)
        self.start = float(self.weight.detach().abs().sum())

    def forward(self, x):
        return super().forward(x.mean((2, 3)))


@pytest.mark.parametrize("builder", [_WithHiddenBuffer, _ComputesWhileBuilding])
def test_an_architecture_that_cannot_live_on_meta_is_built_the_usual_way(tmp_path, monkeypatch, builder):
    monkeypatch.setitem(MODELS, "meta_test", lambda num_classes, image_size: builder())
    model, path = _saved(tmp_path, "meta_test", 8)
    loaded = load_model(path)
    assert not any(t.is_meta for t in (*loaded.parameters(), *loaded.buffers()))
    pixels = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(pixels), model(pixels))
