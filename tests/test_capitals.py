"""Words in capitals (headlines, shouting, LibriSpeech transcripts) are read as words; known acronyms and
vowelless words are spelled; inline overrides still win. Real espeak-ng, real front end."""

from __future__ import annotations

import pytest

from fedtts.frontend import Frontend
from fedtts.frontend.g2p_en import _spell


@pytest.fixture(scope="module")
def fe() -> Frontend:
    return Frontend()


# (input, reference): the reference is phonemised too and must give the same phonemes. Lower case in the
# reference = read as a word; [X](letters) = spelled letter by letter.
def _sp(word: str) -> str:
    return f"[{word}]({_spell(word)})"


CASES = [
    # shouted sentences and corpus transcripts: every word read as a word
    ("THAT THOU HAST HID THESE THINGS", "that thou hast hid these things"),
    ("HELLO WORLD", "hello world"),
    ("TELL US THE TRUTH", "tell us the truth"),
    ("WHO IS IT", "who is it"),
    ("A MAN AND A DOG", "a man and a dog"),
    ("DON'T STOP NOW", "don't stop now"),
    ("I AM HERE", "I am here"),
    # single capitalised words in ordinary text that are words
    ("NASA", "nasa"),
    ("The LASER was bright.", "The laser was bright."),
    # known acronyms: spelled, also inside a shouted sentence
    ("the FBI", f"the {_sp('FBI')}"),
    ("The CEO", f"The {_sp('CEO')}"),
    ("FBI AGENTS ARRIVED", f"{_sp('FBI')} agents arrived"),
    ("I LOVE THE BBC", f"I love the {_sp('BBC')}"),
    ("AT NINE AM", f"at nine {_sp('AM')}"),
    # ambiguous words are acronyms in ordinary text
    ("IT support", f"{_sp('IT')} support"),
    # unpronounceable (no vowel): spelled
    ("NSFW content", f"{_sp('NSFW')} content"),
    ("HTTP", _sp("HTTP")),
    ("CNN", _sp("CNN")),
    # vowelless words that are words
    ("HMM", "hmm"),
    ("MR SMITH SAID NO", "mr smith said no"),
]


@pytest.mark.parametrize("text,reference", CASES)
def test_capitals_table(fe: Frontend, text: str, reference: str) -> None:
    assert fe.phonemize(text) == fe.phonemize(reference)


def test_shouted_sentence_not_spelled(fe: Frontend) -> None:
    """The issue's example: no letter names, the same phonemes as in lower case."""
    ph = fe.phonemize("THAT THOU HAST HID THESE THINGS")
    assert "ˈAʧ" not in ph and "tˈi" not in ph
    assert ph.startswith("ðæt")


def test_known_acronyms_keep_their_spelling(fe: Frontend) -> None:
    assert fe.phonemize("GPU") == "ʤˈi pˈi jˈu"
    assert fe.phonemize("the USA").endswith("jˈu ˈɛs ˈA")


def test_inline_override_wins(fe: Frontend) -> None:
    assert fe.phonemize("[NASA](nˈæsə)") == "nˈæsə"
    # an override of a known acronym beats the spelling, also in a shouted sentence
    ph = fe.phonemize("[FBI](fˈɪbi) AGENTS ARRIVED")
    assert ph.startswith("fˈɪbi") and "ˈɛf" not in ph
