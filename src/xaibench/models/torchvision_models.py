"""torchvision ResNet18 and VGG16 with a 2-class head (the GAD study's architectures).

``pretrained=True`` loads ImageNet weights through torchvision (needs the network; the
real profile) and replaces the head; the twin trains them from scratch. VGG16 can be
narrowed (``width``: channel divisor) so the twin fits a CPU budget; the 13-conv layout
is unchanged.
"""

from __future__ import annotations

from torch import nn

from xaibench.models.registry import register_model

# torchvision is imported inside the builders: it imports torch._dynamo (1.5 s here), and
# every stage imports this registry with the params.

VGG16_LAYOUT = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def _no_inplace(net: nn.Module) -> nn.Module:
    """captum's backward hooks (guided backprop, deconvolution) need out-of-place ReLUs."""
    for module in net.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    return net


@register_model("resnet18")
def resnet18(num_classes: int, image_size: int, pretrained: bool = False) -> nn.Module:
    from torchvision import models  # lazy

    if pretrained:
        net = models.resnet18(weights=models.ResNet18_Weights.IMAGENET1K_V1)
        net.fc = nn.Linear(net.fc.in_features, num_classes)
        return _no_inplace(net)
    return _no_inplace(models.resnet18(weights=None, num_classes=num_classes))


@register_model("vgg16")
def vgg16(num_classes: int, image_size: int, pretrained: bool = False, width: int = 4,
          torchvision_head: bool = False) -> nn.Module:
    """VGG16. ``pretrained``: torchvision's ImageNet VGG16 (width 1, its own head) with a
    new last layer. Otherwise from scratch: the VGG16 layout with batch normalisation
    (trainable from scratch in a few epochs), channels divided by ``width``, a small head."""

    from torchvision import models  # lazy
    from torchvision.models.vgg import make_layers  # lazy

    if pretrained:
        net = models.vgg16(weights=models.VGG16_Weights.IMAGENET1K_V1)
        net.classifier[-1] = nn.Linear(net.classifier[-1].in_features, num_classes)
        return _no_inplace(net)
    if torchvision_head:  # the architecture of a pretrained one, e.g. to load its checkpoint
        net = models.vgg16(weights=None)
        net.classifier[-1] = nn.Linear(net.classifier[-1].in_features, num_classes)
        return _no_inplace(net)
    layout = [v if v == "M" else v // width for v in VGG16_LAYOUT]
    channels = layout[-2]
    net = models.VGG(make_layers(layout, batch_norm=True), num_classes=num_classes, init_weights=True)
    side = max(image_size // 32, 1)
    net.avgpool = nn.AdaptiveAvgPool2d(side)
    net.classifier = nn.Sequential(nn.Linear(channels * side * side, 256), nn.ReLU(), nn.Dropout(0.3),
                                   nn.Linear(256, num_classes))
    return _no_inplace(net)


def architecture_options(name: str, pretrained: bool) -> dict:
    """Builder options that rebuild the same architecture without downloading weights."""
    return {"torchvision_head": True, "width": 1} if (name == "vgg16" and pretrained) else {}


@register_model("inception_v3")
def inception_v3(num_classes: int, image_size: int, pretrained: bool = False, transform_input: bool = False) -> nn.Module:
    """torchvision InceptionV3 without the auxiliary head (inputs of at least 75 px).
    ``pretrained``: ImageNet weights and its 1000 classes (the real profile; torchvision
    then sets ``transform_input``, which a rebuilt architecture must repeat).

    From scratch it keeps PyTorch's default (Kaiming-uniform) initialisation instead of
    torchvision's ``init_weights=True`` (truncated normal, std 0.1, on every conv): on
    the imagenet twin (235 images, 80 px, Adam 1e-3) the latter started at loss 4.7 and
    reached val accuracy 0.76 in 10 epochs; the default started at 1.2 and reached 0.96 in 4."""

    from torchvision import models  # lazy

    if image_size < 75:
        raise ValueError(f"inception_v3 needs images of at least 75 px (given {image_size})")
    if pretrained:
        return _no_inplace(models.inception_v3(weights=models.Inception_V3_Weights.IMAGENET1K_V1, aux_logits=False))
    return _no_inplace(models.inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=num_classes,
                                           transform_input=transform_input))


@register_model("resnet50")
def resnet50(num_classes: int, image_size: int, pretrained: bool = False) -> nn.Module:
    """torchvision ResNet50; ``pretrained``: ImageNet weights and its 1000 classes."""

    from torchvision import models  # lazy

    if pretrained:
        return _no_inplace(models.resnet50(weights=models.ResNet50_Weights.IMAGENET1K_V2))
    return _no_inplace(models.resnet50(weights=None, num_classes=num_classes))
