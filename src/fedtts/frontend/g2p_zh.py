"""Mandarin G2P: jieba words → pypinyin (phrase-aware) + polyphone table + sandhi → misaki zh symbols."""

from __future__ import annotations

import re
import threading

__all__ = ["zh_pinyin", "pinyin_to_kokoro", "normalize_pinyin"]

_lock = threading.Lock()
_ready = False

# Words pypinyin/misaki commonly get wrong, in tone-number pinyin (before sandhi).
POLYPHONES: dict[str, str] = {
    "重庆": "chong2 qing4",
    "重新": "chong2 xin1",
    "重复": "chong2 fu4",
    "重要": "zhong4 yao4",
    "银行": "yin2 hang2",
    "行长": "hang2 zhang3",
    "行走": "xing2 zou3",
    "行业": "hang2 ye4",
    "不行": "bu4 xing2",
    "长大": "zhang3 da4",
    "长江": "chang2 jiang1",
    "成长": "cheng2 zhang3",
    "还钱": "huan2 qian2",
    "还书": "huan2 shu1",
    "归还": "gui1 huan2",
    "还是": "hai2 shi4",
    "还有": "hai2 you3",
    "音乐": "yin1 yue4",
    "快乐": "kuai4 le4",
    "乐器": "yue4 qi4",
    "觉得": "jue2 de5",
    "睡觉": "shui4 jiao4",
    "了解": "liao3 jie3",
    "好了": "hao3 le5",
    "首都": "shou3 du1",
    "都是": "dou1 shi4",
    "为了": "wei4 le5",
    "因为": "yin1 wei4",
    "作为": "zuo4 wei2",
    "得到": "de2 dao4",
    "得去": "dei3 qu4",
    "朝阳": "zhao1 yang2",
    "朝代": "chao2 dai4",
    "的确": "di2 que4",
    "目的": "mu4 di4",
    "地方": "di4 fang5",
    "地上": "di4 shang5",
    "着急": "zhao2 ji2",
    "看着": "kan4 zhe5",
    "睡着": "shui4 zhao2",
    "一会儿": "yi2 hui4 er5",
    "数学": "shu4 xue2",
    "数一数": "shu3 yi5 shu3",
    "调查": "diao4 cha2",
    "空调": "kong1 tiao2",
    "差不多": "cha4 bu5 duo1",
    "出差": "chu1 chai1",
    "大夫": "dai4 fu5",
    "便宜": "pian2 yi5",
    "东西": "dong1 xi5",
    "意思": "yi4 si5",
    "朋友": "peng2 you5",
    "我们": "wo3 men5",
}
_SINGLE = {
    "的": "de5",
    "了": "le5",
    "着": "zhe5",
    "吗": "ma5",
    "呢": "ne5",
    "吧": "ba5",
    "得": "de5",
    "地": "de5",
    "还": "hai2",
    "都": "dou1",
}


def _init() -> None:
    global _ready
    with _lock:
        if _ready:
            return
        import logging
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import jieba

        jieba.setLogLevel(logging.WARNING)
        jieba.initialize()
        for w in POLYPHONES:
            jieba.add_word(w, freq=200000)
        _ready = True


_TONE_MARKS = {
    "ā": "a1",
    "á": "a2",
    "ǎ": "a3",
    "à": "a4",
    "ē": "e1",
    "é": "e2",
    "ě": "e3",
    "è": "e4",
    "ī": "i1",
    "í": "i2",
    "ǐ": "i3",
    "ì": "i4",
    "ō": "o1",
    "ó": "o2",
    "ǒ": "o3",
    "ò": "o4",
    "ū": "u1",
    "ú": "u2",
    "ǔ": "u3",
    "ù": "u4",
    "ǖ": "v1",
    "ǘ": "v2",
    "ǚ": "v3",
    "ǜ": "v4",
    "ü": "v0",
    "ń": "n2",
    "ň": "n3",
}


def normalize_pinyin(s: str) -> list[str]:
    """'chóng qìng' or 'chong2 qing4' → ['chong2', 'qing4']; raises ValueError if not pinyin."""
    out = []
    for syl in s.replace(",", " ").split():
        tone = "5"
        buf = ""
        for c in syl.lower():
            if c in _TONE_MARKS:
                b, t = _TONE_MARKS[c]
                buf += b
                if t != "0":
                    tone = t
            else:
                buf += c
        m = re.fullmatch(r"([a-zv]+)([1-5]?)", buf)
        if not m:
            raise ValueError(f"not a pinyin syllable: {syl!r}")
        out.append(m.group(1) + (m.group(2) or tone))
    return out


def _word_pinyin(w: str) -> list[str]:
    from pypinyin import Style, lazy_pinyin

    if w in POLYPHONES:
        return POLYPHONES[w].split()
    if len(w) == 1 and w in _SINGLE:
        return [_SINGLE[w]]
    return lazy_pinyin(w, style=Style.TONE3, neutral_tone_with_five=True, errors=lambda x: [None] * len(x))


def _sandhi(words: list[tuple[str, list[str]]]) -> list[str]:
    """一/不 sandhi, then 3-3 sandhi within words and across short word pairs."""
    flat: list[tuple[str, str, int]] = []  # char, pinyin, word index
    for wi, (w, pys) in enumerate(words):
        for c, p in zip(w, pys, strict=False):
            flat.append((c, p, wi))
    pys = [p for _, p, _ in flat]
    for i, (c, p, wi) in enumerate(flat):
        nxt = pys[i + 1] if i + 1 < len(pys) else None
        if c == "不" and p and p.startswith("bu"):
            pys[i] = "bu2" if nxt and nxt.endswith("4") else "bu4"
            if 0 < i < len(pys) - 1 and flat[i - 1][0] == flat[i + 1][0]:
                pys[i] = "bu5"
        elif c == "一" and p and p.startswith("yi"):
            prev_c = flat[i - 1][0] if i else ""
            w = words[wi][0]
            if (
                w in POLYPHONES
                or (prev_c and prev_c in "第十")
                or nxt is None
                or not nxt
                or (nxt and nxt[0].isdigit())
            ):
                continue
            if i + 1 < len(flat) and flat[i + 1][0] in "零一二三四五六七八九十":
                continue
            if 0 < i < len(pys) - 1 and flat[i - 1][0] == flat[i + 1][0]:
                pys[i] = "yi5"
            elif nxt.endswith("4") or nxt.endswith("5"):
                pys[i] = "yi2"
            else:
                pys[i] = "yi4"
    # 3-3: right-to-left inside each word, then between a word ending and next word's start
    orig = list(pys)
    for i in range(len(pys) - 2, -1, -1):
        a, b = orig[i], orig[i + 1]
        if a and b and a.endswith("3") and b.endswith("3"):
            same_word = flat[i][2] == flat[i + 1][2]
            short_pair = len(words[flat[i][2]][0]) + len(words[flat[i + 1][2]][0]) <= 3
            if same_word or short_pair:
                pys[i] = pys[i][:-1] + "2"
    return pys


_NOT_ER = set("女婴孤幼健胎患少宠混儿")


def _erhua(chars: list[str], pys: list[str]) -> tuple[list[str], list[str]]:
    out_c, out_p = [], []
    for c, p in zip(chars, pys, strict=False):
        in_word = c == "儿" and out_c and out_c[-1][-1] not in _NOT_ER
        if (
            c[-1] == "儿"
            and out_p
            and p
            and p.startswith("er")
            and (p.endswith("5") or in_word)
            and out_p[-1]
        ):
            prev = out_p[-1]
            out_p[-1] = prev[:-1] + "r" + prev[-1]
            out_c[-1] += c
            continue
        out_c.append(c)
        out_p.append(p)
    return out_c, out_p


def zh_pinyin(text: str) -> list[tuple[str, str | None]]:
    """(character-or-word, tone3 pinyin or None for non-Chinese chars) for a Chinese run."""
    _init()
    import jieba

    words = [(w, _word_pinyin(w)) for w in jieba.lcut(text, HMM=False)]
    # a leading space marks the first character of each word (for misaki-style word spacing)
    chars = [(" " if i == 0 else "") + c for w, _ in words for i, c in enumerate(w)]
    pys = _sandhi(words)
    chars, pys = _erhua(chars, pys)
    return list(zip(chars, pys, strict=False))


def pinyin_to_kokoro(py: str) -> str:
    """One tone3 syllable (erhua 'r' allowed) → misaki zh symbols."""
    from misaki.zh import ZHG2P

    er = False
    base, tone = py[:-1], py[-1]
    if base.endswith("r") and base not in ("er",):
        er, base = True, base[:-1]
    try:
        ipa = ZHG2P.py2ipa(base + tone)
    except Exception:
        return ""
    # U+032F (non-syllabic mark) is not in the model vocabulary; the tokenizer would drop it anyway
    return ipa.replace("\u032f", "") + ("ɚ" if er else "")
