"""Training an SSD detector from scratch (the detection study's twin).

torchvision's SSD computes its own loss in train mode (smooth-L1 box regression +
cross-entropy with 3:1 hard-negative mining, Liu et al. 2016); here: Adam, a seeded
shuffle, and a random horizontal flip of image and boxes.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

log = logging.getLogger(__name__)


def split_targets(boxes: np.ndarray, box_labels: np.ndarray, box_image: np.ndarray, n_images: int) -> list[dict]:
    """Flat ground truth -> one torchvision target dict per image."""
    return [{"boxes": torch.from_numpy(boxes[box_image == i]).float(),
             "labels": torch.from_numpy(box_labels[box_image == i]).long()} for i in range(n_images)]


def flip_horizontal(image: torch.Tensor, target: dict) -> tuple[torch.Tensor, dict]:
    """Mirror [3, H, W] and its xyxy boxes."""
    width = image.shape[-1]
    boxes = target["boxes"].clone()
    boxes[:, [0, 2]] = width - target["boxes"][:, [2, 0]]
    return image.flip(-1), {**target, "boxes": boxes}


def train_detector(model: nn.Module, pixels: torch.Tensor, targets: list[dict], epochs: int, lr: float,
                   batch_size: int, horizontal_flip: bool, seed: int, on_epoch=None) -> list[dict]:
    """Adam on torchvision's SSD loss; one {epoch, loss, bbox_regression, classification} per epoch."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(pixels), generator=generator)
        flips = torch.rand(len(pixels), generator=generator) < 0.5
        sums = {"bbox_regression": 0.0, "classification": 0.0}
        batches = range(0, len(pixels), batch_size)
        for start in tqdm(batches, desc=f"epoch {epoch}/{epochs}", leave=False, disable=None):
            images, batch_targets = [], []
            for i in order[start:start + batch_size].tolist():
                image, target = pixels[i], targets[i]
                if horizontal_flip and flips[i]:
                    image, target = flip_horizontal(image, target)
                images.append(image)
                batch_targets.append(target)
            losses = model(images, batch_targets)
            loss = losses["bbox_regression"] + losses["classification"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            for key in sums:
                sums[key] += losses[key].item() * len(images)
        record = {key: value / len(pixels) for key, value in sums.items()}
        record["loss"] = record["bbox_regression"] + record["classification"]
        history.append({"epoch": epoch, **record})
        log.info("epoch %d/%d loss %.4f (box %.4f, class %.4f)", epoch, epochs, record["loss"],
                 record["bbox_regression"], record["classification"])
        if on_epoch:
            on_epoch(epoch, record)
    return history
