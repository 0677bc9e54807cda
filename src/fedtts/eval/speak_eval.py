"""Intelligibility check of the speak pipeline: synthesise, transcribe with Whisper base, CER/WER.

``fedtts eval speak``: every ``syn_text`` of the shipped
examples (voice from each line's prompt clip, as ``fedtts batch`` does) plus the acceptance
sentences (default voice, as ``fedtts say`` does). Exit 1 if zh CER or en WER exceeds 10 %.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fedtts.engine.onnx_engine import EngineConfig
from fedtts.eval.asr import _chars, cer, edit_distance, normalize_text, transcribe, wer
from fedtts.frontend.normalize import is_zh
from fedtts.pipeline import SynthesisOptions, write_audio
from fedtts.pipeline.runtime import Runtime
from fedtts.pipeline.tasks import parse_tasks
from fedtts.voice import DEFAULT_VOICE, load_reference, resolve_reference, resolve_voice_name

__all__ = [
    "ACCEPTANCE",
    "EvalItem",
    "SpeakEvalConfig",
    "SpeakEvalReport",
    "evaluate",
    "DEFAULT_EXAMPLES",
]

REPO = Path(__file__).resolve().parents[3]
DEFAULT_EXAMPLES = [REPO / "examples" / "example_zh.jsonl", REPO / "examples" / "example_en.jsonl"]
ACCEPTANCE: list[tuple[str, str]] = [
    ("accept_zh", "重庆的银行今天下午三点关门，请提前15分钟到。"),
    ("accept_en", "On May 3rd, 250 people visited the museum, and 42 of them stayed for 2 hours."),
]


@dataclass
class SpeakEvalConfig:
    examples: list[Path] = field(default_factory=lambda: list(DEFAULT_EXAMPLES))
    voice: str | None = None  # force one voice for every item (default: each line's prompt clip)
    acceptance: bool = True  # also the two acceptance sentences
    limit: int = 0  # only the first N lines of each file (0 = all)
    cer_max: float = 0.10
    wer_max: float = 0.10
    use_phoneme: bool = False
    threads: int = 2
    audio_dir: Path | None = None  # keep the synthesised wavs here

    def validate(self) -> SpeakEvalConfig:
        for p in self.examples:
            if not Path(p).is_file():
                raise ValueError(f"examples file not found: {p}")
        if not 0 < self.cer_max <= 1 or not 0 < self.wer_max <= 1:
            raise ValueError("--cer-max/--wer-max must be in (0, 1]")
        if self.limit < 0:
            raise ValueError("--limit must be >= 0")
        return self


@dataclass
class EvalItem:
    name: str
    source: str  # file:line or "acceptance"
    lang: str  # zh | en
    text: str
    hypothesis: str
    ref_norm: str
    hyp_norm: str
    errors: int  # edits (chars for zh, words for en)
    ref_len: int
    rate: float  # CER (zh) or WER (en)
    voice: str
    audio_s: float
    synth_s: float
    error: str = ""


@dataclass
class SpeakEvalReport:
    items: list[EvalItem]
    zh_cer: float | None
    en_wer: float | None
    cer_max: float
    wer_max: float
    failures: list[str]

    @property
    def passed(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "zh_cer": self.zh_cer,
            "en_wer": self.en_wer,
            "cer_max": self.cer_max,
            "wer_max": self.wer_max,
            "failures": self.failures,
            "items": [asdict(i) for i in self.items],
        }


def _lang(text: str) -> str:
    return "zh" if is_zh(text) else "en"


def _units(lang: str, t: str) -> list[str]:
    return _chars(t) if lang == "zh" else t.split()


def _tasks(cfg: SpeakEvalConfig) -> list[tuple[str, str, str, Path | None, str | None]]:
    """(name, source, text, prompt clip, prompt text) for every example line and acceptance sentence."""
    out = []
    for path in cfg.examples:
        items = parse_tasks(Path(path))
        if cfg.limit:
            items = items[: cfg.limit]
        for it in items:
            if isinstance(it, tuple):
                line, err = it
                raise ValueError(f"{path}:{line}: {err}")
            prompt = None if cfg.voice else it.prompt
            out.append((it.name, f"{Path(path).name}:{it.line}", it.text, prompt, it.prompt_text))
    if cfg.acceptance:
        out += [(name, "acceptance", text, None, None) for name, text in ACCEPTANCE]
    return out


def evaluate(cfg: SpeakEvalConfig, synthesizer=None, log=print) -> SpeakEvalReport:
    """Synthesise and transcribe every task; aggregate CER/WER are total edits / total length."""
    cfg = cfg.validate()
    synth = synthesizer or Runtime(engine_config=EngineConfig(threads=cfg.threads)).synthesizer()
    opts = SynthesisOptions(use_phoneme=cfg.use_phoneme).validate()
    voices: dict[str, Any] = {}

    def voice_for(prompt: Path | None, prompt_text: str | None):
        key = str(prompt) if prompt else (cfg.voice or DEFAULT_VOICE)
        if key not in voices:
            if prompt is None:
                voices[key] = resolve_voice_name(key)
            else:
                voices[key] = resolve_reference(load_reference(prompt, text=prompt_text), engine=synth.engine)
        return voices[key]

    if cfg.audio_dir:
        cfg.audio_dir.mkdir(parents=True, exist_ok=True)
    items: list[EvalItem] = []
    for name, source, text, prompt, ptext in _tasks(cfg):
        lang = _lang(text)
        try:
            voice = voice_for(prompt, ptext)
            t0 = time.perf_counter()
            res = synth.synthesize(text, voice, opts)
            synth_s = time.perf_counter() - t0
            hyp = transcribe(res.audio, res.sample_rate, lang)
            if cfg.audio_dir:
                write_audio(cfg.audio_dir / f"{name}.wav", res.audio, res.sample_rate)
            err = ""
            vname, dur = voice.name, res.duration_s
        except Exception as e:  # one bad item is reported, the rest go on
            hyp, err, vname, dur, synth_s = "", f"{type(e).__name__}: {e}", "", 0.0, 0.0
        rn, hn = normalize_text(text), normalize_text(hyp)
        ru, hu = _units(lang, rn), _units(lang, hn)
        edits = edit_distance(ru, hu)
        rate = (cer if lang == "zh" else wer)(text, hyp)
        item = EvalItem(name, source, lang, text, hyp, rn, hn, edits, len(ru), rate, vname, dur, synth_s, err)
        items.append(item)
        label = "CER" if lang == "zh" else "WER"
        log(
            f"{name:<22} {label} {rate:6.1%}  {vname:<14} ref: {text}\n{'':<22} hyp: {hyp}{'  ' + err if err else ''}"
        )

    def agg(lang: str, src_ok) -> float | None:
        sel = [i for i in items if i.lang == lang and src_ok(i.source)]
        n = sum(i.ref_len for i in sel)
        return sum(i.errors for i in sel) / n if n else None

    examples = [i for i in items if i.source != "acceptance"]
    zh = agg("zh", lambda s: s != "acceptance") if examples else agg("zh", lambda s: True)
    en = agg("en", lambda s: s != "acceptance") if examples else agg("en", lambda s: True)
    failures = [f"{i.name}: {i.error}" for i in items if i.error]
    if zh is not None and zh > cfg.cer_max:
        failures.append(f"zh CER {zh:.1%} > {cfg.cer_max:.0%} over the examples")
    if en is not None and en > cfg.wer_max:
        failures.append(f"en WER {en:.1%} > {cfg.wer_max:.0%} over the examples")
    for i in items:
        limit = cfg.cer_max if i.lang == "zh" else cfg.wer_max
        if i.source == "acceptance" and not i.error and i.rate > limit:
            failures.append(f"{i.name}: {'CER' if i.lang == 'zh' else 'WER'} {i.rate:.1%} > {limit:.0%}")
    return SpeakEvalReport(items, zh, en, cfg.cer_max, cfg.wer_max, failures)
