"""The command line; it parses flags into a config and hands over to jaxgen.train."""
import argparse
import os
import sys
from typing import NoReturn

from jaxgen import allocator, config as config_lib
from jaxgen.errors import Interrupted, UserError

DESCRIPTION = """Train, evaluate or sample a jaxgen model, or translate a folder of images with a
trained pix2pix run. Running the same command again resumes from the workdir's latest
checkpoint. Override any config value with --config.KEY=VALUE, e.g. --config.train.steps=100
--config.optim.learning_rate=3e-4."""


class _Parser(argparse.ArgumentParser):
    """argparse whose mistakes are a UserError (one line, exit 2), not its usage and an exit."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message}; see python -m jaxgen.main --help")


def parse(argv: list[str]) -> tuple[config_lib.ConfigDict, argparse.Namespace]:
    """argv -> (config with overrides applied, the flags: workdir, mode, input, output)."""
    parser = _Parser(prog="python -m jaxgen.main", description=DESCRIPTION)
    parser.add_argument("--config", required=True, help="configs/NAME.py[:variant]")
    parser.add_argument("--workdir", required=True, help="run directory (resumed if it exists)")
    parser.add_argument("--mode", default="train", choices=("train", "eval", "sample", "translate"))
    parser.add_argument("--input", default="", help="--mode translate: a folder of images")
    parser.add_argument("--output", default="", help="--mode translate: where outputs go")
    args, rest = parser.parse_known_args(argv)
    config = config_lib.load(args.config)
    for item in rest:
        key, eq, value = item.partition("=")
        if not key.startswith("--config.") or not eq:
            raise UserError(f"unrecognised argument {item!r}; overrides look like "
                            f"--config.train.steps=100")
        config_lib.override(config, key[len("--config."):], value)
    config_lib.check_values(config)
    return config, args


def use_compilation_cache() -> None:
    """Keeps XLA's compiled programs on disk, so a resumed run starts without recompiling
    (glow_mnist's train step takes minutes to compile on a CPU). The directory is
    $JAXGEN_XLA_CACHE, else ~/.cache/jaxgen/xla; a cache the user configured for JAX wins."""
    import jax

    if jax.config.jax_compilation_cache_dir is None:
        jax.config.update("jax_compilation_cache_dir", os.environ.get("JAXGEN_XLA_CACHE") or
                          os.path.join(os.path.expanduser("~"), ".cache", "jaxgen", "xla"))


def main(argv: list[str] | None = None) -> int:
    """Runs the CLI; returns the exit status. User errors print one line, no traceback."""
    try:
        config, args = parse(sys.argv[1:] if argv is None else argv)
        from jaxgen import train  # imported late so --help and config errors stay fast

        use_compilation_cache()
        train.run(config, args.workdir, args.mode, args.input, args.output)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:
        print(str(e), file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    allocator.reexec_with_tunables()
    sys.exit(main())
