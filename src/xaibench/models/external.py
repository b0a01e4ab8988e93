"""Any torchvision classification builder or timm model by name:
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


def _torchvision_models():
    """``torchvision.models``, imported when a torchvision model is asked for: importing
    torchvision imports torch._dynamo (1.5 s here), and every stage loads the params, which
    import this module."""
    from torchvision import models  # lazy

    return models


class WeightsError(ValueError):
    """Weights that cannot be had: offline download, a missing or mismatched file."""


def is_external(name: str) -> bool:
    return isinstance(name, str) and name.startswith(PREFIXES)


def check_name(name: str) -> str:
    """``name`` if its library knows the builder; else a ValueError that lists some."""
    library, _, arch = name.partition(":")
    if library == "torchvision":
        models = _torchvision_models()
        known = models.list_models(module=models)
    else:
        try:
            import timm  # lazy: timm
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


AUXILIARY_HEADS = {"googlenet": ("aux1.", "aux2."), "inception_v3": ("AuxLogits.",)}


def _builder_options(arch: str, weights: str, image_size: int | None) -> dict:
    """torchvision builder keywords that make a net a plain classifier at ``image_size``:
    no auxiliary heads (GoogLeNet and Inception v3 return a named tuple in training mode
    otherwise; xaibench trains and explains the main output), and a ViT built for the
    input size (with ImageNet weights: the weights' size, which their position embedding fixes)."""
    options = {}
    if arch in AUXILIARY_HEADS:
        options["aux_logits"] = False
    if arch.startswith("vit_") and weights == "imagenet":  # the weights' own size (torchvision sets it too)

        options["image_size"] = _torchvision_models().get_model_weights(arch).DEFAULT.meta["min_size"][0]
    elif arch.startswith("vit_") and image_size:
        options["image_size"] = image_size
    return options


def _torchvision(arch: str, num_classes: int, weights: str, image_size: int | None = None) -> nn.Module:
    models = _torchvision_models()
    options = _builder_options(arch, weights, image_size)
    if weights != "imagenet":
        return models.get_model(arch, weights=None, num_classes=num_classes, **options)
    default = models.get_model_weights(arch).DEFAULT
    options.pop("image_size", None)   # get_model sets it from the weights' metadata
    try:
        net = models.get_model(arch, weights=default, **options)
    except (OSError, RuntimeError) as error:  # URLError is an OSError
        file = Path(torch.hub.get_dir()) / "checkpoints" / Path(default.url).name
        raise _offline_error(f"torchvision:{arch}", error, f"Place {file} (from {default.url})") from error
    return _replace_last_linear(net, num_classes)


def _timm(arch: str, num_classes: int, weights: str, image_size: int | None = None) -> nn.Module:
    import timm  # lazy: timm

    def create(**size):
        return timm.create_model(arch, pretrained=weights == "imagenet", num_classes=num_classes, **size)

    try:
        try:  # transformers take the input size (timm resamples pretrained position embeddings)
            return create(**({"img_size": image_size} if image_size else {}))
        except TypeError:  # a CNN: any input size
            return create()
    except (OSError, RuntimeError) as error:
        if weights != "imagenet":
            raise
        cfg = timm.models.get_pretrained_cfg(arch)
        hub = getattr(cfg, "hf_hub_id", None) or arch
        raise _offline_error(f"timm:{arch}", error, f"Place the Hugging Face repository {hub!r} in the Hugging Face "
                             f"cache (HF_HOME) with HF_HUB_OFFLINE=1") from error


def meta_net(name: str, image_size: int, weights: str = "none", num_classes: int = 2) -> nn.Module:
    """``name`` built on PyTorch's ``meta`` device (shapes and structure, no memory, no
    weights read): what validation inspects."""
    library, _, arch = name.partition(":")
    with torch.device("meta"):
        if library == "torchvision":
            options = _builder_options(arch, weights, image_size)
            return _torchvision_models().get_model(arch, weights=None, num_classes=num_classes, **options)
        return _timm(arch, num_classes, "none", image_size)


def check_runs_at(name: str, image_size: int, weights: str = "none") -> None:
    """Refuse a model that cannot classify ``image_size`` px inputs, before any stage runs:
    built on PyTorch's ``meta`` device (shapes only, no memory, a fraction of a second), it
    must map a batch of two [3, S, S] images to [2, classes] logits in training and in
    eval mode. Catches e.g. a ViT with ImageNet weights at another size than its own
    (built at the weights' size, :func:`_builder_options`: "Wrong image height!"), a Swin whose windows do not tile the input, a size too small
    for the net's downsampling. Raises ValueError saying what to change."""
    try:
        net = meta_net(name, image_size, weights)
        with torch.device("meta"):
            batch = torch.empty(2, 3, image_size, image_size)
            for mode in (True, False):
                out = net.train(mode)(batch)
                if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, 2):
                    raise TypeError(f"its {'training' if mode else 'eval'} output is a {type(out).__name__}, "
                                    f"not [batch, classes] logits")
    except (AssertionError, RuntimeError, ValueError, TypeError, IndexError) as error:
        own = input_normalisation(name)["image_size"]
        raise ValueError(f"{name} does not run on {image_size} px inputs ({type(error).__name__}: "
                         f"{_first_line(error)}); set the dataset's preprocess.image_size to {name}"
                         + (f" (its own size, {own} px)" if own else " or to a size it accepts")) from None


def torch_load(path: str | Path):
    """``torch.load(path, weights_only=True)`` on the CPU, its failures as one
    :class:`WeightsError` line naming the file: a pickle that holds code (a whole module:
    loading it would run that code) is refused with what to do; an empty, truncated or
    random file is called corrupt or incomplete."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "Unsupported global" in str(error):  # e.g. a whole pickled module
            raise WeightsError(
                f"weights: {path} holds more than tensors (torch.load with weights_only=True refused it: "
                f"{_first_line(error, 'Unsupported global')}). Loading it would run the code in its pickle. If "
                f"you trust it, save the model's state dict alone once, torch.save(model.state_dict(), "
                f"'state_dict.pt'), and give that file") from None
        raise _corrupt(path, error) from None
    except (EOFError, RuntimeError, OSError, ValueError, AttributeError, KeyError, IndexError) as error:
        raise _corrupt(path, error) from None


def _first_line(error: Exception, containing: str = "") -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    chosen = [line for line in lines if containing in line] if containing else lines
    return (chosen or lines or [type(error).__name__])[0].split(". Please")[0][:200]


def _corrupt(path: Path, error: Exception) -> WeightsError:
    """A file the loader could not parse: empty, cut short, or not a checkpoint at all."""
    size = path.stat().st_size if path.exists() else 0
    head = path.read_bytes()[:4] if size else b""
    # torch.save writes a zip archive (older versions a pickle, protocol header 0x80): random
    # bytes are neither, whichever error the unpickler happens to raise on them
    looks_like_one = head.startswith(b"PK\x03\x04") or head.startswith(b"\x80")
    if size == 0:
        what = "is empty"
    elif path.suffix in (".pt", ".pth") and not looks_like_one:
        what = f"is corrupt ({size} bytes that are not a PyTorch checkpoint)"
    elif isinstance(error, EOFError):
        what = f"is incomplete ({size} bytes: it ends early)"
    elif isinstance(error, pickle.UnpicklingError):
        what = f"is corrupt ({size} bytes that are not a PyTorch checkpoint)"
    elif isinstance(error, RuntimeError) and "zip" in str(error):
        what = f"is incomplete or corrupt ({size} bytes: its zip archive has no central directory, truncated?)"
    else:
        what = f"is corrupt or incomplete ({size} bytes; {type(error).__name__}: {_first_line(error)})"
    return WeightsError(f"weights: {path} {what}; copy or save the checkpoint again")


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in ``path``: ``.safetensors``, or a ``.pt``/``.pth`` holding a state
    dict, ``{"state_dict": ...}`` or ``{"model": ...}``, read with ``weights_only=True``: a
    file that pickles a whole module is refused (reading it would run its code); a corrupt
    one is named (:func:`torch_load`)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights: {path} is not a file (give none, imagenet or a .pt/.pth/.safetensors path)")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError  # lazy: safetensors
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as error:
            raise _corrupt(path, error) from None
    if path.suffix not in (".pt", ".pth"):
        raise WeightsError(f"weights: {path}: expected a .pt, .pth or .safetensors file")
    loaded = torch_load(path)
    for key in ("state_dict", "model"):  # weights_only: never a module inside
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            return loaded[key]
    if isinstance(loaded, dict) and all(isinstance(v, torch.Tensor) for v in loaded.values()):
        return loaded
    raise WeightsError(f"weights: {path} holds no state dict (keys: {list(loaded)[:8] if isinstance(loaded, dict) else type(loaded).__name__})")


def describe_mismatch(net: nn.Module, state: dict, first: int = 4) -> str:
    """How a state dict differs from ``net``'s: counts of missing and unexpected keys and of
    shape mismatches, with the first few of each (a full list of ~90 names says less)."""
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)]

    def part(label, names):
        return f"{len(names)} {label}" + (f" (e.g. {', '.join(names[:first])}{', …' if len(names) > first else ''})"
                                          if names else "")

    return "; ".join(part(label, names) for label, names in
                     (("missing", missing), ("unexpected", unexpected), ("of another shape", shapes)) if names) \
        or "keys and shapes match"


def build_external(name: str, num_classes: int, image_size: int | None = None, weights: str = "none") -> nn.Module:
    """The net of ``torchvision:<builder>`` / ``timm:<name>`` with ``num_classes`` outputs
    and ``weights`` (none | imagenet | a checkpoint path), in eval mode."""
    check_name(name)
    library, _, arch = name.partition(":")
    build = _torchvision if library == "torchvision" else _timm
    if weights in ("none", "imagenet"):
        net = build(arch, num_classes, weights, image_size)
    else:
        net = build(arch, num_classes, "none", image_size)
        state = read_checkpoint(weights)
        if library == "torchvision" and arch in AUXILIARY_HEADS:  # the auxiliary heads are not built
            state = {k: v for k, v in state.items() if not k.startswith(AUXILIARY_HEADS[arch])}
        try:
            net.load_state_dict(state)
        except RuntimeError:
            raise WeightsError(f"weights: {weights} does not fit {name} with num_classes={num_classes}: "
                               f"{describe_mismatch(net, state)} of its {len(net.state_dict())} keys") from None
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
        try:
            preset = _torchvision_models().get_model_weights(arch).DEFAULT.transforms()
            return {"mean": tuple(preset.mean), "std": tuple(preset.std), "image_size": int(preset.crop_size[0])}
        except (ValueError, AttributeError, IndexError):
            return {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "image_size": None}
    import timm  # lazy: timm

    cfg = timm.models.get_pretrained_cfg(arch)
    if cfg is None:
        return {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "image_size": None}
    return {"mean": tuple(cfg.mean), "std": tuple(cfg.std), "image_size": int(cfg.input_size[-1])}
