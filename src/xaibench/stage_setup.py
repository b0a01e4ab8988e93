"""What every stage script does first: logging, thread count, seeds, determinism."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import random
import sys
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from xaibench.process_exit import exit_process


def configure_logging() -> None:
    """``HH:MM:SS LEVEL logger: message`` lines at INFO (a no-op once configured)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    for noisy in ("alembic", "mlflow", "urllib3", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed blocks for reuse instead of handing them back to the
    kernel: every activation tensor of a forward pass (a batch of 32 images of 64 px through
    a 16-channel conv is 8 MB) otherwise comes from a fresh ``mmap`` whose pages fault in
    one by one, which costs as much as the convolution itself on this machine (the plain-layout
    CNN pass 1.5x faster with it: benchmarks/bench_channels_last.py). Large blocks from the
    heap (up to 32 MB, glibc's cap), no trimming below 1 GB. False where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(M_TRIM_THRESHOLD, 1 << 30))


def deterministic_algorithms() -> None:
    """``torch.use_deterministic_algorithms(True, warn_only=True)`` without its import of
    ``torch._inductor.config``: that import loads TorchInductor and TorchDynamo (1.5 s here,
    more than the whole work of a download or preprocess stage) to set the flag
    ``inductor.config.deterministic``, which only ``torch.compile`` reads, and nothing here
    compiles. Where the config is loaded already (a torchvision import pulls Dynamo in, not
    the config) it is set too, as torch does; where torch lacks the private setter, torch's
    own function is called."""
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None or "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(True, warn_only=True)
        return
    setter(True, warn_only=True)


def setup_stage(seed: int) -> None:
    """Readable logs; fixed thread count and seeds so that CPU results are byte-identical.

    Threads: ``$XAIBENCH_THREADS`` (default 2): float reductions depend on the count.
    """
    configure_logging()
    keep_freed_memory()
    torch.set_num_threads(int(os.environ.get("XAIBENCH_THREADS", "2")))
    # warn_only: captum's DeepLIFT uses max_unpool2d, which torch flags although on the CPU
    # (non-overlapping pooling windows) it writes each output once.
    deterministic_algorithms()
    warnings.filterwarnings("ignore", message=".*does not have a deterministic implementation.*")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def fail(message: str) -> None:
    """Exit the stage with a one-line error (no traceback) that says what to do."""
    configure_logging()   # a failure before setup_stage (params, arguments) reads the same
    logging.getLogger("xaibench").error(message)
    raise SystemExit(2)


# What a user's input can cause in every stage: bad params (ParamsError is a ValueError), a
# missing file, a corrupt input. A stage adds its own (download: the checksum errors, which
# are RuntimeErrors) through run_stage's ``errors``. Anything else is a bug and keeps its
# traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError)


def run_stage(main: Callable, *arg_names: str, convert: dict | None = None,
              errors: tuple[type[BaseException], ...] = ()) -> None:
    """Run a stage script's ``main`` with its command-line arguments, as ``dvc repro`` and
    a person at a shell (``python stages/train.py catsdogs``, ``make report``) both do: a
    wrong argument count, bad params or bad input end in one line that says what to do
    (:func:`fail`), never a traceback. ``arg_names`` name the positional arguments (for the
    usage line; ``[cell]``: an optional last one); ``convert`` maps a name to a function
    applied to it (``float``); ``errors`` adds exception types that mean bad input for this
    stage."""
    script = Path(sys.argv[0]).name
    args = sys.argv[1:]
    required = [n for n in arg_names if not n.startswith("[")]
    if not len(required) <= len(args) <= len(arg_names):
        fail(f"usage: python stages/{script} "
             + " ".join(n if n.startswith("[") else f"<{n}>" for n in arg_names).rstrip()
             + f" (given {len(args)} argument(s)); run it from the project root, or through dvc repro")
    try:
        values = [(convert or {}).get(n, str)(a) for n, a in zip(arg_names, args)]
    except ValueError as error:
        fail(f"stages/{script}: bad argument ({error})")
    try:
        main(*values)
    except (*USER_ERRORS, *errors) as error:
        fail(str(error).strip() or type(error).__name__)
    exit_process(0)   # the outputs are written: skip the interpreter's teardown (1.1-1.4 s)
