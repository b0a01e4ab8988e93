"""What every stage sets up for speed changes no result beyond float rounding: glibc's
malloc keeps freed blocks (keep_freed_memory), and no-grad passes of a NormalizedClassifier
run channels-last; a finished stage exits without the interpreter's teardown, losing nothing."""

import platform
import subprocess
import sys
import textwrap

import pytest
import torch

from xaibench.models import NormalizedClassifier, build_model
from xaibench.stage_setup import keep_freed_memory


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_keep_freed_memory_is_accepted_by_glibc_and_harmless_twice():
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True
    assert torch.ones(1 << 22).sum().item() == 1 << 22      # a 16 MB block, from the heap now


def test_no_grad_scoring_pass_is_channels_last_and_agrees_with_the_gradient_pass():
    torch.manual_seed(0)
    model = NormalizedClassifier(build_model("catsdogs_cnn", 2, 32), [0.5] * 3, [0.25] * 3).eval()
    seen = []
    model.net[0].register_forward_hook(lambda module, args, out: seen.append(args[0].is_contiguous()))
    pixels = torch.rand(5, 3, 32, 32)
    with torch.no_grad():
        scored = model(pixels)
    graded = model(pixels.clone().requires_grad_(True))
    assert seen == [False, True]      # the no-grad input was channels-last, the gradient one is not
    assert torch.allclose(scored, graded.detach(), atol=1e-5)
    graded.sum().backward()           # and the gradient pass still differentiates


def test_exit_process_does_what_a_normal_exit_does_before_the_teardown(tmp_path):
    """exit_process: a thread still running is joined, atexit handlers run, the log file and
    stdout (no newline, buffered into a pipe) are flushed, and the code is the exit status."""
    script = tmp_path / "stage.py"
    script.write_text(textwrap.dedent(f"""
        import atexit, logging, threading, time
        from pathlib import Path
        from xaibench.process_exit import exit_process
        out = Path({str(tmp_path)!r})
        logging.basicConfig(filename=out / "log.txt", level=logging.INFO)
        logging.getLogger("stage").info("logged")
        atexit.register(lambda: (out / "atexit.txt").write_text("ran"))
        threading.Thread(target=lambda: (time.sleep(0.3), (out / "thread.txt").write_text("done"))).start()
        print("unterminated", end="")
        exit_process(3)
        print("never")
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (3, "unterminated")
    assert (tmp_path / "thread.txt").read_text() == "done"
    assert (tmp_path / "atexit.txt").read_text() == "ran"
    assert "logged" in (tmp_path / "log.txt").read_text()
