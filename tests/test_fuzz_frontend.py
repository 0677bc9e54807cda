"""Property-based fuzzing of the text front end (issue 18): arbitrary Unicode, overrides, numbers,
mixed scripts and dictionary lines. Properties: never an exception other than TextError /
DictionaryError; the output holds only symbols of the model's vocabulary; every character that is
not spoken (foreign script, symbol, control character) is named in a note; an invalid pronunciation
is refused naming itself; numbers are always spelled out.

The real front end (jieba, pypinyin, espeak-ng); examples are bounded so all fuzz tests together stay
within the suite's time budget.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedtts.frontend import DictionaryError, Frontend, FrontendConfig, PronunciationDict, TextError
from fedtts.frontend.normalize import fullwidth_to_half
from fedtts.frontend.overrides import model_symbols
from fedtts.frontend.screen import SILENT, fold_numbers

# FEDTTS_FUZZ_SCALE=20 runs 20× the examples (a longer hunt by hand; CI uses 1)
SCALE = max(1, int(os.environ.get("FEDTTS_FUZZ_SCALE", "1")))
FUZZ = settings(
    max_examples=120 * SCALE, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

FRAGMENTS = [
    "重庆的银行",
    "今天下午三点",
    "Hello world.",
    "Dr. Smith",
    "GPU",
    "مرحبا",
    "こんにちは",
    "안녕",
    "Привет",
    "αβγ",
    "😀",
    "👨‍👩‍👧",
    "★",
    "\x1b[31m",
    "\x1b[0m",
    "^[[1;32m",
    "<speak>",
    "</speak>",
    "<break time='1s'/>",
    "**",
    "[重庆](chóng qìng)",
    "[重庆](chóng",
    "[AI](ˈeɪ ★)",
    "$12.50",
    "¥199",
    "50%",
    "2024-03-05",
    "15:30",
    "21st",
    "13812345678",
    "①",
    "Ⅻ",
    "²",
    "café",
    "\u202e",
    "\x00",
    "\ue000",
    "。",
    "，",
    "!",
    "…",
    " ",
    "\n",
]
texts = st.lists(st.one_of(st.text(max_size=6), st.sampled_from(FRAGMENTS)), max_size=6).map("".join)
# symbols normalisation reads as words next to a number ($5, 5%, ¥5, 5℃, a+b)
READ_AS_WORDS = set("$¥￥€£%℃°+=&~@")


@pytest.fixture(scope="module")
def fe() -> Frontend:
    return Frontend()


def _analyze(fe: Frontend, text: str):
    """(segments, notes), or (None, message) for a TextError; any other exception fails the test."""
    notes: list = []
    try:
        return fe.analyze(text, notes=notes), notes
    except TextError as e:
        return None, str(e)


def _check_symbols(segs) -> None:
    vocab = model_symbols()
    for s in segs:
        bad = {c for c in s.phonemes if c not in vocab and c != " "}
        assert not bad, (s, bad)
        assert s.phonemes.strip()


def _must_be_reported(c: str) -> bool:
    """A character that carries content and is not read by the front end: a letter of a script other
    than Chinese/Latin, a symbol, a control character. Punctuation, white space, combining accents
    (folded with their letter), number forms read as numbers and normalised symbols are not."""
    if c.isspace() or c in SILENT or c in READ_AS_WORDS or fold_numbers(c) != c:
        return False
    cat = unicodedata.category(c)
    if cat[0] in "PMZ" or cat == "Nd" or "\u4e00" <= c <= "\u9fff" or (c.isascii() and c.isalnum()):
        return False
    if cat[0] == "L" and unicodedata.name(c, "").startswith("LATIN"):
        base = unicodedata.normalize("NFKD", c)
        if base[:1].isascii() or c in "ßæÆœŒøØłŁđĐðÐþÞıħŋſ":
            return False
    return True


@FUZZ
@given(texts)
def test_any_text_gives_model_symbols_or_a_clear_refusal(fe, text):
    segs, notes = _analyze(fe, text)
    if segs is None:
        assert notes  # the TextError's message is not empty
        return
    _check_symbols(segs)


@FUZZ
@given(texts)
def test_every_dropped_character_is_reported(fe, text):
    text = text.replace("](", "] (")  # no inline overrides here (their text is a pronunciation)
    segs, notes = _analyze(fe, text)
    if segs is None:
        return
    dropped = "".join(p for n in notes for p in n.dropped)
    for c in text:
        half = fullwidth_to_half(c)
        if _must_be_reported(half) and half not in dropped and c not in dropped:
            # a character inside a removed markup tag or escape sequence is reported with it
            raise AssertionError(f"{c!r} (U+{ord(c):04X}) dropped without a note; notes: {notes}")


pinyin_ish = st.text(
    alphabet=st.sampled_from(list("abcdeghijklmnopqrstuwxyzv12345690 āáǎàōóǒòēéěèīíǐìūúǔùǖǘǚǜü'")),
    min_size=1,
    max_size=14,
)
ipa_ish = st.text(alphabet=st.sampled_from(list("ˈˌəɪeɛæaɑɔoʊuʌθðʃʒŋɹlmnptkbdgfvszhjw ★9ʔɾː")), max_size=12)


@FUZZ
@given(
    st.sampled_from(["我要去", "Hello ", "", "今天"]),
    st.sampled_from(["重庆", "银行", "AI", "GitHub", "长"]),
    st.one_of(pinyin_ish, ipa_ish, st.text(max_size=8)),
    st.sampled_from(["", "吧。", " now.", "，好"]),
)
def test_overrides_are_valid_or_refused_naming_them(fe, before, word, pron, after):
    text = f"{before}[{word}]({pron}){after}"
    segs, notes = _analyze(fe, text)
    if segs is None:
        if re.fullmatch(r"[^()\[\]\n]*", pron):  # a well-formed override: the refusal names it
            assert "pronunciation override" in notes or "nothing" in notes, notes
            assert f"at character {len(before) + 1}" in notes or "nothing" in notes
        return
    _check_symbols(segs)


@FUZZ
@given(st.sampled_from(["我要去", "今天去"]), st.sampled_from(["重庆", "银行"]), pinyin_ish)
def test_unbalanced_override_is_plain_text_never_letters(fe, before, word, dangling):
    dangling = dangling.replace(")", "")
    segs, notes = _analyze(fe, f"{before}[{word}]({dangling}")
    assert segs is not None
    assert " ".join(s.phonemes for s in segs) == fe.phonemize(before + word)
    assert any(n.kind == "override" for n in notes)


number = st.one_of(
    st.integers(min_value=0, max_value=10**15).map(str),
    st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False).map(lambda d: format(d, "f")),
    st.tuples(st.integers(1000, 2999), st.integers(0, 19), st.integers(0, 39)).map(
        lambda t: f"{t[0]}-{t[1]:02d}-{t[2]:02d}"
    ),
    st.tuples(st.integers(0, 29), st.integers(0, 69)).map(lambda t: f"{t[0]}:{t[1]:02d}"),
)
template = st.sampled_from(
    ["{}", "${}", "¥{}", "{}%", "{}km", "{}℃", "第{}名", "价格{}元", "{}st", "about {} people", "{}th"]
)


@FUZZ
@given(template, number, st.sampled_from(["", "今天", "Today "]))
def test_numbers_are_always_spelled_out(fe, tpl, num, context):
    segs, _ = _analyze(fe, context + tpl.format(num))
    assert segs is not None
    _check_symbols(segs)
    for s in segs:  # (the readable pinyin has tone numbers: only the normalised text is checked)
        assert not re.search(r"[0-9]", s.normalized), s


dict_value = st.one_of(st.text(max_size=10), pinyin_ish, ipa_ish, st.integers(), st.none())
dict_line = st.one_of(
    st.text(max_size=30),
    st.builds(
        lambda g, p: json.dumps({"grapheme": g, "phoneme": p}, ensure_ascii=False),
        st.one_of(st.sampled_from(["银行", "AI", "长大"]), st.text(max_size=6)),
        dict_value,
    ),
    st.builds(lambda g, p: json.dumps({g: p}, ensure_ascii=False), st.text(max_size=4), st.text(max_size=12)),
)


@settings(
    max_examples=80 * SCALE,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(dict_line, min_size=1, max_size=5))
def test_dictionary_lines_load_valid_or_fail_naming_the_line(tmp_path, lines):
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    try:
        d = PronunciationDict.load(path)
    except DictionaryError as e:
        m = re.match(re.escape(str(path)) + r":(\d+): ", str(e))
        assert m, str(e)
        assert 1 <= int(m.group(1)) <= len("\n".join(lines).split("\n"))
        return
    fe = Frontend(FrontendConfig(dict_path=path, use_dict=True))
    for g in list(d.entries)[:3]:
        segs, _ = _analyze(fe, g)
        if segs is not None:
            _check_symbols(segs)
