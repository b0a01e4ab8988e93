"""eMPRT and the random-logit test: by hand, and against Quantus 0.6 (its discrete entropy;
its RandomLogit's choice of class and pipeline, with xaibench's similarity)."""

import warnings

import numpy as np
import pytest
import torch

from xaibench.explain.randomisation import random_other_classes, randomisation_cascade, ssim_abs
from xaibench.metrics.randomisation import discrete_entropy, efficient_mprt
from xaibench.studies.reliability import random_logit

SIZE = 10


class ClassWeights(torch.nn.Module):
    """logit_c = Σ w_c · x (first channel): the gradient map of class c is w_c."""

    def __init__(self, n_classes=2, seed=0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.net = torch.nn.Linear(SIZE * SIZE, n_classes, bias=False)
        with torch.no_grad():
            self.net.weight.copy_(torch.randn(n_classes, SIZE * SIZE, generator=generator))

    def forward(self, x):
        return self.net(x[:, 0].flatten(1))


def gradient_maps(model, pixels, targets):
    """w_target ⊙ x per image: [N, H, W]."""
    weights = model.net.weight.detach()[torch.as_tensor(targets)].view(-1, SIZE, SIZE)
    return (weights * pixels[:, 0]).numpy()


def test_discrete_entropy_by_hand_and_as_quantus():
    halves = np.zeros((1, 4, 4))
    halves[0, :2] = 1.0
    assert discrete_entropy(halves)[0] == pytest.approx(np.log(2))       # two equal bins
    assert discrete_entropy(np.ones((1, 4, 4)))[0] == 0
    quantus = pytest.importorskip("quantus")
    maps = np.random.default_rng(0).normal(size=(5, SIZE, SIZE))
    reference = [quantus.functions.complexity_func.discrete_entropy(a=m, x=m, n_bins=100) for m in maps]
    np.testing.assert_allclose(discrete_entropy(maps, 100), reference, rtol=1e-12)


def test_emprt_is_one_for_an_unchanged_map_and_nan_for_a_constant_one():
    maps = np.random.default_rng(1).random((3, SIZE, SIZE))
    np.testing.assert_allclose(efficient_mprt(maps, maps), 1.0)
    concentrated = np.zeros((1, SIZE, SIZE))
    concentrated[0, 0, 0] = 1.0                                         # 2 occupied bins
    assert efficient_mprt(concentrated, maps[:1])[0] > 1                # turned to noise: complexity rose
    assert np.isnan(efficient_mprt(np.ones((1, SIZE, SIZE)), maps[:1])[0])


def test_the_cascade_reports_emprt_at_every_step():
    model = ClassWeights()
    pixels = torch.rand(3, 1, SIZE, SIZE)
    targets = torch.tensor([0, 1, 0])
    rows = randomisation_cascade(model, lambda m: gradient_maps(m, pixels, targets), 1, seed=0,
                                 net_of=lambda m: m)
    np.testing.assert_allclose(rows[0]["emprt"], 1.0)
    assert rows[-1]["emprt"].shape == (3,)


def test_other_classes_are_never_the_target_and_uniform():
    targets = torch.tensor([2] * 3000)
    other = random_other_classes(targets, 4, seed=0, image_indices=range(3000))
    assert (other != 2).all()
    counts = np.bincount(other.numpy(), minlength=4)
    assert counts[2] == 0 and all(abs(c - 1000) < 100 for c in counts[[0, 1, 3]])
    assert random_other_classes(torch.tensor([0, 1]), 2, 0, [0, 1]).tolist() == [1, 0]
    with pytest.raises(ValueError, match="two or more classes"):
        random_other_classes(torch.tensor([0]), 1, 0, [0])


def test_random_logit_by_hand():
    """A map that ignores the class scores 1; a class map scores less; on two classes of a
    symmetric model the other class's map is the negative one: near −1."""
    model = ClassWeights(n_classes=3)
    pixels = torch.rand(4, 1, SIZE, SIZE)
    targets = torch.tensor([0, 1, 2, 0])
    explainers = {"class_map": lambda m, t=None: gradient_maps(m, pixels, targets if t is None else t),
                  "image": lambda m, t=None: pixels[:, 0].numpy()}
    maps = {"class_map": gradient_maps(model, pixels, targets), "image": pixels[:, 0].numpy()}
    scores = random_logit(model, explainers, maps, targets, 4, 3, seed=0)
    np.testing.assert_allclose(scores["image"], 1.0)
    assert (scores["class_map"] < 0.9).all()
    symmetric = ClassWeights()
    with torch.no_grad():
        symmetric.net.weight[1] = -symmetric.net.weight[0]
    maps = {"class_map": gradient_maps(symmetric, pixels, targets % 2)}
    negated = random_logit(symmetric, {"class_map": explainers["class_map"]}, maps, targets % 2, 4, 2, seed=0)
    assert (negated["class_map"] < -0.9).all()


def test_random_logit_equals_quantus_given_the_same_similarity():
    """Quantus 0.6's RandomLogit on a binary model draws the other class (as xaibench must),
    explains it with the given explain_func, and compares with ``similarity_func``. Given
    xaibench's 2-D SSIM of the signed maps (its default flattens the maps and takes a 1-D
    SSIM: docs/fidelity.yaml), the scores are equal."""
    quantus = pytest.importorskip("quantus")
    model = ClassWeights().eval()
    pixels = torch.rand(6, 1, SIZE, SIZE)
    targets = torch.tensor([0, 1, 1, 0, 1, 0])
    maps = gradient_maps(model, pixels, targets)
    ours = random_logit(model, {"g": lambda m, t=None: gradient_maps(m, pixels, targets if t is None else t)},
                        {"g": maps}, targets, 6, 2, seed=0)["g"]

    def explain_func(model, inputs, targets, **kwargs):
        return gradient_maps(model, torch.as_tensor(inputs), torch.as_tensor(targets))[:, None]

    def similarity(a, b, batched=True, **kwargs):
        return list(ssim_abs(np.asarray(a).reshape(-1, SIZE, SIZE), np.asarray(b).reshape(-1, SIZE, SIZE), False))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = quantus.RandomLogit(num_classes=2, similarity_func=similarity, disable_warnings=True)(
            model=model, x_batch=pixels.numpy(), y_batch=targets.numpy(), a_batch=maps[:, None],
            explain_func=explain_func, device="cpu")
        flattened = quantus.RandomLogit(num_classes=2, disable_warnings=True)(
            model=model, x_batch=pixels.numpy(), y_batch=targets.numpy(), a_batch=maps[:, None],
            explain_func=explain_func, device="cpu")
    np.testing.assert_allclose(ours, reference, atol=1e-12)
    assert np.abs(np.asarray(flattened) - ours).max() > 0.05            # what Quantus's default would report


def test_noisy_copies_are_image_major_and_bounded():
    from xaibench.explain.randomisation import noisy_copies

    pixels = torch.rand(2, 1, SIZE, SIZE)
    copies = noisy_copies(pixels, 3, "uniform", 0.02, seed=0, stream=1)
    assert copies.shape == (6, 1, SIZE, SIZE)
    assert float((copies - pixels.repeat_interleave(3, 0)).abs().max()) <= 0.02 + 1e-7
    gaussian = noisy_copies(pixels, 200, "gaussian", 0.1, seed=0, stream=2)[:200] - pixels[0]
    assert abs(float(gaussian.std()) - 0.1 * float(pixels[0].max() - pixels[0].min())) < 0.005


def test_max_sensitivity_equals_captums_on_the_same_noise():
    from captum.metrics import sensitivity_max

    from xaibench.explain.randomisation import SENSITIVITY_STREAM, noisy_copies
    from xaibench.metrics.randomisation import max_sensitivity

    model = ClassWeights()
    pixels = torch.rand(3, 1, SIZE, SIZE)
    targets = torch.tensor([0, 1, 1])
    copies = noisy_copies(pixels, 5, "uniform", 0.02, 0, SENSITIVITY_STREAM)
    ours = max_sensitivity(gradient_maps(model, pixels, targets),
                           gradient_maps(model, copies, targets.repeat_interleave(5)).reshape(3, 5, SIZE, SIZE))
    def explanation(inputs, target):                                   # captum hands the inputs as a tuple
        x = inputs[0] if isinstance(inputs, tuple) else inputs
        return (torch.from_numpy(gradient_maps(model, x, target)),)               # a tuple, as captum iterates it

    reference = sensitivity_max(explanation, pixels,
                                perturb_func=lambda inputs, perturb_radius: copies, n_perturb_samples=5, target=targets)
    np.testing.assert_allclose(ours, reference.numpy(), rtol=1e-5)
    assert (ours > 0).all()


def test_input_noise_checks_tell_a_model_map_from_an_image_map():
    """sMPRT: an image map is the same for the trained and the random model (Spearman 1);
    the model's gradient map is not. Max-sensitivity: the image map moves by the noise alone."""
    from xaibench.params import InputNoise
    from xaibench.studies.reliability import input_noise_checks

    model = ClassWeights()
    pixels = torch.rand(4, 1, SIZE, SIZE)
    targets = torch.tensor([0, 1, 1, 0])

    def gradient(m, t=None, px=None, idx=None):
        return gradient_maps(m, pixels if px is None else px, targets if t is None else t)

    def image(m, t=None, px=None, idx=None):
        return (pixels if px is None else px)[:, 0].numpy()

    maps = {"gradient": gradient(model), "image": image(model)}
    scores = input_noise_checks(model, {"gradient": gradient, "image": image}, maps, pixels, targets, 4,
                                InputNoise(samples=3), n_steps=1, seed=0, net_of=lambda m: m)
    np.testing.assert_allclose(scores["image"]["sMPRT"], 1.0)
    assert (scores["gradient"]["sMPRT"] < 0.8).all()             # |w·x| of two weightings shares |x|
    assert (scores["image"]["max_sensitivity"] < 0.1).all()
