"""PyTorch peers of jaxgen's DDPM U-Net (jaxgen.nn.unet, jaxgen.models.diffusion), DCGAN
(jaxgen.nn.dcgan, jaxgen.models.gan) and VQ-VAE (jaxgen.nn.vq, jaxgen.models.vqvae), for
experiments/torch_peers.py."""
import math

import torch
import torch.nn.functional as F
from torch import nn

import torch_peers_common as common
from torch_peers_common import SameConv, Tensor, Updater, to_symmetric, upsample


# -- ddpm: jaxgen.nn.unet, jaxgen.models.diffusion -------------------------------------------------

def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding [B] -> [B, dim], frequencies 1 down to 1e-4 (jaxgen.nn.unet)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half) / (half - 1))
    args = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], 1)


class ResBlock(nn.Module):
    """GN, swish, conv3x3, + dense(swish(emb)), GN, swish, dropout, conv3x3 (zero); 1x1 shortcut
    when the width changes."""

    def __init__(self, cin: int, cout: int, emb: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=1e-6)
        self.conv1 = SameConv(cin, cout, 3)
        self.emb = nn.Linear(emb, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=1e-6)
        self.dropout = dropout
        self.conv2 = SameConv(cout, cout, 3, zero=True)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = F.dropout(F.silu(self.norm2(h)), self.dropout, self.training)
        h = self.conv2(h)
        return (x if self.skip is None else self.skip(x)) + h


class Attention(nn.Module):
    """x + proj(softmax(q k^T / sqrt(C)) v), one head over all positions; proj zero-init."""

    def __init__(self, c: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, c, eps=1e-6)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = nn.Conv2d(c, c, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(2, 3).unbind(1)
        out = F.scaled_dot_product_attention(q, k, v)  # [B, HW, C], scale 1/sqrt(C)
        return x + self.proj(out.transpose(1, 2).reshape(b, c, h, w))


class UNet(nn.Module):
    """The DDPM U-Net of jaxgen.nn.unet.UNet (unconditional)."""

    def __init__(self, ch: int, ch_mult: tuple[int, ...], num_res_blocks: int,
                 attn_resolutions: tuple[int, ...], dropout: float, groups: int, channels: int,
                 size: int):
        super().__init__()
        self.ch, emb = ch, 4 * ch
        self.temb = nn.Sequential(nn.Linear(ch, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.conv_in = SameConv(channels, ch, 3)
        self.down = nn.ModuleList()
        widths, cin, side = [ch], ch, size
        for level, mult in enumerate(ch_mult):
            for _ in range(num_res_blocks):
                attn = Attention(ch * mult, groups) if side in attn_resolutions else None
                self.down.append(nn.ModuleList([ResBlock(cin, ch * mult, emb, groups, dropout),
                                                attn or nn.Identity()]))
                cin = ch * mult
                widths.append(cin)
            if level < len(ch_mult) - 1:
                self.down.append(SameConv(cin, cin, 3, stride=2, size=side))
                side //= 2
                widths.append(cin)
        self.mid = nn.ModuleList([ResBlock(cin, cin, emb, groups, dropout),
                                  Attention(cin, groups), ResBlock(cin, cin, emb, groups, dropout)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(ch_mult))):
            for _ in range(num_res_blocks + 1):
                attn = Attention(ch * mult, groups) if side in attn_resolutions else None
                self.up.append(nn.ModuleList([
                    ResBlock(cin + widths.pop(), ch * mult, emb, groups, dropout),
                    attn or nn.Identity()]))
                cin = ch * mult
            if level > 0:
                self.up.append(SameConv(cin, cin, 3))
                side *= 2
        self.norm_out = nn.GroupNorm(groups, cin, eps=1e-6)
        self.conv_out = SameConv(cin, channels, 3, zero=True)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        emb = self.temb(timestep_embedding(t, self.ch))
        skips = [self.conv_in(x)]
        for layer in self.down:
            if isinstance(layer, nn.ModuleList):
                skips.append(layer[1](layer[0](skips[-1], emb)))
            else:
                skips.append(layer(skips[-1]))
        h = self.mid[2](self.mid[1](self.mid[0](skips[-1], emb)), emb)
        for layer in self.up:
            if isinstance(layer, nn.ModuleList):
                h = layer[1](layer[0](torch.cat([h, skips.pop()], 1), emb))
            else:
                h = layer(upsample(h))
        return self.conv_out(F.silu(self.norm_out(h)))


class DDPMPeer:
    """configs/ddpm_mnist.py with model.ch=32 model.norm_groups=8: eps-prediction MSE at a
    uniform t of the linear schedule (T = 1000), Adam 2e-4 with 1000 warmup steps, clipping 1,
    EMA 0.999."""

    shape = (1, 28, 28)
    timesteps = 1000

    def __init__(self, batch: Tensor):
        self.net = UNet(32, (1, 2, 2), 2, (7,), 0.1, 8, 1, 28).to(memory_format=common.MEMORY_FORMAT)
        self.net.train()
        self.modules = [self.net]
        betas = torch.linspace(1e-4, 0.02, self.timesteps, dtype=torch.float64)
        self.alphas_bar = torch.cumprod(1.0 - betas, 0).float()
        self.update = Updater(list(self.net.parameters()), 2e-4, warmup=1000, clip=1.0,
                              ema_decay=0.999)
        self.loss = self.loss_fn

    def loss_fn(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        ab = self.alphas_bar[t][:, None, None, None]
        out = self.net(torch.sqrt(ab) * x0 + torch.sqrt(1.0 - ab) * noise, t)
        return ((out - noise) ** 2).mean()

    def step(self, images: Tensor) -> None:
        x0 = to_symmetric(images).contiguous(memory_format=common.MEMORY_FORMAT)
        t = torch.randint(0, self.timesteps, (x0.shape[0],))
        loss = self.loss(x0, t, torch.randn_like(x0))
        loss.backward()
        self.update.step(loss)


# -- dcgan: jaxgen.nn.dcgan, jaxgen.models.gan -----------------------------------------------------

class BatchNorm(nn.BatchNorm2d):
    """Batch statistics always, no running averages (jaxgen.nn.gan_layers.BatchNorm)."""

    def __init__(self, c: int):
        super().__init__(c, eps=1e-5, track_running_stats=False)


class DCGANGenerator(nn.Module):
    """z -> dense to 4x4x256, BN, ReLU, then 4x4 stride-2 transposed convs 128, 64 (BN, ReLU)
    and 3 (tanh)."""

    def __init__(self, latent: int = 100, width: int = 64, stages: int = 3, channels: int = 3):
        super().__init__()
        self.ch = width * 2 ** (stages - 1)
        self.fc = nn.Linear(latent, 16 * self.ch)
        self.bn0 = BatchNorm(self.ch)
        layers, c = [], self.ch
        for i in range(stages - 1):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1), BatchNorm(c // 2), nn.ReLU()]
            c //= 2
        layers += [nn.ConvTranspose2d(c, channels, 4, 2, 1), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        x = self.fc(z).reshape(-1, self.ch, 4, 4).contiguous(memory_format=common.MEMORY_FORMAT)
        return self.body(F.relu(self.bn0(x)))


class DCGANCritic(nn.Module):
    """4x4 stride-2 convs 64, 128, 256 with LeakyReLU(0.2), a dense logit on the 4x4x256 map."""

    def __init__(self, width: int = 64, stages: int = 3, channels: int = 3):
        super().__init__()
        layers, c = [], channels
        for i in range(stages):
            layers += [nn.Conv2d(c, width * 2 ** i, 4, 2, 1), nn.LeakyReLU(0.2)]
            c = width * 2 ** i
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(16 * c, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x).flatten(1))[:, 0]


class DCGANPeer:
    """configs/dcgan_cifar10.py: one D update on real images against G's samples, then one G
    update (nonsaturating loss), Adam 2e-4 b1 0.5 each, EMA 0.999 of G; a step whose values are
    not finite is not applied."""

    shape = (3, 32, 32)
    latent = 100

    def __init__(self, batch: Tensor):
        self.g = DCGANGenerator().to(memory_format=common.MEMORY_FORMAT)
        self.d = DCGANCritic().to(memory_format=common.MEMORY_FORMAT)
        self.modules = [self.g, self.d]
        self.g_params, self.d_params = list(self.g.parameters()), list(self.d.parameters())
        self.update_g = Updater(self.g_params, 2e-4, b1=0.5, ema_decay=0.999, skip_nonfinite=True)
        self.update_d = Updater(self.d_params, 2e-4, b1=0.5, skip_nonfinite=True)
        self.d_loss, self.g_loss = self.d_loss_fn, self.g_loss_fn

    def d_loss_fn(self, real: Tensor, z: Tensor) -> Tensor:
        with torch.no_grad():
            fake = self.g(z)
        return F.softplus(-self.d(real)).mean() + F.softplus(self.d(fake)).mean()

    def g_loss_fn(self, z: Tensor) -> Tensor:
        return F.softplus(-self.d(self.g(z))).mean()

    def step(self, images: Tensor) -> None:
        real = to_symmetric(images).contiguous(memory_format=common.MEMORY_FORMAT)
        b = real.shape[0]
        loss = self.d_loss(real, torch.randn(b, self.latent))
        self.update_d.step(loss, list(torch.autograd.grad(loss, self.d_params)))
        loss = self.g_loss(torch.randn(b, self.latent))
        self.update_g.step(loss, list(torch.autograd.grad(loss, self.g_params)))


# -- vqvae: jaxgen.nn.vq, jaxgen.models.vqvae ------------------------------------------------------

class ResidualStack(nn.Module):
    """blocks x (x + conv1x1(relu(conv3x3(relu(x))))), then a ReLU."""

    def __init__(self, features: int, hidden: int, blocks: int):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Sequential(nn.ReLU(), SameConv(features, hidden, 3),
                                                   nn.ReLU(), nn.Conv2d(hidden, features, 1))
                                     for _ in range(blocks)])

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = x + block(x)
        return F.relu(x)


class VQVAE(nn.Module):
    """One level: two 4x4 stride-2 convs (f/2, f), a 3x3 conv and a residual stack, a 1x1 conv
    to the code dimension; the decoder a 3x3 conv, a residual stack and two (nearest upsample,
    3x3 conv) stages, to f/2 with ReLU and then to the image channels."""

    def __init__(self, features: int, hidden: int, blocks: int, code_dim: int, channels: int):
        super().__init__()
        f = features
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, f // 2, 4, 2, 1), nn.ReLU(), nn.Conv2d(f // 2, f, 4, 2, 1),
            nn.ReLU(), SameConv(f, f, 3), ResidualStack(f, hidden, blocks),
            nn.Conv2d(f, code_dim, 1))
        self.dec_in = nn.Sequential(SameConv(code_dim, f, 3), ResidualStack(f, hidden, blocks))
        self.dec_up1 = SameConv(f, f // 2, 3)
        self.dec_up2 = SameConv(f // 2, channels, 3)

    def decode(self, z_q: Tensor) -> Tensor:
        x = F.relu(self.dec_up1(upsample(self.dec_in(z_q))))
        return self.dec_up2(upsample(x))


class VQVAEPeer:
    """configs/vqvae_cifar10.py: MSE + 0.25 x commitment, straight-through gradients, Adam 2e-4;
    the EMA codebook (K = 512, D = 64, decay 0.99, Laplace-smoothed counts) follows the encoder
    outputs, and codes whose count fell below 0.03 are re-seeded from the batch."""

    shape = (3, 32, 32)
    num_codes, code_dim, decay, eps, beta, dead = 512, 64, 0.99, 1e-5, 0.25, 0.03

    def __init__(self, batch: Tensor):
        self.net = VQVAE(256, 32, 2, self.code_dim, 3).to(memory_format=common.MEMORY_FORMAT)
        self.modules = [self.net]
        self.update = Updater(list(self.net.parameters()), 2e-4)
        with torch.no_grad():
            z = self.flat(self.net.encoder(self.prepare(batch)))
        picks = z[torch.randperm(z.shape[0])[:self.num_codes]]
        self.embeddings, self.sums = picks.clone(), picks.clone()
        self.counts = torch.ones(self.num_codes)
        self.loss = self.loss_fn

    def prepare(self, images: Tensor) -> Tensor:
        return to_symmetric(images).contiguous(memory_format=common.MEMORY_FORMAT)

    @staticmethod
    def flat(z: Tensor) -> Tensor:
        """[B, D, h, w] -> [B h w, D]."""
        return z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])

    def nearest(self, z: Tensor) -> Tensor:
        e = self.embeddings
        dist = (z * z).sum(1, keepdim=True) - 2.0 * z @ e.T + (e * e).sum(1)
        return dist.argmin(1)

    def loss_fn(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        z_e = self.net.encoder(x)
        b, d, h, w = z_e.shape
        z = self.flat(z_e)
        codes = self.nearest(z.detach())
        chosen = self.embeddings[codes]
        z_q = z + (chosen - z).detach()
        recon = self.net.decode(z_q.reshape(b, h, w, d).permute(0, 3, 1, 2))
        commit = ((z - chosen) ** 2).mean()
        return ((recon - x) ** 2).mean() + self.beta * commit, z.detach(), codes

    @torch.no_grad()
    def codebook_update(self, z: Tensor, codes: Tensor) -> None:
        """vq.ema_update, then vq.reseed_dead."""
        k, decay = self.num_codes, self.decay
        n = torch.bincount(codes, minlength=k).float()
        self.counts.mul_(decay).add_(n, alpha=1.0 - decay)
        self.sums.mul_(decay).index_add_(0, codes, z, alpha=1.0 - decay)
        total = self.counts.sum()
        smoothed = (self.counts + self.eps) / (total + k * self.eps) * total
        self.embeddings = self.sums / smoothed[:, None]
        dead = self.counts < self.dead
        fresh = z[torch.randperm(z.shape[0])[:k]]
        self.embeddings = torch.where(dead[:, None], fresh, self.embeddings)
        self.sums = torch.where(dead[:, None], fresh, self.sums)
        self.counts = torch.where(dead, 1.0, self.counts)

    def step(self, images: Tensor) -> None:
        loss, z, codes = self.loss(self.prepare(images))
        loss.backward()
        self.update.step(loss)
        self.codebook_update(z, codes)
