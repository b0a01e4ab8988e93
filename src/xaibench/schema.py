"""The base types of the params schema, below every registry.

Dataset modules, attribution methods and study kinds declare their own sections of
``params.yaml`` with these types; :mod:`xaibench.params` assembles them into the whole
schema above the registries. Nothing here imports another xaibench module, so every
module may import this one.

Defaults: a field with a default here is one params.yaml may leave out (the default is
written once, here); every other field is required and its value lives in params.yaml.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ParamsError(ValueError):
    """A params.yaml key is missing, unknown or has a bad value."""


class Strict(BaseModel):
    """A params section: unknown keys are an error (a misspelt option is never swallowed)
    and a validated section is immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def check_registered(value, registry: dict, what: str):
    """``value`` (a name, or a list of names) if every name is in ``registry``; else a
    ValueError naming the unknown ones and the known ones."""
    if isinstance(value, str):
        if value not in registry:
            raise ValueError(f"unknown {what} {value!r}; known: {sorted(registry)}")
        return value
    unknown = [v for v in value if v not in registry]
    if unknown:
        raise ValueError(f"unknown {what}(s) {unknown}; known: {sorted(registry)}")
    return value


class StoppingParams(Strict):
    """When adaptive sampling stops (:func:`xaibench.explain.perturbation.sample_until_stable`).

    Coalitions are evaluated ``batch_samples`` at a time; once ``min_samples`` model
    evaluations are in, the surrogate is refitted after each block on ``n_bootstrap``
    bootstrap resamples of the samples drawn so far (pairs resampled together when
    paired); sampling stops when the ``top_k`` largest
    values (signed: the order deletion curves follow) form the same set as the fit on all
    samples in at least ``agreement`` of the refits. The rule of S-LIME (Zhou, Hooker &
    Wang 2021, "S-LIME: Stabilized-LIME for model explanation"), which tests the same
    top-feature stability, with the bootstrap in place of its asymptotic test. The budget
    (the most samples) is the method's ``num_samples``; ``min_samples >= num_samples``
    disables the rule (adaptive sampling then evaluates, block by block, what fixed sampling
    of ``num_samples`` evaluates, and fits the same)."""

    batch_samples: int = Field(50, ge=1)              # samples drawn between two checks
    min_samples: int = Field(100, ge=1)               # never stop before
    top_k: int = Field(5, ge=1)
    agreement: float = Field(0.95, gt=0, le=1)
    n_bootstrap: int = Field(50, ge=2)


class Sampled(Strict):
    """How a sampling explainer (LIME, KernelSHAP) spends its ``num_samples``."""

    sampling: Literal["fixed", "adaptive"] = "fixed"  # fixed: the studies' counts; adaptive: at most num_samples
    paired: bool = False                              # antithetic samples (each followed by its complement)
    stopping: StoppingParams = StoppingParams()

    @model_validator(mode="after")
    def _stopping_needs_adaptive(self):
        if "stopping" in self.model_fields_set and self.sampling == "fixed":
            raise ValueError("stopping is given but sampling is fixed, so it would not take effect: set "
                             "sampling: adaptive, or remove stopping")
        return self

    def check_budget(self, num_samples: int, n_segments: int | None, segments_key: str = "n_segments") -> None:
        """Refuse stopping settings that cannot take effect: ``min_samples`` above the
        budget ``num_samples`` (the rule would never be consulted) and ``top_k`` not below
        the number of segments (the top-k set is then every segment, always "stable")."""
        if self.sampling != "adaptive":
            return
        if self.stopping.min_samples > num_samples:
            raise ValueError(f"stopping.min_samples ({self.stopping.min_samples}) is above num_samples "
                             f"({num_samples}): the stopping rule would never be checked; lower min_samples "
                             f"or raise num_samples")
        if n_segments is not None and self.stopping.top_k >= n_segments:
            raise ValueError(f"stopping.top_k ({self.stopping.top_k}) is not below the number of segments "
                             f"({segments_key}: {n_segments}): the top-k set would be every segment, "
                             f"stable from the first check; lower top_k")


def params_hash(*sections: BaseModel | dict | int | str) -> str:
    """Short SHA-256 of the canonical JSON of the given params sections (12 hex digits)."""
    payload = [s.model_dump(mode="json") if isinstance(s, BaseModel) else s for s in sections]
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]
