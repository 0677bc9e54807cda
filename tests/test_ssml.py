"""Issue 20.3: the SSML subset (``fedtts.frontend.ssml`` + ``fedtts.pipeline.ssml_render``).

A table of documents → parsed spans (each tag, Mandarin and English), a table of refusals with their
line and column, the front end's segments, and real synthesis through the Kokoro engine: a 1 s break
adds 1 s, rate 50 % makes speech longer, <voice> renders with that voice, volume scales the samples;
then the CLI (exit 2), the HTTP API (400) and batch (the failed line) on bad SSML.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

from fedtts.frontend import Frontend, OverrideError, TextError
from fedtts.frontend.overrides import check_pronunciation
from fedtts.frontend.ssml import (
    _LETTER_IPA,
    BREAK_STRENGTHS,
    MAX_BREAK_S,
    MAX_DEPTH,
    PARAGRAPH_PAUSE,
    SsmlError,
    is_ssml,
    parse_ssml,
)

# ------------------------------------------------------------------------------ parse table
# (id, document, expected spans as (text, {field: value}) — fields checked only when given —,
#  expected leading silence, a note substring or None)
S = "<speak>{}</speak>"
CASES = [
    (
        "break-1s-en",
        S.format('Hello <break time="1s"/> world.'),
        [("Hello", {"break_s": 1.0}), ("world.", {})],
        0,
        None,
    ),
    (
        "break-ms-zh",
        S.format('你好<break time="500ms"/>世界。'),
        [("你好", {"break_s": 0.5}), ("世界。", {})],
        0,
        None,
    ),
    (
        "break-strong",
        S.format('A <break strength="strong"/> B'),
        [("A", {"break_s": BREAK_STRENGTHS["strong"]}), ("B", {})],
        0,
        None,
    ),
    (
        "break-default-medium",
        S.format("A <break/> B"),
        [("A", {"break_s": BREAK_STRENGTHS["medium"]}), ("B", {})],
        0,
        None,
    ),
    (
        "break-none",
        S.format('One. <break strength="none"/> Two.'),
        [("One.", {"break_s": 0.0}), ("Two.", {})],
        0,
        None,
    ),
    (
        "break-time-wins",
        S.format('A <break time="250ms" strength="x-strong"/> B'),
        [("A", {"break_s": 0.25}), ("B", {})],
        0,
        None,
    ),
    ("break-leading", S.format('<break time="1.5s"/>Hi.'), [("Hi.", {"break_s": None})], 1.5, None),
    (
        "breaks-add-up",
        S.format('A<break time="300ms"/><break time="200ms"/>B'),
        [("A", {"break_s": 0.5}), ("B", {})],
        0,
        None,
    ),
    (
        "break-capped",
        S.format('A<break time="60s"/>B'),
        [("A", {"break_s": MAX_BREAK_S}), ("B", {})],
        0,
        "cut to 10 s",
    ),
    ("break-trailing", S.format('Bye.<break time="2s"/>'), [("Bye.", {"break_s": 2.0})], 0, None),
    (
        "rate-percent",
        S.format('<prosody rate="50%">slow words</prosody>'),
        [("slow words", {"rate": 0.5})],
        0,
        None,
    ),
    (
        "rate-keyword-zh",
        S.format('<prosody rate="x-fast">很快</prosody>'),
        [("很快", {"rate": 1.75})],
        0,
        None,
    ),
    (
        "rate-relative",
        S.format('<prosody rate="+20%">a bit faster</prosody>'),
        [("a bit faster", {"rate": 1.2})],
        0,
        None,
    ),
    (
        "rate-nested-multiplies",
        S.format('<prosody rate="50%">a <prosody rate="1.5">b</prosody></prosody>'),
        [("a", {"rate": 0.5}), ("b", {"rate": 0.75})],
        0,
        None,
    ),
    ("pitch-semitones", S.format('<prosody pitch="+2st">up</prosody>'), [("up", {"pitch_st": 2.0})], 0, None),
    ("pitch-keyword", S.format('<prosody pitch="x-low">低</prosody>'), [("低", {"pitch_st": -4.0})], 0, None),
    (
        "pitch-percent",
        S.format('<prosody pitch="-10%">down</prosody>'),
        [("down", {"pitch_st": 12 * math.log2(0.9)})],
        0,
        None,
    ),
    (
        "pitch-hz-ignored",
        S.format('<prosody pitch="200Hz">x</prosody>'),
        [("x", {"pitch_st": 0.0})],
        0,
        "pitch in Hz is ignored",
    ),
    (
        "volume-db",
        S.format('<prosody volume="-6dB">quiet</prosody>'),
        [("quiet", {"volume_db": -6.0})],
        0,
        None,
    ),
    (
        "volume-keyword-zh",
        S.format('<prosody volume="loud">大声</prosody>'),
        [("大声", {"volume_db": 4.0})],
        0,
        None,
    ),
    (
        "volume-silent",
        S.format('<prosody volume="silent">x</prosody>'),
        [("x", {"volume_db": -math.inf})],
        0,
        None,
    ),
    (
        "prosody-duration-noted",
        S.format('<prosody duration="2s">x</prosody>'),
        [("x", {"rate": 1.0})],
        0,
        "duration=…> is not supported",
    ),
    (
        "say-as-characters-en",
        S.format('Code <say-as interpret-as="characters">AB1</say-as>.'),
        [("Code [A](ˈA) [B](bˈi) one.", {})],
        0,
        None,
    ),
    (
        "say-as-spell-out-zh",
        S.format('我叫<say-as interpret-as="spell-out">AB</say-as>。'),
        [("我叫[A](ˈA)[B](bˈi)。", {})],
        0,
        None,
    ),
    (
        "say-as-digits-en",
        S.format('Room <say-as interpret-as="digits">2024</say-as>'),
        [("Room two zero two four", {})],
        0,
        None,
    ),
    (
        "say-as-digits-zh",
        S.format('房间<say-as interpret-as="digits">2024</say-as>'),
        [("房间二零二四", {})],
        0,
        None,
    ),
    (
        "say-as-cardinal-en",
        S.format('<say-as interpret-as="cardinal">1,234</say-as> people'),
        [("one thousand two hundred thirty-four people", {})],
        0,
        None,
    ),
    (
        "say-as-cardinal-zh",
        S.format('共<say-as interpret-as="cardinal">-1234</say-as>元'),
        [("共负一千二百三十四元", {})],
        0,
        None,
    ),
    (
        "say-as-ordinal-en",
        S.format('the <say-as interpret-as="ordinal">21</say-as> time'),
        [("the twenty-first time", {})],
        0,
        None,
    ),
    (
        "say-as-ordinal-zh",
        S.format('他是<say-as interpret-as="ordinal">3</say-as>名'),
        [("他是第三名", {})],
        0,
        None,
    ),
    (
        "say-as-date-en",
        S.format('on <say-as interpret-as="date" format="dmy">05/03/2024</say-as>'),
        [("on March fifth, twenty twenty-four", {})],
        0,
        None,
    ),
    (
        "say-as-date-zh",
        S.format('今天是<say-as interpret-as="date">2024-03-05</say-as>'),
        [("今天是二零二四年三月五日", {})],
        0,
        None,
    ),
    (
        "say-as-time-en",
        S.format('at <say-as interpret-as="time">2:05pm</say-as>'),
        [(f"at two oh five [PM]({_LETTER_IPA['p']} {_LETTER_IPA['m']})", {})],
        0,
        None,
    ),
    (
        "say-as-time-zh",
        S.format('<say-as interpret-as="time">14:30</say-as>开会'),
        [("十四点三十分开会", {})],
        0,
        None,
    ),
    (
        "say-as-telephone-en",
        S.format('Call <say-as interpret-as="telephone">+1 555-1234</say-as>'),
        [("Call plus one, five five five, one two three four", {})],
        0,
        None,
    ),
    (
        "say-as-telephone-zh",
        S.format('电话<say-as interpret-as="telephone">138-1234</say-as>'),
        [("电话幺三八，幺二三四", {})],
        0,
        None,
    ),
    (
        "say-as-hint-from-speak-lang",
        '<speak xml:lang="zh-CN"><say-as interpret-as="cardinal">12</say-as></speak>',
        [("十二", {})],
        0,
        None,
    ),
    (
        "say-as-mismatch-read-as-written",
        S.format('<say-as interpret-as="date">soon</say-as>'),
        [("soon", {})],
        0,
        "is not a date",
    ),
    (
        "say-as-unknown-type",
        S.format('<say-as interpret-as="currency">$5</say-as>'),
        [("$5", {})],
        0,
        "'currency'> is not supported",
    ),
    (
        "phoneme-ipa",
        S.format('a <phoneme alphabet="ipa" ph="təˈmɑːtoʊ">tomato</phoneme>'),
        [("a [tomato](təˈmɑːtoʊ)", {})],
        0,
        None,
    ),
    (
        "phoneme-pinyin-zh",
        S.format('去<phoneme alphabet="x-pinyin" ph="chong2 qing4">重庆</phoneme>'),
        [("去 [重庆](chong2 qing4)", {})],
        0,
        None,
    ),
    (
        "phoneme-alphabet-unknown",
        S.format('<phoneme alphabet="x-sampa" ph="t@">the</phoneme>'),
        [("the", {})],
        0,
        "x-sampa",
    ),
    (
        "sub-en",
        S.format('<sub alias="World Wide Web">WWW</sub> pages'),
        [("World Wide Web pages", {})],
        0,
        None,
    ),
    ("sub-zh", S.format('<sub alias="世界卫生组织">WHO</sub>说'), [("世界卫生组织说", {})], 0, None),
    (
        "voice-dialogue",
        S.format('<voice name="jm_kumo">Hi.</voice><voice name="jf_alpha">你好。</voice>'),
        [("Hi.", {"voice": "jm_kumo", "voice_column": 8}), ("你好。", {"voice": "jf_alpha"})],
        0,
        None,
    ),
    (
        "voice-and-prosody",
        S.format('A <voice name="jm_kumo">B <prosody rate="slow">C</prosody></voice> D'),
        [
            ("A", {"voice": None}),
            ("B", {"voice": "jm_kumo", "rate": 1.0}),
            ("C", {"voice": "jm_kumo", "rate": 0.75}),
            ("D", {"voice": None}),
        ],
        0,
        None,
    ),
    (
        "voice-without-name",
        S.format('<voice gender="female">x</voice>'),
        [("x", {"voice": None})],
        0,
        "without a name",
    ),
    (
        "paragraphs",
        S.format("<p>First one</p><p>Second one</p>"),
        [("First one.", {"min_pause_s": PARAGRAPH_PAUSE}), ("Second one.", {})],
        0,
        None,
    ),
    ("sentences-en", S.format("<s>One</s><s>Two</s>"), [("One. Two.", {})], 0, None),
    ("sentences-zh", S.format("<s>你好</s><s>再见</s>"), [("你好。再见。", {})], 0, None),
    (
        "lang-zh-forces-numbers",
        S.format('I have <lang xml:lang="zh">3</lang> apples'),
        [("I have 三 apples", {})],
        0,
        None,
    ),
    (
        "lang-en-in-zh",
        S.format('我有<lang xml:lang="en-US">3</lang>个苹果'),
        [("我有three个苹果", {})],
        0,
        None,
    ),
    ("lang-unsupported", S.format('<lang xml:lang="ja">x</lang>'), [("x", {})], 0, "'ja' is not spoken"),
    (
        "unknown-tag-position",
        "<speak>\n  hello <foo>there</foo>\n</speak>",
        [("hello there", {})],
        0,
        "line 2, column 9: unknown SSML tag <foo>",
    ),
    (
        "unsupported-emphasis",
        S.format("<emphasis>very</emphasis> good"),
        [("very good", {})],
        0,
        "<emphasis>: emphasis is not supported",
    ),
    ("entities", S.format("Tom &amp; Jerry &lt;3 &#20320;"), [("Tom & Jerry <3 你", {})], 0, None),
    (
        "declaration-namespace",
        '  <?xml version="1.0"?>\n<speak version="1.1" xmlns="http://www.w3.org/2001/10/synthesis" xml:lang="en-US">Hi</speak>',
        [("Hi", {})],
        0,
        None,
    ),
    (
        "whitespace-collapsed",
        "<speak>\n    One line\n    continued\n</speak>",
        [("One line continued", {})],
        0,
        None,
    ),
    ("many-unknown-tags-one-note", S.format("<x>a</x>" * 10000), [("a" * 10000, {})], 0, "(and 9999 more)"),
    (
        "nesting-at-limit",
        S.format("<prosody>" * (MAX_DEPTH - 1) + "deep" + "</prosody>" * (MAX_DEPTH - 1)),
        [("deep", {})],
        0,
        None,
    ),
]


@pytest.mark.parametrize(("doc", "spans", "lead", "note"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_parse_table(doc, spans, lead, note):
    assert is_ssml(doc)
    got = parse_ssml(doc)
    assert [s.text for s in got.spans] == [t for t, _ in spans]
    for span, (_, fields) in zip(got.spans, spans, strict=True):
        for k, v in fields.items():
            actual = getattr(span, k)
            assert (actual == v) if isinstance(v, str) or v is None else actual == pytest.approx(v), (
                k,
                actual,
            )
    assert got.lead_s == pytest.approx(lead)
    messages = " | ".join(n.message for n in got.notes)
    if note is None:
        assert not got.notes, messages
    else:
        assert note in messages


# (id, document, exception type, message substring, line, column)
ERRORS = [
    ("mismatched", "<speak>hi <b></speak>", SsmlError, "mismatched tag", 1, 14),
    ("unclosed-multiline", "<speak>\n<p>one\n", SsmlError, "no element found", 3, 1),
    ("junk-after", "<speak>a</speak>b", SsmlError, "after </speak>", 1, 17),
    (
        "billion-laughs",
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><speak>&lol2;</speak>',
        SsmlError,
        "<!DOCTYPE>",
        1,
        None,
    ),
    ("html-entity", "<speak>\n a&nbsp;b</speak>", SsmlError, "undefined entity", 2, 3),
    ("nested-speak", "<speak>a <speak>b</speak></speak>", SsmlError, "nested <speak>", 1, 10),
    (
        "deep-10000",
        "<speak>" + "<prosody>" * 10000 + "x" + "</prosody>" * 10000 + "</speak>",
        SsmlError,
        f"deeper than {MAX_DEPTH}",
        1,
        8 + 9 * (MAX_DEPTH - 1),
    ),
    ("break-time", '<speak>a<break time="5 sec"/></speak>', SsmlError, "500ms or 1.5s", 1, 9),
    ("break-strength", '<speak>a<break strength="huge"/></speak>', SsmlError, "break strength 'huge'", 1, 9),
    ("rate", '<speak><prosody rate="-5">x</prosody></speak>', SsmlError, "a rate is", 1, 8),
    ("volume", '<speak>\n\n   <prosody volume="loudest">x</prosody></speak>', SsmlError, "a volume is", 3, 4),
    ("pitch", '<speak><prosody pitch="up">x</prosody></speak>', SsmlError, "a pitch is", 1, 8),
    (
        "phoneme-bad-pinyin",
        '<speak>\n  <phoneme alphabet="x-pinyin" ph="xyz9">重庆</phoneme></speak>',
        OverrideError,
        "'xyz9' is not a pinyin syllable",
        2,
        3,
    ),
    (
        "phoneme-bad-ipa",
        '<speak>a <phoneme ph="ˈeɪ ★">AI</phoneme></speak>',
        OverrideError,
        "symbol '★'",
        1,
        10,
    ),
    (
        "phoneme-x-pinyin-not-pinyin",
        '<speak><phoneme alphabet="x-pinyin" ph="hello">hi</phoneme></speak>',
        (SsmlError, OverrideError),
        "hello",
        1,
        8,
    ),
    ("phoneme-no-ph", "<speak><phoneme>hi</phoneme></speak>", SsmlError, "needs a ph attribute", 1, 8),
    ("root-not-speak", '<?xml version="1.0"?><!DOCTYPE speak><speak/>', SsmlError, "<!DOCTYPE>", 1, None),
]


@pytest.mark.parametrize(
    ("doc", "exc", "message", "line", "column"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS]
)
def test_refusals_name_line_and_column(doc, exc, message, line, column):
    t0 = time.perf_counter()
    with pytest.raises(exc) as info:
        parse_ssml(doc)
    assert time.perf_counter() - t0 < 1.0  # 10 000 nested tags are refused at once
    err = info.value
    assert isinstance(err, TextError) and getattr(err, "fatal", False)  # CLI exit 2, HTTP 400
    assert message in str(err)
    where = f"line {line}, column {column}" if column is not None else f"line {line}, column"
    assert where in str(err), str(err)


def test_detection_and_letter_names_are_valid():
    assert is_ssml("  \n<speak>x</speak>") and is_ssml('<?xml version="1.0"?><speak>x</speak>')
    assert not is_ssml("say <speak> later") and not is_ssml("<speaker>x</speaker>")
    for letter, ph in _LETTER_IPA.items():  # every spelled letter is an override the model can say
        assert check_pronunciation(letter.upper(), ph)[2] == "en"


def test_frontend_reads_ssml_with_pauses_and_notes():
    fe = Frontend()
    notes: list = []
    segs = fe.analyze(
        '<speak>价格<say-as interpret-as="digits">12</say-as><break time="2s"/><foo>Hello</foo></speak>',
        notes,
    )
    assert segs[0].normalized == "价格一二" and segs[0].pause_after == 2.0
    assert segs[-1].lang == "en" and "hɛlˈO" in segs[-1].phonemes.replace("ə", "ɛ")
    assert any("<foo>" in n.message and n.kind == "ssml" for n in notes)
    with pytest.raises(SsmlError, match="line 1, column 16"):
        fe.analyze("<speak>oops <b></speak>")
    # not SSML: tags in the middle of a text are still dropped with a note
    notes = []
    fe.analyze("well <break/> ok", notes)
    assert notes and "not supported in the middle" in notes[0].message


# ------------------------------------------------------------------------------ real synthesis


def _say(synth, voice, text):
    from fedtts.pipeline import SynthesisOptions

    return synth.synthesize(text, voice, SynthesisOptions(seed=3))


def _longest_silence(audio: np.ndarray, sr: int) -> float:
    quiet = np.abs(audio) < 1e-3
    best = run = 0
    for q in quiet:
        run = run + 1 if q else 0
        best = max(best, run)
    return best / sr


@pytest.mark.slow
def test_break_adds_its_time_of_silence(synth, voice):
    none = _say(synth, voice, '<speak>Good morning. <break strength="none"/> See you.</speak>')
    one = _say(synth, voice, '<speak>Good morning. <break time="1s"/> See you.</speak>')
    assert one.duration_s - none.duration_s == pytest.approx(1.0, abs=0.02)
    assert _longest_silence(one.audio, one.sample_rate) >= 0.98
    assert [c.pause_s for c in one.chunks][0] == pytest.approx(1.0, abs=1e-3)
    lead = _say(synth, voice, '<speak><break time="500ms"/>你好。</speak>')
    assert lead.chunks[0].text == "" and lead.chunks[0].pause_s == pytest.approx(0.5)
    assert np.abs(lead.audio[: int(0.5 * lead.sample_rate)]).max() == 0.0


@pytest.mark.slow
def test_prosody_rate_and_volume(synth, voice):
    base = _say(synth, voice, "<speak>今天天气很好。</speak>")
    slow = _say(synth, voice, '<speak><prosody rate="50%">今天天气很好。</prosody></speak>')
    assert slow.duration_s > 1.6 * base.duration_s
    soft = _say(synth, voice, '<speak><prosody volume="-6dB">今天天气很好。</prosody></speak>')
    assert len(soft.audio) == len(base.audio)
    assert np.abs(soft.audio).max() / np.abs(base.audio).max() == pytest.approx(10 ** (-6 / 20), rel=0.01)


@pytest.mark.slow
def test_voice_switches_and_pitch_shifts_the_pack(synth, voice):
    from fedtts.pipeline.ssml_render import span_voices
    from fedtts.voice import stock_voice

    kumo = stock_voice("jm_kumo")
    plain = _say(synth, kumo, "Nice to meet you.")
    ssml = _say(synth, voice, '<speak><voice name="jm_kumo">Nice to meet you.</voice></speak>')
    own = _say(synth, voice, "Nice to meet you.")
    assert np.array_equal(ssml.audio, plain.audio)  # rendered with jm_kumo, exactly as plain text
    assert len(own.audio) != len(plain.audio) or not np.allclose(own.audio, plain.audio, atol=1e-3)
    doc = parse_ssml('<speak>a <prosody pitch="+3st">b</prosody> <voice name="jm_kumo">c</voice></speak>')
    vs = span_voices(doc, voice)
    assert vs[0] is voice and vs[1].meta.get("pitch_st") == 3.0 and vs[2].name == "jm_kumo"
    assert not np.allclose(vs[1].pack, voice.pack)
    with pytest.raises(SsmlError, match=r"line 1, column 11: <voice name='nobody'>: unknown voice 'nobody'"):
        _say(synth, voice, '<speak>hi <voice name="nobody">x</voice></speak>')


@pytest.mark.slow
def test_dialogue_in_mandarin_and_english_streams_in_order(synth, voice):
    from fedtts.pipeline import SynthesisOptions

    doc = (
        '<speak><voice name="jm_kumo"><s>你好</s></voice><break time="300ms"/>'
        '<voice name="jf_alpha">Call <say-as interpret-as="telephone">555-1234</say-as>.</voice></speak>'
    )
    chunks = list(synth.stream(doc, voice, SynthesisOptions(seed=3)))
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert chunks[0].normalized == "你好。" and chunks[0].pause_s == pytest.approx(0.3, abs=1e-3)
    assert "fivefivefive,onetwothreefour" in chunks[-1].normalized.replace(" ", "")
    assert all(c.since_start_s >= 0 for c in chunks)


# ------------------------------------------------------------------------------ the doors


def test_cli_say_refuses_bad_ssml_with_exit_2(tmp_path, capsys):
    from fedtts.app.cli import main

    out = tmp_path / "o.wav"
    assert main(["say", "<speak>\n  <prosody rate='fast'>hi</prosodi></speak>", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "error: SSML line 2, column" in err and "mismatched tag" in err
    assert not out.exists()


@pytest.mark.slow
def test_api_400_for_bad_ssml_and_audio_for_good(tmp_path, synth):
    from fastapi.testclient import TestClient

    from fedtts.app.server import create_app
    from fedtts.app.service import ServiceConfig, TTSService

    svc = TTSService(
        ServiceConfig(output_dir=tmp_path / "out", upload_dir=tmp_path / "up"), synthesizer=synth
    )
    with TestClient(create_app(svc)) as client:
        r = client.post("/v1/audio/speech", json={"input": "<speak>a <b>c</speak>", "response_format": "wav"})
        assert r.status_code == 400 and "line 1, column 14" in r.json()["error"]["message"]
        r = client.post("/v1/audio/speech", json={"input": '<speak><voice name="ghost">x</voice></speak>'})
        assert r.status_code == 400 and "ghost" in r.json()["error"]["message"]
        body = {"input": '<speak>Hi.<break time="1s"/></speak>', "response_format": "wav", "stream": True}
        r = client.post("/v1/audio/speech", json=body)
        assert r.status_code == 200 and len(r.content) > 24000 * 2  # ≥ 1 s of 16-bit audio
    # the UI's preview goes through the same front end
    segs = svc.analyze('<speak>A<break time="700ms"/>B</speak>', use_dict=False)
    assert [s.pause_after for s in segs][0] == 0.7


@pytest.mark.slow
def test_batch_reports_the_bad_ssml_line(tmp_path, synth):
    from fedtts.app.batch import BatchConfig, run_batch

    tasks = tmp_path / "t.jsonl"
    rows = [
        {"input_text": '<speak>你好<break time="200ms"/>OK.</speak>', "output_name": "good"},
        {"input_text": "<speak><p>unclosed</speak>", "output_name": "bad"},
    ]
    tasks.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    report = run_batch(
        BatchConfig(tasks=tasks, out_dir=tmp_path / "out", voice="jf_alpha", progress=False), synth
    )
    assert report.done == 1 and [line for line, _ in report.failed] == [2]
    assert "SSML line 1, column 19" in report.failed[0][1]
    assert (tmp_path / "out" / "good.wav").is_file() and not (tmp_path / "out" / "bad.wav").exists()


def test_mangled_documents_raise_only_text_errors():
    """Random cuts, insertions and swaps of a document using every tag: a TextError or a parse, never
    another exception (the API would answer 500, the batch would stop)."""
    import random

    seed = (
        '<speak xml:lang="zh-CN"><p><s>价格<say-as interpret-as="cardinal">1234</say-as></s></p>'
        '<voice name="jm_kumo"><prosody rate="50%" pitch="+2st" volume="-3dB">Hi <break time="1s"/>'
        '<say-as interpret-as="date">2024-03-05</say-as> <say-as interpret-as="time">9:05am</say-as> '
        '<say-as interpret-as="telephone">+1 555</say-as> <say-as interpret-as="ordinal">3</say-as>'
        '<say-as interpret-as="digits">42</say-as><say-as interpret-as="characters">AB</say-as></prosody>'
        '</voice><phoneme alphabet="x-pinyin" ph="chong2 qing4">重庆</phoneme><sub alias="W">X</sub>'
        '<lang xml:lang="en">3</lang>&amp;&#20320;</speak>'
    )
    fe = Frontend()
    rng = random.Random(20)
    junk = list('<>/="&;# 0129:%-+.abspeak\n你')
    for n in range(400):
        doc = list(seed)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(doc))
            op = rng.random()
            if op < 0.4:
                del doc[i : i + rng.randint(1, 6)]
            elif op < 0.8:
                doc.insert(i, rng.choice(junk))
            else:
                j = rng.randrange(len(doc))
                doc[i], doc[j] = doc[j], doc[i]
        text = "".join(doc)
        try:
            parse_ssml(text)
            if n % 10 == 0:  # and the front end reads what the parse made of it
                fe.analyze(text)
        except TextError:
            pass
