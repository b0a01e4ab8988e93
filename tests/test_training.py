"""The classifier trainer's batched augmentation against torchvision's per-image transforms."""
import torch
from torchvision.transforms import v2

from xaibench.training.classifier import augment_batch, rotate_batch


def _torchvision_rotate(image, angle):
    return v2.functional.rotate(image, float(angle), interpolation=v2.InterpolationMode.BILINEAR, fill=0.0)


def test_rotate_batch_is_torchvision_rotate_of_each_image():
    pixels = torch.rand(5, 3, 17, 24, generator=torch.Generator().manual_seed(0))
    angles = [15.0, 0.0, 180.0, -33.5, 370.0]
    expected = torch.stack([_torchvision_rotate(image, a) for image, a in zip(pixels, angles)])
    assert torch.equal(rotate_batch(pixels, angles), expected)
    square = pixels[:4, :, :17, :17]                  # quarter turns are exact on a square image
    quarter_turns = [90.0, 270.0, -90.0, 45.0]
    expected = torch.stack([_torchvision_rotate(image, a) for image, a in zip(square, quarter_turns)])
    assert torch.equal(rotate_batch(square, quarter_turns), expected)


def test_rotate_batch_by_zero_and_half_turn_by_hand():
    # 0 degrees: the image itself; 180 degrees about the centre: both axes reversed.
    pixels = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
    out = rotate_batch(pixels, [0.0, 180.0])
    assert torch.equal(out[0], pixels[0])
    assert torch.equal(out[1], pixels[1].flip(-1).flip(-2))


def test_augment_batch_is_the_per_image_loop_it_replaces():
    pixels = torch.rand(32, 3, 20, 20, generator=torch.Generator().manual_seed(1))
    for degrees, flip in [(15.0, True), (15.0, False), (0.0, True), (0.0, False)]:
        out = augment_batch(pixels, degrees, flip, torch.Generator().manual_seed(7))
        generator = torch.Generator().manual_seed(7)     # the same draws, in the same order
        angles = (torch.rand(len(pixels), generator=generator) * 2 - 1) * degrees
        flips = torch.rand(len(pixels), generator=generator) < 0.5
        for i, image in enumerate(pixels):
            if degrees > 0:
                image = _torchvision_rotate(image, angles[i])
            if flip and flips[i]:
                image = image.flip(-1)
            assert torch.equal(out[i], image), (degrees, flip, i)
    unchanged = augment_batch(pixels, 0.0, False, torch.Generator())
    assert torch.equal(unchanged, pixels) and unchanged.data_ptr() != pixels.data_ptr()   # a copy
