"""Text normalisation: numbers, dates, times, money, units, symbols (zh + en); markup stripped."""

from __future__ import annotations

import html
import re
import unicodedata

__all__ = ["normalize", "is_zh"]

_ZH = re.compile(r"[\u4e00-\u9fff]")
_DIG = "零一二三四五六七八九"
_EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\ufe0f\u200d]")


def is_zh(s: str) -> bool:
    return bool(_ZH.search(s))


def _zh_int(s: str) -> str:
    import cn2an

    try:
        return cn2an.an2cn(s, "low")
    except Exception:
        return "".join(_DIG[int(c)] for c in s if c.isdigit())


def _zh_num(s: str) -> str:
    if "." in s:
        a, b = s.split(".", 1)
        return _zh_int(a) + "点" + "".join(_DIG[int(c)] for c in b)
    return _zh_int(s)


def _digits_zh(s: str) -> str:
    return "".join("幺" if c == "1" else _DIG[int(c)] for c in s if c.isdigit())


def _phone_zh(s: str) -> str:
    return "，".join(_digits_zh(part) for part in s.split("-") if part)


def _money(s: str) -> str:
    """Amounts are said without trailing zeros: ¥199.50 is 一百九十九点五元, ¥20.00 is 二十元."""
    return s.rstrip("0").rstrip(".") if "." in s else s


_ZH_UNITS = {
    "km": "公里",
    "kg": "公斤",
    "cm": "厘米",
    "mm": "毫米",
    "m": "米",
    "g": "克",
    "℃": "摄氏度",
    "°C": "摄氏度",
    "%": "",
}


def _norm_zh(t: str) -> str:
    t = re.sub(r"(\d{4})-(\d{1,2})-(\d{1,2})", r"\1年\2月\3日", t)
    t = re.sub(r"(\d{4})年", lambda m: "".join(_DIG[int(c)] for c in m.group(1)) + "年", t)
    t = re.sub(
        r"(\d{1,2}):(\d{2})",
        lambda m: (
            _zh_int(m.group(1)) + "点" + ("" if m.group(2) == "00" else _zh_int(str(int(m.group(2)))) + "分")
        ),
        t,
    )
    # Phone numbers are read digit by digit (1 as 幺), the area code set off by a short pause.
    t = re.sub(r"(?<!\d)(?:1[3-9]\d{9}|\d{3,4}-\d{7,8})(?!\d)", lambda m: _phone_zh(m.group()), t)
    t = re.sub(
        r"(电话|号码|手机|拨打|热线|房间|尾号)(\d[\d-]*\d|\d)",
        lambda m: m.group(1) + _phone_zh(m.group(2)),
        t,
    )
    t = re.sub(r"[¥￥](\d+(?:\.\d+)?)", lambda m: _zh_num(_money(m.group(1))) + "元", t)
    t = re.sub(r"\$(\d+(?:\.\d+)?)", lambda m: _zh_num(_money(m.group(1))) + "美元", t)
    t = re.sub(r"€(\d+(?:\.\d+)?)", lambda m: _zh_num(_money(m.group(1))) + "欧元", t)
    t = re.sub(r"£(\d+(?:\.\d+)?)", lambda m: _zh_num(_money(m.group(1))) + "英镑", t)
    t = re.sub(r"(\d+(?:\.\d+)?)%", lambda m: "百分之" + _zh_num(m.group(1)), t)
    t = re.sub(
        r"(\d+(?:\.\d+)?)\s*(km|kg|cm|mm|℃|°C|m|g)\b",
        lambda m: _zh_num(m.group(1)) + _ZH_UNITS[m.group(2)],
        t,
    )
    t = re.sub(r"(\d+(?:\.\d+)?)\s*(℃|°C)", lambda m: _zh_num(m.group(1)) + "摄氏度", t)
    t = re.sub(r"\d+(?:\.\d+)?", lambda m: _zh_num(m.group()), t)
    return t.replace("+", "加").replace("=", "等于").replace("&", "和").replace("~", "到")


_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def en_int(n: int) -> str:
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else "-" + _ONES[n % 10])
    for div, name in ((10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred")):
        if n >= div:
            rest = n % div
            return en_int(n // div) + " " + name + ("" if not rest else " " + en_int(rest))
    return str(n)


def _en_year(n: int) -> str:
    if 2000 <= n < 2010 or n % 100 == 0:
        return en_int(n)
    hi, lo = divmod(n, 100)
    return en_int(hi) + " " + (("oh " + _ONES[lo]) if lo < 10 else en_int(lo))


def _ordinal(n: int) -> str:
    w = en_int(n)
    irregular = {
        "one": "first",
        "two": "second",
        "three": "third",
        "five": "fifth",
        "eight": "eighth",
        "nine": "ninth",
        "twelve": "twelfth",
    }
    head, sep, last = w.rpartition("-") if "-" in w.split(" ")[-1] else w.rpartition(" ")
    if last in irregular:
        last = irregular[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return head + sep + last


def _en_num(s: str) -> str:
    s = s.replace(",", "")
    if "." in s:
        a, b = s.split(".", 1)
        return en_int(int(a)) + " point " + " ".join(_ONES[int(c)] for c in b)
    return en_int(int(s))


_ABBR = {
    "Dr.": "Doctor",
    "Mr.": "Mister",
    "Mrs.": "Missus",
    "Ms.": "Miz",
    "St.": "Saint",
    "etc.": "et cetera",
    "vs.": "versus",
    "e.g.": "for example",
    "i.e.": "that is",
    "Prof.": "Professor",
    "Jr.": "Junior",
}
_EN_UNITS = {
    "km": "kilometers",
    "kg": "kilograms",
    "cm": "centimeters",
    "mm": "millimeters",
    "m": "meters",
    "g": "grams",
    "℃": "degrees Celsius",
    "°C": "degrees Celsius",
    "°F": "degrees Fahrenheit",
}


_MONTHS = "January February March April May June July August September October November December".split()


def _en_date(m: re.Match) -> str:
    y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if not (1 <= mo <= 12 and 1 <= d <= 31):
        return m.group()
    return f"{_MONTHS[mo - 1]} {_ordinal(d)}, {_en_year(y)}"


def _norm_en(t: str) -> str:
    for k, v in _ABBR.items():
        t = re.sub(r"(?<!\w)" + re.escape(k), v, t)
    t = re.sub(
        r"\b1\d{10}\b|\b\d{3}-\d{3}-\d{4}\b",
        lambda m: " ".join(_ONES[int(c)] for c in m.group() if c.isdigit()),
        t,
    )
    t = re.sub(r"[¥￥](\d+(?:\.\d+)?)", lambda m: _en_num(_money(m.group(1))) + " yuan", t)
    t = re.sub(r"€(\d+(?:\.\d+)?)", lambda m: _en_num(_money(m.group(1))) + " euros", t)
    t = re.sub(r"£(\d+(?:\.\d+)?)", lambda m: _en_num(_money(m.group(1))) + " pounds", t)
    t = re.sub(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b", _en_date, t)
    t = re.sub(
        r"\$(\d[\d,]*)(?:\.(\d\d))?",
        lambda m: (
            _en_num(m.group(1))
            + (" dollar" if m.group(1) == "1" else " dollars")
            + (f" and {en_int(int(m.group(2)))} cents" if m.group(2) and int(m.group(2)) else "")
        ),
        t,
    )
    t = re.sub(r"(\d+(?:\.\d+)?)%", lambda m: _en_num(m.group(1)) + " percent", t)
    t = re.sub(r"(\d+)(st|nd|rd|th)\b", lambda m: _ordinal(int(m.group(1))), t)
    t = re.sub(
        r"\b(\d{1,2}):(\d{2})\b",
        lambda m: (
            en_int(int(m.group(1)))
            + (
                ""
                if m.group(2) == "00"
                else " "
                + (("oh " + _ONES[int(m.group(2))]) if int(m.group(2)) < 10 else en_int(int(m.group(2))))
            )
        ),
        t,
    )
    t = re.sub(
        r"(\d+(?:\.\d+)?)\s*(km|kg|cm|mm|m|g)\b",
        lambda m: _en_num(m.group(1)) + " " + _EN_UNITS[m.group(2)],
        t,
    )
    t = re.sub(r"(\d+(?:\.\d+)?)\s*(℃|°C|°F)", lambda m: _en_num(m.group(1)) + " " + _EN_UNITS[m.group(2)], t)
    t = re.sub(r"\b(1[1-9]\d\d|20\d\d)\b", lambda m: _en_year(int(m.group())), t)
    t = re.sub(r"\d[\d,]*(?:\.\d+)?", lambda m: _en_num(m.group()), t)
    return t.replace("&", " and ").replace("+", " plus ").replace("=", " equals ").replace("@", " at ")


def strip_markup(t: str) -> str:
    t = html.unescape(re.sub(r"<[^>]+>", " ", t))
    t = re.sub(r"!\[[^\]]*\]\([^)]*\)", " ", t)
    t = re.sub(r"(?<!\])\[([^\]]+)\]\((https?://[^)]*)\)", r"\1", t)
    t = re.sub(r"[*_`#>]{1,3}", "", t)
    return _EMOJI.sub("", t)


def fullwidth_to_half(t: str) -> str:
    """Full-width ASCII → half-width, keeping Chinese punctuation (used for pauses)."""
    out = []
    for c in t:
        o = ord(c)
        if 0xFF10 <= o <= 0xFF19 or 0xFF21 <= o <= 0xFF3A or 0xFF41 <= o <= 0xFF5A or c in "％＋＝＄＆＠":
            c = chr(o - 0xFEE0)
        elif c == "\u3000":
            c = " "
        out.append(c)
    return unicodedata.normalize("NFC", "".join(out))


def normalize(text: str) -> str:
    """Normalise one piece of text; Chinese rules when it contains Chinese, else English rules."""
    t = fullwidth_to_half(text)
    return _norm_zh(t) if is_zh(t) else _norm_en(t)
