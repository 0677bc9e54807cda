"""``fedtts say | phonemize | batch | book | cache | outputs | voices``: speech from text, and its files.

Each handler is thin over a library call (:class:`~fedtts.pipeline.Synthesizer`, :func:`run_batch`,
:func:`render_book`, :func:`prune_outputs`) and raises :class:`CliError` for what the user must change.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from fedtts.app.batch import BatchConfig, BatchError, run_batch
from fedtts.app.cli import voice as voice_cli
from fedtts.app.cli.errors import CliError
from fedtts.app.cli.options import (
    SPECTRAL_HELP,
    add_synthesis_args,
    checked_dict,
    make_synthesizer,
    match_strength,
    options_from_args,
    read_text,
    resolve_voice,
    shape_voice,
)
from fedtts.app.outputs import check_output_root, parse_duration, prune_outputs
from fedtts.frontend import Frontend, FrontendConfig
from fedtts.frontend.cache import cache_clear, cache_info
from fedtts.pipeline.audio_io import (
    AudioFormatError,
    atomic_path,
    encode_audio,
    format_for_path,
    to_int16,
    write_audio,
)
from fedtts.pipeline.book import BookConfig, BookError, read_book, render_book, size_warning
from fedtts.pipeline.timing import Timeline, subtitle_format, write_subtitles
from fedtts.pipeline.watermark import output_tags

__all__ = ["register", "cmd_say", "cmd_phonemize", "cmd_batch", "cmd_book", "cmd_cache", "cmd_outputs"]

MAX_SAY_CHARS = 20000
PROGRESS_MIN_CHARS = 200  # `say` without --stream shows a progress bar from this text length on


def cmd_say(args: argparse.Namespace) -> int:
    text = read_text(args.text)
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
    text = read_text(args.text)
    if not text.strip():
        raise CliError("text is empty: give something to phonemize", 2)
    cfg = FrontendConfig(use_dict=bool(args.phoneme) or bool(args.dict), use_cache=bool(args.use_cache))
    if args.dict:
        cfg = dataclasses.replace(cfg, dict_path=checked_dict(args))
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


def register(sub) -> None:
    """Add the synthesis commands to the ``fedtts`` sub-command group."""
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

    p = sub.add_parser("voices", help="list stock and saved voices (as `fedtts voice list --stock`)")
    p.set_defaults(func=voice_cli.cmd_list, stock=True)
