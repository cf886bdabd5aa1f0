"""Two costs of convolution gradients on XLA's CPU backend that shaped jaxgen's code.

    python experiments/scan_conv_grad.py

1. The same gradients, four times, in a Python loop (unrolled into one program) and inside
   `lax.scan`: the scanned version ran ~36x slower (experiments/README.md), while forward convs
   in a loop (the samplers) are unaffected. The GAN step runs its n_critic updates as a Python
   loop for this reason.
2. The gradient of the dcgan_mnist generator with subpixel and with transposed-conv upsampling:
   why subpixel became the MNIST GAN configs' default on CPU (before jaxgen.nn.conv.ConvTranspose
   made the transposed layer the faster of the two there).
"""
import time

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.nn.dcgan import DCGANGenerator


def best_ms(fn, *args, repeats: int = 5) -> float:
    fn = jax.jit(fn)
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return 1000 * min(times)


def main() -> None:
    x = jnp.ones((64, 14, 14, 64))
    conv = nn.Conv(64, (3, 3))
    params = conv.init(jax.random.key(0), x)
    grad = jax.grad(lambda p, x: jnp.sum(conv.apply(p, x) ** 2))
    fwd = lambda p, x: conv.apply(p, x)
    cases = {
        "grad x4, python loop": lambda p, x: [grad(p, x) for _ in range(4)],
        "grad x4, lax.scan": lambda p, x: jax.lax.scan(
            lambda c, _: (c, grad(p, x)), 0, None, length=4)[1],
        "forward x4, python loop": lambda p, x: [x := fwd(p, x) for _ in range(4)][-1],
        "forward x4, lax.fori_loop": lambda p, x: jax.lax.fori_loop(
            0, 4, lambda i, h: fwd(p, h), x),
    }
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}; 3x3 conv, 64 -> 64 channels, "
          f"batch 64 of 14x14")
    for name, fn in cases.items():
        print(f"  {name:<26} {best_ms(fn, params, x):8.1f} ms", flush=True)
    z = jnp.ones((64, 100))
    print("dcgan_mnist generator (width 64), gradient of the params, batch 64")
    for upsample in ("subpixel", "transposed"):
        gen = DCGANGenerator(64, (28, 28, 1), upsample)
        g_params = gen.init(jax.random.key(0), z)
        g_grad = jax.grad(lambda p: jnp.sum(gen.apply(p, z)))
        print(f"  {upsample:<26} {best_ms(g_grad, g_params):8.1f} ms", flush=True)


if __name__ == "__main__":
    main()
