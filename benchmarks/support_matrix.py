"""The README's support matrix: architectures x methods, each cell ✓ with its median axiom
error and ms per image, or "refused" with the reason's first words.

    python benchmarks/support_matrix.py [--cnn-size 128] [--transformer-size 224] [--reduced]
        [--device cpu] [--out benchmarks/results/support_matrix.md]

Full-size networks with random weights (``--reduced``: the test suite's smaller
transformers), two random images each. Axiom errors as the tests measure them
(:mod:`xaibench.explain.support`): conservation with biases zero, completeness with random
biases; IG at its default 50 steps (its error there is the quadrature's, which falls with
``n_steps``). ``ms / image``: the second of two timed calls (the first pays tracing and
caches), on the named device.
"""

from __future__ import annotations

import argparse
import logging
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from xaibench.explain import METHODS
from xaibench.explain.axioms import TOLERANCES
from xaibench.explain.support import ARCHITECTURES, EXPLAINED_METHODS, check_cell, small_instance


def cell_text(result: dict) -> str:
    """``✓ <error> · <ms>``; ``≈`` instead of ✓ where the median error is above the axiom's
    tolerance (IG's quadrature at 50 steps), ``refused``."""
    if "refused" in result:
        return "refused"
    if result["axiom"] is None:
        return f"✓ {result['ms_per_image']:.0f} ms"
    error = float(np.nanmedian(result["axiom_errors"]))
    mark = "✓" if error <= TOLERANCES[result["axiom"]] else "≈"
    return f"{mark} {error:.0e} · {result['ms_per_image']:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cnn-size", type=int, default=128)
    parser.add_argument("--transformer-size", type=int, default=224)
    parser.add_argument("--reduced", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="benchmarks/results/support_matrix.md")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    rows, reasons = [], {}
    for name, test_size in ARCHITECTURES:
        transformer = any(k in name for k in ("vit", "deit", "swin"))
        size = test_size if args.reduced else (args.transformer_size if transformer else args.cnn_size)
        if "inception_v3" in name:
            size = max(size, 80)
        models = {zero: small_instance(name, size, zero_biases=zero, reduced=args.reduced).to(args.device)
                  for zero in (True, False)}
        cells = []
        for method in EXPLAINED_METHODS:
            model = models[METHODS[method].axiom != "completeness"]
            check_cell(model, method, size)            # warm: tracing, caches
            start = time.perf_counter()
            result = check_cell(model, method, size)
            if "refused" in result:
                reasons.setdefault(method, {})[name] = result["refused"]
            cells.append(cell_text(result))
            print(f"{name} {method}: {cells[-1]} ({time.perf_counter() - start:.1f} s)", flush=True)
        rows.append(f"| `{name}` ({size} px) | " + " | ".join(cells) + " |")
    device = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else \
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    header = ("| model | " + " | ".join(EXPLAINED_METHODS) + " |\n|---|" + "---|" * len(EXPLAINED_METHODS))
    text = [f"Measured by `benchmarks/support_matrix.py` on {device}, torch {torch.__version__}. "
            f"Cell: median axiom error · ms per image (2 images); no error where the method has no axiom; "
            f"≈: above the axiom's tolerance (IG's quadrature at its default 50 steps on a random ReLU "
            f"network; it falls with n_steps).", "",
            header, *rows, "", "Refusals (the reason params validation gives):", ""]
    for method, by_model in reasons.items():
        for name, reason in by_model.items():
            text.append(f"- `{method}` × `{name}`: {reason}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(text) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()
