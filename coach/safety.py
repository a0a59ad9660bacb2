"""Red-flag triage and input normalisation: what happens to a question before any retrieval."""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass

from coach.errors import UsageError
from coach.text import collapse, strip_invisible

EXAMPLE_QUESTION = "why do my knees hurt?"


# Markup pasted into a message (from a web page, a chat client, an attack) is not part of the question:
# its words ("script", "amp", "href") are not in the articles and would make the coach abstain.
_SCRIPT_BLOCK = re.compile(r"<(script|style)\b[^>]*>.*?(</\1\s*>|$)", re.IGNORECASE | re.DOTALL)
_HTML_COMMENT = re.compile(r"<!--.*?(-->|$)", re.DOTALL)
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(\s[^<>]*)?/?>")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)\s]*\)")
_URL = re.compile(r"\bhttps?://\S+", re.IGNORECASE)
_CODE = re.compile(r"```.*?(```|$)|`[^`\n]*`", re.DOTALL)  # code pasted in Markdown fences or spans
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # terminal colour codes pasted with the text


def strip_markup(text: str) -> str:
    """The text without HTML tags, scripts, comments, entities, Markdown code and links' targets, bare
    URLs or terminal colour codes.

    Hand-written rather than an HTML parser: a question is one line typed by a person, and a parser
    would also eat what merely looks like markup ("i <3 hills", "5 < 10 km")."""
    text = _ANSI.sub(" ", html.unescape(text))
    text = _CODE.sub(" ", text)
    text = _SCRIPT_BLOCK.sub(" ", text)
    text = _HTML_COMMENT.sub(" ", text)
    text = _TAG.sub(" ", text)
    text = _MD_LINK.sub(lambda m: f" {m.group(1)} ", text)
    return _URL.sub(" ", text)


def normalise_question(raw: str | None, *, max_chars: int) -> str:
    """NFC, no invisible characters, no markup, white space collapsed; empty, wordless or huge input is
    refused."""
    raw = unicodedata.normalize("NFC", raw or "")
    visible = collapse(strip_invisible(raw))
    if not visible:
        raise UsageError(f"Please type a question, for example: {EXAMPLE_QUESTION!r}.")
    if len(visible) > max_chars:  # measured before markup is removed: what the user sent
        raise UsageError(
            f"That message is {len(visible):,} characters long; please ask in under {max_chars:,} characters."
        )
    text = collapse(strip_invisible(strip_markup(raw)))
    if not text:
        raise UsageError(f"Please ask your question in words, for example: {EXAMPLE_QUESTION!r}.")
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
        r"\bchest\b.{0,40}\b(pain|pian|pains|hurt|hurts|hurting|tight|tightness|pressure|crush|crushing|ache|aching"
        r"|heavy|killing|burning|stabbing|sharp|squeez\w*)"
        r"|\b(pain|pian|tight|tightness|pressure|crushing|heavy|heaviness|stabbing|sharp|squeez\w*)\b.{0,30}\bchest\b"
        r"|\b(sitting|weight|elephant) on my chest\b|\bheart attack\b",
        "chest pain or pressure",
    ),
    (
        "heart",
        # "heart rate monitor for racing" is gear, not a symptom: the racing must follow the heart closely.
        r"\b(heart|pulse)\b(?! rate monitor)(?! monitor)\s+(\w+\s+){0,3}?(racing|pounding|irregular\w*|skipp\w*"
        r"|flutter\w*|palpitat\w*|going (crazy|mad|wild|nuts)|out of (my|control)|won'?t slow)"
        r"|\bpalpitations?\b",
        "an irregular or racing heartbeat",
    ),
    (
        "fainting",
        # "collapsed arches" and "knees collapse inwards" are running form, not fainting.
        r"\b(faint(ed|ing)?|feint(ed|ing)|pass(ed|ing)? out|black(ed|ing)? out|blackout|lost consciousness"
        r"|los(e|ing) consciousness|keel(ed)? over|went (all )?black|everything went (black|dark|grey|gray))\b"
        r"|\b(i|i've|he|she|they|nearly|almost|then|and|just)\s+collaps(e|ed)\b"
        r"|\bcollaps(ed|ing)\s+(at|after|during|on|in|while|when|near|before)\b",
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
        r"|\b(won'?t|doesn'?t|does not|will not|can'?t) (take|bear|hold) (any |my |the )?weight"
        r"|\b(gave|gives|giving) (way|out)\b.{0,40}\b(huge|massive|swollen|swelling|balloon\w*|can'?t walk)\b",
        "a joint or limb that cannot bear weight",
    ),
    (
        "numbness",
        r"\b(numb(ness|nes|ed)?|tingl\w*|pins and needles|lost (all )?feeling|no feeling)\b",
        "numbness or loss of feeling",
    ),
    (
        "injury",
        r"\b(swell\w*|swollen|puffed up|deformed|bone (is )?(sticking|poking)|popp?(ed)?|snap(ped)?|crack(ed)?)\b"
        r".{0,60}\b(fall|fell|fallen|crash|tripp?ed|twist\w*|roll(ed)?|landed|went over)\b"
        r"|\b(fall|fell|fallen|crash|tripp?ed|twist\w*|roll(ed)? my|went over on)\b.{0,60}"
        r"\b(swell\w*|swollen|puffed up|deformed|bruis\w*|pop|popped|snap|snapped|crack|cracked)\b"
        # a joint that has ballooned is a warning sign with or without a fall ("fell in love with running
        # and made huge progress" is not, so "huge" needs the joint)
        r"|\b(ankle|knee|foot|wrist|leg|calf|shin|elbow)\b.{0,40}\b(huge|massive|balloon\w*|blew up|blown up"
        r"|twice the size|swollen)\b",
        "swelling or deformity after a fall or twist",
    ),
    (
        "other",
        # "confused about how often to train" is a question, not a symptom.
        r"\b(dizz(y|iness)|light-?headed|confus(ed|ion)(?! (about|by|over|as to|with|on|re)\b)|disorient\w*|slurred"
        r"|vomit\w*|throwing up|blood in (my )?(urine|pee)|(urine|pee) is (dark|brown|red|black)"
        r"|dark (brown )?(urine|pee)|cola-colou?red|severe headache|worst headache|heat ?stroke"
        r"|(a|had|having) stroke)\b",
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


# Text that speaks to a language model rather than to a runner: an injected instruction in an article
# (or a model's reply obeying one). Articles for runners never need these phrases, so a sentence with
# one is dropped at ingest and a model's claim with one is never shown.
_ADDRESSES_MODEL = re.compile(
    r"\b(ignore|disregard|forget|override)\b.{0,40}\b(instructions?|rules|prompts?|guidelines|directions)\b"
    r"|\b(system|developer|hidden) (prompt|message|instructions?)\b"
    r"|\b(you are|you're) (now )?(an? )?([\w-]+ ){0,2}(ai|a\.i\.|language model|llm|chat ?bot|assistant|gpt|dan)\b"
    r"|\b(ai|llm|language model|chat ?bot|gpt)s?\b.{0,30}\b(reading|processing|summari[sz]ing|"
    r"answering|must|should)\b"
    r"|\bnew instructions\b|\bjailbreak\w*|\bprompt injection\b|\bcanary\b",
    re.IGNORECASE,
)
# A made-up code (a canary, a tracking token): letters and digits mixed, three or more of each.
_CODE_TOKEN = re.compile(
    r"\b(?=(?:[A-Za-z-]*\d){3})(?=(?:[\d-]*[A-Za-z]){3})[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*\b"
)


def addresses_model(text: str) -> bool:
    """Whether a sentence gives instructions to an AI model or carries a made-up code."""
    return bool(_ADDRESSES_MODEL.search(text) or code_tokens(text))


def code_tokens(text: str) -> set[str]:
    """Tokens mixing three or more letters with three or more digits ("CANARY-7f3a9c2e", "x9k2m7")."""
    return {m.group(0) for m in _CODE_TOKEN.finditer(text)}
