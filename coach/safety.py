"""Red-flag triage and input normalisation: what happens to a question before any retrieval."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from coach.errors import UsageError
from coach.text import collapse, strip_invisible

EXAMPLE_QUESTION = "why do my knees hurt?"


def normalise_question(raw: str | None, *, max_chars: int) -> str:
    """NFC, no invisible characters, white space collapsed; empty, wordless or huge input is refused."""
    text = collapse(strip_invisible(unicodedata.normalize("NFC", raw or "")))
    if not text:
        raise UsageError(f"Please type a question, for example: {EXAMPLE_QUESTION!r}.")
    if len(text) > max_chars:
        raise UsageError(
            f"That message is {len(text):,} characters long; please ask in under {max_chars:,} characters."
        )
    if not any(ch.isalnum() for ch in text):
        raise UsageError(f"Please ask your question in words, for example: {EXAMPLE_QUESTION!r}.")
    return text


@dataclass(frozen=True)
class RedFlag:
    name: str
    reason: str


# Each pattern is matched on the lower-cased question. They lean towards flagging: a false alarm
# costs a runner one sentence of caution; a miss can cost far more.
_RED_FLAGS: list[tuple[str, str, str]] = [
    (
        "chest",
        r"\bchest\b.{0,40}\b(pain|hurt|hurts|hurting|tight|tightness|pressure|crush|crushing|ache|aching|heavy)"
        r"|\b(pain|tight|tightness|pressure|crushing|heavy|heaviness)\b.{0,30}\bchest\b|\bheart attack\b",
        "chest pain or pressure",
    ),
    (
        "heart",
        r"\b(heart|pulse)\b.{0,30}\b(racing|pounding|irregular|skipping|fluttering|palpitat\w*)"
        r"|\bpalpitations?\b",
        "an irregular or racing heartbeat",
    ),
    (
        "fainting",
        r"\b(faint(ed|ing)?|pass(ed|ing)? out|black(ed|ing)? out|blackout|collaps(e|ed|ing)|lost consciousness"
        r"|los(e|ing) consciousness|keel(ed)? over)\b",
        "fainting or collapsing",
    ),
    (
        "breathing",
        r"\b(can'?t|cannot|could ?n'?t|unable to|struggl\w* to|hard to) (catch my )?breath"
        r"|\bshort(ness)? of breath\b|\bbreathless(ness)?\b|\bgasping\b|\bwheez\w*",
        "trouble breathing",
    ),
    (
        "weight_bearing",
        r"\b(can'?t|cannot|could ?n'?t|unable to|not able to)\b.{0,15}\b(bear|put|take|carry)\b.{0,15}\bweight\b"
        r"|\b(can'?t|cannot|could ?n'?t|unable to) (stand|walk|step)( on (it|my \w+)| at all)?\b"
        r"|\b(won'?t|doesn'?t|does not|will not) (take|bear|hold) (any |my )?weight",
        "a joint or limb that cannot bear weight",
    ),
    (
        "numbness",
        r"\b(numb|numbness|tingl\w*|pins and needles|lost (all )?feeling|no feeling)\b",
        "numbness or loss of feeling",
    ),
    (
        "injury",
        r"\b(swell\w*|swollen|puffed up|deformed|bone (is )?(sticking|poking)|popp?(ed)?|snap(ped)?|crack(ed)?)\b"
        r".{0,60}\b(fall|fell|fallen|crash|tripp?ed|twist\w*|roll(ed)?|landed)\b"
        r"|\b(fall|fell|fallen|crash|tripp?ed|twist\w*|roll(ed)? my)\b.{0,60}"
        r"\b(swell\w*|swollen|puffed up|deformed|bruis\w*|pop|popped|snap|snapped|crack|cracked)\b",
        "swelling or deformity after a fall or twist",
    ),
    (
        "other",
        r"\b(dizz(y|iness)|light-?headed|confus(ed|ion)|slurred|vomit\w*|throwing up|blood in (my )?(urine|pee)"
        r"|dark (brown )?(urine|pee)|cola-colou?red|severe headache|worst headache|heat ?stroke|stroke)\b",
        "dizziness, confusion or other warning signs",
    ),
]
_COMPILED = [(name, re.compile(pattern), reason) for name, pattern, reason in _RED_FLAGS]

URGENT_PREFIX = "Please stop running and see a medical professional now"


def find_red_flags(question: str) -> list[RedFlag]:
    """The health red flags in a question, if any."""
    text = question.lower().replace("’", "'")
    return [RedFlag(name, reason) for name, pattern, reason in _COMPILED if pattern.search(text)]


def urgent_message(flags: list[RedFlag]) -> str:
    reasons = ", ".join(dict.fromkeys(flag.reason for flag in flags))
    return (
        f"{URGENT_PREFIX}: {reasons} can be a sign of something serious, and no article or exercise "
        "routine should come first. If symptoms are severe or getting worse (crushing chest pain, fainting, "
        "trouble breathing), call your local emergency number. I am a running coach that quotes articles, "
        "not a medical service, so I won't give training advice for this."
    )
