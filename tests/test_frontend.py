"""Front end: polyphones/numbers/sandhi table, English, dictionary, segmentation, cache, bad input."""

from __future__ import annotations

import json

import pytest

from fedtts.frontend import (
    DictionaryError,
    Frontend,
    FrontendConfig,
    PronunciationDict,
    TextError,
    format_analysis,
)
from fedtts.frontend.cache import cache_clear, cache_info
from fedtts.frontend.normalize import normalize


@pytest.fixture(scope="module")
def fe():
    return Frontend()


ZH_CASES = [
    ("重庆", "chong2 qing4"),
    ("银行", "yin2 hang2"),
    ("行长", "hang2 zhang3"),
    ("长大", "zhang3 da4"),
    ("还钱", "huan2 qian2"),
    ("还是", "hai2 shi4"),
    ("重新", "chong2 xin1"),
    ("音乐", "yin1 yue4"),
    ("快乐", "kuai4 le4"),
    ("行走", "xing2 zou3"),
    ("觉得", "jue2 de5"),
    ("睡觉", "shui4 jiao4"),
    ("好了", "hao3 le5"),
    ("首都", "shou3 du1"),
    ("都是", "dou1 shi4"),
    ("为了", "wei4 le5"),
    ("因为", "yin1 wei4"),
    ("得到", "de2 dao4"),
    ("得去", "dei3 qu4"),
    ("朝阳", "zhao1 yang2"),
    ("朝代", "chao2 dai4"),
    ("的确", "di2 que4"),
    ("目的", "mu4 di4"),
    ("地方", "di4 fang5"),
    ("着急", "zhao2 ji2"),
    ("看着", "kan4 zhe5"),
    ("长江", "chang2 jiang1"),
    ("便宜", "pian2 yi5"),
    # 3-3 sandhi
    ("你好", "ni2 hao3"),
    ("老虎", "lao2 hu3"),
    ("了解", "liao2 jie3"),
    ("展览馆", "zhan2 lan2 guan3"),
    # 一 / 不
    ("一个", "yi2 ge4"),
    ("一天", "yi4 tian1"),
    ("第一", "di4 yi1"),
    ("一百", "yi4 bai3"),
    ("不对", "bu2 dui4"),
    ("不好", "bu4 hao3"),
    ("看一看", "kan4 yi5 kan4"),
    ("好不好", "hao3 bu5 hao3"),
    # erhua
    ("一会儿", "yi2 huir4"),
    ("小狗儿", "xiao2 gour3"),
    ("女儿", "nv3 er2"),
    # numbers, dates, times, money, percent, phone, units
    ("2024年", "er4 ling2 er4 si4 nian2"),
    ("3月5日", "san1 yue4 wu3 ri4"),
    ("下午3:05", "xia4 wu3 san1 dian3 wu3 fen1"),
    ("是50%", "shi4 bai3 fen1 zhi1 wu3 shi2"),
    ("电话110", "dian4 hua4 yao1 yao1 ling2"),
]


@pytest.mark.parametrize(("text", "expected"), [c for c in ZH_CASES if c[1]])
def test_zh_pinyin_table(fe, text, expected):
    assert fe.analyze(text)[0].readable == expected


ZH_NORM = [
    ("日期2024-03-05", "日期二零二四年三月五日"),
    ("下午15:30到", "下午十五点三十分到"),
    ("电话13812345678", "电话幺三八幺二三四五六七八"),
    ("价格¥12.5", "价格十二点五元"),
    # trailing zeros of an amount are not read out
    ("只要¥199.50。", "只要一百九十九点五元。"),
    ("共￥20.00", "共二十元"),
    # a keyword before an area-code number must not split it into digits + a quantity
    ("请拨打电话010-62345678咨询", "请拨打电话零幺零，六二三四五六七八咨询"),
    ("热线400-8208820", "热线四零零，八二零八八二零"),
    ("共有62345678人", "共有六千二百三十四万五千六百七十八人"),
    ("涨了50%", "涨了百分之五十"),
    ("跑了5km", "跑了五公里"),
    ("气温25℃", "气温二十五摄氏度"),
    ("共１２３个", "共一百二十三个"),
]


@pytest.mark.parametrize(("text", "expected"), ZH_NORM)
def test_zh_normalize(text, expected):
    assert normalize(text) == expected


EN_NORM = [
    ("Dr. Smith", "Doctor Smith"),
    ("$3.50", "three dollars and fifty cents"),
    ("the 21st", "the twenty-first"),
    ("in 1999", "in nineteen ninety-nine"),
    ("25%", "twenty-five percent"),
    ("on 2024-03-05", "on March fifth, twenty twenty-four"),
    ("at 15:30", "at fifteen thirty"),
    ("1,234", "one thousand two hundred thirty-four"),
    ("call 555-123-4567", "call five five five one two three four five six seven"),
]


@pytest.mark.parametrize(("text", "expected"), EN_NORM)
def test_en_normalize(text, expected):
    assert normalize(text) == expected


def test_misaki_conventions(fe):
    # same symbols misaki's ZHG2P gives for these words
    assert fe.phonemize("重庆") == "ꭧʰʊ↗ŋʨʰi↘ŋ"
    assert fe.phonemize("银行") == "i↗nxa↗ŋ"


def test_english_g2p_symbols(fe):
    seg = fe.analyze("Hello, the judge chose a boy.")[0]
    assert seg.lang == "en"
    for sym in ("O", "ʤ", "Y"):
        assert sym in seg.phonemes
    assert "^" not in seg.phonemes and "ː" not in seg.phonemes
    assert "oʊ" in seg.readable


def test_acronym_spelled(fe):
    assert fe.phonemize("GPU") == "ʤˈi pˈi jˈu"


def test_mixed(fe):
    seg = fe.analyze("我用Python写代码。")[0]
    assert seg.lang == "mixed"
    assert "wo↓" in seg.phonemes and "pˈIθ" in seg.phonemes


def test_segments_and_pauses(fe):
    segs = fe.analyze("第一句话。Second sentence here! 第三句")
    assert [s.lang for s in segs] == ["zh", "en", "zh"]
    assert segs[0].normalized.startswith("第一")
    assert all(s.pause_after > 0 for s in segs)
    assert "readable:" in format_analysis(segs)


def test_segments_fit_token_limit(fe):
    from fedtts.engine.assets import load_vocab

    vocab = load_vocab()
    text = (
        "我们一会儿去玩儿，到了。" * 30
        + "重庆的银行今天下午三点关门，" * 60
        + "The quick brown fox jumps over the lazy dog " * 40
        + "。"
    )
    segs = fe.analyze(text)
    assert len(segs) > 2
    for s in segs:
        ids = [vocab[c] for c in s.phonemes if c in vocab]
        assert 0 < len(ids) <= 510
        assert all(c in vocab or c == " " for c in s.phonemes), set(s.phonemes) - set(vocab) - {" "}


def test_markup_and_emoji_stripped(fe):
    seg = fe.analyze("**你好** <b>世界</b> 😀")[0]
    assert seg.normalized.replace(" ", "") == "你好世界"


@pytest.mark.parametrize("bad", ["", "   \n\t", "😀😀 ### ***", "※ ★ ♥ § ~~~"])
def test_bad_text(fe, bad):
    with pytest.raises(TextError):
        fe.analyze(bad)


# ------------------------------------------------------------------ dictionary
def _write(tmp_path, lines):
    p = tmp_path / "d.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def test_dictionary_zh_en_longest_match(tmp_path):
    p = _write(
        tmp_path,
        [
            json.dumps({"grapheme": "长", "phoneme": "chang2"}, ensure_ascii=False),
            json.dumps({"grapheme": "长大", "phoneme": "zhǎng dà"}, ensure_ascii=False),
            json.dumps({"grapheme": "AI", "phoneme": "ˈeɪ ˈaɪ"}, ensure_ascii=False),
            json.dumps({"弦": "<|X|><|IAN2|>"}, ensure_ascii=False),
        ],
    )
    d = PronunciationDict.load(p)
    assert d.entries["弦"] == "xian2"
    fe = Frontend(FrontendConfig(dict_path=p, use_dict=True))
    assert fe.analyze("长大")[0].readable == "zhang3 da4"
    assert fe.analyze("长")[0].readable == "chang2"
    assert fe.analyze("弦")[0].readable == "xian2"
    assert fe.phonemize("AI") == "ˈA ˈI"
    assert "ˈA ˈI" in fe.phonemize("我学AI")
    assert "ˈA ˈI" not in fe.phonemize("the AIRPORT")
    # without use_dict the dictionary is not applied
    assert Frontend(FrontendConfig(dict_path=p)).analyze("长")[0].readable != "chang2"


def test_inline_override_always(fe):
    assert fe.analyze("[长](chang2)")[0].readable == "chang2"
    assert fe.analyze("[重庆](zhòng qìng)")[0].readable == "zhong4 qing4"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{not json", "invalid JSON"),
        ('{"grapheme": "x"}', "phoneme"),
        ('{"grapheme": "", "phoneme": "a"}', "grapheme"),
        ('{"弦": "xian"}', "GLM"),
    ],
)
def test_dictionary_invalid_lines(tmp_path, line, reason):
    p = _write(tmp_path, ['{"grapheme": "好", "phoneme": "hao3"}', line])
    with pytest.raises(DictionaryError, match=rf":2: .*{reason}"):
        PronunciationDict.load(p)


def test_dictionary_roundtrip(tmp_path):
    d = PronunciationDict()
    d.add("重庆", "chóng qìng")
    d.add("GitHub", "ɡˈɪthʌb")
    d.remove("GitHub")
    d.save(tmp_path / "o.jsonl")
    assert PronunciationDict.load(tmp_path / "o.jsonl").entries == {"重庆": "chóng qìng"}


def test_shipped_dictionary_loads(repo_root):
    d = PronunciationDict.load(repo_root / "configs" / "G2P_replace_dict.jsonl")
    assert "重庆" in d.entries and "AI" in d.entries


# ----------------------------------------------------------------------- cache
def test_cache_hit_miss_clear(tmp_path):
    cfg = FrontendConfig(use_cache=True, cache_dir=tmp_path)
    fe = Frontend(cfg)
    a = fe.analyze("今天天气很好。")
    assert cache_info(tmp_path)["entries"] == 1
    b = fe.analyze("今天天气很好。")
    assert a == b and cache_info(tmp_path)["entries"] == 1
    # a corrupt entry is ignored and rewritten
    f = next(tmp_path.glob("*.json"))
    f.write_text("{garbage", encoding="utf-8")
    assert fe.analyze("今天天气很好。") == a
    assert json.loads(f.read_text(encoding="utf-8"))["segments"][0]["readable"]
    fe.analyze("another sentence")
    assert cache_info(tmp_path)["entries"] == 2
    assert cache_clear(tmp_path) == 2
    assert cache_info(tmp_path)["entries"] == 0


# ------------------------------------------- issue 18: validation and what is dropped
def _notes(fe, text):
    notes: list = []
    segs = fe.analyze(text, notes=notes)
    return " ".join(s.phonemes for s in segs), notes


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("我要去[重庆](xyzq9 blah)", "'xyzq9' is not a pinyin syllable"),
        ("我要去[重庆](chong2 qq4)", "'qq4' is not a pinyin syllable"),
        ("[好](hao7)", "tone 7"),
        ("[AI](ˈeɪ ★)", "'★'"),
        ("[GitHub](ɡˈɪt9hʌb)", "'9'"),
    ],
)
def test_invalid_override_rejected_with_position(fe, text, needle):
    with pytest.raises(TextError, match="pronunciation override") as e:
        fe.analyze(text)
    assert needle in str(e.value)
    assert f"at character {text.index('[') + 1}" in str(e.value)


def test_valid_overrides_still_read(fe):
    assert fe.analyze("[重庆](chong2 qing4)的银行")[0].readable.startswith("chong2 qing4")
    assert fe.analyze("[绿](lü4)")[0].readable == "lv4"
    assert fe.analyze("[玩儿](wanr2)")[0].readable == "wanr2"
    assert fe.phonemize("[AI](/ˈeɪ ˈaɪ/)") == "ˈA ˈI"
    # a comma inside an override does not split it into two clauses
    assert fe.analyze("去[重庆](chóng, qìng)吧")[0].readable.startswith("qu4 chong2 qing4")


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ('{"grapheme": "银行", "phoneme": "zz9 qq"}', "'zz9' is not a pinyin syllable"),
        ('{"grapheme": "AI", "phoneme": "ˈeɪ ★"}', "'★'"),
        ('{"grapheme": "好", "phoneme": "hao9"}', "tone 9"),
        ('{"弦": "<|X|><|IAN9|>"}', "field '弦'"),
    ],
)
def test_dictionary_entries_validated(tmp_path, line, needle):
    p = _write(tmp_path, ['{"grapheme": "好", "phoneme": "hao3"}', line])
    with pytest.raises(DictionaryError, match=r":2: ") as e:
        PronunciationDict.load(p)
    assert needle in str(e.value) and str(p) in str(e.value)
    with pytest.raises(DictionaryError):
        PronunciationDict().add("银行", "zz9 qq")


def test_unbalanced_override_read_as_plain_text(fe):
    ph, notes = _notes(fe, "我要去[重庆](chóng")
    assert ph == fe.phonemize("我要去重庆")  # not "C H Ó N G" letter by letter
    assert [n.kind for n in notes] == ["override"]
    assert "(chóng" in notes[0].message and "plain text" in notes[0].message


def test_unsupported_script_in_mixed_text_is_reported(fe, caplog):
    ph, notes = _notes(fe, "你好 مرحبا hello")
    assert ph == fe.phonemize("你好 hello")  # espeak used to spell "arabic letter meem …"
    (note,) = notes
    assert note.kind == "script" and "Arabic" in note.message and note.dropped == ("مرحبا",)
    assert "Arabic" in caplog.text  # also logged: the CLI shows it on stderr
    _, notes = _notes(fe, "你好こんにちは")
    assert "Japanese" in notes[0].message and "こんにちは" in notes[0].dropped


def test_ansi_escapes_stripped_and_reported(fe):
    ph, notes = _notes(fe, "hello \x1b[31mred\x1b[0m 你好")
    assert ph == fe.phonemize("hello red 你好")
    assert [n.kind for n in notes] == ["escape"] and "\x1b[31m" in notes[0].dropped
    assert "san" not in fe.analyze("价格\x1b[1;32m是")[0].readable  # not 三十二


def test_ssml_markup_stripped_with_warning(fe):
    """SSML tags in the middle of a text are dropped with a note (a text starting with <speak> is
    parsed as SSML: tests/test_ssml.py)."""
    ph, notes = _notes(fe, "well, <speak>hello <break time='1s'/> world</speak>")
    assert ph == fe.phonemize("well, hello world")
    assert notes[0].kind == "ssml" and "not supported" in notes[0].message and "<speak>" in notes[0].message


def test_symbols_reported_and_accents_folded(fe):
    ph, notes = _notes(fe, "hello ★ world")
    assert notes[0].dropped == ("★",)
    ph, notes = _notes(fe, "café")
    assert not notes and "kjˈut" not in ph  # not "caf e-acute"


@pytest.mark.parametrize(("text", "script"), [("مرحبا بالعالم", "Arabic"), ("こんにちは", "Japanese")])
def test_unsupported_only_names_script_and_languages(fe, text, script):
    with pytest.raises(TextError) as e:
        fe.analyze(text)
    assert script in str(e.value) and "Mandarin Chinese and English" in str(e.value)


def test_cache_keeps_notes(tmp_path):
    fe = Frontend(FrontendConfig(use_cache=True, cache_dir=tmp_path))
    first, second = [], []
    fe.analyze("你好 مرحبا", notes=first)
    fe.analyze("你好 مرحبا", notes=second)
    assert first == second and first[0].kind == "script"


def test_dictionary_line_numbers_count_newlines_only(tmp_path):
    """Found by the fuzzer: U+0085 inside a line made str.splitlines() shift every later line number."""
    p = tmp_path / "d.jsonl"
    p.write_text(
        '{"grapheme": "好\x85", "phoneme": "hao3"}\n{"grapheme": "银行", "phoneme": "zz9"}\n',
        encoding="utf-8",
    )
    with pytest.raises(DictionaryError, match=r"d\.jsonl:2: "):
        PronunciationDict.load(p)
