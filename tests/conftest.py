"""Eight emulated CPU devices, a quicker compile, a persistent compilation cache, and the shared
TFDS data dir."""
import os

# Compiling dominates the suite; LLVM's level 1 compiles ~20% faster than its default and the
# small test programs run about as fast.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8 "
                                   "--xla_backend_optimization_level=1")
os.environ.setdefault(
    "TFDS_DATA_DIR",
    os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "tfds")),
)

import jax  # noqa: E402  (the flags above must be set first)
import pytest  # noqa: E402

jax.config.update("jax_compilation_cache_dir",
                  os.path.join(os.path.expanduser("~"), ".cache", "jaxgen-tests-xla"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


@pytest.fixture(scope="session")
def tfds_dir() -> str:
    return os.environ["TFDS_DATA_DIR"]
