"""Convert Resemble's PerTh implicit watermarker (PyPI ``resemble-perth``, MIT) to ONNX, once, at set-up.

Synthesis marks every cloned output, and it must stay torch-free, so the PerthNet encoder and decoder
(plain Conv1d + LeakyReLU stacks, 250k training steps, weights inside the wheel) are rebuilt here
with the checkpoint's own tensors and exported to ``cache_dir()/watermark``. The spectrogram around
them is numpy (:mod:`fedtts.pipeline.watermark`). The wheel is fetched with ``pip download
--no-deps`` and never installed: perth's runtime imports torchaudio and librosa, which we do not need.
"""

from __future__ import annotations

import json
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import soxr
import torch
from torch import nn

from fedtts.engine.assets import AssetError, RegistryWheel, extract_checked, sha256_file
from fedtts.pipeline.watermark import (
    DECODER_FILE,
    ENCODER_FILE,
    META_FILE,
    SUBBAND,
    watermark_dir,
)

__all__ = ["WHEEL_SPEC", "export_onnx", "load_state", "prepare", "torch_modules"]

WHEEL = RegistryWheel(
    "resemble-perth==1.0.1",
    "resemble_perth-1.0.1-py3-none-any.whl",
    "65e9c37531b1a128a4a56226b75dece4521683cf3611b0b2a5ffe234f00c9342",
)
WHEEL_SPEC = WHEEL.spec
PTH_MEMBER = "perth/perth_net/pretrained/implicit/perth_net_250000.pth.tar"
PTH_SHA256 = "a15bce457ebc53ce5e6c9c3f11df78cf7ee2bf9cdab0a798902135b4c4027670"
LICENSE_MEMBER = "resemble_perth-1.0.1.dist-info/licenses/LICENSE"
HIDDEN = 256


class _Conv(nn.Module):
    """perth's ``Conv``: a 'same'-padded Conv1d, LeakyReLU(0.01) unless last (same state-dict keys)."""

    def __init__(self, i: int, o: int, k: int, act: bool = True):
        super().__init__()
        self.conv = nn.Conv1d(i, o, k, padding=(k - 1) // 2)
        self.act = nn.LeakyReLU() if act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return self.act(x) if self.act is not None else x


def _stack(n_in: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(
        _Conv(n_in, HIDDEN, 1), *[_Conv(HIDDEN, HIDDEN, 7) for _ in range(5)], _Conv(HIDDEN, n_out, 1, False)
    )


class _Encoder(nn.Module):
    """The encoder's residual before the frame mask: subband log-magnitudes → their change."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = _stack(SUBBAND, SUBBAND)

    def forward(self, sub: torch.Tensor) -> torch.Tensor:
        return self.layers(sub)


class _Decoder(nn.Module):
    """The decoder's three conv branches; resampling in time and pooling are numpy (dynamic sizes)."""

    def __init__(self) -> None:
        super().__init__()
        self.slow_layers = _stack(SUBBAND, 2)
        self.normal_layers = _stack(SUBBAND, 2)
        self.fast_layers = _stack(SUBBAND, 2)

    def forward(self, slow: torch.Tensor, normal: torch.Tensor, fast: torch.Tensor):
        return self.slow_layers(slow), self.normal_layers(normal), self.fast_layers(fast)


def fetch_checkpoint(wheel: str | Path | None = None, download: bool = True) -> Path:
    """The PerthNet checkpoint (hash-checked) extracted from the wheel into the watermark folder."""
    out = watermark_dir()
    out.mkdir(parents=True, exist_ok=True)
    pth = out / "perth_net_250000.pth.tar"
    if pth.is_file() and (out / "perth_src").is_dir() and sha256_file(pth) == PTH_SHA256:
        return pth
    whl = WHEEL.fetch(out, wheel, download)
    with zipfile.ZipFile(whl) as z:
        (out / "LICENSE.resemble-perth").write_bytes(z.read(LICENSE_MEMBER))
        for m in z.namelist():  # perth's own code (kB): the reference the conversion is checked against
            if m.startswith("perth/") and m.endswith((".py", ".yaml", "id.txt")):
                dst = out / "perth_src" / m
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_bytes(z.read(m))
    extract_checked(whl, PTH_MEMBER, pth, PTH_SHA256)
    if wheel is None:
        whl.unlink()  # 34 MB; the checkpoint and the licence are kept
    return pth


def load_state(pth: Path | None = None) -> dict[str, torch.Tensor]:
    """The checkpoint's network tensors (plain tensors only: ``weights_only=True``)."""
    ck = torch.load(pth or fetch_checkpoint(), map_location="cpu", weights_only=True)
    return {k: v for k, v in ck["model"].items() if k.startswith(("encoder.", "decoder."))}


def torch_modules(state: dict[str, torch.Tensor] | None = None) -> tuple[_Encoder, _Decoder]:
    """The encoder and decoder with PerthNet's weights (strict: every tensor must fit)."""
    state = state if state is not None else load_state()
    enc, dec = _Encoder().eval(), _Decoder().eval()
    enc.load_state_dict({k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")})
    dec.load_state_dict({k[len("decoder.") :]: v for k, v in state.items() if k.startswith("decoder.")})
    return enc, dec


def export_onnx(force: bool = False) -> Path:
    """Export both graphs (dynamic frame count) and check them against torch on real-sized input."""
    out = watermark_dir()
    meta_path = out / META_FILE
    if meta_path.is_file() and not force:
        return out
    pth = fetch_checkpoint()
    enc, dec = torch_modules(load_state(pth))
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, SUBBAND, 300, generator=gen) * 0.3 + 0.5  # normalised log-magnitudes lie near here
    xs = torch.rand(1, SUBBAND, 375, generator=gen) * 0.3 + 0.5
    xf = torch.rand(1, SUBBAND, 225, generator=gen) * 0.3 + 0.5
    out.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        for module, args, names, outs, path in (
            (enc, (x,), ["sub"], ["res"], out / ENCODER_FILE),
            (
                dec,
                (xs, x, xf),
                ["slow", "normal", "fast"],
                ["slow_out", "normal_out", "fast_out"],
                out / DECODER_FILE,
            ),
        ):
            tmp = path.with_name(path.name + ".tmp")
            axes = {n: {2: f"t_{n}"} for n in names} | {o: {2: f"t_{o}"} for o in outs}
            torch.onnx.export(
                module,
                args,
                str(tmp),
                input_names=names,
                output_names=outs,
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
            sess = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
            got = sess.run(None, {n: a.numpy() for n, a in zip(names, args, strict=True)})
            want = module(*args)
            want = want if isinstance(want, tuple) else (want,)
            err = max(float(np.max(np.abs(g - w.numpy()))) for g, w in zip(got, want, strict=True))
            if err > 1e-3:
                tmp.unlink()
                raise AssetError(f"{path.name}: ONNX differs from torch by {err:.2g}")
            tmp.replace(path)
    meta = {
        "source": WHEEL_SPEC,
        "checkpoint": PTH_MEMBER,
        "checkpoint_sha256": PTH_SHA256,
        "sample_rate": 32000,
        "n_fft": 2048,
        "hop": 320,
        "subband": SUBBAND,
        "encoder_sha256": sha256_file(out / ENCODER_FILE),
        "decoder_sha256": sha256_file(out / DECODER_FILE),
    }
    tmp = meta_path.with_name(META_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    tmp.replace(meta_path)
    return out


class _Spectrogram(nn.Module):
    """torchaudio.transforms.Spectrogram(power=None) as torchaudio computes it (torch.stft)."""

    def __init__(self, n_fft, win_length, hop_length, window_fn, normalized=False, **_):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop_length
        self.register_buffer("window", window_fn(win_length))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stft(
            x,
            self.n_fft,
            self.hop,
            self.window.numel(),
            self.window,
            center=True,
            pad_mode="reflect",
            normalized=False,
            onesided=True,
            return_complex=True,
        )


class _InverseSpectrogram(_Spectrogram):
    """torchaudio.transforms.InverseSpectrogram as torchaudio computes it (torch.istft)."""

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return torch.istft(
            spec,
            self.n_fft,
            self.hop,
            self.window.numel(),
            self.window,
            center=True,
            normalized=False,
            onesided=True,
        )


class _TimeStretch(nn.Module):
    """torchaudio.transforms.TimeStretch's buffer only (perth builds it, never calls it at inference)."""

    def __init__(self, n_freq: int, hop_length: int, **_):
        super().__init__()
        self.register_buffer("phase_advance", torch.linspace(0, np.pi * hop_length, n_freq)[..., None])


def original_watermarker():
    """perth's own ``PerthImplicitWatermarker`` (its code and checkpoint, torch) for checking ours.

    torchaudio (for two STFT wrappers) and librosa (for resampling, unused at 32 kHz) are not
    installable beside torch 2.13, so they are stood in for by the torch calls they make.
    """
    src = fetch_checkpoint().parent / "perth_src"
    ta = types.ModuleType("torchaudio")
    tt = types.ModuleType("torchaudio.transforms")
    tt.Spectrogram, tt.InverseSpectrogram, tt.TimeStretch = _Spectrogram, _InverseSpectrogram, _TimeStretch
    ta.transforms = tt
    lr = types.ModuleType("librosa")

    def resample(y, orig_sr, target_sr, **_):
        return soxr.resample(np.asarray(y, np.float32), orig_sr, target_sr, quality="HQ")

    lr.resample = resample
    stubs = {"torchaudio": ta, "torchaudio.transforms": tt}
    try:
        import librosa  # noqa: F401 - the real one when installed ([eval] has it)
    except ImportError:
        stubs["librosa"] = lr
    added = [n for n in stubs if n not in sys.modules]
    for name in added:
        sys.modules[name] = stubs[name]
    if str(src) not in sys.path:
        sys.path.insert(0, str(src))
    try:
        from perth.perth_net.perth_net_implicit.perth_watermarker import PerthImplicitWatermarker
    finally:  # perth keeps its references; nobody else sees the stand-ins
        for name in added:
            sys.modules.pop(name, None)

    pretrained = src / "perth" / "perth_net" / "pretrained"
    link = pretrained / "implicit" / "perth_net_250000.pth.tar"
    if not link.exists():
        link.symlink_to(fetch_checkpoint())
    return PerthImplicitWatermarker(models_dir=str(pretrained))


def prepare() -> str:
    """Set-up step (``python -m fedtts.app.prepare``): build the watermark graphs once."""
    out = export_onnx()
    return f"{out / ENCODER_FILE}, {out / DECODER_FILE} (PerTh implicit, from {WHEEL_SPEC})"


if __name__ == "__main__":
    print(prepare())
