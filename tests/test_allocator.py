"""jaxgen.allocator: when the CLI re-executes itself with glibc malloc settings, and how."""
import platform
import sys

import pytest

from jaxgen import allocator

pytestmark = pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc",
                                reason="glibc's malloc settings exist on glibc Linux only")


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("GLIBC_TUNABLES", "JAXGEN_MALLOC", "JAX_PLATFORMS"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_reexecutes_the_same_command_once_with_the_tunables(clean_env):
    calls = []
    clean_env.setattr(allocator.os, "execv", lambda path, argv: calls.append((path, argv)))
    clean_env.setattr(allocator.sys, "orig_argv", ["python3", "-m", "jaxgen.main", "--mode=eval"])
    assert allocator.wanted()  # this CPU-only test environment
    allocator.reexec_with_tunables()
    assert calls == [(sys.executable, [sys.executable, "-m", "jaxgen.main", "--mode=eval"])]
    assert allocator.os.environ["GLIBC_TUNABLES"] == allocator.TUNABLES
    assert not allocator.wanted()  # the re-executed process goes on


@pytest.mark.parametrize("name,value", [("GLIBC_TUNABLES", "glibc.malloc.arena_max=4"),
                                        ("JAXGEN_MALLOC", "default"), ("JAX_PLATFORMS", "cuda")])
def test_leaves_a_users_settings_and_accelerators_alone(clean_env, name, value):
    clean_env.setenv(name, value)
    assert not allocator.wanted()
