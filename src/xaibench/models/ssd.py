"""SSD detectors (Liu et al. 2016) for the detection study (Dreyer 2021), and the one
detection an explanation is about.

Registry :data:`DETECTORS` (``studies.<name>.model`` of a ``detection`` study):

* ``ssd300_vgg16``: torchvision's SSD300-VGG16, COCO weights with ``pretrained: true``
  (the real profile; the study used SSD512-VGG16);
* ``ssd_twin``: torchvision's :class:`~torchvision.models.detection.SSD` with a small
  VGG-style backbone (conv-BN-ReLU blocks, SSD's L2Norm on the first feature map, one
  extra block per coarser map), trained from scratch on the COCO twin.

Both take [0, 1] pixels at their fixed input size, so torchvision's transform only
normalises (its resize to the same size is the identity).

The explained quantity is the class logit of one detection: the anchor behind a chosen
post-NMS box (:func:`detect`, which repeats torchvision's ``postprocess_detections``
and keeps each box's anchor index) and its class. :class:`BoxLogit` exposes it as a
classifier-shaped module, normalised input -> the anchor's class logits [N, C], so
autograd methods (LRP, DeepLIFT) and forward-only perturbation (LIME, SHAP, pixel
flipping) see the same function.
"""

from __future__ import annotations

import types
from collections import OrderedDict
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from xaibench.atomic import atomic_path
from xaibench.models.external import torch_load
from xaibench.registry import registrar

DETECTORS: dict[str, Callable[..., nn.Module]] = {}
register_detector = registrar(DETECTORS, "detector")


class L2Norm(nn.Module):
    """SSD's feature normalisation: y = s_c · x / ‖x‖₂ over channels, learned s (init 20).

    A module (torchvision's SSD300 does it functionally) so that LRP can treat it like an
    activation and pass relevance through (:mod:`xaibench.explain.detection`)."""

    def __init__(self, channels: int, scale: float = 20.0, weight: nn.Parameter | None = None):
        super().__init__()
        self.weight = weight if weight is not None else nn.Parameter(torch.full((channels,), scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight.view(1, -1, 1, 1) * F.normalize(x, dim=1)


def _vgg_extractor_forward(self, x):
    """VGG-SSD feature maps: ``features``, the L2Norm-scaled first map, then each ``extra``
    block on the unscaled one (torchvision's ``SSDFeatureExtractorVGG.forward`` with the
    L2Norm as a module; also the forward of :class:`TwinVGGBackbone`)."""
    x = self.features(x)
    maps = [self.l2norm(x)]
    for block in self.extra:
        x = block(x)
        maps.append(x)
    return OrderedDict((str(i), m) for i, m in enumerate(maps))


def _conv_block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]


class TwinVGGBackbone(nn.Module):
    """VGG-style SSD backbone: three stages of two conv blocks + max-pool (stride 8), L2Norm
    on that map, then ``n_extra`` blocks (max-pool + conv block) for coarser maps."""

    def __init__(self, widths=(8, 16, 32), extra_width: int = 32, n_extra: int = 3):
        super().__init__()
        layers, c_in = [], 3
        for width in widths:
            layers += _conv_block(c_in, width) + _conv_block(width, width) + [nn.MaxPool2d(2)]
            c_in = width
        self.features = nn.Sequential(*layers)
        self.l2norm = L2Norm(widths[-1])
        self.extra = nn.ModuleList()
        for _ in range(n_extra):
            self.extra.append(nn.Sequential(nn.MaxPool2d(2), *_conv_block(c_in, extra_width)))
            c_in = extra_width

    forward = _vgg_extractor_forward


@register_detector("ssd_twin")
def ssd_twin(num_classes: int, image_size: int, mean, std, widths=(8, 16, 32), extra_width: int = 32,
             pretrained: bool = False) -> nn.Module:
    from torchvision.models.detection.anchor_utils import DefaultBoxGenerator  # lazy: detection models
    from torchvision.models.detection.ssd import SSD

    if pretrained:
        raise ValueError("ssd_twin has no pretrained weights; use ssd300_vgg16 for the real profile")
    backbone = TwinVGGBackbone(tuple(widths), extra_width)
    levels = 1 + len(backbone.extra)
    anchors = DefaultBoxGenerator([[2]] * levels, min_ratio=0.15, max_ratio=0.9)
    return SSD(backbone, anchors, (image_size, image_size), num_classes, image_mean=list(mean), image_std=list(std),
               score_thresh=0.01, nms_thresh=0.45, detections_per_img=50, topk_candidates=200)


@register_detector("ssd300_vgg16")
def ssd300_vgg16(num_classes: int, image_size: int, mean, std, pretrained: bool = False, **_) -> nn.Module:
    """torchvision SSD300-VGG16 (COCO weights with ``pretrained``; needs the network). Its
    functional L2Norm is replaced by an :class:`L2Norm` module sharing the same weight."""
    from torchvision.models.detection import SSD300_VGG16_Weights  # lazy: detection models
    from torchvision.models.detection import ssd300_vgg16 as build

    if image_size != 300:
        raise ValueError(f"ssd300_vgg16 takes 300 px input; set the dataset's preprocess.image_size to 300 "
                         f"(given {image_size})")
    model = build(weights=SSD300_VGG16_Weights.COCO_V1 if pretrained else None, weights_backbone=None,
                  num_classes=num_classes)
    extractor = model.backbone
    extractor.l2norm = L2Norm(0, weight=extractor.scale_weight)
    extractor.forward = types.MethodType(_vgg_extractor_forward, extractor)
    return model


def build_detector(name: str, num_classes: int, image_size: int, mean, std, **options) -> nn.Module:
    if name not in DETECTORS:
        raise KeyError(f"unknown detector {name!r}; known: {sorted(DETECTORS)}")
    return DETECTORS[name](num_classes=num_classes, image_size=image_size, mean=mean, std=std, **options)


def save_detector(path, model: nn.Module, name: str, num_classes: int, image_size: int, options: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save({"name": name, "num_classes": num_classes, "image_size": image_size, "options": options,
                    "mean": list(model.transform.image_mean), "std": list(model.transform.image_std),
                    "state_dict": model.state_dict()}, tmp)


def load_detector(path) -> nn.Module:
    checkpoint = torch_load(path)
    options = {k: v for k, v in checkpoint["options"].items() if k != "pretrained"}
    model = build_detector(checkpoint["name"], checkpoint["num_classes"], checkpoint["image_size"],
                           checkpoint["mean"], checkpoint["std"], **options)
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


# --- the explained detection ------------------------------------------------------------

def normalize(model: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    mean = torch.as_tensor(model.transform.image_mean, dtype=pixels.dtype).view(1, -1, 1, 1)
    std = torch.as_tensor(model.transform.image_std, dtype=pixels.dtype).view(1, -1, 1, 1)
    return (pixels - mean) / std


def head_outputs(model: nn.Module, normalized: torch.Tensor):
    """(cls_logits [N, A, C], bbox_regression [N, A, 4], feature maps) of normalised input."""
    features = list(model.backbone(normalized).values())
    out = model.head(features)
    return out["cls_logits"], out["bbox_regression"], features


@torch.no_grad()
def detect(model: nn.Module, pixels: torch.Tensor) -> list[dict]:
    """torchvision's SSD post-processing (softmax, per-class score threshold and top-k,
    class-wise NMS, ``detections_per_img``) on [0, 1] pixels [N, 3, S, S], keeping the
    anchor index of every kept box: per image {boxes [K, 4] xyxy, scores, labels, anchors}."""
    from torchvision.models.detection.image_list import ImageList  # lazy: detection models
    from torchvision.ops import boxes as box_ops  # lazy

    model.eval()
    x = normalize(model, pixels)
    cls_logits, bbox_regression, features = head_outputs(model, x)
    size = tuple(pixels.shape[-2:])
    anchors = model.anchor_generator(ImageList(x, [size] * len(x)), features)
    scores_all = F.softmax(cls_logits, dim=-1)
    results = []
    for regression, scores, image_anchors in zip(bbox_regression, scores_all, anchors):
        boxes = box_ops.clip_boxes_to_image(model.box_coder.decode_single(regression, image_anchors), size)
        kept_boxes, kept_scores, kept_labels, kept_anchors = [], [], [], []
        for label in range(1, scores.shape[-1]):
            score = scores[:, label]
            candidates = torch.nonzero(score > model.score_thresh).flatten()
            score = score[candidates]
            score, order = score.topk(min(model.topk_candidates, score.numel()))
            candidates = candidates[order]
            kept_boxes.append(boxes[candidates])
            kept_scores.append(score)
            kept_labels.append(torch.full_like(candidates, label))
            kept_anchors.append(candidates)
        boxes, scores_k = torch.cat(kept_boxes), torch.cat(kept_scores)
        labels, anchor_index = torch.cat(kept_labels), torch.cat(kept_anchors)
        keep = box_ops.batched_nms(boxes, scores_k, labels, model.nms_thresh)[: model.detections_per_img]
        results.append({"boxes": boxes[keep], "scores": scores_k[keep], "labels": labels[keep],
                        "anchors": anchor_index[keep]})
    return results


class BoxLogit(nn.Module):
    """Normalised image [N, 3, S, S] -> class logits [N, C] of anchor ``anchor``: the
    detection's class logit is column ``label``; its softmax is the detector's score."""

    def __init__(self, detector: nn.Module, anchor: int):
        super().__init__()
        self.detector = detector
        self.anchor = int(anchor)

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        return normalize(self.detector, pixels)

    def forward(self, normalized: torch.Tensor) -> torch.Tensor:
        cls_logits, _, _ = head_outputs(self.detector, normalized)
        return cls_logits[:, self.anchor, :]

    @torch.no_grad()
    def scores(self, pixels: torch.Tensor, label: int, batch_size: int = 64) -> torch.Tensor:
        """The detector's score for (anchor, ``label``) on [0, 1] pixels [N, 3, S, S]: [N]."""
        return torch.cat([self(self.normalize(chunk)).softmax(-1)[:, label] for chunk in pixels.split(batch_size)])
