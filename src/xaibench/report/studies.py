"""What the report says about each study kind: two sentences and the study it reproduces.

One entry per study kind (``studies.<name>.kind`` in params.yaml, and ``gad`` for the GAD
grid). The citations are those of the source texts in ``../shared/sources/`` (their title
pages); a new kind is one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Citation:
    authors: str
    year: str
    title: str
    source: str          # file in shared/sources/

    def __str__(self) -> str:
        return f"{self.authors} ({self.year}). {self.title}."


@dataclass(frozen=True)
class StudyInfo:
    title: str
    summary: str         # two sentences: what is explained, how it is scored
    reproduces: Citation


STUDY_INFO: dict[str, StudyInfo] = {
    "saliency": StudyInfo(
        "Heatmaps of a CNN on cats vs dogs",
        "A small CNN trained on Kaggle cats-vs-dogs (128 px, rotation 15°, flips) is explained by LRP "
        "(zennit EpsilonAlpha2Beta1Flat), Grad-CAM, DeepLIFT and LIME. The maps are scored by insertion "
        "and deletion curves (AUC and their correlation with the map), average drop and increase in "
        "confidence, against two model-independent controls.",
        Citation("Siwek, Sonbul, Markowicz, Podgórski & Kruszyński", "n.d.",
                 "Explainability of Convolutional Neural Network: overview of methods (Warsaw University of "
                 "Technology)", "catsdogs-lrp-gradcam-deeplift-lime.md")),
    "senn": StudyInfo(
        "SENN against LIME and Integrated Gradients on CIFAR-10",
        "A self-explaining neural network (concepts h(x), relevances θ(x)) is trained on CIFAR-10 and "
        "compared with LIME and Integrated Gradients. Faithfulness is measured by concept ablation and "
        "by removing the top pixels, stability by explaining noisy copies of each image.",
        Citation("Rampazzo", "n.d.", "Comparing Ante-hoc and Post-hoc Interpretability Methods: SENN, LIME, and "
                 "Integrated Gradients on CIFAR-10", "senn-cifar10.md")),
    "detection": StudyInfo(
        "Explaining an SSD object detector on COCO",
        "One predicted box at a time of an SSD detector is explained by LRP (γ + flat rules), DeepLIFT "
        "with a blurred reference, LIME and SHAP on SLIC superpixels. The maps are scored by their "
        "entropy, pixel-flipping AUC, the share of relevance inside the box and their runtime.",
        Citation("Dreyer", "2021", "Comparison of Explainable AI Methods for Object Detection (University of "
                 "Potsdam research seminar)", "ssd-coco-lrp-deeplift-lime-shap.md")),
    "imagenet": StudyInfo(
        "LIME and SHAP on ImageNet classifiers",
        "InceptionV3 is explained by LIME on quickshift segments, ResNet50 by SHAP (gradient and "
        "partition explainers). The maps are scored by the insertion/deletion metrics of the "
        "cats-vs-dogs study and by how much relevance falls on the object.",
        Citation("Khalid", "2025",
                 "Assignment 1: Interpretability with LIME and SHAP (Advanced Topics in Deep Learning, "
                 "FAU Erlangen-Nürnberg)",
                 "imagenet-lime-shap.md")),
    "gad": StudyInfo(
        "GAD: gradient artificial distancing",
        "Support regression models pull the classes of a ResNet18 / VGG16 apart (α = 0..8), and five "
        "gradient methods keep only the pixels whose relevance survives that distancing. The maps are "
        "scored by the convex-hull complexity RC and the sensitivity RS of the kept region.",
        Citation("Mazini Rodrigues, Boutry & Najman", "2024",
                 "Transforming gradient-based techniques into interpretable methods", "gad-gradient-artificial-distancing.md")),
}

GENERIC = StudyInfo("A study", "A study of the benchmark.", Citation("", "", "", ""))


def study_info(kind: str) -> StudyInfo:
    """The report's text for study kind ``kind`` (a generic one for kinds not listed)."""
    return STUDY_INFO.get(kind, GENERIC)
