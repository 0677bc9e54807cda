"""Frontend: text → normalised sentence/clause segments with pinyin/IPA and Kokoro phonemes."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

from .cache import cache_get, cache_put, default_cache_dir, key_for
from .dictionary import PronunciationDict
from .g2p_en import en_g2p, ipa_to_kokoro
from .g2p_zh import normalize_pinyin, pinyin_to_kokoro, zh_pinyin
from .normalize import is_zh, normalize, strip_markup

__all__ = [
    "FRONTEND_VERSION",
    "FrontendConfig",
    "Segment",
    "Frontend",
    "TextError",
    "format_analysis",
    "MAX_TOKENS",
]

FRONTEND_VERSION = "1"
MAX_TOKENS = 510
SENT_PAUSE, CLAUSE_PAUSE = 0.35, 0.15
_INLINE = re.compile(r"\[([^\]]+)\]\(([^)]+)\)")
_ABBR_END = re.compile(r"(?:\b(?:Dr|Mr|Mrs|Ms|St|Prof|Jr|vs|etc|e\.g|i\.e)|\b[A-Z])\.$")
_SENT_END = "。！？!?…；;\n"
_CLAUSE = "，,、：:"
_PUNCT_MAP = {
    "，": ",",
    "、": ",",
    "。": ".",
    "！": "!",
    "？": "?",
    "：": ":",
    "；": ";",
    "…": "…",
    ",": ",",
    ".": ".",
    "!": "!",
    "?": "?",
    ":": ":",
    ";": ";",
}


class TextError(ValueError):
    """Text that cannot be spoken (empty, or only unsupported symbols)."""


@dataclass(frozen=True)
class FrontendConfig:
    dict_path: Path | None = None
    use_dict: bool = False
    use_cache: bool = False
    cache_dir: Path | None = None

    def validate(self) -> FrontendConfig:
        if self.dict_path is not None and not Path(self.dict_path).is_file():
            raise ValueError(f"dict_path: dictionary file not found: {self.dict_path}")
        return self


@dataclass
class Segment:
    text: str
    normalized: str
    lang: str
    phonemes: str
    readable: str
    pause_after: float


def _default_dict_path() -> Path | None:
    p = Path(__file__).resolve().parents[3] / "configs" / "G2P_replace_dict.jsonl"
    return p if p.is_file() else None


_vocab: dict | None = None


def count_tokens(ph: str) -> int:
    global _vocab
    if _vocab is None:
        from fedtts.engine.assets import load_vocab

        _vocab = load_vocab()
    return sum(1 for c in ph if c in _vocab)


def _split_sentences(text: str) -> list[tuple[str, float]]:
    """Split at sentence ends, then clauses; (piece, pause_after)."""
    out: list[tuple[str, float]] = []
    buf = ""
    for i, c in enumerate(text):
        buf += c
        nxt = text[i + 1 : i + 2]
        if c in _SENT_END or (c == "." and (not nxt or nxt.isspace()) and not _ABBR_END.search(buf)):
            out.append((buf, SENT_PAUSE))
            buf = ""
    if buf.strip():
        out.append((buf, SENT_PAUSE))
    # merge 'Dr.'-style false splits is handled by normalisation (abbreviations expanded first)
    return [(s.strip(), p) for s, p in out if s.strip()]


def _split_clauses(s: str) -> list[str]:
    parts, buf = [], ""
    for i, c in enumerate(s):
        buf += c
        if c in ",:" and s[i - 1 : i].isdigit() and s[i + 1 : i + 2].isdigit():
            continue
        if c in _CLAUSE:
            parts.append(buf)
            buf = ""
    if buf:
        parts.append(buf)
    return parts


class Frontend:
    """Text analysis; jieba/espeak loaded lazily once per process."""

    def __init__(self, cfg: FrontendConfig | None = None):
        self.cfg = (cfg or FrontendConfig()).validate()
        path = self.cfg.dict_path or _default_dict_path()
        self.dictionary = (
            PronunciationDict.load(path) if (self.cfg.use_dict and path) else PronunciationDict()
        )

    # ---------------------------------------------------------------- public
    def analyze(self, text: str) -> list[Segment]:
        if text is None or not str(text).strip():
            raise TextError("text is empty")
        if self.cfg.use_cache:
            root = Path(self.cfg.cache_dir) if self.cfg.cache_dir else default_cache_dir()
            key = key_for(text, self.dictionary.content_key(), FRONTEND_VERSION)
            hit = cache_get(key, root)
            if isinstance(hit, list):
                try:
                    return [Segment(**d) for d in hit]
                except TypeError:
                    pass
            segs = self._analyze(text)
            cache_put(key, [dataclasses.asdict(s) for s in segs], root)
            return segs
        return self._analyze(text)

    def phonemize(self, text: str) -> str:
        return " ".join(s.phonemes for s in self.analyze(text))

    def preview(self, text: str) -> str:
        return format_analysis(self.analyze(text))

    # --------------------------------------------------------------- internal
    def _analyze(self, text: str) -> list[Segment]:
        text = strip_markup(str(text))
        segs: list[Segment] = []
        for sent, pause in _split_sentences(text):
            clauses = _split_clauses(sent)
            group: list[Segment] = []
            for cl in clauses:
                seg = self._segment(cl, CLAUSE_PAUSE)
                if seg is None:
                    continue
                if (
                    group
                    and count_tokens(" ".join(g.phonemes for g in group) + " " + seg.phonemes)
                    > MAX_TOKENS - 10
                ):
                    segs.append(_merge(group, CLAUSE_PAUSE))
                    group = []
                group.append(seg)
            if group:
                segs.append(_merge(group, pause))
        segs = [s2 for s in segs for s2 in self._fit(s)]
        if not segs:
            raise TextError("text has nothing speakable (only unsupported symbols)")
        return segs

    def _fit(self, seg: Segment) -> list[Segment]:
        """Last resort for over-long clauses: split at spaces/characters."""
        if count_tokens(seg.phonemes) <= MAX_TOKENS:
            return [seg]
        words = re.findall(r"\S+\s*", seg.text) if " " in seg.text.strip() else list(seg.text)
        half = max(1, len(words) // 2)
        out = []
        for part, pause in (("".join(words[:half]), CLAUSE_PAUSE), ("".join(words[half:]), seg.pause_after)):
            s = self._segment(part, pause)
            if s:
                out.extend(self._fit(s))
        return out

    def _segment(self, raw: str, pause: float) -> Segment | None:
        """One clause: inline overrides, dictionary, zh/en runs → Segment (None if nothing speakable)."""
        pieces: list[tuple[str, str | None]] = []  # (text, forced phoneme or None)
        pos = 0
        for m in _INLINE.finditer(raw):
            pieces.append((raw[pos : m.start()], None))
            pieces.append((m.group(1), m.group(2)))
            pos = m.end()
        pieces.append((raw[pos:], None))
        norm_parts, read_parts, ph_parts = [], [], []
        langs = set()
        for txt, forced in pieces:
            if not txt:
                continue
            if forced is not None:
                r, p, lang = _forced(txt, forced)
                norm_parts.append(txt)
                read_parts.append(r)
                ph_parts.append(p)
                langs.add(lang)
                continue
            matches = self.dictionary.find(txt)
            i = 0
            for a, b, ph in matches:
                self._plain(txt[i:a], norm_parts, read_parts, ph_parts, langs)
                r, p, lang = _forced(txt[a:b], ph)
                norm_parts.append(txt[a:b])
                read_parts.append(r)
                ph_parts.append(p)
                langs.add(lang)
                i = b
            self._plain(txt[i:], norm_parts, read_parts, ph_parts, langs)
        phon = re.sub(r"\s+", " ", " ".join(p for p in ph_parts if p)).strip()
        phon = re.sub(r" ([,.!?;:…])", r"\1", phon)
        if not re.search(r"[^\s,.!?;:…—\"()]", phon):
            return None
        lang = "mixed" if len(langs) > 1 else (langs.pop() if langs else "en")
        normalized = re.sub(r"\s+", " ", "".join(norm_parts)).strip()
        readable = re.sub(r"\s+", " ", " ".join(r for r in read_parts if r)).strip()
        return Segment(raw.strip(), normalized, lang, phon, readable, pause)

    def _plain(self, txt: str, norm_parts, read_parts, ph_parts, langs) -> None:
        if not txt:
            return
        t = normalize(txt)
        norm_parts.append(t)
        # runs: Chinese (incl. Chinese punctuation) vs Latin/other
        for run in re.findall(
            r"[\u4e00-\u9fff\u3000-\u303f\uff00-\uffef]+|[^\u4e00-\u9fff\u3000-\u303f\uff00-\uffef]+", t
        ):
            if is_zh(run):
                langs.add("zh")
                rd, ph = [], []
                for ch, py in zh_pinyin(run):
                    if py:
                        rd.append(py)
                        ph.append((" " if ch.startswith(" ") else "") + pinyin_to_kokoro(py))
                    elif ch.strip() in _PUNCT_MAP:
                        ch = ch.strip()
                        ph.append(_PUNCT_MAP[ch] + " ")
                        rd.append(_PUNCT_MAP[ch])
                read_parts.append(" ".join(rd))
                ph_parts.append("".join(ph))
            elif re.search(r"[A-Za-z]", run):
                langs.add("en")
                r, p = en_g2p(run)
                end = run.strip()[-1:] if run.strip() else ""
                read_parts.append(r)
                ph_parts.append(p + (_PUNCT_MAP.get(end, "")))
            else:
                end = run.strip()[-1:] if run.strip() else ""
                if end in _PUNCT_MAP:
                    ph_parts.append(_PUNCT_MAP[end])


def _forced(txt: str, ph: str) -> tuple[str, str, str]:
    """Dictionary/inline phoneme → (readable, kokoro, lang); pinyin if it parses as pinyin, else IPA."""
    if (
        is_zh(txt)
        or re.fullmatch(
            r"[a-zA-Zāáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜü]+[1-5]?(\s+[a-zA-Zāáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜü]+[1-5]?)*",
            ph.strip(),
        )
        and any(ch.isdigit() or ch in "āáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜ" for ch in ph)
    ):
        try:
            sy = normalize_pinyin(ph)
            return " ".join(sy), "".join(pinyin_to_kokoro(s) for s in sy), "zh"
        except ValueError:
            pass
    return ph, ipa_to_kokoro(ph.replace("ˈ", "ˈ")), "en"


def _merge(group: list[Segment], pause: float) -> Segment:
    if len(group) == 1:
        return dataclasses.replace(group[0], pause_after=pause)
    langs = {g.lang for g in group}
    return Segment(
        "".join(g.text for g in group),
        "".join(g.normalized for g in group),
        "mixed" if len(langs) > 1 or "mixed" in langs else langs.pop(),
        " ".join(g.phonemes for g in group),
        " ".join(g.readable for g in group),
        pause,
    )


def format_analysis(segments: list[Segment]) -> str:
    """Human-readable dump printed by `fedtts phonemize --detail` and the UI preview."""
    lines = []
    for i, s in enumerate(segments, 1):
        lines += [
            f"{i}. [{s.lang}] {s.normalized}",
            f"   readable: {s.readable}",
            f"   phonemes: {s.phonemes}",
            f"   pause_after: {s.pause_after:.2f} s",
        ]
    return "\n".join(lines)
