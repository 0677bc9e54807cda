"""Options and steps the synthesis commands share: ``say``, ``batch``, ``book``, ``voice add`` and
``glmtts_inference.py`` read the same flags into the same :class:`SynthesisOptions`, synthesizer and voice."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from fedtts.app.cli.errors import CliError
from fedtts.engine.onnx_engine import BACKENDS, DEFAULT_BACKEND, EngineConfig
from fedtts.frontend import DictionaryError, FrontendConfig, PronunciationDict
from fedtts.pipeline import SynthesisOptions
from fedtts.pipeline.runtime import Runtime
from fedtts.voice import DEFAULT_VOICE, load_reference, resolve_reference, resolve_voice_name
from fedtts.voice.refine import refine_voice
from fedtts.voice.style import VoiceShape
from fedtts.voice.style import shape_voice as compose_shape

__all__ = [
    "SPECTRAL_HELP",
    "add_synthesis_args",
    "checked_dict",
    "make_synthesizer",
    "match_strength",
    "options_from_args",
    "read_text",
    "refine_clone",
    "resolve_voice",
    "shape_voice",
]

log = logging.getLogger("fedtts")


def add_synthesis_args(p: argparse.ArgumentParser) -> None:
    """Options shared by ``say`` and ``batch`` (and reusable by other commands)."""
    p.add_argument(
        "--voice", default=None, help=f"stock/saved voice or blend 'a:0.7,b:0.3' (default {DEFAULT_VOICE})"
    )
    p.add_argument("--sample-rate", "--sample_rate", type=int, default=24000, choices=(24000, 32000))
    p.add_argument("--speed", type=float, default=1.0, help="speaking rate, 0.25–4 (default 1)")
    p.add_argument("--seed", type=int, default=None, help="random seed (output is deterministic anyway)")
    p.add_argument(
        "--phoneme",
        "--use_phoneme",
        "--use-phoneme",
        dest="phoneme",
        action="store_true",
        help="apply the pronunciation dictionary (configs/G2P_replace_dict.jsonl)",
    )
    p.add_argument(
        "--dict",
        default=None,
        metavar="JSONL",
        help="pronunciation dictionary file to apply instead of the shipped one (implies --phoneme)",
    )
    p.add_argument(
        "--use_cache", "--use-cache", dest="use_cache", action="store_true", help="front-end disk cache"
    )
    p.add_argument("--threads", type=int, default=2, help="onnxruntime threads (default 2)")
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default=DEFAULT_BACKEND,
        help=f"inference back end (default {DEFAULT_BACKEND}; one that cannot load falls back to it)",
    )
    p.add_argument(
        "--no-watermark",
        dest="watermark",
        action="store_false",
        help="do not mark a cloned voice's output (warned, and recorded in the file's tags)",
    )


def options_from_args(args: argparse.Namespace):
    try:
        return SynthesisOptions(
            sample_rate=args.sample_rate,
            speed=args.speed,
            seed=args.seed,
            use_phoneme=bool(args.phoneme) or bool(getattr(args, "dict", None)),
            use_cache=bool(args.use_cache),
            watermark=bool(getattr(args, "watermark", True)),
        ).validate()
    except ValueError as e:
        raise CliError(str(e), 2) from e


def make_synthesizer(args: argparse.Namespace):
    """This command's synthesizer, on the process's one :class:`Runtime` (one model session)."""
    try:
        ecfg = EngineConfig(
            threads=args.threads, backend=getattr(args, "backend", DEFAULT_BACKEND)
        ).validate()
    except ValueError as e:
        raise CliError(str(e), 2) from e
    fcfg = None
    if getattr(args, "dict", None):
        fcfg = FrontendConfig(dict_path=checked_dict(args))
    return Runtime(engine_config=ecfg, frontend_config=fcfg).synthesizer()


def checked_dict(args: argparse.Namespace) -> Path:
    """The --dict file, read and validated now (a bad line is a usage error naming file:line), with a
    warning when --phoneme was not given: a user who names a dictionary wants it applied, so it is."""
    path = Path(args.dict)
    if not path.is_file():
        raise CliError(f"--dict: dictionary file not found: {path}", 2)
    try:
        n = len(PronunciationDict.load(path).entries)
    except DictionaryError as e:
        raise CliError(f"--dict: {e}", 2) from e
    if not getattr(args, "phoneme", False):
        log.warning(
            "--dict without --phoneme: applying %s (%d entries) anyway; --dict implies --phoneme", path, n
        )
    return path


SPECTRAL_HELP = "match a --ref clone's long-term spectrum to the clip: 0 off, 1 full (default), up to 1.5"


def match_strength(value: str) -> float:
    try:
        s = float(value)
    except ValueError:
        s = float("nan")
    if not 0.0 <= s <= 1.5:
        raise argparse.ArgumentTypeError(
            f"spectral-match strength must be a number in [0, 1.5], got {value!r}"
        )
    return s


def resolve_voice(
    spec: str | None,
    ref: str | None = None,
    ref_text: str | None = None,
    refine: int = 0,
    spectral_match: float = 1.0,
    synth=None,
):
    """``--voice`` spec or ``--ref`` clip → Voice; says on stderr which voice was chosen. ``synth``:
    the command's synthesizer, whose model a clone method that renders uses."""
    if ref:
        reference = load_reference(ref, text=ref_text)
        for w in reference.warnings:
            print(f"warning: {ref}: {w}", file=sys.stderr)
        engine = synth.engine if synth is not None else None
        voice = resolve_reference(reference, spectral_match=spectral_match, engine=engine)
        if refine:
            voice = refine_clone(voice, reference, refine)
        base = voice.meta.get("base")
        how = voice.meta.get("method", "resolver")
        print(
            f"voice: {voice.name} from reference {ref} ({how}{', base ' + base if base else ''})",
            file=sys.stderr,
        )
        return voice

    return resolve_voice_name(spec or DEFAULT_VOICE)


def refine_clone(voice, reference, steps: int):
    """``--refine N``: gradient steps through the differentiable model (needs the [train] extra)."""
    try:
        return refine_voice(voice, reference, steps=steps, progress=True)
    except ImportError as e:  # torch is imported when refining starts
        raise CliError(f"--refine needs the [train] extra (pip install 'fedtts[train]'): {e}", 1) from e


def shape_voice(voice, args: argparse.Namespace, synth):
    """``--emotion-ref/--emotion-strength`` and ``--pitch/--expressiveness`` through the one voice
    composition (:func:`fedtts.voice.style.shape_voice`); an emotion clip is measured on ``synth``'s model."""
    ref = getattr(args, "emotion_ref", None)
    if getattr(args, "emotion_ref_text", None) and not (ref and Path(ref).is_file()):
        raise CliError("--emotion-ref-text needs --emotion-ref CLIP", 2)
    if getattr(args, "emotion_strength", 1.0) != 1.0 and not ref:
        raise CliError("--emotion-strength needs --emotion-ref CLIP|VOICE", 2)
    shape = VoiceShape(
        emotion_strength=getattr(args, "emotion_strength", 1.0),
        pitch_st=getattr(args, "pitch", 0.0),
        expressiveness=getattr(args, "expressiveness", 1.0),
    )
    if ref and Path(ref).is_file():
        shape.emotion_reference = load_reference(ref, text=getattr(args, "emotion_ref_text", None))
        for w in shape.emotion_reference.warnings:
            print(f"warning: {ref}: {w}", file=sys.stderr)
    elif ref:
        shape.emotion_voice = resolve_voice_name(ref)
    return compose_shape(voice, shape, engine=synth.engine)


def read_text(text: str) -> str:
    """The TEXT argument; ``-`` reads standard input."""
    if text == "-":
        return sys.stdin.read()
    return text
