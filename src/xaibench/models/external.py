"""Any torchvision classification builder or timm model by name (issue 15):
``torchvision:<builder>`` (e.g. ``torchvision:resnet50``) and ``timm:<name>`` (e.g.
``timm:resnet18``), with ``weights``:

* ``none``: random initialisation;
* ``imagenet``: the library's ImageNet weights (torchvision's ``DEFAULT`` weights, timm's
  pretrained config); offline, a clear error names the file to place in the cache;
* a path: a ``.pt`` / ``.pth`` state dict or checkpoint (``{"state_dict": ...}``,
  ``{"model": ...}``, or a whole pickled module) or a ``.safetensors`` file.

The head is sized to ``num_classes`` (ImageNet weights with another class count get a new
last linear layer). :func:`input_normalisation` gives the model's own mean, std and input
size from its weights' metadata (torchvision's transforms, timm's pretrained config), which
:class:`~xaibench.models.NormalizedClassifier` puts in front of the net.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

PREFIXES = ("torchvision:", "timm:")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class WeightsError(ValueError):
    """Weights that cannot be had: offline download, a missing or mismatched file."""


def is_external(name: str) -> bool:
    return isinstance(name, str) and name.startswith(PREFIXES)


def check_name(name: str) -> str:
    """``name`` if its library knows the builder; else a ValueError that lists some."""
    library, _, arch = name.partition(":")
    if library == "torchvision":
        from torchvision import models

        known = models.list_models(module=models)
    else:
        try:
            import timm
        except ImportError as error:  # pragma: no cover - timm is pinned in requirements.lock
            raise ValueError("timm models need the `timm` package (pip install timm)") from error
        known = timm.list_models()
    if arch not in known:
        close = [k for k in known if k.startswith(arch[:4])][:8] or known[:8]
        raise ValueError(f"unknown {library} model {arch!r}; e.g. {close}")
    return name


def _replace_last_linear(net: nn.Module, num_classes: int) -> nn.Module:
    """Swap the last ``nn.Linear`` for one with ``num_classes`` outputs (when it differs)."""
    name, last = [(n, m) for n, m in net.named_modules() if isinstance(m, nn.Linear)][-1]
    if last.out_features != num_classes:
        parent = net.get_submodule(name.rsplit(".", 1)[0]) if "." in name else net
        setattr(parent, name.rsplit(".", 1)[-1], nn.Linear(last.in_features, num_classes))
    return net


def _offline_error(name: str, error: Exception, file_hint: str) -> WeightsError:
    return WeightsError(f"{name}: the ImageNet weights could not be downloaded ({type(error).__name__}: {error}). "
                        f"Offline? {file_hint}, or set the study's `weights:` to a checkpoint path "
                        f"(.pt/.pth/.safetensors), or `weights: none`.")


def _torchvision(arch: str, num_classes: int, weights: str) -> nn.Module:
    from torchvision import models

    if weights != "imagenet":
        return models.get_model(arch, weights=None, num_classes=num_classes)
    default = models.get_model_weights(arch).DEFAULT
    try:
        net = models.get_model(arch, weights=default)
    except (OSError, RuntimeError) as error:  # URLError is an OSError
        file = Path(torch.hub.get_dir()) / "checkpoints" / Path(default.url).name
        raise _offline_error(f"torchvision:{arch}", error, f"Place {file} (from {default.url})") from error
    return _replace_last_linear(net, num_classes)


def _timm(arch: str, num_classes: int, weights: str) -> nn.Module:
    import timm

    try:
        return timm.create_model(arch, pretrained=weights == "imagenet", num_classes=num_classes)
    except (OSError, RuntimeError) as error:
        if weights != "imagenet":
            raise
        cfg = timm.models.get_pretrained_cfg(arch)
        hub = getattr(cfg, "hf_hub_id", None) or arch
        raise _offline_error(f"timm:{arch}", error, f"Place the Hugging Face repository {hub!r} in the Hugging Face "
                             f"cache (HF_HOME) with HF_HUB_OFFLINE=1") from error


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in ``path``: ``.safetensors``, or a ``.pt``/``.pth`` holding a state
    dict, ``{"state_dict": ...}`` or ``{"model": ...}``, read with ``weights_only=True``: a
    file that pickles a whole module is refused (reading it would run its code)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights: {path} is not a file (give none, imagenet or a .pt/.pth/.safetensors path)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    if path.suffix not in (".pt", ".pth"):
        raise WeightsError(f"weights: {path}: expected a .pt, .pth or .safetensors file")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:  # e.g. a whole pickled module: loading it runs its code
        raise WeightsError(
            f"weights: {path} holds more than tensors (torch.load with weights_only=True refused it: "
            f"{str(error).splitlines()[0]}). Loading it would run the code in its pickle. If you trust it, "
            f"save the model's state dict alone once, torch.save(model.state_dict(), 'state_dict.pt'), "
            f"and give that file") from None
    for key in ("state_dict", "model"):  # weights_only: never a module inside
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            return loaded[key]
    if isinstance(loaded, dict) and all(isinstance(v, torch.Tensor) for v in loaded.values()):
        return loaded
    raise WeightsError(f"weights: {path} holds no state dict (keys: {list(loaded)[:8] if isinstance(loaded, dict) else type(loaded).__name__})")


def build_external(name: str, num_classes: int, image_size: int | None = None, weights: str = "none") -> nn.Module:
    """The net of ``torchvision:<builder>`` / ``timm:<name>`` with ``num_classes`` outputs
    and ``weights`` (none | imagenet | a checkpoint path), in eval mode."""
    check_name(name)
    library, _, arch = name.partition(":")
    build = _torchvision if library == "torchvision" else _timm
    if weights in ("none", "imagenet"):
        net = build(arch, num_classes, weights)
    else:
        net = build(arch, num_classes, "none")
        state = read_checkpoint(weights)
        try:
            net.load_state_dict(state)
        except RuntimeError as error:
            raise WeightsError(f"weights: {weights} does not fit {name} with num_classes={num_classes}: "
                               f"{str(error).splitlines()[0]} {str(error).splitlines()[1:3]}") from error
    for module in net.modules():  # captum's backward hooks need out-of-place ReLUs
        if isinstance(module, nn.ReLU):
            module.inplace = False
    return net.eval()


def input_normalisation(name: str) -> dict:
    """``{"mean", "std", "image_size"}`` from the model's weights metadata: torchvision's
    DEFAULT weights' transforms, timm's pretrained config; ImageNet's statistics and no
    size where the model has none."""
    library, _, arch = name.partition(":")
    if library == "torchvision":
        from torchvision import models

        try:
            preset = models.get_model_weights(arch).DEFAULT.transforms()
            return {"mean": tuple(preset.mean), "std": tuple(preset.std), "image_size": int(preset.crop_size[0])}
        except (ValueError, AttributeError, IndexError):
            return {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "image_size": None}
    import timm

    cfg = timm.models.get_pretrained_cfg(arch)
    if cfg is None:
        return {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "image_size": None}
    return {"mean": tuple(cfg.mean), "std": tuple(cfg.std), "image_size": int(cfg.input_size[-1])}
