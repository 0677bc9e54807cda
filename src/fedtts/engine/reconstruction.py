"""Reconstruction-based enrollment: fit the style so the model re-synthesises the reference itself.

Why: a speaker embedding (GE2E) is a thin target that an optimiser can partly fool; the reference
clip with its transcript is a far richer one. With the model's phonemes aligned to the clip
(predicted durations rescaled to the clip's length, then corrected by DTW against its log-mel) and
the decoder fed the clip's own F0 and energy curves, what is left to explain the spectrum is the
voice: the decoder's 128-d style half (timbre) is fitted by a multi-resolution STFT + log-mel loss
on short crops of the clip (the decoder is convolutional, so a 2 s crop costs a fraction of the
whole clip). The prosody half is then fitted cheaply — predictor only, no decoder — to the clip's
F0, energy and durations (optional: it did not help on the tuning speakers).

Only the style moves (the model is frozen), so the result is an ordinary 256-d style usable by the
int8 ONNX engine. Nothing here uses a speaker-verification model.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from fedtts.base.dsp import yin_f0

__all__ = [
    "ReconConfig",
    "ReconResult",
    "Alignment",
    "TranscriptMismatch",
    "align_reference",
    "fit_style",
]

log = logging.getLogger(__name__)

SR = 24000
HOP = 600  # audio samples per duration frame
F0_HOP = 300  # the predictor's F0/energy curves run at twice the frame rate


class TranscriptMismatch(ValueError):
    """The transcript does not fit the clip (its predicted length or its alignment is implausible)."""


@dataclass
class ReconConfig:
    """Fitting settings; weights are per loss term, learning rates in units of the stock-pack std."""

    steps: int = 60  # decoder (timbre) steps, at most (the time budget usually stops it first)
    lr: float = 0.1
    window_s: float = 1.0  # decoder crop per step
    prior_weight: float = 0.01  # on mean((z − z_start)²): a trust region around the one-pass style
    stft_weight: float = 1.0
    mel_weight: float = 1.0
    fft_sizes: tuple[int, ...] = (512, 1024, 2048)
    align: str = "dtw"  # "scale": predicted durations rescaled to the clip; "dtw": then DTW-corrected
    # Predictor-only fit of dims 128–255 to the clip's F0/energy/durations. Off by default: on the
    # train/ tuning speakers it lowered the independent similarity (docs/notes/clone-reconstruction.md).
    prosody_steps: int = 0
    prosody_lr: float = 0.05
    f0_weight: float = 1.0  # L1 on log F0 over frames voiced in the clip
    energy_weight: float = 0.3
    duration_weight: float = 0.3  # L1 on log(1 + frames) per token
    time_budget_s: float = (
        70.0  # stop the timbre loop this long after the start, alignment included (0 = none)
    )
    prosody_budget_s: float = 10.0  # the prosody fit's own allowance beyond the timbre budget
    report_full_loss: bool = False  # whole-clip loss before/after (two extra decoder passes)
    max_length_ratio: float = 2.2  # predicted / clip speech length beyond this (or its inverse): mismatch
    seed: int = 0

    def validate(self) -> ReconConfig:
        if int(self.steps) < 0 or int(self.prosody_steps) < 0:
            raise ValueError("steps and prosody_steps must be >= 0")
        if not 0 < float(self.lr) <= 1 or not 0 < float(self.prosody_lr) <= 1:
            raise ValueError(f"learning rates must be in (0, 1], got {self.lr}, {self.prosody_lr}")
        if float(self.window_s) < 0.25:
            raise ValueError(f"window_s must be >= 0.25, got {self.window_s}")
        if self.align not in ("scale", "dtw"):
            raise ValueError(f"align must be 'scale' or 'dtw', got {self.align!r}")
        for name in ("prior_weight", "stft_weight", "mel_weight", "f0_weight", "energy_weight"):
            if float(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if float(self.duration_weight) < 0 or float(self.time_budget_s) < 0:
            raise ValueError("duration_weight and time_budget_s must be >= 0")
        if float(self.max_length_ratio) <= 1:
            raise ValueError("max_length_ratio must be > 1")
        return self


@dataclass
class Alignment:
    """The reference laid out on the model's frame grid."""

    tokens: list[int]
    durations: np.ndarray  # [N+2] frames per token (pads included), summing to ``frames``
    audio: np.ndarray  # [frames·HOP] the clip, level-matched to the start style's render
    f0: np.ndarray  # [2·frames] Hz, 0 where unvoiced
    energy: np.ndarray  # [2·frames] on the predictor's energy scale
    length_ratio: float  # predicted length / clip length (at the start style)
    dtw_gain: float  # mean DTW cost / mean cost of the linear alignment (< 1: DTW found a better path)
    band_hz: float = SR / 2  # highest frequency the clip carries (the loss stops there)

    @property
    def frames(self) -> int:
        return int(self.durations.sum())


@dataclass
class ReconResult:
    style: np.ndarray  # [256] fitted (length-independent) style
    curve: list[float]  # timbre objective per step (each on its own crop)
    prosody_curve: list[float]
    full_loss_start: float  # spectral loss of the whole clip with the start / fitted timbre
    full_loss_end: float
    alignment: Alignment
    seconds: float = 0.0
    terms: list[dict[str, float]] = field(default_factory=list)


# ------------------------------------------------------------------------------------ features
_FB: dict[tuple[int, int, int], torch.Tensor] = {}


def mel_fb(n_fft: int, n_mels: int, fmax: float = SR / 2) -> torch.Tensor:
    """Triangular mel filters [n_mels, n_fft//2 + 1] from 50 Hz to ``fmax`` (cached)."""
    key = (n_fft, n_mels, int(fmax))
    if key not in _FB:
        mel = 2595.0 * np.log10(1.0 + np.array([50.0, min(float(fmax), SR / 2)]) / 700.0)
        pts = 700.0 * (10 ** (np.linspace(mel[0], mel[1], n_mels + 2) / 2595.0) - 1.0)
        freqs = np.fft.rfftfreq(n_fft, 1.0 / SR)
        fb = np.zeros((n_mels, freqs.size), np.float32)
        for i in range(n_mels):
            lo, c, hi = pts[i], pts[i + 1], pts[i + 2]
            fb[i] = np.clip(np.minimum((freqs - lo) / (c - lo), (hi - freqs) / (hi - c)), 0, None)
        _FB[key] = torch.from_numpy(fb)
    return _FB[key]


def _mag(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    win = torch.hann_window(n_fft)
    spec = torch.stft(x, n_fft, hop, n_fft, window=win, center=True, return_complex=True)
    return torch.sqrt(spec.real**2 + spec.imag**2 + 1e-9)  # [F, T]


def carried_band_hz(audio: np.ndarray, floor_db: float = 60.0) -> float:
    """Highest frequency the clip carries (a 16 kHz recording resampled to 24 kHz stops at 8 kHz):
    the loss must not ask the model to reproduce a band the microphone chain removed."""
    x = torch.as_tensor(audio, dtype=torch.float32)
    p = (_mag(x, 1024, 256) ** 2).mean(1).numpy()
    db = 10 * np.log10(p + 1e-20)
    ok = np.nonzero(db > db.max() - floor_db)[0]
    return float(ok.max() * SR / 1024) if ok.size else SR / 2


def spectral_loss(
    y: torch.Tensor,
    target: torch.Tensor,
    fft_sizes: Sequence[int],
    mel_weight: float = 1.0,
    band_hz: float = SR / 2,
) -> torch.Tensor:
    """Multi-resolution STFT loss (spectral convergence + log-magnitude L1) plus log-mel L1, over the
    band the clip carries, with a floor 80 dB under the clip's peak (silence noise is not fitted)."""
    total = y.new_zeros(())
    for n in fft_sizes:
        keep = int(band_hz / SR * n) + 1
        m, t = _mag(y, n, n // 4)[:keep], _mag(target, n, n // 4)[:keep]
        floor = float(t.max()) * 10**-2.5  # 50 dB under the peak
        sc = torch.linalg.norm(t - m) / (torch.linalg.norm(t) + 1e-7)
        total = total + sc + (torch.log(m + floor) - torch.log(t + floor)).abs().mean()
    total = total / max(len(fft_sizes), 1)
    if mel_weight:
        fb = mel_fb(1024, 80, band_hz)
        m, t = fb @ _mag(y, 1024, 256) ** 2, fb @ _mag(target, 1024, 256) ** 2
        floor = float(t.max()) * 1e-5
        total = total + mel_weight * (torch.log(m + floor) - torch.log(t + floor)).abs().mean()
    return total


def energy_curve(audio: np.ndarray | torch.Tensor, frames: int) -> torch.Tensor:
    """StyleTTS2's energy: log of the L2 norm of the 80-band power mel, one value per 300 samples."""
    x = torch.as_tensor(audio, dtype=torch.float32)
    power = _mag(x, 2048, F0_HOP) ** 2  # centred frames: frame k at sample k·300
    n = torch.log(torch.linalg.norm(mel_fb(2048, 80) @ power, dim=0) + 1e-5)
    out = n[: 2 * frames]
    if out.shape[0] < 2 * frames:
        out = torch.cat([out, out[-1:].expand(2 * frames - out.shape[0])])
    return out


def f0_curve(audio: np.ndarray, frames: int) -> np.ndarray:
    """YIN F0 (Hz, 0 unvoiced) resampled to the predictor's 80 Hz grid, with single-frame blips removed."""
    track = yin_f0(audio, SR)
    f0 = track.f0.astype(np.float64)
    if f0.size >= 3:  # octave jumps and isolated voiced/unvoiced frames
        med = np.median(np.stack([f0[:-2], f0[1:-1], f0[2:]]), axis=0)
        f0[1:-1] = np.where((f0[1:-1] > 0) & (med > 0), med, np.where(med > 0, f0[1:-1], 0.0))
    centre = (int(16000 / 60.0) * 2 / 2) / 16000  # YIN frame i is centred at i·10 ms + half a window
    t = np.arange(2 * frames) * (F0_HOP / SR)
    idx = np.clip(np.round((t - centre) / track.hop_s).astype(int), 0, max(f0.size - 1, 0))
    return (f0[idx] if f0.size else np.zeros(2 * frames)).astype(np.float32)


def _cmvn_logmel(audio: np.ndarray) -> np.ndarray:
    """[frames, 40] log-mel at the duration-frame rate, mean/variance-normalised per band (for DTW)."""
    x = torch.as_tensor(audio, dtype=torch.float32)
    m = torch.log(mel_fb(1024, 40) @ _mag(x, 1024, HOP) ** 2 + 1e-6).T.numpy()
    return (m - m.mean(0)) / (m.std(0) + 1e-5)


def _dtw_path(cost: np.ndarray) -> np.ndarray:
    """Monotone DTW path [(i, j)] through ``cost`` [n, m] (steps: diagonal, down, right)."""
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):
        best_prev = np.minimum(acc[i - 1, :-1], acc[i - 1, 1:])  # min(diagonal, down) for j = 1..m
        s = np.concatenate([[0.0], np.cumsum(cost[i - 1])])
        acc[i, 1:] = s[1:] + np.minimum.accumulate(best_prev - s[:-1])  # then runs to the right
    i, j, path = n, m, []
    while i > 0 and j > 0:
        path.append((i - 1, j - 1))
        k = int(np.argmin([acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]]))
        i, j = (i - 1, j - 1) if k == 0 else (i - 1, j) if k == 1 else (i, j - 1)
    return np.array(path[::-1])


def _scaled_durations(raw: np.ndarray, total: int) -> np.ndarray:
    """Round ``raw`` × (total / Σraw) so that every token keeps ≥ 1 frame and the sum is ``total``."""
    raw = np.maximum(np.asarray(raw, np.float64), 1e-3)
    n = raw.size
    if total < n:
        raise TranscriptMismatch(f"the clip ({total} frames) is too short for {n - 2} phonemes")
    spare = raw / raw.sum() * (total - n)  # one frame each, the rest shared in proportion
    edges = np.round(np.cumsum(spare)).astype(int)
    return np.diff(np.concatenate([[0], edges])) + 1


def _durations_from_path(path: np.ndarray, render_dur: np.ndarray, frames: int) -> np.ndarray:
    """Per-token durations on the clip's frames from a render→clip DTW path."""
    token_of = np.repeat(np.arange(render_dur.size), render_dur)
    first = np.full(render_dur.size, -1)
    for i, j in path:
        k = token_of[i]
        if first[k] < 0:
            first[k] = j
    starts = np.zeros(render_dur.size, int)
    for k in range(1, render_dur.size):  # monotone, ≥ 1 frame per token, room for the rest
        s = first[k] if first[k] >= 0 else starts[k - 1] + 1
        starts[k] = min(max(s, starts[k - 1] + 1), frames - (render_dur.size - k))
    return np.diff(np.concatenate([starts, [frames]]))


# ------------------------------------------------------------------------------------ alignment
@torch.no_grad()
def align_reference(
    model, audio24: np.ndarray, phonemes: str, style: np.ndarray, method: str = "dtw", max_ratio: float = 2.2
) -> Alignment:
    """Lay the clip on the model's frame grid for ``phonemes`` rendered with ``style`` (a [256] row).

    Raises :class:`TranscriptMismatch` when the transcript cannot be what the clip says.
    """
    ids = model.tokenize(phonemes)
    if not ids:
        raise TranscriptMismatch(f"no known phoneme symbols in {phonemes!r}")
    if len(ids) > 510:
        raise TranscriptMismatch(f"the transcript has {len(ids)} phonemes, over the model limit of 510")
    frames = len(audio24) // HOP
    audio = np.asarray(audio24[: frames * HOP], np.float32)
    s = torch.as_tensor(style, dtype=torch.float32).reshape(1, 256)
    tok = model._tokens(ids)
    net = model.net
    d = net.predictor.text_encoder(net.bert_encoder(net.bert(tok)).transpose(1, 2), s[:, 128:])
    raw = net.predictor.durations(d)[0].numpy()
    predicted = float(np.maximum(np.round(raw), 1).sum())
    ratio = predicted / max(frames, 1)
    if not 1 / max_ratio <= ratio <= max_ratio:
        raise TranscriptMismatch(
            f"the transcript would take {predicted * HOP / SR:.1f} s to say but the clip is "
            f"{frames * HOP / SR:.1f} s long (ratio {ratio:.2f}): it does not seem to be what the clip says"
        )
    dur = _scaled_durations(raw, frames)
    first = model.forward(ids, s, durations=torch.from_numpy(dur))
    render, first_energy = first.numpy_audio(), first.energy.numpy()
    gain = 1.0
    if method == "dtw":
        a, b = _cmvn_logmel(render)[:frames], _cmvn_logmel(audio)[:frames]
        cost = 1.0 - (a @ b.T) / (np.linalg.norm(a, axis=1)[:, None] * np.linalg.norm(b, axis=1)[None] + 1e-8)
        path = _dtw_path(cost)
        lin = cost[np.arange(len(a)), np.minimum(np.arange(len(a)) * len(b) // len(a), len(b) - 1)].mean()
        gain = float(cost[path[:, 0], path[:, 1]].mean() / max(lin, 1e-8))
        dur = _durations_from_path(path, dur, frames)
    pred_f0 = net.predictor.f0n(d.transpose(1, 2) @ _alignment_matrix(dur), s[:, 128:])[0][0].numpy()
    # Level: the clip is scaled to the start render's loudness, so the fit spends nothing on gain.
    rms = lambda x: float(np.sqrt(np.mean(np.square(x)) + 1e-12))  # noqa: E731
    audio = (audio * (rms(render) / rms(audio))).astype(np.float32)
    # Energy scale: the predictor's N against the recipe measured on its own render (affine fit).
    own = energy_curve(render, frames).numpy()
    coef = np.polyfit(own, first_energy, 1) if np.std(own) > 1e-6 else np.array([1.0, 0.0])
    energy = np.polyval(coef, energy_curve(audio, frames).numpy())
    return Alignment(
        tokens=ids,
        durations=dur.astype(np.int64),
        audio=audio,
        f0=merge_f0(f0_curve(audio, frames), pred_f0),
        energy=energy.astype(np.float32),
        length_ratio=ratio,
        dtw_gain=gain,
        band_hz=carried_band_hz(audio),
    )


def merge_f0(ref_f0: np.ndarray, pred_f0: np.ndarray) -> np.ndarray:
    """The clip's F0 where it is voiced; elsewhere the model's own near-zero where it predicts one
    (silence, many consonants), else the clip's pitch interpolated (the predictor never emits hard
    zeros inside speech, so zeros there would be out of the decoder's experience)."""
    n = min(ref_f0.size, pred_f0.size)
    ref, pred = ref_f0[:n].astype(np.float64), pred_f0[:n].astype(np.float64)
    voiced = ref > 0
    if not voiced.any():
        return pred.astype(np.float32)
    idx = np.arange(n)
    filled = np.exp(np.interp(idx, idx[voiced], np.log(ref[voiced])))
    out = np.where(voiced, ref, np.where(pred < 30.0, pred, filled))
    return out.astype(np.float32)


# ------------------------------------------------------------------------------------ fitting
def _alignment_matrix(dur: np.ndarray) -> torch.Tensor:
    frames = int(dur.sum())
    idx = torch.repeat_interleave(torch.arange(dur.size), torch.from_numpy(dur))
    aln = torch.zeros(dur.size, frames)
    aln[idx, torch.arange(frames)] = 1.0
    return aln[None]


def _windows(frames: int, width: int, steps: int, seed: int) -> list[int]:
    """Crop starts that cover the clip evenly (golden-ratio sequence)."""
    span = max(frames - width, 0)
    phi = (math.sqrt(5) - 1) / 2
    return [int(round(((seed * 0.37 + k * phi) % 1.0) * span)) for k in range(steps)]


def fit_style(
    model,
    audio24: np.ndarray,
    phonemes: str,
    start_style: np.ndarray,
    prior_std: np.ndarray,
    row_offset: np.ndarray | None = None,
    config: ReconConfig | None = None,
    callback: Callable[[int, dict[str, float]], None] | None = None,
) -> ReconResult:
    """Fit a style so ``model`` saying ``phonemes`` reproduces ``audio24`` (the clip, 24 kHz).

    ``start_style``: the one-pass style [256] (length-independent); ``row_offset``: the pack's
    dependence on input length for this many tokens (added while fitting, so the fitted style is
    the length-independent one); ``prior_std``: per-dim scale of the stock packs (the step unit).
    """
    cfg = (config or ReconConfig()).validate()
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    start = np.asarray(start_style, np.float32).reshape(256)
    ids = model.tokenize(phonemes)
    offset = np.zeros(256, np.float32) if row_offset is None else np.asarray(row_offset, np.float32)
    row = torch.from_numpy(start + offset)
    aln_res = align_reference(model, audio24, phonemes, row.numpy(), cfg.align, cfg.max_length_ratio)
    std = torch.from_numpy(np.asarray(prior_std, np.float32).reshape(256))
    net = model.net
    tok = model._tokens(ids)
    frames = aln_res.frames
    aln = _alignment_matrix(aln_res.durations)
    target = torch.from_numpy(aln_res.audio)
    f0 = torch.from_numpy(aln_res.f0)[None]
    energy = torch.from_numpy(aln_res.energy)[None]
    band = aln_res.band_hz
    t_align = time.perf_counter() - t0
    with torch.no_grad():
        asr = net.text_encoder(tok) @ aln  # [1, 512, frames]: the phonemes laid on the clip
        d_en = net.bert_encoder(net.bert(tok)).transpose(1, 2)

    def render(s_tim: torch.Tensor, a: int, w: int) -> torch.Tensor:
        return net.decoder(
            asr[:, :, a : a + w], f0[:, 2 * a : 2 * (a + w)], energy[:, 2 * a : 2 * (a + w)], s_tim
        )[0]

    def full_loss(s_tim: torch.Tensor) -> float:
        with torch.no_grad():
            return float(spectral_loss(render(s_tim, 0, frames), target, cfg.fft_sizes, cfg.mel_weight, band))

    # ---- timbre: decoder half, spectral loss on crops of the clip
    width = min(frames, max(8, int(round(cfg.window_s * SR / HOP))))
    z = torch.zeros(128, requires_grad=True)
    opt = torch.optim.Adam([z], lr=cfg.lr)
    base_tim, std_tim = row[:128][None], std[:128][None]
    curve: list[float] = []
    terms: list[dict[str, float]] = []
    gen = net.decoder.generator
    ckpt = gen.checkpointing
    gen.checkpointing = False  # crops are short: trade memory for ~1/3 less compute
    try:
        loss_start = full_loss(base_tim) if cfg.report_full_loss else float("nan")
        for step, a in enumerate(_windows(frames, width, int(cfg.steps), cfg.seed)):
            if cfg.time_budget_s and time.perf_counter() - t0 > cfg.time_budget_s:
                log.info("reconstruction: time budget reached after %d steps", step)
                break
            opt.zero_grad()
            y = render(base_tim + std_tim * z, a, width)
            l_spec = spectral_loss(
                y, target[a * HOP : (a + width) * HOP], cfg.fft_sizes, cfg.mel_weight, band
            )
            l_prior = (z**2).mean()
            loss = cfg.stft_weight * l_spec + cfg.prior_weight * l_prior
            loss.backward()
            opt.step()
            r = {
                "loss": float(loss.detach()),
                "spectral": float(l_spec.detach()),
                "prior": float(l_prior.detach()),
                "seconds": time.perf_counter() - t0,
            }
            curve.append(r["loss"])
            terms.append(r)
            if callback:
                callback(step, r)
    finally:
        gen.checkpointing = ckpt
    z_tim = z.detach()
    loss_end = full_loss(base_tim + std_tim * z_tim) if cfg.report_full_loss else float("nan")
    t_timbre = time.perf_counter()

    # ---- prosody: predictor half, to the clip's F0, energy and durations (no decoder: cheap)
    zp = torch.zeros(128, requires_grad=True)
    opt_p = torch.optim.Adam([zp], lr=cfg.prosody_lr)
    base_pro, std_pro = row[128:][None], std[128:][None]
    voiced = f0[0] > 10
    log_f0 = torch.log(f0[0].clamp(min=1.0))
    dur_t = torch.from_numpy(aln_res.durations.astype(np.float32))
    pro_curve: list[float] = []
    for _ in range(int(cfg.prosody_steps)):
        if cfg.prosody_budget_s and time.perf_counter() - t_timbre > cfg.prosody_budget_s:
            break
        opt_p.zero_grad()
        s_pro = base_pro + std_pro * zp
        d = net.predictor.text_encoder(d_en, s_pro)
        raw = net.predictor.durations(d)[0]
        f0p, n_p = net.predictor.f0n(d.transpose(1, 2) @ aln, s_pro)
        l_f0 = (torch.log(f0p[0].clamp(min=1.0)) - log_f0)[voiced].abs().mean() if voiced.any() else 0.0
        l_n = (n_p[0] - energy[0]).abs().mean()
        l_d = (torch.log1p(raw.clamp(min=0)) - torch.log1p(dur_t))[1:-1].abs().mean()
        loss = cfg.f0_weight * l_f0 + cfg.energy_weight * l_n + cfg.duration_weight * l_d
        loss = loss + cfg.prior_weight * (zp**2).mean()
        loss.backward()
        opt_p.step()
        pro_curve.append(float(loss.detach()))
    log.info(
        "reconstruction: align %.1f s, %d timbre steps, loss %.3f -> %.3f, %.1f s in all",
        t_align,
        len(curve),
        loss_start,
        loss_end,
        time.perf_counter() - t0,
    )
    style = start.copy()
    style[:128] += (std[:128] * z_tim).numpy()
    if cfg.prosody_steps:
        style[128:] += (std[128:] * zp.detach()).numpy()
    return ReconResult(
        style=style.astype(np.float32),
        curve=curve,
        prosody_curve=pro_curve,
        full_loss_start=loss_start,
        full_loss_end=loss_end,
        alignment=aln_res,
        seconds=time.perf_counter() - t0,
        terms=terms,
    )
