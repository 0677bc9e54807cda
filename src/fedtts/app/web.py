"""Web UI (``fedtts ui``): Synthesis, Dictionary, Batch, Voices and System tabs in Gradio.

Every action goes through :class:`fedtts.app.service.TTSService` (the HTTP API uses the same
object), so limits, voices, outputs and errors are the same in both. Gradio is imported here only.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no phoning home from a privacy-first app

import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402

from fedtts.app.batch import TEXT_COMPARE  # noqa: E402
from fedtts.app.errors import ServiceBusy, ServiceError  # noqa: E402
from fedtts.app.outputs import OutputsInfo  # noqa: E402
from fedtts.app.service import ServiceConfig, SpeechRequest, TTSService  # noqa: E402
from fedtts.app.system import federation_status, versions  # noqa: E402
from fedtts.frontend import DictionaryError  # noqa: E402
from fedtts.pipeline.audio_io import to_int16  # noqa: E402
from fedtts.pipeline.tasks import BatchError, parse_tasks  # noqa: E402
from fedtts.pipeline.timing import Timeline, write_subtitles  # noqa: E402
from fedtts.voice import DEFAULT_VOICE  # noqa: E402

__all__ = ["build_ui", "launch"]

INTRO = (
    "# fedtts\n"
    "Privacy-first voice cloning text-to-speech for Mandarin and English, on this computer. "
    "Nothing you upload leaves it."
)
VOICE_INFO = "stock voice, saved profile, or a blend such as jf_alpha:0.7,jm_kumo:0.3"
CONSENT = "The person speaking in this clip agreed to have their voice cloned"


def _err(e: Exception, svc: TTSService) -> gr.Error:
    """The error the browser shows: the problem, without the server's folders."""
    msg = svc.public_message(str(e))
    if isinstance(e, ServiceBusy):
        return gr.Error(f"{msg} (about {e.retry_after} s)")
    return gr.Error(msg)


def _voice_choices(svc: TTSService) -> list[str]:
    names = svc.voice_names()
    return names["stock"] + names["saved"]


def _segments_text(chunks: list[Any]) -> str:
    lines = []
    for c in chunks:
        lines += [
            f"{c.index + 1}. [{c.lang}] {c.normalized or c.text}",
            f"   readable: {c.readable}",
            f"   phonemes: {c.phonemes}",
        ]
    return "\n".join(lines)


def _analysis_text(segs: list[Any]) -> str:
    lines = []
    for i, s in enumerate(segs, 1):
        lines += [
            f"{i}. [{s.lang}] {s.normalized}",
            f"   readable: {s.readable}",
            f"   phonemes: {s.phonemes}",
        ]
    return "\n".join(lines)


# ---------------------------------------------------------------------- synthesis tab


def _synthesis_tab(svc: TTSService, voice_dds: list) -> None:
    max_chars = svc.config.max_chars
    with gr.Row():
        with gr.Column(scale=3):
            text = gr.Textbox(
                label="Text to speak",
                lines=6,
                placeholder="Type Mandarin, English or both. 你好，欢迎使用 fedtts。 "
                "SSML: start with <speak> (docs/ssml.md).",
                elem_id="text",
            )
            counter = gr.Markdown(f"0 / {max_chars} characters", elem_id="char-counter")
            with gr.Row():
                voice = gr.Dropdown(
                    _voice_choices(svc),
                    value=DEFAULT_VOICE,
                    label="Voice",
                    info=VOICE_INFO,
                    allow_custom_value=True,
                    elem_id="voice",
                )
                voice_dds.append(voice)
                use_dict = gr.Checkbox(label="Use pronunciation dictionary", value=False, elem_id="use-dict")
            with gr.Accordion("Clone a voice from a reference clip (overrides the voice above)", open=True):
                ref_audio = gr.Audio(
                    sources=["upload", "microphone"],
                    type="filepath",
                    label="Reference audio (3–30 s of one person speaking)",
                    elem_id="ref-audio",
                )
                ref_text = gr.Textbox(label="Reference transcript (optional)", lines=1)
            with gr.Accordion("Options", open=True):
                with gr.Row():
                    sample_rate = gr.Radio([24000, 32000], value=24000, label="Sample rate (Hz)")
                    speed = gr.Slider(0.5, 2.0, value=1.0, step=0.05, label="Speed")
                    seed = gr.Number(value=None, precision=0, label="Seed (optional)", minimum=0)
                with gr.Row():
                    emo_audio = gr.Audio(
                        sources=["upload", "microphone"],
                        type="filepath",
                        label="Emotion / style reference (optional)",
                    )
                    with gr.Column():
                        emo_strength = gr.Slider(0.0, 2.0, value=1.0, step=0.1, label="Emotion strength")
                        pitch = gr.Slider(-6.0, 6.0, value=0.0, step=0.5, label="Pitch shift (semitones)")
                        expressive = gr.Slider(
                            0.25, 3.0, value=1.0, step=0.05, label="Expressiveness (F0 range)"
                        )
            with gr.Row():
                preview_btn = gr.Button("Show phonemes", elem_id="preview")
                generate = gr.Button("Generate", variant="primary", elem_id="generate")
        with gr.Column(scale=2):
            stream_audio = gr.Audio(
                label="Live (streams as each sentence is ready)",
                streaming=True,
                autoplay=True,
                interactive=False,
                buttons=["download"],
                elem_id="stream-audio",
            )
            result_audio = gr.Audio(
                label="Result (saved in outputs/)",
                type="filepath",
                interactive=False,
                buttons=["download"],
                elem_id="result-audio",
            )
            result_file = gr.File(
                label="Download (audio and its .srt subtitles)",
                file_count="multiple",
                interactive=False,
                elem_id="result-file",
            )
            word_times = gr.Markdown("", elem_id="word-times")
            status = gr.Markdown("", elem_id="synth-status")
            phonemes = gr.Textbox(
                label="How it is read (per sentence)", lines=8, interactive=False, elem_id="phonemes"
            )

    def count(t: str) -> str:
        n = len(t or "")
        warn = " (over the limit)" if n > max_chars else ""
        return f"{n} / {max_chars} characters{warn}; long texts are spoken sentence by sentence"

    text.change(count, text, counter, queue=False, show_progress="hidden")

    def preview(t: str, use: bool) -> str:
        try:
            return _analysis_text(svc.analyze(t, bool(use)))
        except ServiceError as e:
            raise _err(e, svc) from e

    preview_btn.click(preview, [text, use_dict], phonemes)

    def run(t, v, ref, rtext, sr, sd, sp, emo, emo_s, use, pitch_st=0.0, expr=1.0):
        req = SpeechRequest(
            text=t or "",
            voice=v or DEFAULT_VOICE,
            reference=Path(ref) if ref else None,
            reference_text=(rtext or "").strip() or None,
            emotion_reference=Path(emo) if emo else None,
            emotion_strength=float(emo_s),
            pitch_st=float(pitch_st),
            expressiveness=float(expr),
            sample_rate=int(sr),
            speed=float(sp),
            seed=None if sd in (None, "") else int(sd),
            use_phoneme=bool(use),
        )

        t0 = time.perf_counter()
        parts, meta = [], []
        timeline = Timeline()
        try:
            for ch in svc.stream(req):
                parts.append(ch.audio)
                meta.append(ch)
                timeline.add(ch)
                done = sum(len(p) for p in parts) / ch.sample_rate
                msg = f"sentence {ch.index + 1} ready after {ch.since_start_s:.1f} s ({done:.1f} s of audio so far)"
                yield (
                    (ch.sample_rate, to_int16(ch.audio)),
                    _segments_text(meta),
                    msg,
                    gr.skip(),
                    gr.skip(),
                    _words_text(timeline.words),
                )
        except ServiceError as e:
            raise _err(e, svc) from e
        audio = np.concatenate(parts)
        stem = "clone" if req.reference else (req.voice or "speech").split(":")[0].split(",")[0]
        path = svc.outputs.save_audio(audio, req.sample_rate, stem, tags=req.outcome.tags)
        subs = write_subtitles(path.with_suffix(".srt"), timeline.words)
        dt = time.perf_counter() - t0
        dur = len(audio) / req.sample_rate
        how = req.outcome.voice
        if req.reference is not None:
            how = f"cloned from the reference ({req.outcome.method}: {how})"
        warns = "".join(f"\n- warning: {w}" for w in req.outcome.warnings)
        msg = (
            f"saved **{path.name}**: {dur:.1f} s of audio in {dt:.1f} s (RTF {dt / max(dur, 1e-9):.2f}); "
            f"voice {how}{warns}"
        )
        yield (
            gr.skip(),
            _segments_text(meta),
            msg,
            str(path),
            [str(path), str(subs)],
            _words_text(timeline.words),
        )

    generate.click(
        run,
        [
            text,
            voice,
            ref_audio,
            ref_text,
            sample_rate,
            seed,
            speed,
            emo_audio,
            emo_strength,
            use_dict,
            pitch,
            expressive,
        ],
        [stream_audio, phonemes, status, result_audio, result_file, word_times],
        concurrency_id="synthesis",
    )


def _public(e: Exception, job: Path) -> str:
    """An error's message with the server's upload folder left out (the user knows their file names)."""
    return str(e).replace(f"{job}{os.sep}", "").replace(str(job), ".")


def _words_text(words) -> str:
    """The spoken words with their start times, shown under the player."""
    if not words:
        return ""
    return "**Words** (start, s): " + " · ".join(f"`{w.start_s:.2f}` {w.text}" for w in words)


# ---------------------------------------------------------------------- dictionary tab


def _dictionary_tab(svc: TTSService):
    gr.Markdown(
        f"Entries of `{svc.config.dict_path}`: a word and how to read it — pinyin with tone numbers "
        "for Chinese (`chóng qìng` or `chong2 qing4`), IPA for English. Used when *Use pronunciation "
        "dictionary* is on."
    )
    with gr.Row():
        with gr.Column(scale=3):
            table = gr.Dataframe(
                headers=["grapheme", "phoneme"],
                interactive=False,
                label="Entries (click a row to edit it)",
                elem_id="dict-table",
            )
        with gr.Column(scale=2):
            grapheme = gr.Textbox(label="Word (grapheme)", elem_id="dict-grapheme")
            phoneme = gr.Textbox(label="Reading (pinyin or IPA)", elem_id="dict-phoneme")
            with gr.Row():
                add = gr.Button("Add / update", variant="primary", elem_id="dict-add")
                remove = gr.Button("Remove", variant="stop", elem_id="dict-remove")
            status = gr.Markdown("")
    gr.Markdown("### How will this be read?")
    with gr.Row():
        sample = gr.Textbox(
            label="Sentence", value="我在重庆的银行行长办公室。", scale=3, elem_id="dict-sample"
        )
        check = gr.Button("Preview", scale=1, elem_id="dict-preview")
    with gr.Row():
        with_dict = gr.Textbox(
            label="With the dictionary (and the entry above)", lines=5, interactive=False, elem_id="dict-with"
        )
        without = gr.Textbox(
            label="Without the dictionary", lines=5, interactive=False, elem_id="dict-without"
        )

    def rows() -> list[list[str]]:
        try:
            d = svc.load_dictionary()
        except ValueError as e:  # a broken file: say where
            raise gr.Error(str(e)) from e
        return [[g, p] for g, p in d.entries.items()]

    def candidate(g: str, p: str):
        """The saved dictionary plus the entry being typed (validated)."""
        d = svc.load_dictionary()
        g, p = (g or "").strip(), (p or "").strip()
        if g or p:
            try:
                d.add(g, p)
            except DictionaryError as e:
                raise gr.Error(f"entry: {e}") from e
        return d, g, p

    def validate_entry(d, g: str) -> str:
        try:
            segs = svc.analyze(g, True, dictionary=d)
        except (ServiceError, ValueError) as e:
            raise gr.Error(f"'{g}' cannot be read with this entry: {e}") from e
        ph = " ".join(s.phonemes for s in segs).strip()
        if not ph:
            raise gr.Error(f"'{g}': the reading gives no sounds the model knows")
        return ph

    def do_add(g, p):
        d, g, p = candidate(g, p)
        if not g or not p:
            raise gr.Error("give both the word and its reading")
        ph = validate_entry(d, g)
        svc.save_dictionary(d)
        return rows(), f"saved **{g}** → {p} (model phonemes: `{ph}`)"

    def do_remove(g):
        g = (g or "").strip()
        d = svc.load_dictionary()
        if g not in d.entries:
            raise gr.Error(f"'{g}' is not in the dictionary")
        d.remove(g)
        svc.save_dictionary(d)
        return rows(), f"removed **{g}**"

    def do_preview(sent, g, p):
        d, _, _ = candidate(g, p)
        try:
            return _analysis_text(svc.analyze(sent, True, dictionary=d)), _analysis_text(
                svc.analyze(sent, False)
            )
        except ServiceError as e:
            raise _err(e, svc) from e

    def pick(evt: gr.SelectData, data):
        try:
            r = evt.index[0]
            row = data.iloc[r] if hasattr(data, "iloc") else data[r]
            return str(row[0]), str(row[1])
        except (IndexError, KeyError, TypeError):
            return gr.skip(), gr.skip()

    add.click(do_add, [grapheme, phoneme], [table, status])
    remove.click(do_remove, grapheme, [table, status])
    check.click(do_preview, [sample, grapheme, phoneme], [with_dict, without])
    table.select(pick, table, [grapheme, phoneme])
    return table, rows


# ---------------------------------------------------------------------- batch tab


def _batch_tab(svc: TTSService, voice_dds: list) -> None:
    gr.Markdown(
        "Upload a task JSONL — GLM-TTS lines `{uttid, prompt_text, prompt_speech, syn_text}` or "
        "`{prompt_audio, input_text, output_name}` — together with the clips it names, or one ZIP "
        "holding both. One bad line is reported and the rest still run."
    )
    files = gr.File(
        file_count="multiple",
        file_types=[".jsonl", ".zip", ".wav", ".flac", ".mp3", ".ogg", ".m4a"],
        label="Task JSONL + clips, or a ZIP",
        elem_id="batch-files",
    )
    with gr.Row():
        voice = gr.Dropdown(
            _voice_choices(svc),
            value=DEFAULT_VOICE,
            label="Voice for lines without a clip",
            info=VOICE_INFO,
            allow_custom_value=True,
        )
        voice_dds.append(voice)
        sample_rate = gr.Radio([24000, 32000], value=24000, label="Sample rate (Hz)")
        speed = gr.Slider(0.5, 2.0, value=1.0, step=0.05, label="Speed")
        use_dict = gr.Checkbox(label="Use pronunciation dictionary", value=False)
    run_btn = gr.Button("Run batch", variant="primary", elem_id="batch-run")
    progress = gr.Markdown("", elem_id="batch-status")
    table = gr.Dataframe(
        headers=["line", "name", "status", "duration_s", "text / error"],
        interactive=False,
        label="Items",
        elem_id="batch-table",
    )
    zip_out = gr.File(label="All results (ZIP)", interactive=False, elem_id="batch-zip")

    def run(paths, v, sr, sp, use):
        import json

        if not paths:
            raise gr.Error("upload a task JSONL (with its clips) or a ZIP first")
        paths = [Path(p if isinstance(p, str) else p.name) for p in paths]
        try:
            tasks, job = svc.jobs.prepare(paths)
            req = SpeechRequest(text="-", sample_rate=int(sr), speed=float(sp), use_phoneme=bool(use))
            options = svc.options(req)
            voice = svc.check_voice_spec(v or DEFAULT_VOICE)
        except ServiceError as e:
            raise _err(e, svc) from e
        try:
            items = parse_tasks(tasks)
        except BatchError as e:  # an unusable task file: say what is wrong with it, not "Error"
            raise gr.Error(_public(e, job)) from e
        base: dict[int, list] = {}
        for it in items:
            if isinstance(it, tuple):
                base[it[0]] = [it[0], "", "failed", None, str(it[1])]
            else:
                base[it.line] = [it.line, it.name, "pending", None, it.text[:80]]
        result: dict[str, Any] = {}

        def work():
            try:
                result["report"], result["out"] = svc.jobs.run(tasks, job, voice, options)
            except BaseException as e:  # shown in the UI, never lost in a thread
                result["error"] = e

        th = threading.Thread(target=work, name="fedtts-batch", daemon=True)
        th.start()
        out_dir = job / "results"
        total = len(base)
        while th.is_alive():
            th.join(0.5)
            made = {p.stem for p in out_dir.glob("*.wav")} if out_dir.is_dir() else set()
            for row in base.values():
                if row[2] == "pending" and row[1] in made:
                    row[2] = "done"
            n = sum(r[2] == "done" for r in base.values())
            yield f"running: {n} of {total} done", list(base.values()), gr.skip()
        if "error" in result:
            e = result["error"]
            if isinstance(e, ServiceError):
                raise _err(e, svc)
            raise gr.Error(
                _public(e, job) if isinstance(e, BatchError) else f"batch failed: {_public(e, job)}"
            )
        report = result["report"]
        compare = out_dir / TEXT_COMPARE
        if compare.is_file():
            for line in compare.read_text(encoding="utf-8").splitlines():
                r = json.loads(line)
                row = base.get(r.get("line"))
                if row is not None:
                    row[2] = r.get("status", row[2])
                    row[3] = r.get("duration_s")
                    row[4] = r.get("error") or r.get("normalized") or row[4]
        for line, msg in report.failed:
            if line in base:
                base[line][2], base[line][4] = "failed", msg
        zip_path = report.zip_path
        msg = (
            f"finished: **{report.done} done**, {report.skipped} skipped, **{len(report.failed)} failed** "
            f"of {report.total}; {report.audio_s:.1f} s of audio in `{job.name}`"
        )
        yield msg, list(base.values()), str(zip_path) if zip_path else None

    run_btn.click(
        run,
        [files, voice, sample_rate, speed, use_dict],
        [progress, table, zip_out],
        concurrency_id="synthesis",
    )


# ---------------------------------------------------------------------- voices tab


def _voices_tab(svc: TTSService, voice_dds: list):
    gr.Markdown("### Enroll a voice")
    with gr.Row():
        with gr.Column():
            name = gr.Textbox(label="Name (letters, digits, _ . -)", elem_id="enroll-name")
            clip = gr.Audio(
                sources=["upload", "microphone"],
                type="filepath",
                label="Clip (3–30 s)",
                elem_id="enroll-clip",
            )
            rtext = gr.Textbox(label="Transcript of the clip (optional)")
        with gr.Column():
            consent = gr.Checkbox(label=CONSENT, value=False, elem_id="enroll-consent")
            consent_name = gr.Textbox(
                label="Who agreed to be cloned (their name; kept in the voice's consent record)",
                elem_id="enroll-consent-name",
            )
            keep = gr.Checkbox(
                label="Also keep a copy of the clip (otherwise only the voice profile is stored)"
            )
            enroll = gr.Button("Enroll", variant="primary", elem_id="enroll")
            status = gr.Markdown("", elem_id="enroll-status")
    gr.Markdown("### Saved voices")
    table = gr.Dataframe(
        headers=["name", "method", "base", "created", "speech_s", "clip kept"],
        interactive=False,
        elem_id="voices-table",
    )
    with gr.Row():
        pick = gr.Dropdown([], label="Saved voice", allow_custom_value=False, elem_id="voice-pick")
        delete = gr.Button("Delete", variant="stop", elem_id="voice-delete")
        export = gr.Button("Export (.fedvoice)", elem_id="voice-export")
    exported = gr.File(label="Exported voice", interactive=False, elem_id="voice-exported")
    names = svc.voice_names()
    gr.Markdown("Stock voices: " + ", ".join(f"`{n}`" for n in names["stock"]))

    def listing():
        profiles = svc.profiles.list()
        rows = [
            [
                p.name,
                p.method,
                p.base or "",
                p.created,
                p.speech_s,
                "yes" if p.clip_kept else "no",
            ]
            for p in profiles
        ]
        saved = [p.name for p in profiles]
        all_voices = _voice_choices(svc)
        dds = [gr.update(choices=all_voices) for _ in voice_dds]
        return [rows, gr.update(choices=saved, value=saved[0] if saved else None), *dds]

    outs = [table, pick, *voice_dds]

    def do_enroll(n, c, t, ok, who, k):
        if not ok:
            raise gr.Error("tick the consent box: cloning needs the speaker's agreement")
        if not (who or "").strip():
            raise gr.Error("give the name of the person who agreed to be cloned (consent record)")
        if not c:
            raise gr.Error("upload or record a clip first")
        try:
            text = (t or "").strip() or None
            info = svc.profiles.enroll((n or "").strip(), Path(c), True, text, bool(k), who.strip(), "ui")
        except ServiceError as e:
            raise _err(e, svc) from e
        m = info.meta
        base = f", base {m['base']}" if m.get("base") else ""
        msg = f"saved **{info.name}** (method {m.get('method')}{base}; {m.get('speech_s')} s of speech)"
        return [msg, *listing()]

    def do_delete(n):
        if not n:
            raise gr.Error("choose a saved voice")
        try:
            svc.profiles.delete(n)
        except ServiceError as e:
            raise _err(e, svc) from e
        return [f"deleted **{n}**", *listing()]

    def do_export(n):
        if not n:
            raise gr.Error("choose a saved voice")
        try:
            return str(svc.profiles.export(n))
        except ServiceError as e:
            raise _err(e, svc) from e

    enroll.click(do_enroll, [name, clip, rtext, consent, consent_name, keep], [status, *outs])
    delete.click(do_delete, pick, [status, *outs])
    export.click(do_export, pick, exported)
    return listing, outs


# ---------------------------------------------------------------------- system tab


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"


def _cap_text(o: OutputsInfo) -> str:
    """The output folder's limits as the System tab states them."""
    parts = []
    if o.max_bytes:
        parts.append(f"cap {_mb(o.max_bytes)}, oldest removed first")
    if o.max_age_s:
        parts.append(f"files kept {o.max_age_s / 86400:g} days")
    return "; ".join(parts) or "no cap; `fedtts outputs clean` empties it"


def _system_tab(svc: TTSService):
    with gr.Row():
        refresh = gr.Button("Refresh", elem_id="sys-refresh")
        clear = gr.Button("Clear caches", elem_id="sys-clear")
        free = gr.Button("Free memory (unload models)", variant="stop", elem_id="sys-free")
    action = gr.Markdown("")
    with gr.Row():
        versions_md = gr.Markdown(elem_id="sys-versions")
        state = gr.Markdown(elem_id="sys-state")
    gr.Markdown("### Federated learning")
    fed = gr.Markdown(elem_id="sys-federation")
    plot = gr.Plot(label="Training curve", visible=False)

    def info():
        v = versions()
        vt = "### Versions\n| part | version |\n|---|---|\n" + "\n".join(
            f"| {k} | {val} |" for k, val in v.items()
        )
        st = svc.status()
        c = svc.cache_info()
        fe = c.frontend
        fe_line = f"{fe['entries']} entries, {_mb(fe['bytes'])}" if fe else "not available yet"
        q = st.queue
        s = (
            "### Memory and caches\n"
            f"- memory in use: **{st.memory_mb:.0f} MB**; model loaded: **{'yes' if st.model_loaded else 'no'}**\n"
            f"- front-end cache: {fe_line}\n"
            f"- cloned voices kept in memory: {c.cloned_voices_in_memory}\n"
            f"- uploads: {c.uploads.files} files, {_mb(c.uploads.bytes)}\n"
            f"- outputs: {c.outputs.files} files, {_mb(c.outputs.bytes)} in `{c.outputs.path}` "
            f"({_cap_text(c.outputs)})\n"
            f"- jobs: {q['running']} running, {q['waiting']} waiting (limit {q['max_concurrent']} + queue "
            f"{q['queue_size']}); {q['completed']} done"
        )
        f = federation_status()
        if not f.available:
            return vt, s, f"Not available yet: {f.message}.", gr.update(visible=False)
        eps = "—" if f.epsilon is None else f"{f.epsilon:.3f}"
        ft = (
            f"- current global model: **v{f.current}**\n- privacy spent: **ε = {eps}** "
            f"(δ = {f.delta})\n- versions: {len(f.history)} in `{f.registry}`"
        )
        rejected = [v for v in f.versions if v["status"] == "rejected"]
        ft += f"\n- release gate: {len(rejected)} version(s) rejected (never made current)"
        for v in rejected[-3:]:
            ft += f"\n  - v{v['version']} (from v{v['parent']}): {v['reason']}"
        return vt, s, ft, gr.update(value=_fed_plot(f.history), visible=True)

    def do_clear():
        r = svc.clear_caches()
        return f"cleared: {r['frontend']} front-end cache entries, {r['cloned_voices']} cloned voices, {r['uploads']} uploads"

    def do_free():
        r = svc.free_memory()
        return f"models unloaded: memory {r['before_mb']:.0f} MB → {r['after_mb']:.0f} MB (they reload on next use)"

    gr.Markdown(
        "### Check a file\nIs it speech made with a cloned voice? Every fedtts clone carries the PerTh "
        "watermark (stock voices do not). WAV/FLAC/MP3/OGG/M4A."
    )
    with gr.Row():
        check_file = gr.File(label="Audio file to check", type="filepath", elem_id="sys-check-file")
        check_out = gr.Markdown(elem_id="sys-check-result")
    check_file.change(lambda p: _check_text(svc, p), check_file, check_out)

    outs = [versions_md, state, fed, plot]
    refresh.click(info, None, outs)
    clear.click(do_clear, None, action).then(info, None, outs)
    free.click(do_free, None, action).then(info, None, outs)
    return info, outs


def _check_text(svc: TTSService, path: str | None) -> str:
    """The System tab's watermark verdict for an uploaded file, in words."""
    if not path:
        return ""
    try:
        d = svc.detect(Path(path))
    except ServiceError as e:  # named by the file's own name, not the server's upload path
        return f"**cannot check**: {svc.reference_message(str(e), Path(path), Path(path).name)}"
    verdict = "**marked**: made with a cloned voice" if d.marked else "**not marked**"
    line = (
        f"{verdict} (confidence {d.confidence:.2f}); {100 * d.frame_share:.0f}% of frames carry the mark; "
        f"{d.sounding_s:.1f} s of sound in {d.duration_s:.1f} s"
    )
    return line + (f"\n\n{d.note}" if d.note else "")


def _fed_plot(history: list[dict]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    xs = [h["version"] for h in history]
    keys = sorted({k for h in history for k in h if k not in ("version", "created", "epsilon")})
    for k in keys[:4]:
        ax.plot(xs, [h.get(k, np.nan) for h in history], marker="o", label=k)
    ax.set_xlabel("global model version")
    if any(h.get("epsilon") is not None for h in history):
        ax2 = ax.twinx()
        ax2.plot(xs, [h.get("epsilon") or np.nan for h in history], "k--", label="ε")
        ax2.set_ylabel("ε spent")
    if keys:
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------- app


def build_ui(service: TTSService | ServiceConfig | None = None) -> gr.Blocks:
    svc = service if isinstance(service, TTSService) else TTSService(service)
    voice_dds: list = []
    with gr.Blocks(title="fedtts") as demo:
        gr.Markdown(INTRO)
        with gr.Tabs():
            with gr.Tab("Synthesis", id="synthesis"):
                _synthesis_tab(svc, voice_dds)
            with gr.Tab("Dictionary", id="dictionary"):
                dict_table, dict_rows = _dictionary_tab(svc)
            with gr.Tab("Batch", id="batch"):
                _batch_tab(svc, voice_dds)
            with gr.Tab("Voices", id="voices"):
                listing, voice_outs = _voices_tab(svc, voice_dds)
            with gr.Tab("System", id="system"):
                sys_info, sys_outs = _system_tab(svc)
        demo.load(dict_rows, None, dict_table)
        demo.load(listing, None, voice_outs)
        demo.load(sys_info, None, sys_outs)
    demo.service = svc  # type: ignore[attr-defined]
    return demo


THEME_FONTS = dict(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def launch(
    config: ServiceConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    warmup: bool = True,
    block: bool = True,
):
    """Start the UI (local fonts only, analytics off, files only from the output folder)."""
    svc = TTSService(config)
    if warmup:
        svc.warm_up()
    demo = build_ui(svc)
    demo.queue(default_concurrency_limit=svc.config.max_concurrent, max_size=max(svc.config.queue_size, 1))
    print(f"fedtts web UI on http://{host}:{port}", flush=True)
    demo.launch(
        server_name=host,
        server_port=port,
        allowed_paths=[str(svc.outputs.dir)],
        max_file_size=svc.config.max_upload_bytes,
        show_error=True,
        ssr_mode=False,
        footer_links=["api"],
        theme=gr.themes.Default(**THEME_FONTS),
        prevent_thread_lock=not block,
        quiet=True,
    )
    return demo
