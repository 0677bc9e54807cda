"""``fedtts`` command line: say, phonemize, batch, cache, voices (+ other teams' groups via register()).

Heavy modules (onnxruntime, torch, gradio) are imported inside the handlers so ``fedtts --help`` is fast.
Expected errors print one ``error: …`` line (exit 2 for bad input/usage, 1 for failures); ``--verbose``
adds the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fedtts.app.batch import BatchConfig, BatchError, run_batch
from fedtts.app.service import check_output_root, parse_duration, prune_outputs
from fedtts.engine.onnx_engine import BACKENDS, DEFAULT_BACKEND, EngineConfig
from fedtts.frontend import DictionaryError, Frontend, FrontendConfig, PronunciationDict
from fedtts.frontend.cache import cache_clear, cache_info
from fedtts.pipeline import SynthesisOptions
from fedtts.pipeline.audio_io import (
    AudioFormatError,
    atomic_path,
    encode_audio,
    format_for_path,
    to_int16,
    write_audio,
)
from fedtts.pipeline.book import BookConfig, BookError, read_book, render_book, size_warning
from fedtts.pipeline.runtime import Runtime
from fedtts.pipeline.timing import Timeline, subtitle_format, write_subtitles
from fedtts.pipeline.watermark import output_tags
from fedtts.voice import (
    DEFAULT_VOICE,
    load_reference,
    resolve_reference,
    resolve_voice_name,
    stock_voice_names,
)
from fedtts.voice.refine import refine_voice
from fedtts.voice.store import ProfileStore
from fedtts.voice.style import VoiceShape
from fedtts.voice.style import shape_voice as compose_shape

__all__ = ["main", "build_parser", "PLUGINS", "DEFAULT_VOICE", "CliError"]

MAX_SAY_CHARS = 20000
PROGRESS_MIN_CHARS = 200  # `say` without --stream shows a progress bar from this text length on

# Subcommand groups owned by other parts: (module, function). Missing module → skipped; a module that
# exists but fails to import is an error. Order matters: groups that create "eval"/"train" come before
# fedtts.app.cli_voice, which adds to those groups when they exist.
PLUGINS: list[tuple[str, str]] = [
    ("fedtts.eval.cli", "register"),
    ("fedtts.engine.cli_train", "register"),
    ("fedtts.federated.cli", "register"),
    ("fedtts.app.cli_serve", "register"),
    ("fedtts.app.cli_wyoming", "register"),
    ("fedtts.app.cli_voice", "register"),
    ("fedtts.app.cli_detect", "register"),
]

log = logging.getLogger("fedtts")


class CliError(Exception):
    """An expected failure: message for the user and the exit code."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so it unwinds like Ctrl-C: partial ``.part`` files go away."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


# ---------------------------------------------------------------------- shared options


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
        fcfg = FrontendConfig(dict_path=_checked_dict(args))
    return Runtime(engine_config=ecfg, frontend_config=fcfg).synthesizer()


def _checked_dict(args: argparse.Namespace) -> Path:
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
            try:
                voice = refine_voice(voice, reference, steps=refine, progress=True)
            except ImportError as e:  # torch is imported when refining starts
                raise CliError(f"--refine needs the [train] extra (torch): {e}", 1) from e
        base = voice.meta.get("base")
        how = voice.meta.get("method", "resolver")
        print(
            f"voice: {voice.name} from reference {ref} ({how}{', base ' + base if base else ''})",
            file=sys.stderr,
        )
        return voice

    return resolve_voice_name(spec or DEFAULT_VOICE)


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


# ---------------------------------------------------------------------- commands


def _read_text(text: str) -> str:
    if text == "-":
        return sys.stdin.read()
    return text


def cmd_say(args: argparse.Namespace) -> int:
    text = _read_text(args.text)
    if not text.strip():
        raise CliError("text is empty: give something to say", 2)
    if args.max_chars and len(text) > args.max_chars:
        raise CliError(
            f"text is {len(text)} characters, over the limit of {args.max_chars} for `say`; "
            "raise it with --max-chars N (0 = no limit) or split it into a batch file",
            2,
        )
    if args.voice and args.ref:
        raise CliError("use either --voice or --ref, not both", 2)
    if args.ref_text and not args.ref:
        raise CliError("--ref-text needs --ref CLIP", 2)
    out = args.out
    if out != "-":
        fmt = _out_format(out, format_for_path, AudioFormatError)
    if args.subtitles:
        try:
            subtitle_format(args.subtitles)
        except ValueError as e:
            raise CliError(f"--subtitles {e}", 2) from None
    options = options_from_args(args)
    if args.refine and not args.ref:
        raise CliError("--refine needs --ref CLIP", 2)
    synth = make_synthesizer(args)
    voice = shape_voice(
        resolve_voice(
            args.voice,
            args.ref,
            args.ref_text,
            refine=args.refine,
            spectral_match=args.spectral_match,
            synth=synth,
        ),
        args,
        synth,
    )
    t0 = time.perf_counter()
    if args.stream:
        n, dur, words = _say_stream(synth, text, voice, options, out, fmt if out != "-" else "pcm")
    else:
        result = _synthesize_with_progress(synth, text, voice, options, quiet=args.quiet)
        if out == "-":
            sys.stdout.buffer.write(encode_audio(result.audio, result.sample_rate, "pcm"))
            sys.stdout.buffer.flush()
        else:
            write_audio(out, result.audio, result.sample_rate, tags=result.tags)
        n, dur, words = len(result.chunks), result.duration_s, result.words
    if args.subtitles:
        write_subtitles(args.subtitles, words)
    dt = time.perf_counter() - t0
    if args.quiet:
        return 0
    where = "stdout (s16le PCM)" if out == "-" else out
    print(
        f"wrote {where}: {dur:.2f} s of audio at {options.sample_rate} Hz, {n} chunk(s), "
        f"voice {voice.name}, {dt:.2f} s (RTF {dt / max(dur, 1e-9):.2f})",
        file=sys.stderr,
    )
    if args.subtitles:
        print(f"wrote {args.subtitles}: {len(words)} timed words", file=sys.stderr)
    return 0


_AUDIO_SUFFIXES = ".wav, .flac, .mp3 or .opus/.ogg"


def _out_format(out: str, format_for_path, format_error: type[Exception]) -> str:
    """``--out``'s audio format; a folder or a name without a suffix gets a message saying so."""
    path = Path(out)
    if path.is_dir() or out.endswith(("/", "\\")):
        raise CliError(
            f"--out {out}: is a folder; give a file name in it, e.g. --out {path / 'speech.wav'}", 2
        )
    if not path.suffix:
        raise CliError(f"--out {out}: no file suffix; name the file with {_AUDIO_SUFFIXES}", 2)
    try:
        return format_for_path(out)
    except format_error as e:
        raise CliError(f"--out {e}", 2) from e


def _synthesize_with_progress(synth, text: str, voice, options, quiet: bool = False):
    """``synth.synthesize``, with a tqdm bar (ETA) on stderr for long texts: minutes are not silent."""
    if quiet or len(text) < PROGRESS_MIN_CHARS:
        return synth.synthesize(text, voice, options)
    from tqdm import tqdm

    total = sum(1 for c in text if not c.isspace())
    last_text = [None]
    with tqdm(total=total, unit="char", desc="say", file=sys.stderr, dynamic_ncols=True) as bar:

        def advance(chunk) -> None:
            if chunk.text != last_text[0]:  # the pieces of one long segment share its text
                bar.update(min(sum(1 for c in chunk.text if not c.isspace()), total - bar.n))
                last_text[0] = chunk.text

        result = synth.synthesize(text, voice, options, on_chunk=advance)
        bar.update(total - bar.n)
    return result


def _say_stream(synth, text, voice, options, out: str, fmt: str) -> tuple[int, float, list]:
    """Write chunks as they come: raw PCM to stdout, or progressively into ``OUT.part`` → ``OUT``.
    Returns (chunks, seconds of audio, word timings from the start)."""
    import numpy as np

    timeline = Timeline()
    counted = [0, 0.0]

    def chunks():
        for chunk in synth.stream(text, voice, options):
            timeline.add(chunk)
            counted[0], counted[1] = counted[0] + 1, counted[1] + chunk.duration_s
            _report_chunk(chunk)
            yield chunk

    if out == "-":
        stdout = sys.stdout.buffer
        for chunk in chunks():
            stdout.write(to_int16(chunk.audio).tobytes())
            stdout.flush()
    elif fmt in ("wav", "flac"):
        import soundfile as sf

        with atomic_path(out) as tmp:
            sub = "PCM_16"
            with sf.SoundFile(tmp, "w", options.sample_rate, 1, format=fmt.upper(), subtype=sub) as f:
                for key, value in output_tags(voice, options.watermark).items():  # a clone: synthetic
                    setattr(f, key, value)
                for chunk in chunks():
                    f.write(np.clip(chunk.audio, -1, 1))
                    f.flush()  # header updated: the partial file is playable
    else:
        audio = np.concatenate([c.audio for c in chunks()])
        write_audio(out, audio, options.sample_rate, tags=output_tags(voice, options.watermark))
    return counted[0], counted[1], timeline.words


def _report_chunk(chunk) -> None:
    print(
        f"chunk {chunk.index}: ready at {chunk.since_start_s:.2f} s, {chunk.duration_s:.2f} s of audio, "
        f"computed in {chunk.compute_s:.2f} s ({chunk.n_tokens} tokens) {chunk.text[:40]!r}",
        file=sys.stderr,
    )


def cmd_phonemize(args: argparse.Namespace) -> int:
    import dataclasses

    text = _read_text(args.text)
    if not text.strip():
        raise CliError("text is empty: give something to phonemize", 2)
    cfg = FrontendConfig(use_dict=bool(args.phoneme) or bool(args.dict), use_cache=bool(args.use_cache))
    if args.dict:
        cfg = dataclasses.replace(cfg, dict_path=_checked_dict(args))
    fe = Frontend(cfg.validate())
    if not args.detail:
        print(fe.phonemize(text))
        return 0
    for seg in fe.analyze(text):
        print(f"[{seg.lang}] {seg.normalized}\n  readable: {seg.readable}\n  phonemes: {seg.phonemes}")
        print(f"  pause_after: {seg.pause_after:.2f} s")
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    """Exit 2 when the task file or an option is unusable (nothing is run), 1 when an item failed."""
    options = options_from_args(args)
    cfg = BatchConfig(
        tasks=Path(args.tasks),
        out_dir=Path(args.out_dir),
        options=options,
        voice=args.voice,
        overwrite=args.overwrite,
        zip=args.zip,
        subtitles=args.subtitles,
    )
    try:
        report = run_batch(cfg.validate(), synthesizer=make_synthesizer(args))
    except BatchError as e:
        raise CliError(str(e), 2) from e
    return 0 if report.ok else 1


def cmd_book(args: argparse.Namespace) -> int:
    """An audiobook: one audio + subtitle file per chapter, then one M4B/MP3 with chapter marks.
    Exit 2 for an unreadable book or option (nothing is made); a second run resumes."""
    from tqdm import tqdm

    options = options_from_args(args)
    subtitles = None if args.subtitles == "none" else args.subtitles
    cfg = BookConfig(
        book=Path(args.book),
        out_dir=Path(args.out_dir),
        options=options,
        book_format=args.format,
        subtitles=subtitles,
    )
    try:
        cfg.validate()
        chapters = read_book(cfg.book)
    except BookError as e:
        raise CliError(str(e), 2) from e
    synth = make_synthesizer(args)
    cfg.voice = shape_voice(resolve_voice(args.voice, None, None), args, synth)
    chars = sum(len(c.text) for c in chapters)
    if not args.quiet:
        print(f"book: {cfg.book.name}: {len(chapters)} chapters, {chars} characters", file=sys.stderr)
    warning = size_warning(chapters)
    if warning:
        print(f"warning: {cfg.book}: {warning}", file=sys.stderr)
    bar = (
        None
        if args.quiet
        else tqdm(total=chars, unit="char", desc="book", file=sys.stderr, dynamic_ncols=True)
    )

    def progress(done: int, total: int, title: str) -> None:
        if bar is not None:
            bar.set_postfix_str(title[:30], refresh=False)
            bar.update(max(0, done - bar.n))

    try:
        report = render_book(cfg, synth, progress=progress, say=lambda m: print(m, file=sys.stderr))
    except BookError as e:
        raise CliError(str(e), 1) from e
    finally:
        if bar is not None:
            bar.close()
    if not args.quiet:
        rtf = report.compute_s / report.audio_s if report.audio_s else 0.0
        print(
            f"book: {report.done} chapters made, {report.skipped} already there (of {report.chapters}); "
            f"{report.audio_s / 60:.1f} min of audio made, RTF {rtf:.2f}; "
            + (f"book {report.book_file}" if report.book_file else f"files in {cfg.out_dir}"),
            file=sys.stderr,
        )
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    if args.action == "clear":
        print(f"removed {cache_clear()} cache entries")
        return 0
    for k, v in cache_info().items():
        print(f"{k}: {v}")
    return 0


def cmd_outputs(args: argparse.Namespace) -> int:
    """``fedtts outputs info|clean``: the UI/API output folder's size, and cleaning it by age."""
    root = Path(args.dir)
    age = None
    if args.action == "clean" and args.older_than is not None:  # a bad option fails before anything else
        try:
            age = parse_duration(args.older_than)
        except ValueError as e:
            raise CliError(f"--older-than: {e}", 2) from e
    if not root.exists():
        print(f"{root}: no output folder (nothing to clean)")
        return 0
    if not root.is_dir():
        raise CliError(f"--dir {root}: not a folder", 2)
    if args.action == "info":
        rep = prune_outputs(root, everything=True, dry_run=True)
        print(f"{root}: {rep.kept_files} files, {rep.kept_bytes / 1024 / 1024:.1f} MB")
        return 0
    try:
        if args.all:
            check_output_root(root)
    except ValueError as e:
        raise CliError(str(e), 2) from e
    # no --older-than: everything the UI/API wrote goes (age -1 s is "older than now")
    rep = prune_outputs(
        root, max_age_s=-1.0 if age is None else age, everything=args.all, dry_run=args.dry_run
    )
    verb = "would remove" if args.dry_run else "removed"
    for p in rep.removed if args.dry_run else []:
        print(p)
    print(
        f"{verb} {len(rep.removed)} file(s), {rep.removed_bytes / 1024 / 1024:.1f} MB from {root}; "
        f"{rep.kept_files} file(s), {rep.kept_bytes / 1024 / 1024:.1f} MB kept"
    )
    return 0


def cmd_voices(args: argparse.Namespace) -> int:
    for name in stock_voice_names():
        print(f"{name}\tstock")
    if importlib.util.find_spec("fedtts.voice.store") is not None:
        for info in ProfileStore().list():
            print(f"{info.name}\tsaved")
    return 0


# ---------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fedtts", description="Privacy-first voice-cloning TTS for Mandarin and English, on CPU."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log details and show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("say", help="speak a text into an audio file (or stream it)")
    p.add_argument("text", help="text to speak ('-' reads stdin)")
    p.add_argument("--ref", default=None, metavar="CLIP", help="reference clip of the voice to clone")
    p.add_argument("--ref-text", "--ref_text", default=None, help="transcript of the reference clip")
    p.add_argument("--out", "-o", default="out.wav", help="output .wav/.flac/.mp3/.opus, or - for raw PCM")
    p.add_argument("--stream", action="store_true", help="write chunks as they are ready; timing on stderr")
    p.add_argument(
        "--subtitles", default=None, metavar="FILE.srt|FILE.vtt", help="also write word-timed subtitles"
    )
    p.add_argument(
        "--quiet", "-q", action="store_true", help="no progress bar nor summary line (warnings/errors stay)"
    )
    p.add_argument("--max-chars", type=int, default=MAX_SAY_CHARS, help="refuse longer texts (0 = no limit)")
    p.add_argument(
        "--refine", type=int, default=0, metavar="N", help="refine a --ref clone with N gradient steps"
    )
    p.add_argument("--spectral-match", type=match_strength, default=1.0, metavar="S", help=SPECTRAL_HELP)
    p.add_argument(
        "--emotion-ref", default=None, metavar="CLIP|VOICE", help="take the prosody from this clip/voice"
    )
    p.add_argument(
        "--emotion-ref-text",
        default=None,
        help="transcript of the --emotion-ref clip (optional; makes its speaking rate exact)",
    )
    p.add_argument(
        "--emotion-strength", type=float, default=1.0, help="0 = own prosody, 1 = reference's, 2 max"
    )
    p.add_argument("--pitch", type=float, default=0.0, help="pitch shift in semitones (±6)")
    p.add_argument("--expressiveness", type=float, default=1.0, help="F0 range factor (0.25–3)")
    add_synthesis_args(p)
    p.set_defaults(func=cmd_say)

    p = sub.add_parser("phonemize", help="print the phonemes of a text (check a dictionary with it)")
    p.add_argument("text")
    p.add_argument(
        "--phoneme", "--use_phoneme", dest="phoneme", action="store_true", help="apply the dictionary"
    )
    p.add_argument(
        "--dict", default=None, metavar="JSONL", help="pronunciation dictionary file (implies --phoneme)"
    )
    p.add_argument("--use_cache", "--use-cache", dest="use_cache", action="store_true")
    p.add_argument("--detail", action="store_true", help="one block per segment: normalised text, pinyin/IPA")
    p.set_defaults(func=cmd_phonemize)

    p = sub.add_parser(
        "batch", help="synthesise a JSONL task file (GLM-TTS schema or prompt_audio/input_text)"
    )
    p.add_argument("tasks", help="tasks JSONL")
    p.add_argument("--out-dir", "--out_dir", required=True, help="output folder")
    p.add_argument("--zip", action="store_true", help="also pack the outputs into OUT_DIR.zip")
    p.add_argument("--overwrite", action="store_true", help="redo items whose output already exists")
    p.add_argument(
        "--subtitles", choices=("srt", "vtt"), default=None, help="also write ITEM.srt|.vtt with word timings"
    )
    add_synthesis_args(p)
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser(
        "book", help="an audiobook from .txt/.md/.epub: a file per chapter and an M4B/MP3 with chapters"
    )
    p.add_argument(
        "book", help="the book: .txt (chapters at 'Chapter …'/'第…章' lines), .md (headings), .epub"
    )
    p.add_argument("--out-dir", "--out_dir", required=True, help="output folder (a second run resumes)")
    p.add_argument(
        "--format", choices=("m4b", "mp3", "none"), default="m4b", help="the joined book (default m4b)"
    )
    p.add_argument(
        "--subtitles", choices=("srt", "vtt", "none"), default="srt", help="a subtitle file per chapter"
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar nor summary")
    add_synthesis_args(p)
    p.set_defaults(func=cmd_book)

    p = sub.add_parser("cache", help="front-end cache: info | clear")
    p.add_argument("action", choices=("info", "clear"))
    p.set_defaults(func=cmd_cache)

    p = sub.add_parser("outputs", help="the UI/API output folder: info | clean [--older-than D]")
    p.add_argument("action", choices=("info", "clean"))
    p.add_argument("--dir", default="outputs", help="the output folder (default outputs, as ui/serve use)")
    p.add_argument(
        "--older-than", default=None, metavar="D", help="only results older than D: 7d, 12h, 30m, 90s"
    )
    p.add_argument(
        "--all",
        action="store_true",
        help="every file in the folder, not only results the UI/API wrote (<time>_<name>_<id>)",
    )
    p.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    p.set_defaults(func=cmd_outputs)

    p = sub.add_parser("voices", help="list stock voices (and saved ones)")
    p.set_defaults(func=cmd_voices)

    for module, fn in PLUGINS:
        _load_plugin(sub, module, fn)
    return parser


def standalone_main(register: Callable[[Any], None], argv: list[str] | None = None) -> int:
    """Run one command group on its own (``python -m fedtts.app.cli_serve serve ...``)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="fedtts")
    register(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


def _load_plugin(sub, module: str, fn: str) -> None:
    try:
        if importlib.util.find_spec(module) is None:
            return
    except ModuleNotFoundError:
        return
    try:
        mod = importlib.import_module(module)
        getattr(mod, fn)(sub)
    except Exception as e:  # a broken plugin must be loud, not silently missing
        raise CliError(f"command plugin {module} failed to load: {type(e).__name__}: {e}", 1) from e


# ---------------------------------------------------------------------- main


def _expected_errors() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """(bad input → exit 2, failures → exit 1), importing only what is already loaded/cheap."""
    usage: list[type] = []
    for mod, name in [
        ("fedtts.frontend", "TextError"),
        ("fedtts.frontend.dictionary", "DictionaryError"),
        ("fedtts.voice.profile", "VoiceError"),
        ("fedtts.voice.reference", "ReferenceError"),
        ("fedtts.pipeline.synth", "SynthesisError"),
        ("fedtts.pipeline.audio_io", "AudioFormatError"),
        ("fedtts.pipeline.book", "BookError"),
        ("fedtts.pipeline.watermark", "UnreadableAudio"),
    ]:
        m = sys.modules.get(mod)
        if m is not None and hasattr(m, name):
            usage.append(getattr(m, name))
    failure: list[type] = [OSError, RuntimeError]
    m = sys.modules.get("fedtts.engine.assets")
    if m is not None:
        failure.insert(0, m.AssetError)
    return tuple(usage), tuple(failure)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in argv or "--verbose" in argv
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main else None
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return 2
        return int(args.func(args) or 0)
    except CliError as e:
        return _fail(str(e), e.code, verbose)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("terminated (SIGTERM); partial output removed", file=sys.stderr)
        return 128 + signal.SIGTERM
    except BrokenPipeError:
        return 1
    except Exception as e:
        usage, failure = _expected_errors()
        if usage and isinstance(e, usage):
            return _fail(str(e), 2, verbose)
        if isinstance(e, failure):
            return _fail(str(e), 1, verbose)
        return _fail(f"unexpected {type(e).__name__}: {e} (run with --verbose for details)", 1, verbose)
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _fail(msg: str, code: int, verbose: bool) -> int:
    if verbose:
        traceback.print_exc()
    print(f"error: {msg}", file=sys.stderr)
    return code


if __name__ == "__main__":
    # Run the imported module's main: as __main__, this file's CliError would be a second class that
    # the command plugins (which import fedtts.app.cli) do not raise.
    from fedtts.app.cli import main as _main

    raise SystemExit(_main())
