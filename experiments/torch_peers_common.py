"""What the PyTorch peers of experiments/torch_peers.py share: XLA's 'SAME' padding, optax's
Adam with warmup, clipping, EMA and the finite-step check, and jaxgen's preprocessing."""
import torch
import torch.nn.functional as F
from torch import nn

Tensor = torch.Tensor
MEMORY_FORMAT = torch.contiguous_format  # torch_peers.py sets it from --channels-last


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """XLA's 'SAME' padding of one spatial axis: (low, high), the odd one at the end."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv(nn.Conv2d):
    """nn.Conv2d with flax's default 'SAME' padding for the input size it is built for; a
    symmetric padding goes to the conv itself, an asymmetric one (stride 2 on even sides) to an
    explicit F.pad first."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, size: int = 0,
                 zero: bool = False):
        lo, hi = same_pads(size, kernel, stride) if stride > 1 else (kernel // 2, kernel // 2)
        super().__init__(cin, cout, kernel, stride, padding=lo if lo == hi else 0)
        self.extra = None if lo == hi else (lo, hi, lo, hi)
        if zero:
            nn.init.zeros_(self.weight)
            nn.init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x if self.extra is None else F.pad(x, self.extra))


def upsample(x: Tensor) -> Tensor:
    """Nearest-neighbour 2x upsampling (jaxgen.nn.encoders.upsample)."""
    return F.interpolate(x, scale_factor=2, mode="nearest")


def sum_except_batch(x: Tensor) -> Tensor:
    """[B, ...] -> [B]."""
    return x.flatten(1).sum(1)


def adam(params: list[Tensor], lr: float, b1: float = 0.9, b2: float = 0.999) -> torch.optim.Adam:
    """optax.adam's update (eps 1e-8 outside the root), with torch's fastest CPU kernel."""
    try:
        return torch.optim.Adam(params, lr=lr, betas=(b1, b2), eps=1e-8, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr, betas=(b1, b2), eps=1e-8, foreach=True)


class Updater:
    """base.make_optimizer + base.apply_gradients for one set of params: linear warmup from 0
    (optax.warmup_constant_schedule), optional global-norm clipping, Adam, optional EMA, and with
    `skip_nonfinite` no update when the loss or a gradient is not finite (base.keep_if_finite)."""

    def __init__(self, params: list[Tensor], lr: float, b1: float = 0.9, warmup: int = 0,
                 clip: float = 0.0, ema_decay: float = 0.0, skip_nonfinite: bool = False):
        self.params, self.lr, self.warmup, self.clip = params, lr, warmup, clip
        self.opt = adam(params, lr, b1)
        self.ema_decay, self.skip = ema_decay, skip_nonfinite
        self.ema = [p.detach().clone() for p in params] if ema_decay else None
        self.count = 0

    def step(self, loss: Tensor, grads: list[Tensor] | None = None) -> Tensor:
        """Applies `grads` (or the .grad of the params) and returns their global norm."""
        if grads is not None:
            for p, g in zip(self.params, grads):
                p.grad = g
        grads = [p.grad for p in self.params]
        if self.clip:
            norm = nn.utils.clip_grad_norm_(self.params, self.clip, foreach=True)
        else:
            norm = nn.utils.get_total_norm(grads, foreach=True)
        if not self.skip or bool(torch.isfinite(norm) & torch.isfinite(loss)):
            if self.warmup:
                self.opt.param_groups[0]["lr"] = self.lr * min(self.count / self.warmup, 1.0)
            self.opt.step()
            if self.ema is not None:
                torch._foreach_lerp_(self.ema, [p.detach() for p in self.params],
                                     1.0 - self.ema_decay)  # ema += (1 - decay) (p - ema)
            self.count += 1
        for p in self.params:
            p.grad = None
        return norm


def to_symmetric(images: Tensor) -> Tensor:
    """uint8 -> [-1, 1] (data.space symmetric)."""
    return images.float() / 127.5 - 1.0
