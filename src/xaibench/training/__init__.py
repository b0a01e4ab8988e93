"""Training loops: one module per kind of model (classifier here; SENN and GAD later)."""
