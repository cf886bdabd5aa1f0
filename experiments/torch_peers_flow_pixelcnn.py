"""PyTorch peers of jaxgen's Glow (jaxgen.nn.flows, jaxgen.models.flows) and Gated PixelCNN
(jaxgen.nn.masked, jaxgen.models.pixelcnn), for experiments/torch_peers.py."""
import math

import torch
import torch.nn.functional as F
from torch import nn

import torch_peers_common as common
from torch_peers_common import SameConv, Tensor, Updater, sum_except_batch


# -- glow: jaxgen.nn.flows, jaxgen.models.flows ----------------------------------------------------

def squeeze(x: Tensor) -> Tensor:
    """Space-to-depth 2x2 with jaxgen's channel order (row offset, column offset, channel)."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 3, 5, 1, 2, 4)
    return x.reshape(b, 4 * c, h // 2, w // 2)


class ActNorm(nn.Module):
    """(x + loc) * exp(log_scale) per channel, initialised from the first batch it sees."""

    def __init__(self, c: int):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(c))
        self.log_scale = nn.Parameter(torch.zeros(c))
        self.initialized = False

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if not self.initialized:
            with torch.no_grad():
                self.loc.copy_(-x.mean((0, 2, 3)))
                self.log_scale.copy_(-torch.log(x.std((0, 2, 3), correction=0) + 1e-6))
            self.initialized = True
        y = (x + self.loc[:, None, None]) * torch.exp(self.log_scale)[:, None, None]
        return y, x.shape[2] * x.shape[3] * self.log_scale.sum()


class InvConv1x1LU(nn.Module):
    """y = x @ W, W = P L (U + diag(sign exp(log_s))), P and sign fixed (buffers)."""

    def __init__(self, c: int):
        super().__init__()
        w0 = torch.linalg.qr(torch.randn(c, c))[0]
        p, lower, upper = torch.linalg.lu(w0)
        self.register_buffer("perm", p)
        self.register_buffer("sign", torch.sign(torch.diagonal(upper)))
        self.register_buffer("lower_mask", torch.tril(torch.ones(c, c), -1))
        self.register_buffer("upper_mask", torch.triu(torch.ones(c, c), 1))
        self.register_buffer("eye", torch.eye(c))
        self.lower = nn.Parameter(lower)
        self.upper = nn.Parameter(upper)
        self.log_s = nn.Parameter(torch.log(torch.abs(torch.diagonal(upper))))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        w = self.perm @ (self.lower * self.lower_mask + self.eye) @ (
            self.upper * self.upper_mask + torch.diag(self.sign * torch.exp(self.log_s)))
        y = F.conv2d(x, w.T[:, :, None, None])
        return y, x.shape[2] * x.shape[3] * self.log_s.sum()


class AffineCoupling(nn.Module):
    """Glow's channel coupling: y_b = x_b * sigmoid(h + 2) + t, (t, h) = conv3x3-ReLU-conv1x1-
    ReLU-conv3x3(x_a), the last conv zero-initialised."""

    def __init__(self, c: int, hidden: int):
        super().__init__()
        half = c // 2
        self.net = nn.Sequential(SameConv(half, hidden, 3), nn.ReLU(),
                                 nn.Conv2d(hidden, hidden, 1), nn.ReLU(),
                                 SameConv(hidden, 2 * (c - half), 3, zero=True))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        xa, xb = x.chunk(2, 1)
        shift, raw = self.net(xa).chunk(2, 1)
        log_s = F.logsigmoid(raw + 2.0)
        return torch.cat([xa, xb * torch.exp(log_s) + shift], 1), sum_except_batch(log_s)


LOG_2PI = math.log(2 * math.pi)


class Glow(nn.Module):
    """Multi-scale Glow: per level squeeze and `steps` x (actnorm, LU 1x1 conv, coupling); a
    zero-initialised 3x3 conv gives the factored-out half's mean and log-std from the kept one."""

    def __init__(self, levels: int, steps: int, hidden: int, channels: int):
        super().__init__()
        self.stages, self.priors = nn.ModuleList(), nn.ModuleList()
        c = channels
        for level in range(levels):
            c *= 4
            layers = nn.ModuleList()
            for _ in range(steps):
                layers.extend([ActNorm(c), InvConv1x1LU(c), AffineCoupling(c, hidden)])
            self.stages.append(layers)
            if level < levels - 1:
                self.priors.append(SameConv(c // 2, 2 * (c - c // 2), 3, zero=True))
                c //= 2

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x -> (log p(z) [B], log-det [B])."""
        logdet = torch.zeros(x.shape[0])
        log_prior = torch.zeros(x.shape[0])
        for level, layers in enumerate(self.stages):
            x = squeeze(x)
            for layer in layers:
                x, ld = layer(x)
                logdet = logdet + ld
            if level < len(self.stages) - 1:
                x, z = x.chunk(2, 1)
                mean, log_std = self.priors[level](x).chunk(2, 1)
                e = (z - mean) * torch.exp(-log_std)
                log_prior = log_prior + sum_except_batch(-0.5 * (e * e + LOG_2PI) - log_std)
        return log_prior + sum_except_batch(-0.5 * (x * x + LOG_2PI)), logdet


class GlowPeer:
    """configs/glow_mnist.py with model.steps=8 model.hidden=128: bits/dim of dequantized MNIST,
    Adam 1e-3 with 1000 warmup steps, clipping 50, steps with non-finite values skipped."""

    shape = (1, 28, 28)

    def __init__(self, batch: Tensor):
        self.net = Glow(levels=2, steps=8, hidden=128, channels=1)
        self.net.to(memory_format=common.MEMORY_FORMAT)
        with torch.no_grad():  # actnorm's data-dependent init
            self.net(self.prepare(batch))
        self.modules = [self.net]
        self.update = Updater(list(self.net.parameters()), 1e-3, warmup=1000, clip=50.0,
                              skip_nonfinite=True)
        self.num_dims = math.prod(self.shape)
        self.loss = self.loss_fn

    def prepare(self, images: Tensor) -> Tensor:
        y = (images.float() + torch.rand(images.shape)) / 256.0
        return (y - 0.5).contiguous(memory_format=common.MEMORY_FORMAT)

    def loss_fn(self, x: Tensor) -> Tensor:
        log_prior, logdet = self.net(x)
        nll = -(log_prior + logdet) + self.num_dims * math.log(256)
        return (nll / (self.num_dims * math.log(2))).mean()

    def step(self, images: Tensor) -> None:
        loss = self.loss(self.prepare(images))
        loss.backward()
        self.update.step(loss)


# -- gated: jaxgen.nn.masked.GatedPixelCNN, jaxgen.models.pixelcnn ---------------------------------

def gate(x: Tensor) -> Tensor:
    """tanh of the first half of the channels times sigmoid of the second."""
    a, b = x.chunk(2, 1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedLayer(nn.Module):
    """Vertical (r+1) x k conv, horizontal 1 x (r+1) conv (its centre tap masked in the first
    layer), the vertical pre-activations shifted one row down into the horizontal stack through
    a 1x1 conv, tanh x sigmoid gates, a 1x1 conv and a residual on the horizontal stack."""

    def __init__(self, cin: int, p: int, kernel: int, first: bool):
        super().__init__()
        self.r, self.first = kernel // 2, first
        self.v = nn.Conv2d(cin, 2 * p, (self.r + 1, kernel))
        self.h = nn.Conv2d(cin, 2 * p, (1, self.r + 1))
        self.v2h = nn.Conv2d(2 * p, 2 * p, 1)
        self.h_out = nn.Conv2d(p, p, 1)
        if first:  # mask A on one colour: the centre tap (the last one) sees nothing
            mask = torch.ones_like(self.h.weight)
            mask[..., -1] = 0.0
            self.register_buffer("h_mask", mask)

    def forward(self, v: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        r = self.r
        v_pre = self.v(F.pad(v, (r, r, r, 0)))
        h_weight = self.h.weight * self.h_mask if self.first else self.h.weight
        h_pre = F.conv2d(F.pad(h, (r, 0, 0, 0)), h_weight, self.h.bias)
        h_pre = h_pre + self.v2h(F.pad(v_pre, (0, 0, 1, 0))[:, :, :-1])
        h_out = self.h_out(gate(h_pre))
        return gate(v_pre), h_out if self.first else h + h_out


class GatedPixelCNN(nn.Module):
    def __init__(self, p: int, layers: int, out_hidden: int, channels: int):
        super().__init__()
        self.layers = nn.ModuleList(
            [GatedLayer(channels if i == 0 else p, p, 7 if i == 0 else 3, i == 0)
             for i in range(layers)])
        self.out1 = nn.Conv2d(p, out_hidden, 1)
        self.out2 = nn.Conv2d(out_hidden, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        v = h = x
        for layer in self.layers:
            v, h = layer(v, h)
        return self.out2(F.relu(self.out1(F.relu(h))))


class GatedPeer:
    """configs/gated_pixelcnn_mnist.py: 12 gated layers of p = 32, Bernoulli logits on
    dynamically binarized MNIST, bits/dim, Adam 1e-3."""

    shape = (1, 28, 28)

    def __init__(self, batch: Tensor):
        self.net = GatedPixelCNN(32, 12, 64, 1).to(memory_format=common.MEMORY_FORMAT)
        self.modules = [self.net]
        self.update = Updater(list(self.net.parameters()), 1e-3)
        self.num_dims = math.prod(self.shape)
        self.loss = self.loss_fn

    def loss_fn(self, x: Tensor) -> Tensor:
        logits = self.net(x)
        nll = sum_except_batch(F.binary_cross_entropy_with_logits(logits, x, reduction="none"))
        return (nll / (self.num_dims * math.log(2))).mean()

    def step(self, images: Tensor) -> None:
        x = torch.bernoulli(images.float() / 255.0).contiguous(memory_format=common.MEMORY_FORMAT)
        loss = self.loss(x)
        loss.backward()
        self.update.step(loss)
