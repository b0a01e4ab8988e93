"""Models by name: torchvision builders and timm models, weights none / a
checkpoint path (state dict, wrapped checkpoint, safetensors; a pickled module refused) / ImageNet
with a clear error offline, and each model's own input normalisation."""

import urllib.error

import pytest
import torch

from xaibench.models.external import (WeightsError, build_external, check_name, input_normalisation,
                                      is_external)

PIXELS = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def test_names_are_checked_against_the_library():
    assert is_external("torchvision:resnet50") and is_external("timm:resnet18") and not is_external("resnet18")
    assert check_name("torchvision:resnet50") == "torchvision:resnet50"
    with pytest.raises(ValueError, match="unknown torchvision model 'resnet5000'"):
        check_name("torchvision:resnet5000")
    with pytest.raises(ValueError, match="unknown timm model 'no_such_net'"):
        check_name("timm:no_such_net")


def test_torchvision_builder_with_its_head_sized_to_the_classes():
    net = build_external("torchvision:resnet18", num_classes=3)
    assert net(PIXELS).shape == (2, 3)
    assert not any(isinstance(m, torch.nn.ReLU) and m.inplace for m in net.modules())


@pytest.mark.parametrize("wrap", ["state_dict", "checkpoint", "model"])
def test_a_pt_checkpoint_is_loaded_by_path(tmp_path, wrap):
    torch.manual_seed(1)
    trained = build_external("torchvision:resnet18", num_classes=3)
    payload = {"state_dict": trained.state_dict(), "model": {"model": trained.state_dict()},
               "checkpoint": {"state_dict": trained.state_dict(), "epoch": 3}}[wrap]
    torch.save(payload, tmp_path / "model.pt")
    torch.manual_seed(2)                       # another random init, overwritten by the file
    loaded = build_external("torchvision:resnet18", num_classes=3, weights=str(tmp_path / "model.pt"))
    assert torch.equal(loaded(PIXELS), trained(PIXELS))


def test_a_tiny_timm_model_round_trips_through_safetensors(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    trained = build_external("timm:resnet10t", num_classes=3)
    save_file({k: v.contiguous() for k, v in trained.state_dict().items()}, str(tmp_path / "tiny.safetensors"))
    loaded = build_external("timm:resnet10t", num_classes=3, weights=str(tmp_path / "tiny.safetensors"))
    assert loaded(PIXELS).shape == (2, 3) and torch.equal(loaded(PIXELS), trained(PIXELS))


def test_a_checkpoint_of_another_head_is_a_clear_error(tmp_path):
    torch.save(build_external("torchvision:resnet18", num_classes=5).state_dict(), tmp_path / "five.pt")
    with pytest.raises(WeightsError, match="five.pt does not fit torchvision:resnet18 with num_classes=3"):
        build_external("torchvision:resnet18", num_classes=3, weights=str(tmp_path / "five.pt"))
    with pytest.raises(WeightsError, match="is not a file"):
        build_external("torchvision:resnet18", num_classes=3, weights=str(tmp_path / "missing.pt"))


def test_a_pickled_module_is_refused_without_running_it(tmp_path):
    torch.save(build_external("torchvision:resnet18", num_classes=3), tmp_path / "whole.pt")
    with pytest.raises(WeightsError) as error:
        build_external("torchvision:resnet18", num_classes=3, weights=str(tmp_path / "whole.pt"))
    message = str(error.value)
    assert "whole.pt holds more than tensors" in message and "torch.save(model.state_dict()" in message


def test_offline_imagenet_weights_name_the_file_to_place(monkeypatch, tmp_path):
    import torchvision.models._api as api

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(api, "load_state_dict_from_url", no_network)
    with pytest.raises(WeightsError) as error:
        build_external("torchvision:resnet18", num_classes=2, weights="imagenet")
    message = str(error.value)
    assert "could not be downloaded" in message and "resnet18-f37072fd.pth" in message
    assert str(tmp_path / "hub" / "checkpoints") in message and "weights:" in message


def test_input_normalisation_comes_from_the_weights_metadata():
    resnet = input_normalisation("torchvision:resnet50")
    assert resnet["mean"] == pytest.approx((0.485, 0.456, 0.406)) and resnet["image_size"] == 224
    assert input_normalisation("torchvision:inception_v3")["image_size"] == 299
    timm_cfg = input_normalisation("timm:resnet10t")
    assert len(timm_cfg["mean"]) == 3 and timm_cfg["image_size"] > 0


def test_train_stage_explains_a_checkpoint_as_it_is_with_zero_epochs(tmp_path):
    """`train@<study>` with `model: torchvision:resnet18`, `weights: <path>`, `epochs: 0`
    saves that checkpoint's net behind the weights' own (ImageNet) normalisation."""
    import copy
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    import numpy as np
    import yaml

    from xaibench.models import load_model

    root = Path(__file__).resolve().parents[1]
    rng = np.random.default_rng(0)
    prepared = tmp_path / "data/prepared/catsdogs"
    prepared.mkdir(parents=True)
    for split, n in (("train", 8), ("val", 4), ("test", 4)):
        np.savez(prepared / f"{split}.npz", images=rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8),
                 labels=np.arange(n) % 2, ids=np.array([f"Cat/{i}" for i in range(n)]))
    (prepared / "stats.json").write_text(json.dumps({"mean": [0.5] * 3, "std": [0.25] * 3}))
    torch.manual_seed(3)
    trained = build_external("torchvision:resnet18", num_classes=2)
    torch.save({"state_dict": trained.state_dict()}, tmp_path / "mine.pth")
    params = yaml.safe_load((root / "params.yaml").read_text())
    study = copy.deepcopy(params["studies"]["catsdogs"])
    study["model"] = "torchvision:resnet18"
    study["train"].update(epochs=0, weights=str(tmp_path / "mine.pth"))
    params["studies"]["mine"] = study
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    done = subprocess.run([sys.executable, str(root / "stages/train.py"), "mine"], cwd=tmp_path,
                          env=dict(os.environ, XAIBENCH_MLFLOW="0"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    model = load_model(tmp_path / "data/models/mine/model.pt")
    assert model.mean.flatten().tolist() == pytest.approx([0.485, 0.456, 0.406])
    pixels = torch.rand(2, 3, 32, 32)
    expected = trained((pixels - model.mean) / model.std)
    assert torch.allclose(model(pixels), expected, atol=1e-5)
    metrics = json.loads((tmp_path / "metrics/mine_model.json").read_text())
    assert metrics["model"] == "torchvision:resnet18" and 0 <= metrics["test_accuracy"] <= 1


# --- corrupt files, key mismatches, models that cannot run at the input size ------

def corrupt_checkpoints(folder):
    """{name: path} of files a user may hand in by mistake."""
    import os

    from safetensors.torch import save_file

    net = torch.nn.Linear(3, 2)
    torch.save(net.state_dict(), folder / "good.pt")
    good = (folder / "good.pt").read_bytes()
    save_file(net.state_dict(), str(folder / "good.safetensors"))
    files = {"random.pt": os.urandom(2048), "empty.pt": b"", "truncated.pt": good[: len(good) // 2],
             "empty.safetensors": b"", "truncated.safetensors": (folder / "good.safetensors").read_bytes()[:40]}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in files}


@pytest.mark.parametrize("name, message", [
    ("random.pt", r"random.pt is corrupt \(2048 bytes that are not a PyTorch checkpoint\)"),
    ("empty.pt", "empty.pt is empty"),
    ("truncated.pt", r"truncated.pt is incomplete or corrupt"),
    ("empty.safetensors", "empty.safetensors is empty"),
    ("truncated.safetensors", r"truncated.safetensors is corrupt or incomplete \(40 bytes; SafetensorError"),
])
def test_a_corrupt_checkpoint_is_one_line_naming_the_file(tmp_path, name, message):
    from xaibench.models.external import read_checkpoint

    path = corrupt_checkpoints(tmp_path)[name]
    with pytest.raises(WeightsError, match=message) as error:
        read_checkpoint(path)
    text = str(error.value)
    assert "\n" not in text and "would run the code" not in text and text.endswith("save the checkpoint again")


def test_a_checkpoint_with_wrong_keys_gives_counts_and_the_first_few(tmp_path):
    torch.save(build_external("torchvision:resnet18", num_classes=3).state_dict(), tmp_path / "r18.pt")
    with pytest.raises(WeightsError) as error:
        build_external("torchvision:resnet50", num_classes=3, weights=str(tmp_path / "r18.pt"))
    text = str(error.value)
    assert "198 missing (e.g. layer1.0.conv3.weight" in text and "24 of another shape" in text
    assert "of its 320 keys" in text and len(text) < 1000        # not ~90 key names on one line


@pytest.mark.parametrize("name, size, weights, message", [
    ("torchvision:vit_b_16", 75, "none", "does not run on 75 px inputs .*Input shape indivisible by patch size"),
    ("torchvision:vit_b_16", 80, "imagenet", "does not run on 80 px inputs .*Wrong image height"),
    ("torchvision:vgg16", 16, "none", "does not run on 16 px inputs .*Output size is too small"),
    ("torchvision:vit_h_14", 224, "imagenet", "does not run on 224 px inputs .*Expected 518 but got 224"),
])
def test_a_model_that_cannot_run_at_the_input_size_is_refused_before_it_runs(name, size, weights, message):
    from xaibench.models.external import check_runs_at

    with pytest.raises(ValueError, match=message):
        check_runs_at(name, size, weights)


def test_models_with_auxiliary_heads_and_a_vit_at_its_own_size_train_and_explain():
    from xaibench.models.external import check_runs_at

    for name, size in (("torchvision:googlenet", 64), ("torchvision:inception_v3", 80), ("torchvision:vit_b_16", 32)):
        check_runs_at(name, size)                   # on the meta device: no memory, no time
    check_runs_at("torchvision:vit_h_14", 518, "imagenet")   # its SWAG weights' own size (not the builder's 224)
    googlenet = build_external("torchvision:googlenet", num_classes=3, image_size=64).train()
    out = googlenet(torch.rand(2, 3, 64, 64))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 3)   # not GoogLeNetOutputs (aux heads off)
    vit = build_external("torchvision:vit_b_16", num_classes=3, image_size=32).eval()
    assert vit(torch.rand(1, 3, 32, 32)).shape == (1, 3)            # built for the dataset's size


def test_a_checkpoint_with_auxiliary_heads_loads_into_the_plain_net(tmp_path):
    from torchvision import models

    full = models.get_model("googlenet", weights=None, num_classes=3, aux_logits=True, init_weights=True)
    torch.save(full.state_dict(), tmp_path / "googlenet.pt")
    loaded = build_external("torchvision:googlenet", num_classes=3, image_size=64, weights=str(tmp_path / "googlenet.pt"))
    assert torch.equal(loaded.fc.weight, full.fc.weight)
