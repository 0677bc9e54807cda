"""Kokoro-82M network in plain PyTorch, shaped to match the weights in the bundled int8 ONNX export.

Adapted from the Apache-2.0 ``kokoro`` package (hexgrad: istftnet.py, modules.py, model.py), itself
adapted from StyleTTS2 (yl4579, MIT). Differences that make it match the ONNX graph rather than the
original checkpoint: weight-normalised convolutions are plain convolutions (the export stores the
folded weight), InstanceNorm carries no affine parameters (the export does not apply them), the
harmonic source is deterministic (no random phase, no noise: the graph has no random ops), the
iSTFT output is scaled by 1.5 (the export's window normalisation), and ALBERT is written out here so
``transformers`` is not needed. Batch size 1 only (no padding masks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

__all__ = ["KokoroConfig", "KokoroNet", "set_int8_emulation"]


@dataclass(frozen=True)
class KokoroConfig:
    """Hyper-parameters read off the ONNX initializer shapes (see docs/torch_model.md)."""

    n_token: int = 178
    hidden_dim: int = 512
    style_dim: int = 128
    n_layer: int = 3
    max_dur: int = 50
    text_kernel: int = 5
    albert_embedding: int = 128
    albert_hidden: int = 768
    albert_heads: int = 12
    albert_ffn: int = 2048
    albert_layers: int = 12
    albert_max_pos: int = 512
    upsample_rates: tuple[int, ...] = (10, 6)
    upsample_kernels: tuple[int, ...] = (20, 12)
    upsample_initial_channel: int = 512
    resblock_kernels: tuple[int, ...] = (3, 7, 11)
    resblock_dilations: tuple[int, ...] = (1, 3, 5)
    n_fft: int = 20
    hop: int = 5
    sample_rate: int = 24000
    harmonics: int = 8
    sine_amp: float = 0.1
    voiced_threshold: float = 10.0
    istft_gain: float = 1.5


# ------------------------------------------------------------------------- int8 activation emulation
class _FakeQuantU8(torch.autograd.Function):
    """onnxruntime's DynamicQuantizeLinear round trip (per-tensor uint8); straight-through gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        lo, hi = torch.clamp(x.min(), max=0), torch.clamp(x.max(), min=0)
        scale = (hi - lo) / 255
        if float(scale) == 0.0:
            return x
        zp = torch.clamp(torch.round(-lo / scale), 0, 255)
        return (torch.clamp(torch.round(x / scale) + zp, 0, 255) - zp) * scale

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:
        return g


def fake_quant(x: torch.Tensor) -> torch.Tensor:
    return _FakeQuantU8.apply(x)


def _fq_hook(module: nn.Module, args: tuple) -> tuple:
    return (fake_quant(args[0]), *args[1:])


def run_lstm(lstm: nn.LSTM, x: torch.Tensor) -> torch.Tensor:
    """Bidirectional single-layer LSTM on [1, T, C]; emulates DynamicQuantizeLSTM when enabled
    (input quantised once per call, hidden state re-quantised every step)."""
    if not getattr(lstm, "int8_emulation", False):
        return lstm(x)[0]
    xq = fake_quant(x)
    outs = []
    for sfx in ("", "_reverse"):
        w_ih, w_hh = getattr(lstm, "weight_ih_l0" + sfx), getattr(lstm, "weight_hh_l0" + sfx)
        b = getattr(lstm, "bias_ih_l0" + sfx) + getattr(lstm, "bias_hh_l0" + sfx)
        gx = xq[0] @ w_ih.T + b
        h = x.new_zeros(lstm.hidden_size)
        c = x.new_zeros(lstm.hidden_size)
        steps = range(x.shape[1]) if sfx == "" else range(x.shape[1] - 1, -1, -1)
        hs = [None] * x.shape[1]
        for t in steps:
            i, f, g, o = (gx[t] + fake_quant(h) @ w_hh.T).chunk(4)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            hs[t] = h
        outs.append(torch.stack(hs))
    return torch.cat(outs, dim=-1)[None]


def set_int8_emulation(net: nn.Module, on: bool) -> None:
    """Quantise activations as the int8 ONNX does (before every integer MatMul/Conv and LSTM).

    Off (default) is the plain float model. On reproduces onnxruntime's numerics closely (durations
    agree more often); gradients pass straight through the rounding.
    """
    for name, mod in net.named_modules():
        if isinstance(mod, nn.LSTM):
            mod.int8_emulation = on
        elif isinstance(mod, (nn.Linear, nn.Conv1d)) and not name.endswith(("conv_post", "l_linear")):
            for h in getattr(mod, "_fq_handles", []):
                h.remove()
            mod._fq_handles = [mod.register_forward_pre_hook(_fq_hook)] if on else []


# ----------------------------------------------------------------------------------------- ALBERT
class AlbertAttention(nn.Module):
    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.dense = nn.Linear(hidden, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, h = x.shape
        d = h // self.heads

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, self.heads, d).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
        ctx = (att @ v).transpose(1, 2).reshape(b, t, h)
        return self.LayerNorm(x + self.dense(ctx))


class AlbertLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, ffn: int):
        super().__init__()
        self.attention = AlbertAttention(hidden, heads)
        self.ffn = nn.Linear(hidden, ffn)
        self.ffn_output = nn.Linear(ffn, hidden)
        self.full_layer_layer_norm = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.attention(x)
        f = self.ffn_output(F.gelu(self.ffn(a), approximate="tanh"))  # gelu_new
        return self.full_layer_layer_norm(f + a)


class AlbertGroup(nn.Module):
    def __init__(self, cfg: KokoroConfig):
        super().__init__()
        self.albert_layers = nn.ModuleList([AlbertLayer(cfg.albert_hidden, cfg.albert_heads, cfg.albert_ffn)])


class AlbertEncoder(nn.Module):
    def __init__(self, cfg: KokoroConfig):
        super().__init__()
        self.embedding_hidden_mapping_in = nn.Linear(cfg.albert_embedding, cfg.albert_hidden)
        self.albert_layer_groups = nn.ModuleList([AlbertGroup(cfg)])
        self.n = cfg.albert_layers


class AlbertEmbeddings(nn.Module):
    def __init__(self, cfg: KokoroConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.n_token, cfg.albert_embedding)
        self.position_embeddings = nn.Embedding(cfg.albert_max_pos, cfg.albert_embedding)
        self.token_type_embeddings = nn.Embedding(2, cfg.albert_embedding)
        self.LayerNorm = nn.LayerNorm(cfg.albert_embedding, eps=1e-12)


class Albert(nn.Module):
    """ALBERT with one layer shared ``albert_layers`` times (PL-BERT)."""

    def __init__(self, cfg: KokoroConfig):
        super().__init__()
        self.embeddings = AlbertEmbeddings(cfg)
        self.encoder = AlbertEncoder(cfg)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        e = self.embeddings
        pos = torch.arange(ids.shape[1], device=ids.device)[None]
        x = (
            e.word_embeddings(ids)
            + e.position_embeddings(pos)
            + e.token_type_embeddings(torch.zeros_like(ids))
        )
        x = self.encoder.embedding_hidden_mapping_in(e.LayerNorm(x))
        layer = self.encoder.albert_layer_groups[0].albert_layers[0]
        for _ in range(self.encoder.n):
            x = layer(x)
        return x


# ------------------------------------------------------------------------------------ style blocks
class ChannelLayerNorm(nn.Module):
    """LayerNorm over channels of a [B, C, T] tensor (StyleTTS2's LayerNorm with gamma/beta)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))
        self.eps = eps
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.transpose(1, -1), (self.channels,), self.gamma, self.beta, self.eps)
        return y.transpose(1, -1)


class AdaLayerNorm(nn.Module):
    def __init__(self, style_dim: int, channels: int):
        super().__init__()
        self.fc = nn.Linear(style_dim, channels * 2)
        self.channels = channels

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """x: [B, T, C]."""
        gamma, beta = self.fc(s).chunk(2, dim=-1)
        x = F.layer_norm(x, (self.channels,), eps=1e-5)
        return (1 + gamma[:, None]) * x + beta[:, None]


class AdaIN1d(nn.Module):
    def __init__(self, style_dim: int, channels: int):
        super().__init__()
        self.fc = nn.Linear(style_dim, channels * 2)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.fc(s)[:, :, None].chunk(2, dim=1)
        mu = x.mean(dim=2, keepdim=True)
        var = (x - mu).pow(2).mean(dim=2, keepdim=True)  # instance norm, written out so it exports
        return (1 + gamma) * (x - mu) * torch.rsqrt(var + 1e-5) + beta


class AdainResBlk1d(nn.Module):
    def __init__(self, dim_in: int, dim_out: int, style_dim: int, upsample: bool = False):
        super().__init__()
        self.upsample = upsample
        self.learned_sc = dim_in != dim_out
        self.conv1 = nn.Conv1d(dim_in, dim_out, 3, 1, 1)
        self.conv2 = nn.Conv1d(dim_out, dim_out, 3, 1, 1)
        self.norm1 = AdaIN1d(style_dim, dim_in)
        self.norm2 = AdaIN1d(style_dim, dim_out)
        if self.learned_sc:
            self.conv1x1 = nn.Conv1d(dim_in, dim_out, 1, 1, 0, bias=False)
        if upsample:
            self.pool = nn.ConvTranspose1d(dim_in, dim_in, 3, 2, groups=dim_in, padding=1, output_padding=1)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        sc = F.interpolate(x, scale_factor=2.0, mode="nearest") if self.upsample else x
        if self.learned_sc:
            sc = self.conv1x1(sc)
        h = F.leaky_relu(self.norm1(x, s), 0.2)
        if self.upsample:
            h = self.pool(h)
        h = self.conv1(h)
        h = self.conv2(F.leaky_relu(self.norm2(h, s), 0.2))
        return (h + sc) / math.sqrt(2.0)


# ----------------------------------------------------------------------------- encoders, predictor
class TextEncoder(nn.Module):
    def __init__(self, cfg: KokoroConfig):
        super().__init__()
        c = cfg.hidden_dim
        self.embedding = nn.Embedding(cfg.n_token, c)
        self.cnn = nn.ModuleList(
            nn.ModuleList(
                [nn.Conv1d(c, c, cfg.text_kernel, padding=cfg.text_kernel // 2), ChannelLayerNorm(c)]
            )
            for _ in range(cfg.n_layer)
        )
        self.lstm = nn.LSTM(c, c // 2, 1, batch_first=True, bidirectional=True)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embedding(ids).transpose(1, 2)
        for conv, norm in self.cnn:
            x = F.leaky_relu(norm(conv(x)), 0.2)
        x = run_lstm(self.lstm, x.transpose(1, 2))
        return x.transpose(1, 2)  # [B, C, T]


class DurationEncoder(nn.Module):
    def __init__(self, cfg: KokoroConfig):
        super().__init__()
        d, sd = cfg.hidden_dim, cfg.style_dim
        self.lstms = nn.ModuleList()
        for _ in range(cfg.n_layer):
            self.lstms.append(nn.LSTM(d + sd, d // 2, 1, batch_first=True, bidirectional=True))
            self.lstms.append(AdaLayerNorm(sd, d))

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """x: [B, C, T] → [B, T, C + style]."""
        st = s[:, None].expand(-1, x.shape[2], -1)
        h = torch.cat([x.transpose(1, 2), st], dim=-1)
        for block in self.lstms:
            if isinstance(block, AdaLayerNorm):
                h = torch.cat([block(h, s), st], dim=-1)
            else:
                h = run_lstm(block, h)
        return h


class ProsodyPredictor(nn.Module):
    def __init__(self, cfg: KokoroConfig):
        super().__init__()
        d, sd = cfg.hidden_dim, cfg.style_dim
        self.text_encoder = DurationEncoder(cfg)
        self.lstm = nn.LSTM(d + sd, d // 2, 1, batch_first=True, bidirectional=True)
        self.duration_proj = nn.Module()
        self.duration_proj.linear_layer = nn.Linear(d, cfg.max_dur)
        self.shared = nn.LSTM(d + sd, d // 2, 1, batch_first=True, bidirectional=True)
        self.F0 = nn.ModuleList(
            [
                AdainResBlk1d(d, d, sd),
                AdainResBlk1d(d, d // 2, sd, upsample=True),
                AdainResBlk1d(d // 2, d // 2, sd),
            ]
        )
        self.N = nn.ModuleList(
            [
                AdainResBlk1d(d, d, sd),
                AdainResBlk1d(d, d // 2, sd, upsample=True),
                AdainResBlk1d(d // 2, d // 2, sd),
            ]
        )
        self.F0_proj = nn.Conv1d(d // 2, 1, 1)
        self.N_proj = nn.Conv1d(d // 2, 1, 1)

    def durations(self, d: torch.Tensor) -> torch.Tensor:
        """Expected frames per token (before rounding): [B, T]."""
        x = run_lstm(self.lstm, d)
        return torch.sigmoid(self.duration_proj.linear_layer(x)).sum(-1)

    def f0n(self, en: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = run_lstm(self.shared, en.transpose(1, 2))
        f0 = n = x.transpose(1, 2)
        for block in self.F0:
            f0 = block(f0, s)
        for block in self.N:
            n = block(n, s)
        return self.F0_proj(f0)[:, 0], self.N_proj(n)[:, 0]


# -------------------------------------------------------------------------------------- generator
class AdaINResBlock1(nn.Module):
    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...], style_dim: int):
        super().__init__()
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, dilation=d, padding=(kernel * d - d) // 2)
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, padding=(kernel - 1) // 2) for _ in dilations
        )
        self.adain1 = nn.ModuleList(AdaIN1d(style_dim, channels) for _ in dilations)
        self.adain2 = nn.ModuleList(AdaIN1d(style_dim, channels) for _ in dilations)
        self.alpha1 = nn.ParameterList(nn.Parameter(torch.ones(1, channels, 1)) for _ in dilations)
        self.alpha2 = nn.ParameterList(nn.Parameter(torch.ones(1, channels, 1)) for _ in dilations)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        for c1, c2, n1, n2, a1, a2 in zip(
            self.convs1, self.convs2, self.adain1, self.adain2, self.alpha1, self.alpha2, strict=True
        ):
            xt = n1(x, s)
            xt = c1(xt + (1 / a1) * torch.sin(a1 * xt) ** 2)  # Snake
            xt = n2(xt, s)
            xt = c2(xt + (1 / a2) * torch.sin(a2 * xt) ** 2)
            x = xt + x
        return x


class SourceModule(nn.Module):
    """Deterministic harmonic source: 9 sines at k·F0 merged by a linear layer and tanh."""

    def __init__(self, cfg: KokoroConfig):
        super().__init__()
        self.cfg = cfg
        self.l_linear = nn.Linear(cfg.harmonics + 1, 1)
        self.upsample_scale = math.prod(cfg.upsample_rates) * cfg.hop

    def sines(self, f0: torch.Tensor) -> torch.Tensor:
        """f0: [B, L, 1] at the audio rate → [B, L, harmonics+1] voiced-masked sines (no gradient path)."""
        cfg, up = self.cfg, self.upsample_scale
        fn = f0 * torch.arange(1, cfg.harmonics + 2, device=f0.device, dtype=f0.dtype)
        rad = (fn / cfg.sample_rate) % 1
        rad = F.interpolate(rad.transpose(1, 2), scale_factor=1 / up, mode="linear").transpose(1, 2)
        phase = torch.cumsum(rad, dim=1) * 2 * math.pi
        phase = F.interpolate(phase.transpose(1, 2) * up, scale_factor=float(up), mode="linear").transpose(
            1, 2
        )
        uv = (f0 > cfg.voiced_threshold).to(f0.dtype)
        return torch.sin(phase) * cfg.sine_amp * uv

    def forward(self, f0: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            s = self.sines(f0)
        return torch.tanh(self.l_linear(s))


class Generator(nn.Module):
    def __init__(self, cfg: KokoroConfig):
        super().__init__()
        self.cfg = cfg
        sd = cfg.style_dim
        self.m_source = SourceModule(cfg)
        self.num_kernels = len(cfg.resblock_kernels)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        self.noise_convs = nn.ModuleList()
        self.noise_res = nn.ModuleList()
        ch = cfg.upsample_initial_channel
        for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernels, strict=True)):
            c_in, ch = ch, cfg.upsample_initial_channel // 2 ** (i + 1)
            self.ups.append(nn.ConvTranspose1d(c_in, ch, k, u, padding=(k - u) // 2))
            for rk in cfg.resblock_kernels:
                self.resblocks.append(AdaINResBlock1(ch, rk, cfg.resblock_dilations, sd))
            if i + 1 < len(cfg.upsample_rates):
                stride = math.prod(cfg.upsample_rates[i + 1 :])
                self.noise_convs.append(
                    nn.Conv1d(
                        cfg.n_fft + 2, ch, kernel_size=stride * 2, stride=stride, padding=(stride + 1) // 2
                    )
                )
                self.noise_res.append(AdaINResBlock1(ch, 7, (1, 3, 5), sd))
            else:
                self.noise_convs.append(nn.Conv1d(cfg.n_fft + 2, ch, kernel_size=1))
                self.noise_res.append(AdaINResBlock1(ch, 11, (1, 3, 5), sd))
        self.conv_post = nn.Conv1d(ch, cfg.n_fft + 2, 7, 1, padding=3)
        self.register_buffer("window", torch.hann_window(cfg.n_fft, periodic=True), persistent=False)

    checkpointing = True  # recompute audio-rate blocks in backward: ~3x less peak memory

    def _run(self, block: nn.Module, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        if self.checkpointing and torch.is_grad_enabled() and (x.requires_grad or s.requires_grad):
            return checkpoint(block, x, s, use_reentrant=False)
        return block(x, s)

    def forward(self, x: torch.Tensor, s: torch.Tensor, f0: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        with torch.no_grad():
            f0_up = F.interpolate(
                f0[:, None], scale_factor=float(self.m_source.upsample_scale), mode="nearest"
            )
        har = self.m_source(f0_up.transpose(1, 2)).transpose(1, 2)[:, 0]  # [B, L]
        spec = torch.stft(har, cfg.n_fft, cfg.hop, cfg.n_fft, window=self.window, return_complex=True)
        har = torch.cat([spec.abs(), torch.angle(spec)], dim=1)
        for i in range(len(self.ups)):
            x = F.leaky_relu(x, 0.1)
            xs_src = self._run(self.noise_res[i], self.noise_convs[i](har), s)
            x = self.ups[i](x)
            if i == len(self.ups) - 1:
                x = F.pad(x, (1, 0), mode="reflect")
            x = x + xs_src
            xs = None
            for j in range(self.num_kernels):
                y = self._run(self.resblocks[i * self.num_kernels + j], x, s)
                xs = y if xs is None else xs + y
            x = xs / self.num_kernels
        x = self.conv_post(F.leaky_relu(x))
        half = cfg.n_fft // 2 + 1
        mag, phase = torch.exp(x[:, :half]), torch.sin(x[:, half:])
        z = torch.polar(mag, phase)
        audio = torch.istft(z, cfg.n_fft, cfg.hop, cfg.n_fft, window=self.window)
        return audio * cfg.istft_gain


class Decoder(nn.Module):
    def __init__(self, cfg: KokoroConfig):
        super().__init__()
        d, sd = cfg.hidden_dim, cfg.style_dim
        self.encode = AdainResBlk1d(d + 2, 1024, sd)
        self.decode = nn.ModuleList(
            [AdainResBlk1d(1024 + 2 + 64, 1024, sd) for _ in range(3)]
            + [AdainResBlk1d(1024 + 2 + 64, 512, sd, upsample=True)]
        )
        self.F0_conv = nn.Conv1d(1, 1, 3, 2, padding=1)
        self.N_conv = nn.Conv1d(1, 1, 3, 2, padding=1)
        self.asr_res = nn.ModuleList([nn.Conv1d(d, 64, 1)])
        self.generator = Generator(cfg)

    def forward(self, asr: torch.Tensor, f0: torch.Tensor, n: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        f = self.F0_conv(f0[:, None])
        nn_ = self.N_conv(n[:, None])
        x = self.encode(torch.cat([asr, f, nn_], dim=1), s)
        asr_res = self.asr_res[0](asr)
        res = True
        for block in self.decode:
            if res:
                x = torch.cat([x, asr_res, f, nn_], dim=1)
            x = block(x, s)
            if block.upsample:
                res = False
        return self.generator(x, s, f0)


class KokoroNet(nn.Module):
    """The whole model; parameter names mirror the ONNX initializer names (minus export prefixes)."""

    def __init__(self, cfg: KokoroConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or KokoroConfig()
        self.bert = Albert(cfg)
        self.bert_encoder = nn.Linear(cfg.albert_hidden, cfg.hidden_dim)
        self.predictor = ProsodyPredictor(cfg)
        self.text_encoder = TextEncoder(cfg)
        self.decoder = Decoder(cfg)
