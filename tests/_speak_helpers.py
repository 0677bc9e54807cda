"""Helpers for the speak tests: the real front end when it exists, else a tiny stand-in.

The stand-in (misaki zh + espeak-ng IPA, split at sentence punctuation) only exists so the pipeline
tests can run before fedtts.frontend lands; it is test code, not a second front end.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass


@dataclass
class _Seg:
    text: str
    normalized: str
    lang: str
    phonemes: str
    readable: str
    pause_after: float


class _ShimFrontend:
    def __init__(self):
        from misaki import zh

        self._zh = zh.ZHG2P()

    def analyze(self, text: str) -> list[_Seg]:
        if not text.strip():
            raise ValueError("text is empty")
        parts = [p.strip() for p in re.split(r"(?<=[。！？.!?])\s*", text) if p.strip()]
        out = []
        for p in parts:
            if re.search(r"[\u4e00-\u9fff]", p):
                ph, lang = self._zh(p)[0], "zh"
            else:
                r = subprocess.run(
                    ["espeak-ng", "-q", "--ipa", "-v", "en-us", p], capture_output=True, text=True
                )
                ph, lang = " ".join(r.stdout.split()), "en"
            out.append(_Seg(p, p, lang, ph, ph, 0.3))
        return out

    def phonemize(self, text: str) -> str:
        return " ".join(s.phonemes for s in self.analyze(text))


def real_frontend_available() -> bool:
    try:
        from fedtts.frontend import Frontend  # noqa: F401
    except ImportError:
        return False
    return True


def make_frontend():
    """None means: let the Synthesizer build the real front end."""
    return None if real_frontend_available() else _ShimFrontend()
