"""xaibench: a reproducible DVC benchmark of explainable-AI methods for image models."""
