"""Where a 3x3 convolution's training time goes on XLA's CPU backend, and what the kernel
gradient costs when computed other ways.

    python experiments/conv_grad_split.py [--reps N]

For each layer shape (batch x side x side, in -> out channels; the shapes of the U-Net, Glow,
DCGAN and VQ-VAE rows of experiments/bench_vs_torch.py) it prints the milliseconds of the
forward convolution, the input gradient and the kernel gradient as JAX differentiates
`lax.conv_general_dilated` (best of --reps), then the kernel gradient by four other
formulations, each with its relative error against JAX's:
- im2col: the 9 shifted copies of the input side by side, one matmul with the output gradient;
- shifted dots: one matmul per kernel tap on a shifted view of the input;
- both in bfloat16 with float32 accumulation (the form in which this CPU's AMX units run
  matmuls 3-5x faster than float32 ones, `--dots` prints those rates);
- swapped roles: the same contraction as a forward VALID convolution with the batch as the
  feature dimension and the output gradient as a kernel the size of the image.
"""
import argparse
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax

NHWC = ("NHWC", "HWIO", "NHWC")
SHAPES = ((128, 28, 32, 32), (128, 14, 64, 64), (128, 7, 64, 64), (128, 16, 128, 128),
          (128, 32, 64, 3), (128, 14, 2, 128))
BATCH_SPATIAL = (((0, 1, 2), (0, 1, 2)), ((), ()))  # contract batch and positions


def conv(x: jax.Array, k: jax.Array) -> jax.Array:
    return lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=NHWC)


def shifted(x: jax.Array, dtype) -> list[jax.Array]:
    """The 9 views of x, zero-padded by one, that a 3x3 tap reads, in (row, col) order."""
    _, h, w, _ = x.shape
    xp = jnp.pad(x.astype(dtype), ((0, 0), (1, 1), (1, 1), (0, 0)))
    return [xp[:, i:i + h, j:j + w] for i in range(3) for j in range(3)]


def kernel_grad_im2col(dtype) -> Callable:
    def f(x, dy):
        patches = jnp.concatenate(shifted(x, dtype), axis=-1)
        out = lax.dot_general(patches, dy.astype(dtype), BATCH_SPATIAL,
                              preferred_element_type=jnp.float32)
        return out.reshape(3, 3, x.shape[-1], -1)
    return f


def kernel_grad_shifted(dtype) -> Callable:
    def f(x, dy):
        d = dy.astype(dtype)
        taps = [lax.dot_general(v, d, BATCH_SPATIAL, preferred_element_type=jnp.float32)
                for v in shifted(x, dtype)]
        return jnp.stack(taps).reshape(3, 3, x.shape[-1], -1)
    return f


def kernel_grad_swapped(x: jax.Array, dy: jax.Array) -> jax.Array:
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = lax.conv_general_dilated(xp, dy, (1, 1), "VALID",
                                   dimension_numbers=("CHWN", "IHWO", "NHWC"))  # [C, 3, 3, O]
    return jnp.transpose(out, (1, 2, 0, 3))


def best_ms(fn: Callable, *args, reps: int) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def dot_rates(reps: int) -> None:
    for m, k, n in ((32768, 128, 128), (100352, 32, 32), (2048, 2048, 2048)):
        row = f"dot [{m}, {k}] x [{k}, {n}]:"
        for dtype in (jnp.float32, jnp.bfloat16):
            a, b = jnp.ones((m, k), dtype), jnp.ones((k, n), dtype)
            f = jax.jit(lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32))
            row += f"  {jnp.dtype(dtype).name} {2 * m * k * n / best_ms(f, a, b, reps=reps) / 1e6:.0f}"
        print(row + " GFLOP/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--dots", action="store_true", help="also print float32/bfloat16 matmul rates")
    args = parser.parse_args()
    print(f"jax {jax.__version__}, {jax.devices()[0].device_kind}; milliseconds, best of {args.reps}")
    if args.dots:
        dot_rates(args.reps)
    others = {"im2col": kernel_grad_im2col(jnp.float32),
              "im2col bf16": kernel_grad_im2col(jnp.bfloat16),
              "shifted": kernel_grad_shifted(jnp.float32),
              "shifted bf16": kernel_grad_shifted(jnp.bfloat16), "swapped": kernel_grad_swapped}
    for b, side, c, o in SHAPES:
        keys = jax.random.split(jax.random.key(0), 3)
        x = jax.random.normal(keys[0], (b, side, side, c))
        k = jax.random.normal(keys[1], (3, 3, c, o))
        dy = jax.random.normal(keys[2], (b, side, side, o))
        forward = jax.jit(conv)
        input_grad = jax.jit(lambda k, dy: jax.vjp(lambda x: conv(x, k), x)[1](dy)[0])
        kernel_grad = jax.jit(lambda x, dy: jax.vjp(lambda k: conv(x, k), k)[1](dy)[0])
        ref = kernel_grad(x, dy)
        row = (f"{b}x{side}x{side} {c}->{o}: forward {best_ms(forward, x, k, reps=args.reps):.1f}"
               f", input grad {best_ms(input_grad, k, dy, reps=args.reps):.1f}"
               f", kernel grad {best_ms(kernel_grad, x, dy, reps=args.reps):.1f} | kernel grad by")
        for name, f in others.items():
            f = jax.jit(f)
            err = float(jnp.max(jnp.abs(f(x, dy) - ref)) / jnp.max(jnp.abs(ref)))
            row += f" {name} {best_ms(f, x, dy, reps=args.reps):.1f} ({err:.0e}),"
        print(row.rstrip(","))


if __name__ == "__main__":
    main()
