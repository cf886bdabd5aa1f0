"""Host memory that stays mapped between train steps, for XLA's CPU backend.

XLA's CPU runtime allocates every step's buffers with malloc from its worker threads. glibc serves
those from per-thread arenas, which cannot hold blocks over 64 MB, so each large buffer is a fresh
mmap, unmapped again when the step ends: every step pays a page fault per 4 kB of its
activations. On this project's CPU that was a quarter to a half of a conv model's step
(experiments/README.md). One arena, no mmap and no trimming keep freed memory for the next step.
glibc reads these settings only at process start, so the CLI re-executes itself once with them.
"""
import importlib.metadata
import importlib.util
import os
import platform
import sys

TUNABLES = ("glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:"
            "glibc.malloc.trim_threshold=68719476736")


def wanted() -> bool:
    """True for a CPU-only JAX on glibc that has no malloc settings of the user's own."""
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return False
    if "GLIBC_TUNABLES" in os.environ or os.environ.get("JAXGEN_MALLOC") == "default":
        return False
    if os.environ.get("JAX_PLATFORMS", "cpu") != "cpu":
        return False
    # accelerator plugins register here (jax-cuda*-plugin, ROCm); TPUs come with libtpu
    return not importlib.metadata.entry_points(group="jax_plugins") and \
        importlib.util.find_spec("libtpu") is None


def reexec_with_tunables() -> None:
    """Replaces this process with the same command under TUNABLES, when `wanted()`."""
    if wanted():
        os.environ["GLIBC_TUNABLES"] = TUNABLES
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
