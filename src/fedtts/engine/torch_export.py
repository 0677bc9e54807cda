"""Export the PyTorch rebuild as a float32 ONNX (same inputs/outputs as the int8 model).

Why: a dequantised fp32 graph may run faster or sound better than the int8 one on some CPUs; the
benchmark (bench/bench_torch.py) compares the three back ends. The export needs a trace-friendly
forward: durations → alignment with comparisons instead of ``repeat_interleave``, and STFT / iSTFT
as (transposed) convolutions with explicit DFT bases instead of complex tensors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fedtts.engine.assets import fp32_model_path
from fedtts.engine.kokoro_modules import KokoroNet
from fedtts.engine.torch_model import load_torch_model

__all__ = ["ExportableKokoro", "export_fp32_onnx", "fp32_onnx_path"]


class _ConvSTFT(torch.nn.Module):
    """Real-valued STFT / iSTFT (hann, center=True) built from convolutions."""

    def __init__(self, n_fft: int, hop: int, istft_gain: float):
        super().__init__()
        self.n_fft, self.hop, self.gain = n_fft, hop, istft_gain
        n = np.arange(n_fft)
        k = np.arange(n_fft // 2 + 1)
        w = 0.5 - 0.5 * np.cos(2 * np.pi * n / n_fft)  # periodic hann
        ang = 2 * np.pi * k[:, None] * n[None] / n_fft
        fwd = np.concatenate([np.cos(ang) * w, -np.sin(ang) * w])[:, None]  # [2K, 1, N]
        c = np.full(len(k), 2.0)
        c[0] = 1.0
        c[-1] = 1.0
        inv = np.concatenate([c[:, None] * np.cos(ang), -c[:, None] * np.sin(ang)]) * w / n_fft  # [2K, N]
        self.register_buffer("fwd", torch.tensor(fwd, dtype=torch.float32))
        self.register_buffer("inv", torch.tensor(inv[:, None], dtype=torch.float32))
        self.register_buffer("win_sq", torch.tensor((w**2)[None, None], dtype=torch.float32))

    def transform(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.pad(x[:, None], (self.n_fft // 2, self.n_fft // 2), mode="reflect")
        y = F.conv1d(x, self.fwd, stride=self.hop)
        half = self.n_fft // 2 + 1
        re, im = y[:, :half], y[:, half:]
        return torch.sqrt(re * re + im * im + 1e-14), torch.atan2(im, re)

    def inverse(self, mag: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        z = torch.cat([mag * torch.cos(phase), mag * torch.sin(phase)], dim=1)
        y = F.conv_transpose1d(z, self.inv, stride=self.hop)
        ones = torch.ones_like(mag[:, :1])
        env = F.conv_transpose1d(ones, self.win_sq, stride=self.hop)
        pad = self.n_fft // 2
        y = y[:, 0, pad:-pad] / env[:, 0, pad:-pad].clamp(min=1e-11)
        return y * self.gain


class ExportableKokoro(torch.nn.Module):
    """(tokens [1, T] int64, style [1, 256], speed [1]) → audio [L], trace-friendly."""

    def __init__(self, net: KokoroNet):
        super().__init__()
        self.net = net
        cfg = net.cfg
        self.stft = _ConvSTFT(cfg.n_fft, cfg.hop, cfg.istft_gain)

    def forward(self, tokens: torch.Tensor, style: torch.Tensor, speed: torch.Tensor) -> torch.Tensor:
        net = self.net
        s_pro, s_tim = style[:, 128:], style[:, :128]
        d_en = net.bert_encoder(net.bert(tokens)).transpose(1, 2)
        d = net.predictor.text_encoder(d_en, s_pro)
        dur = torch.clamp(torch.round(net.predictor.durations(d)[0] / speed), min=1.0)
        end = torch.cumsum(dur, 0)
        start = end - dur
        frames = torch.arange(0, end[-1].to(torch.int64), dtype=torch.float32)
        aln = ((frames[None] >= start[:, None]) & (frames[None] < end[:, None])).to(torch.float32)[None]
        en = d.transpose(1, 2) @ aln
        f0, energy = net.predictor.f0n(en, s_pro)
        asr = net.text_encoder(tokens) @ aln
        return self._decode(asr, f0, energy, s_tim)

    def _decode(self, asr, f0_curve, n, s):
        dec = self.net.decoder
        f = dec.F0_conv(f0_curve[:, None])
        nn_ = dec.N_conv(n[:, None])
        x = dec.encode(torch.cat([asr, f, nn_], dim=1), s)
        asr_res = dec.asr_res[0](asr)
        res = True
        for block in dec.decode:
            if res:
                x = torch.cat([x, asr_res, f, nn_], dim=1)
            x = block(x, s)
            if block.upsample:
                res = False
        return self._generate(x, s, f0_curve)

    def _generate(self, x, s, f0):
        gen = self.net.generator if hasattr(self.net, "generator") else self.net.decoder.generator
        src = gen.m_source
        f0_up = F.interpolate(f0[:, None], scale_factor=float(src.upsample_scale), mode="nearest")
        har = torch.tanh(src.l_linear(src.sines(f0_up.transpose(1, 2)))).transpose(1, 2)[:, 0]
        mag, ph = self.stft.transform(har)
        har = torch.cat([mag, ph], dim=1)
        for i in range(len(gen.ups)):
            x = F.leaky_relu(x, 0.1)
            xs_src = gen.noise_res[i](gen.noise_convs[i](har), s)
            x = gen.ups[i](x)
            if i == len(gen.ups) - 1:
                x = F.pad(x, (1, 0), mode="reflect")
            x = x + xs_src
            xs = None
            for j in range(gen.num_kernels):
                y = gen.resblocks[i * gen.num_kernels + j](x, s)
                xs = y if xs is None else xs + y
            x = xs / gen.num_kernels
        x = gen.conv_post(F.leaky_relu(x))
        half = gen.cfg.n_fft // 2 + 1
        return self.stft.inverse(torch.exp(x[:, :half]), torch.sin(x[:, half:]))[0]


def fp32_onnx_path() -> Path:
    return fp32_model_path()


def export_fp32_onnx(model=None, out: Path | None = None) -> Path:
    """Export (once, cached) the float model to ONNX with dynamic token count."""
    out = Path(out) if out else fp32_onnx_path()
    if out.is_file():
        return out
    if model is None:
        model = load_torch_model()
    wrapper = ExportableKokoro(model.net).eval()
    tokens = torch.tensor([[0, *([50, 83, 156, 16] * 8), 0]], dtype=torch.long)
    style = torch.zeros(1, 256)
    speed = torch.ones(1)
    tmp = out.with_name(out.name + ".tmp")
    with torch.no_grad():
        torch.onnx.export(
            wrapper,
            (tokens, style, speed),
            str(tmp),
            input_names=["tokens", "style", "speed"],
            output_names=["audio"],
            dynamic_axes={"tokens": {1: "n"}, "audio": {0: "samples"}},
            opset_version=17,
            dynamo=False,
        )
    tmp.replace(out)
    return out


def prepare() -> str:
    """Set-up step (``python -m fedtts.app.prepare``): build the fp32 back end once."""
    return str(export_fp32_onnx())


def _check_math() -> float:  # pragma: no cover - developer aid
    """Max abs difference between the conv (i)STFT and torch's, on noise."""
    st = _ConvSTFT(20, 5, 1.0)
    x = torch.randn(1, 3000)
    mag, ph = st.transform(x)
    ref = torch.stft(x, 20, 5, 20, window=torch.hann_window(20), return_complex=True)
    back = torch.istft(torch.polar(mag, ph), 20, 5, 20, window=torch.hann_window(20))
    return max(float((mag - ref.abs()).abs().max()), float((st.inverse(mag, ph) - back).abs().max()))
