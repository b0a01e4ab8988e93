"""What the report says about each study: two sentences and, for the five reproductions,
the study it reproduces.

One entry per study kind (``studies.<name>.kind`` in params.yaml, and ``gad`` for the GAD
grid), with the dataset and model it reproduces. The citations are those of the source
texts in ``../shared/sources/`` (their title pages); a new kind is one entry here. A study
of that kind on another dataset or model (your own folder and model) is not the
reproduction: :func:`study_info` describes it from its own params and cites nothing.
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
    reproduces: Citation | None
    dataset: str = ""    # the dataset (registry name) and model of the reproduction: a study of
    model: str = ""      # this kind on another one is described from its params instead


STUDY_INFO: dict[str, StudyInfo] = {
    "saliency": StudyInfo(
        "Heatmaps of a CNN on cats vs dogs",
        "A small CNN trained on Kaggle cats-vs-dogs (128 px, rotation 15°, flips) is explained by LRP "
        "(zennit EpsilonAlpha2Beta1Flat), Grad-CAM, DeepLIFT and LIME. The maps are scored by insertion "
        "and deletion curves (AUC and their correlation with the map), average drop and increase in "
        "confidence, against two model-independent controls.",
        Citation("Siwek, Sonbul, Markowicz, Podgórski & Kruszyński", "n.d.",
                 "Explainability of Convolutional Neural Network: overview of methods (Warsaw University of "
                 "Technology)", "catsdogs-lrp-gradcam-deeplift-lime.md"), "catsdogs", "catsdogs_cnn"),
    "senn": StudyInfo(
        "SENN against LIME and Integrated Gradients on CIFAR-10",
        "A self-explaining neural network (concepts h(x), relevances θ(x)) is trained on CIFAR-10 and "
        "compared with LIME and Integrated Gradients. Faithfulness is measured by concept ablation and "
        "by removing the top pixels, stability by explaining noisy copies of each image.",
        Citation("Rampazzo", "n.d.", "Comparing Ante-hoc and Post-hoc Interpretability Methods: SENN, LIME, and "
                 "Integrated Gradients on CIFAR-10", "senn-cifar10.md"), "cifar10", "senn"),
    "detection": StudyInfo(
        "Explaining an SSD object detector on COCO",
        "One predicted box at a time of an SSD detector is explained by LRP (γ + flat rules), DeepLIFT "
        "with a blurred reference, LIME and SHAP on SLIC superpixels. The maps are scored by their "
        "entropy, pixel-flipping AUC, the share of relevance inside the box and their runtime.",
        Citation("Dreyer", "2021", "Comparison of Explainable AI Methods for Object Detection (University of "
                 "Potsdam research seminar)", "ssd-coco-lrp-deeplift-lime-shap.md"), "coco"),
    "imagenet": StudyInfo(
        "LIME and SHAP on ImageNet classifiers",
        "InceptionV3 is explained by LIME on quickshift segments, ResNet50 by SHAP (gradient and "
        "partition explainers). The maps are scored by the insertion/deletion metrics of the "
        "cats-vs-dogs study and by how much relevance falls on the object.",
        Citation("Khalid", "2025",
                 "Assignment 1: Interpretability with LIME and SHAP (Advanced Topics in Deep Learning, "
                 "FAU Erlangen-Nürnberg)",
                 "imagenet-lime-shap.md"), "imagenet"),
    "gad": StudyInfo(
        "GAD: gradient artificial distancing",
        "Support regression models pull the classes of a ResNet18 / VGG16 apart (α = 0..8), and five "
        "gradient methods keep only the pixels whose relevance survives that distancing. The maps are "
        "scored by the convex-hull complexity RC and the sensitivity RS of the kept region.",
        Citation("Mazini Rodrigues, Boutry & Najman", "2024",
                 "Transforming gradient-based techniques into interpretable methods", "gad-gradient-artificial-distancing.md")),
}

GENERIC = StudyInfo("A study", "A study of the benchmark.", None)
KIND_SCORES = {
    "saliency": "insertion and deletion curves (AUC and their correlation with the map), average drop and "
                "increase in confidence, against model-independent controls",
    "senn": "concept ablation, removal of the top pixels and stability under noise",
    "detection": "entropy, pixel-flipping AUC and the share of relevance inside the box",
    "imagenet": "insertion and deletion curves and the share of relevance on the object",
}


def _listing(names) -> str:
    names = [str(n) for n in names]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1] if names else "no methods"


def study_info(kind: str, study=None, dataset=None, classes=None) -> StudyInfo:
    """The report's text for a study of ``kind``: the reproduction's entry when ``study``
    (its validated params) uses the reproduction's dataset (not a folder of your own) and
    model; otherwise a description from its params (dataset, classes, model, image size,
    methods) that cites no paper. Without ``study``: the kind's entry (a generic one for
    kinds not listed)."""
    info = STUDY_INFO.get(kind, GENERIC)
    if study is None:
        return info
    model = study.model if isinstance(study.model, str) else "/".join(study.model.model_dump().values())
    own_data = dataset is not None and dataset.source == "folder" or (info.dataset and study.dataset != info.dataset)
    own_model = bool(info.model) and isinstance(study.model, str) and study.model != info.model
    if info.reproduces is not None and not own_data and not own_model:
        return info
    size = getattr(getattr(dataset, "preprocess", None), "image_size", None)
    source = {"folder": "your image folder", "real": "real data", "synthetic": "synthetic twin"}.get(
        getattr(dataset, "source", ""), "")
    class_text = f"{len(classes)} classes: {_listing(list(classes)[:8])}{' …' if len(classes) > 8 else ''}" \
        if classes else "classes as prepared"
    methods = getattr(getattr(study, "attribute", None), "methods", None) or []
    explained = f", explained by {_listing(methods)}" if methods else ""
    summary = (f"{model} on {study.dataset} ({source + ', ' if source else ''}{class_text}"
               f"{f', {size} px' if size else ''}){explained}. The maps are scored by "
               f"{KIND_SCORES.get(kind, 'the metrics of its kind')}.")
    return StudyInfo(f"{model} on {study.dataset}", summary, None)
