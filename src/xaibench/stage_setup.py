"""What every stage script does first: logging, thread count, seeds, determinism."""

from __future__ import annotations

import logging
import os
import random
import warnings

import numpy as np
import torch


def setup_stage(seed: int) -> None:
    """Readable logs; fixed thread count and seeds so that CPU results are byte-identical.

    Threads: ``$XAIBENCH_THREADS`` (default 2): float reductions depend on the count.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    for noisy in ("alembic", "mlflow", "urllib3", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    torch.set_num_threads(int(os.environ.get("XAIBENCH_THREADS", "2")))
    # warn_only: captum's DeepLIFT uses max_unpool2d, which torch flags although on the CPU
    # (non-overlapping pooling windows) it writes each output once.
    torch.use_deterministic_algorithms(True, warn_only=True)
    warnings.filterwarnings("ignore", message=".*does not have a deterministic implementation.*")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def fail(message: str) -> None:
    """Exit the stage with a one-line error (no traceback) that says what to do."""
    logging.getLogger("xaibench").error(message)
    raise SystemExit(2)
