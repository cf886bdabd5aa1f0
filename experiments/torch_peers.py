"""PyTorch peers of five jaxgen train steps, timed the way experiments/bench.py times jaxgen's.

    ~/torchenv/bin/python experiments/torch_peers.py ROW [--steps N] [--warmup W]
        [--batch-size B] [--channels-last] [--json PATH]

ROW is one of glow, ddpm, dcgan, gated, vqvae: each is a torch model written to mirror the jaxgen
architecture of the config that experiments/bench_vs_torch.py pairs it with (same layers, widths,
paddings, parameter count, loss and optimizer update), and one step does what jaxgen's train
step does: preprocessing of a uint8 batch (dequantization, dynamic binarization or [-1, 1]),
forward, loss, backward, Adam (with warmup, clipping and the finite-step check where the config
has them) and the EMA (of the params, of G, or of the VQ codebook) where the family keeps one.
Batches are synthetic uint8 images of the right shape, prepared before the clock starts.

This file runs under a PyTorch environment only; jaxgen never imports it. Everything runs on one
thread (intra- and inter-op), denormals flushed to zero as XLA's CPU runtime does. The result (a
JSON object with images/s and the parameter count) is printed and, with --json, written.
"""
import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

import torch_peers_common as common
from torch_peers_common import Tensor
from torch_peers_ddpm_gan_vq import DCGANPeer, DDPMPeer, VQVAEPeer
from torch_peers_flow_pixelcnn import GatedPeer, GlowPeer

MAX_DISTINCT_BATCHES = 16  # as experiments/bench.py
PEERS = {"glow": GlowPeer, "ddpm": DDPMPeer, "dcgan": DCGANPeer, "gated": GatedPeer,
         "vqvae": VQVAEPeer}


def count_params(modules: list[nn.Module]) -> int:
    """Trainable parameters (buffers such as masks, permutations and codebooks excluded)."""
    return sum(p.numel() for m in modules for p in m.parameters() if p.requires_grad)


def random_batch(shape: tuple[int, ...], batch_size: int) -> Tensor:
    """Uniform uint8 images [B, C, H, W]."""
    return torch.randint(0, 256, (batch_size,) + shape, dtype=torch.uint8)


def time_steps(step: Callable[[Tensor], None], batches: list[Tensor], warmup: int,
               steps: int) -> float:
    """Seconds of `steps` calls of `step` cycling over `batches`, after `warmup` untimed ones."""
    for i in range(warmup):
        step(batches[i % len(batches)])
    t = time.perf_counter()
    for i in range(warmup, warmup + steps):
        step(batches[i % len(batches)])
    return time.perf_counter() - t


def bench(row: str, batch_size: int, steps: int, warmup: int) -> dict[str, Any]:
    """Builds the peer of `row` and times its train step; returns the result row."""
    torch.manual_seed(0)
    cls = PEERS[row]
    batches = [random_batch(cls.shape, batch_size)
               for _ in range(min(warmup + steps, MAX_DISTINCT_BATCHES))]
    peer = cls(batches[0])
    seconds = time_steps(peer.step, batches, warmup, steps)
    return {
        "row": row,
        "params": count_params(peer.modules),
        "batch_size": batch_size,
        "steps": steps,
        "warmup": warmup,
        "seconds": seconds,
        "train_images_per_s": steps * batch_size / seconds,
        "memory_format": "channels_last" if common.MEMORY_FORMAT == torch.channels_last
        else "contiguous",
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
    }


DEFAULT_BATCH = {"glow": 128, "ddpm": 128, "dcgan": 128, "gated": 64, "vqvae": 128}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("row", choices=sorted(PEERS))
    parser.add_argument("--steps", type=int, default=5, help="timed train steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed train steps before them")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="images per step (default: the jaxgen config's)")
    parser.add_argument("--channels-last", action="store_true",
                        help="NHWC memory format (torch.channels_last) for weights and images")
    parser.add_argument("--json", metavar="PATH", help="also write the result here")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 1:
        parser.error("--steps and --warmup must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Runs one row's benchmark and prints its result as JSON."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    torch.set_flush_denormal(True)
    if args.channels_last:
        common.MEMORY_FORMAT = torch.channels_last
    result = bench(args.row, args.batch_size or DEFAULT_BATCH[args.row], args.steps, args.warmup)
    print(json.dumps(result), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
