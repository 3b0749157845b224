"""The DiSSECT pretraining step written directly in PyTorch, as a speed reference.

The network matches the Keras model's default configuration: ResNet-18
(1-channel stem), projector 512 -> 2048 -> 128, predictor 128 -> 2048 -> 128, a
momentum target tower, three 1x1 projections to 128 channels quantized against
2048 x 128 EMA codebooks, SERF cross-attention (quantized tokens as queries,
h_phi plus the continuous coarse tokens as keys and values) and the symmetrized
loss. Optimizer: LARS with the same exclusions as the Keras one. It exists only
to time one step; it is not a second implementation to train with.
"""

import copy
import math

import torch
from torch import nn
from torch.nn import functional as F

STAGE_WIDTHS = (64, 128, 256, 512)
EMA_DECAY = 0.99
LAPLACE_EPSILON = 1e-5
COMMITMENT_WEIGHT = 0.25
VQ_LOSS_WEIGHT = 1.0
# Pixel standardization used by the Keras backbone for [0, 1] inputs.
PIXEL_MEAN = 0.5
PIXEL_STD = 0.25


class BasicBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x):
        residual = x if self.shortcut is None else self.shortcut(x)
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.bn2(self.conv2(x))
        return F.relu(x + residual)


class ResNet18(nn.Module):
    """ResNet-18 returning the stride 8, 16 and 32 maps and the pooled embedding."""

    def __init__(self, in_channels=1):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        stages = []
        previous = 64
        for index, width in enumerate(STAGE_WIDTHS):
            stride = 1 if index == 0 else 2
            stages.append(
                nn.Sequential(
                    BasicBlock(previous, width, stride), BasicBlock(width, width, 1)
                )
            )
            previous = width
        self.stages = nn.ModuleList(stages)

    def forward(self, x):
        x = self.stem((x - PIXEL_MEAN) / PIXEL_STD)
        maps = []
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        embedding = maps[-1].mean(dim=(2, 3))
        return maps[1], maps[2], maps[3], embedding


def mlp(in_dim, hidden_dim, out_dim):
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim),
        nn.BatchNorm1d(hidden_dim),
        nn.ReLU(inplace=True),
        nn.Linear(hidden_dim, out_dim),
    )


class EMAQuantizer(nn.Module):
    """Nearest-code quantizer whose codebook follows EMA statistics."""

    def __init__(self, num_codes=2048, code_dim=128):
        super().__init__()
        codebook = torch.randn(num_codes, code_dim)
        self.register_buffer("codebook", codebook)
        self.register_buffer("counts", torch.ones(num_codes))
        self.register_buffer("sums", codebook.clone())

    def forward(self, z):
        flat = z.reshape(-1, z.shape[-1])
        distances = (
            flat.pow(2).sum(1, keepdim=True)
            - 2 * flat @ self.codebook.t()
            + self.codebook.pow(2).sum(1)[None]
        )
        indices = distances.argmin(1)
        quantized = self.codebook[indices].reshape(z.shape)

        if self.training:
            with torch.no_grad():
                num_codes = self.codebook.shape[0]
                assigned = torch.bincount(indices, minlength=num_codes).type(flat.dtype)
                sums = torch.zeros_like(self.sums).index_add_(0, indices, flat.detach())
                self.counts.mul_(EMA_DECAY).add_(assigned, alpha=1 - EMA_DECAY)
                self.sums.mul_(EMA_DECAY).add_(sums, alpha=1 - EMA_DECAY)
                total = self.counts.sum()
                smoothed = (
                    (self.counts + LAPLACE_EPSILON)
                    / (total + self.codebook.shape[0] * LAPLACE_EPSILON)
                    * total
                )
                self.codebook.copy_(self.sums / smoothed[:, None])

        loss = COMMITMENT_WEIGHT * F.mse_loss(z, quantized.detach())
        return z + (quantized - z).detach(), loss


class SERF(nn.Module):
    def __init__(self, dim=128, heads=4, hidden=512):
        super().__init__()
        self.scale_logits = nn.Parameter(torch.zeros(3))
        self.target_token = nn.Linear(dim, dim)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.attention_norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Linear(hidden, dim)
        )

    def forward(self, fine, medium, coarse, h_phi, coarse_tokens):
        size = coarse.shape[-2:]
        weights = torch.softmax(self.scale_logits, 0)
        fused = (
            weights[0] * F.adaptive_avg_pool2d(fine, size)
            + weights[1] * F.adaptive_avg_pool2d(medium, size)
            + weights[2] * coarse
        )
        queries = fused.flatten(2).transpose(1, 2)
        keys = torch.cat([self.target_token(h_phi)[:, None], coarse_tokens], 1)
        attended, _ = self.attention(queries, keys, keys, need_weights=False)
        attended = self.attention_norm(queries + attended)
        return self.mlp(attended.mean(1))


class DiSSECTReference(nn.Module):
    def __init__(self, in_channels=1, quantize=True):
        super().__init__()
        self.quantize = quantize
        self.online = ResNet18(in_channels)
        self.projector = mlp(512, 2048, 128)
        self.predictor = mlp(128, 2048, 128)
        self.target = copy.deepcopy(self.online)
        self.target_projector = copy.deepcopy(self.projector)
        for parameter in [*self.target.parameters(), *self.target_projector.parameters()]:
            parameter.requires_grad_(False)
        if quantize:
            self.projections = nn.ModuleList(
                nn.Conv2d(width, 128, 1) for width in STAGE_WIDTHS[1:]
            )
            self.quantizers = nn.ModuleList(EMAQuantizer() for _ in STAGE_WIDTHS[1:])
            self.serf = SERF()

    def online_prediction(self, x):
        return self.predictor(self.projector(self.online(x)[-1]))

    def target_outputs(self, x):
        with torch.no_grad():
            *maps, embedding = self.target(x)
            h_phi = self.target_projector(embedding)
        if not self.quantize:
            return h_phi, None, 0.0
        quantized, continuous, vq_loss = [], [], 0.0
        for feature, projection, quantizer in zip(maps, self.projections, self.quantizers):
            z = projection(feature).permute(0, 2, 3, 1)
            q, loss = quantizer(z)
            quantized.append(q.permute(0, 3, 1, 2))
            continuous.append(z)
            vq_loss = vq_loss + loss
        coarse_tokens = continuous[-1].flatten(1, 2)
        q_t = self.serf(*quantized, h_phi, coarse_tokens)
        return h_phi, q_t, vq_loss

    def loss(self, view1, view2):
        total = 0.0
        for online_view, target_view in ((view1, view2), (view2, view1)):
            prediction = F.normalize(self.online_prediction(online_view), dim=-1)
            h_phi, q_t, vq_loss = self.target_outputs(target_view)
            similarity = 2 - 2 * (prediction * F.normalize(h_phi, dim=-1)).sum(-1)
            if q_t is not None:
                discrete = 2 - 2 * (prediction * F.normalize(q_t, dim=-1)).sum(-1)
                similarity = 0.5 * (similarity + discrete)
            total = total + similarity.mean() + VQ_LOSS_WEIGHT * vq_loss
        # Averaged over the two directions, as the Keras model does.
        return total / 2

    @torch.no_grad()
    def update_target(self, momentum):
        pairs = zip(
            [*self.online.parameters(), *self.projector.parameters()],
            [*self.target.parameters(), *self.target_projector.parameters()],
        )
        for online, target in pairs:
            target.mul_(momentum).add_(online, alpha=1 - momentum)


class LARS(torch.optim.Optimizer):
    """SGD with momentum and layer-wise trust ratio; 1-D parameters are excluded."""

    def __init__(self, params, lr, momentum=0.9, weight_decay=1.5e-6, eta=1e-3):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for parameter in group["params"]:
                if parameter.grad is None:
                    continue
                update = parameter.grad
                if parameter.ndim > 1:
                    update = update.add(parameter, alpha=group["weight_decay"])
                    weight_norm = parameter.norm()
                    update_norm = update.norm()
                    trust = torch.where(
                        (weight_norm > 0) & (update_norm > 0),
                        group["eta"] * weight_norm / update_norm,
                        torch.ones_like(weight_norm),
                    )
                    update = update * trust
                state = self.state[parameter]
                if "velocity" not in state:
                    state["velocity"] = torch.zeros_like(parameter)
                velocity = state["velocity"].mul_(group["momentum"]).add_(update)
                parameter.add_(velocity, alpha=-group["lr"])


def build_step(channels=1, quantize=True, channels_last=True, compile_model=False):
    """Return a callable running one optimizer step on a (view1, view2) pair."""
    model = DiSSECTReference(channels, quantize=quantize).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = LARS([p for p in model.parameters() if p.requires_grad], lr=0.08 * 32 / 256)
    loss_fn = torch.compile(model.loss) if compile_model else model.loss
    state = {"step": 0}

    def step(view1, view2, total_steps=1000):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(view1, view2)
        loss.backward()
        optimizer.step()
        progress = min(state["step"] / total_steps, 1.0)
        momentum = 1 - (1 - 0.996) * (math.cos(math.pi * progress) + 1) / 2
        model.update_target(momentum)
        state["step"] += 1
        return float(loss.detach())

    return step
