"""``fedtts eval clone``: clone each dev speaker from its prompt clip and measure how close it sounds.

Per speaker: clone from the prompt, say the text of the speaker's *other* recording, and compare.
Speaker similarity is reported with two measures:

- ``mfcc`` (the headline): z-normalised MFCC-statistics cosine (:func:`mfcc_signature`), a speaker
  model **no fedtts component is optimised against** (tuner, bank and refine use GE2E);
- ``ge2e``: Resemblyzer's GE2E cosine — the model cloning optimises, shown for reference only.

Normalised similarity = (sim(clone, other recording) − stranger) / (ceiling − stranger), where
stranger = mean similarity of the other recording to other same-language speakers' prompts and
ceiling = similarity of the prompt to the other recording (a second real recording). Speakers with
a single clip (the Mandarin ones) are compared with the prompt itself, and their ceiling is the
similarity of the prompt's two halves. Also: similarity to the prompt, Whisper error of the clone beside that of the real
recording, DNSMOS, and seconds per voice. ``evaluate_tuner`` is the fast server-side subset used
by federated training (no ASR/MOS).
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from fedtts.eval.metrics import mfcc_signature, signature_similarity

__all__ = [
    "CloneEvalConfig",
    "SpeakerResult",
    "run_clone_eval",
    "evaluate_tuner",
    "evaluate_method",
    "main",
    "add_args",
]

log = logging.getLogger(__name__)
SR = 24000


def _shared_root() -> Path:
    env = os.environ.get("FEDTTS_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[3].parent / "shared"


@dataclass
class CloneEvalConfig:
    manifest: Path
    methods: tuple[str, ...] = ("tuner", "bank", "nearest")
    out: Path | None = None
    limit: int = 0  # speakers per language (0 = all)
    langs: tuple[str, ...] = ("en", "zh")
    asr: bool = True
    mos: bool = True
    refine_steps: int = 24
    spectral_match: float = 1.0  # for every method but the "nearest" baseline (raw stock pack)

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
    sig_prompt: np.ndarray | None = None
    sig_other: np.ndarray | None = None
    emb_prompt: np.ndarray | None = None
    emb_other: np.ndarray | None = None


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
    extra: dict = field(default_factory=dict)


def _load(path: str) -> np.ndarray:
    import soundfile as sf

    from fedtts.eval.metrics import resample

    audio, sr = sf.read(path, dtype="float32", always_2d=True)
    return resample(audio.mean(axis=1), sr, SR)


def _speakable(text: str, lang: str) -> str:
    """Corpus transcripts are upper case (LibriSpeech); the front end would spell short all-caps words."""
    return text.lower() if lang == "en" and text.isupper() else text


@functools.lru_cache(maxsize=2)
def _background(n: int = 160) -> np.ndarray:
    """MFCC signatures of public training-set clips (no dev speaker): the z-normalisation population."""
    from fedtts.engine.assets import cache_dir

    man = _shared_root() / "data" / "train" / "manifest.jsonl"
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
        out.append(_Speaker(spk, lang, audio, other, text, checked, str(root / prompt["path"])))
        per_lang[lang] = per_lang.get(lang, 0) + 1
    return out


def _prepare(speakers: list[_Speaker]) -> None:
    from fedtts.voice.speaker import embed

    for s in speakers:
        if s.sig_prompt is None:
            s.sig_prompt, s.sig_other = mfcc_signature(s.prompt, SR), mfcc_signature(s.other, SR)
            s.emb_prompt, s.emb_other = embed(s.prompt, SR), embed(s.other, SR)


def _norm(sim: float, stranger: float, ceiling: float) -> float | None:
    """None when the ceiling is not clearly above the stranger level (the scale is undefined)."""
    return (sim - stranger) / (ceiling - stranger) if ceiling - stranger >= 0.02 else None


# "nearest" is the baseline (the closest stock pack as it is); "nearest+match" adds spectral match
METHODS = ("tuner", "bank", "nearest", "nearest+match", "refine")


def _cloner(method: str, refine_steps: int, spectral_match: float = 1.0) -> Callable:
    from fedtts.voice import reference_from_array, resolve_reference

    match = 0.0 if method == "nearest" else float(spectral_match)
    base = {"refine": "tuner", "nearest+match": "nearest"}.get(method, method)

    def clone(s: _Speaker):
        ref = reference_from_array(s.prompt, SR)
        voice = resolve_reference(ref, method=base, spectral_match=match)
        if method == "refine":
            from fedtts.voice.refine import refine_voice

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
) -> list[SpeakerResult]:
    from tqdm import tqdm

    from fedtts.voice.speaker import embed

    bg = _background()
    _prepare(speakers)
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
        except ValueError as e:  # an unusable prompt (e.g. < 2 s of speech) is reported, not fatal
            log.warning("clone eval: skipping %s: %s", s.name, e)
            continue
        secs = time.perf_counter() - t0
        audio = synth.synthesize(_speakable(s.text, s.lang), voice).audio
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
            from fedtts.eval.asr import cer, transcribe, wer

            err = cer if s.lang == "zh" else wer
            r.asr_err = err(s.text, transcribe(audio, SR, s.lang))
            if s.text_checked:
                r.asr_err_real = err(s.text, transcribe(s.other, SR, s.lang))
        if mos:
            from fedtts.eval.metrics import dnsmos

            r.mos = dnsmos(audio, SR)["ovrl"]
        results.append(r)
    return results


@functools.lru_cache(maxsize=1)
def _server_speakers() -> tuple:
    man = _shared_root() / "data" / "dev" / "manifest.jsonl"
    if not man.is_file():
        raise FileNotFoundError(f"server evaluation speakers not found: {man} (set FEDTTS_SHARED)")
    return tuple(s for s in load_speakers(man, langs=("en",)) if s.text_checked)


@functools.lru_cache(maxsize=1)
def _synth():
    from fedtts.pipeline import Synthesizer

    return Synthesizer()


def evaluate_tuner(weights, limit: int | None = None, spectral_match: float = 1.0) -> dict[str, float]:
    """Server-side check of a global tuner on the server's own public held-back speakers (dev, en).

    The clone is made as `fedtts` makes it: the tuner's style, then spectral match (default 1, as in
    cloning); `spectral_match=0` scores the tuner's style alone.
    """
    from fedtts.voice.profile import Voice
    from fedtts.voice.reference import reference_from_array
    from fedtts.voice.spectral_match import spectral_match as match
    from fedtts.voice.tuner import VoiceTuner

    tuner = VoiceTuner(weights)

    def clone(s: _Speaker) -> Voice:
        ref = reference_from_array(s.prompt, SR)
        v = tuner.voice(ref)
        return match(v, ref, spectral_match) if spectral_match else v

    return _server_scores(clone, "tuner", limit)


def evaluate_method(method: str, limit: int | None = None) -> dict[str, float]:
    """The same server-side scores for a cloning method of `METHODS` (e.g. "bank": the style-bank
    match a device enrolls toward), so a tuner can be compared with the targets it learns from."""
    if method not in METHODS or method == "refine":
        raise ValueError(
            f"method {method!r}: expected one of {', '.join(m for m in METHODS if m != 'refine')}"
        )
    return _server_scores(_cloner(method, 0), method, limit)


def _server_scores(clone: Callable, method: str, limit: int | None) -> dict[str, float]:
    speakers = list(_server_speakers())[: limit or None]
    res = _score(speakers, clone, method, _synth())
    return {
        "similarity": float(np.mean([r.mfcc_norm for r in res if r.mfcc_norm is not None])),
        "ge2e": float(np.mean([r.ge2e for r in res])),
        "ge2e_norm": float(np.mean([r.ge2e_norm for r in res if r.ge2e_norm is not None])),
        "speakers": float(len(res)),
    }


def _summary(results: list[SpeakerResult]) -> dict:
    out: dict = {}
    for method, lang in sorted({(r.method, r.lang) for r in results}):
        rs = [r for r in results if r.method == method and r.lang == lang]

        def mean(key: str, rs=rs) -> float | None:
            v = [getattr(r, key) for r in rs if getattr(r, key) is not None]
            return float(np.mean(v)) if v else None

        paired = [r for r in rs if r.asr_err is not None and r.asr_err_real is not None]
        out[f"{method}/{lang}"] = {
            "speakers": len(rs),
            "mfcc_norm": mean("mfcc_norm"),
            "mfcc_norm_median": float(
                np.median([r.mfcc_norm for r in rs if r.mfcc_norm is not None] or [np.nan])
            ),
            "mfcc": mean("mfcc"),
            "mfcc_prompt": mean("mfcc_prompt"),
            "ge2e_norm (optimised)": mean("ge2e_norm"),
            "ge2e (optimised)": mean("ge2e"),
            "asr_err": mean("asr_err"),
            "asr_err_real (same items)": float(np.mean([r.asr_err_real for r in paired])) if paired else None,
            "asr_err_clone (same items)": float(np.mean([r.asr_err for r in paired])) if paired else None,
            "dnsmos": mean("mos"),
            "seconds_per_voice": mean("seconds"),
        }
    return out


def _plot(results: list[SpeakerResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({(r.method, r.lang) for r in results})
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(groups)), 3.8))
    data = [
        [r.mfcc_norm for r in results if (r.method, r.lang) == g and r.mfcc_norm is not None] for g in groups
    ]
    ax.boxplot(data, tick_labels=[f"{m}\n{lang}" for m, lang in groups], showmeans=True)
    ax.axhline(0, color="grey", lw=0.8, ls=":")
    ax.axhline(1, color="grey", lw=0.8, ls=":")
    ax.set_ylabel("normalised similarity (MFCC, not optimised)")
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
    for method in cfg.methods:
        results += _score(
            speakers,
            _cloner(method, cfg.refine_steps, cfg.spectral_match),
            method,
            synth,
            cfg.asr,
            cfg.mos,
            progress,
        )
    report = {"summary": _summary(results), "speakers": [asdict(r) for r in results]}
    if cfg.out:
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "clone_report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))
        _plot(results, out / "clone_similarity.png")
    return report


def _print(summary: dict) -> None:
    cols = [
        "speakers",
        "mfcc_norm",
        "mfcc_prompt",
        "ge2e_norm (optimised)",
        "asr_err",
        "asr_err_real (same items)",
        "dnsmos",
        "seconds_per_voice",
    ]
    print(f"{'method/lang':<18}" + "".join(f"{c.split(' ')[0]:>14}" for c in cols))
    for k, row in summary.items():
        cells = []
        for c in cols:
            v = row.get(c)
            cells.append(f"{'-':>14}" if v is None else f"{v:>14.3f}" if isinstance(v, float) else f"{v:>14}")
        print(f"{k:<18}" + "".join(cells))


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", default=str(_shared_root() / "data" / "dev" / "manifest.jsonl"))
    p.add_argument("--methods", default="tuner,bank,nearest", help=f"comma-separated: {', '.join(METHODS)}")
    p.add_argument(
        "--spectral-match", type=float, default=1.0, help="strength for every method but nearest (0 = off)"
    )
    p.add_argument("--out", default="bench/out/clone", help="folder for clone_report.json and the plot")
    p.add_argument("--limit", type=int, default=0, help="at most N speakers per language (0 = all)")
    p.add_argument("--langs", default="en,zh")
    p.add_argument("--refine-steps", type=int, default=24)
    p.add_argument("--no-asr", action="store_true", help="skip Whisper")
    p.add_argument("--no-mos", action="store_true", help="skip DNSMOS")


def main(args: argparse.Namespace) -> int:
    import sys

    try:
        cfg = CloneEvalConfig(
            manifest=Path(args.manifest),
            methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()),
            out=Path(args.out) if args.out else None,
            limit=args.limit,
            langs=tuple(x.strip() for x in args.langs.split(",") if x.strip()),
            asr=not args.no_asr,
            mos=not args.no_mos,
            refine_steps=args.refine_steps,
            spectral_match=args.spectral_match,
        )
        report = run_clone_eval(cfg)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    _print(report["summary"])
    if cfg.out:
        print(f"report: {cfg.out / 'clone_report.json'}; plot: {cfg.out / 'clone_similarity.png'}")
    return 0
