"""Articles are data: what ingest keeps out of the index and names for the corpus's owner to fix.

Hidden HTML text (white on white, tiny fonts, display:none, aria-hidden) is removed before trafilatura
reads the page; then every sentence of the cleaned article is screened, and a sentence that speaks to
a model ("SYSTEM:", "coach bots must ..."), forms a fake citation block ("[1] Source: ..."), or advises
running through a warning sign ("run through chest pain") is taken out before chunking. What is taken
out is never quoted, never becomes an exercise, a routine or a nudge, never enters the disagreement map
(all of them are built from chunks), and `coach ingest` lists it by article and line.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from coach.safety import Triager, addresses_model, compile_term, fold, tokens
from coach.text import collapse, split_sentences
from ingest.clean import CleanArticle

HIDDEN = "hidden HTML text"
INSTRUCTION = "instruction to a model"
CITATION = "fake citation block"
DANGEROUS = "advice to run through a warning sign"

# A line in a role dialogue or a prompt ("SYSTEM: ...", "Assistant: ...").
_ROLE = re.compile(
    r"^\W*(system|assistant|user|human|ai|model|bot|chatbot|chatgpt|gpt|claude|llm|developer|instruction|"
    r"instructions)\s*:",
    re.IGNORECASE,
)
# Text addressed to bots and assistants, which addresses_model (coach/safety.py) does not cover.
_TO_BOTS = re.compile(
    r"\b(bots?|assistants?|agents?|crawlers?)\b.{0,30}\b(must|should|shall|are to|need to|have to|reading this)\b",
    re.IGNORECASE,
)
# "[1] Source: ...", "Sources: [2] ...", "<passage n=...>": the shape of our own citations and prompts.
_CITATION = re.compile(
    r"^\W*\[\d{1,3}\]|\b(sources?|references?|citations?|cited)\s*:\s*\[\d{1,3}\]|\[\d{1,3}\]\s*(source|citation|ref)\b"
    r"|</?\s*passage\b",
    re.IGNORECASE,
)
# Inline styles that hide an element, and attributes that do.
_STYLE_HIDES = re.compile(
    r"display\s*:\s*none|visibility\s*:\s*hidden|opacity\s*:\s*0(\.0+)?\s*(;|$)|font-size\s*:\s*(0|0?\.\d+|1|2|3)(px|pt|em|rem|%)?\s*(;|$)"
    r"|(^|;)\s*(height|width|max-height)\s*:\s*0(px)?\s*(;|$)|clip\s*:\s*rect\(\s*0",
    re.IGNORECASE,
)
_HIDDEN_CLASSES = {"sr-only", "visually-hidden", "screen-reader-text", "hidden", "d-none", "invisible"}
_COLOR = re.compile(r"(?:^|;)\s*color\s*:\s*([^;]+)", re.IGNORECASE)
_BACKGROUND = re.compile(r"background(?:-color)?\s*:\s*([^;]+)", re.IGNORECASE)
_ESCAPE = re.compile(r"\\([\[\]()*_#>`-])")
_WHITE = {"#fff", "#ffffff", "white", "rgb(255,255,255)", "rgba(255,255,255,1)", "#fffffe"}


@dataclass(frozen=True)
class Flagged:
    """A passage ingest kept out of the index."""

    source_id: str
    path: str
    line: int  # 1-based line of the article file; 0 when it cannot be placed
    kind: str
    text: str

    def describe(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        text = self.text if len(self.text) <= 140 else self.text[:137] + "..."
        return f"{where}: {self.kind}: “{text}”"


@dataclass
class Screened:
    article: CleanArticle
    flagged: list[Flagged] = field(default_factory=list)


def _colour(value: str) -> str:
    return re.sub(r"\s+", "", value.lower()).removesuffix("!important")


def _hidden_by_style(element) -> bool:  # noqa: ANN001 - an lxml element
    style = element.get("style") or ""
    if _STYLE_HIDES.search(style):
        return True
    colour = _COLOR.search(style)
    if colour is None:
        font = element.get("color")  # <font color="white">
        if font is None:
            return False
        text_colour = _colour(font)
    else:
        text_colour = _colour(colour.group(1))
    # The nearest background, from the element up; a page without one is white.
    background = "white"
    for node in [element, *element.iterancestors()]:
        found = _BACKGROUND.search(node.get("style") or "") or (
            re.match(r"(.+)", node.get("bgcolor")) if node.get("bgcolor") else None
        )
        if found:
            background = _colour(found.group(1))
            break
    same = text_colour == background
    return same or (text_colour in _WHITE and background in _WHITE)


def _hidden(element) -> bool:  # noqa: ANN001
    if element.get("hidden") is not None or (element.get("aria-hidden") or "").lower() == "true":
        return True
    if set((element.get("class") or "").split()) & _HIDDEN_CLASSES:
        return True
    return _hidden_by_style(element)


def strip_hidden_html(raw: str) -> tuple[str, list[tuple[int, str]]]:
    """The page without elements a reader cannot see, and (line, text) of each one removed. The page is
    returned unchanged when nothing is hidden, so ordinary articles keep their hashes."""
    import lxml.html

    try:
        root = lxml.html.document_fromstring(raw)
    except Exception:  # noqa: BLE001 - unparseable here is trafilatura's problem to report, not ours
        return raw, []
    removed: list[tuple[int, str]] = []
    for element in list(root.iter()):
        if not isinstance(element.tag, str) or element.getparent() is None:
            continue
        if _hidden(element):
            text = collapse(element.text_content())
            if text:
                removed.append((element.sourceline or 0, text))
            element.drop_tree()  # keeps the text that follows it
    if not removed:
        return raw, []
    return lxml.html.tostring(root, encoding="unicode"), removed


@functools.cache
def _continue_cues() -> tuple[re.Pattern[str], tuple[str, ...]]:
    advice = lexicon_data()["advice"]
    pattern = re.compile("|".join(compile_term(t) for t in advice["continue"]))
    return pattern, tuple(fold(w) for w in advice["stop_words"])


def lexicon_data() -> dict:
    import tomllib

    from coach.safety import DATA_FILE

    return tomllib.loads(DATA_FILE.read_text(encoding="utf-8"))


@functools.cache
def _triager() -> Triager:
    return Triager()  # the lexicon alone: a sentence of an article, not a runner's message


def advises_running_through(sentence: str) -> bool:
    """A warning sign (named or denied) and advice to carry on that nothing negates: "run through chest
    pain", "keep running while dizzy", "dark urine after an ultra is normal". "Never run through chest
    pain" and "stop if you feel dizzy" are safe advice."""
    flags, denied, _ = _triager().lexical(sentence)
    if not flags and not denied:
        return False
    pattern, stop_words = _continue_cues()
    words = tokens(sentence)
    joined = " " + " ".join(words) + " "
    for match in pattern.finditer(joined):
        before = joined[: match.start()].split()[-3:]
        if not any(w in stop_words for w in before):
            return True
    return False


def _unescaped(text: str) -> str:
    """Markdown escapes trafilatura adds ("\\[1\\]") taken off, so a citation block looks like one."""
    return _ESCAPE.sub(r"\1", text)


def kind_of(sentence: str) -> str | None:
    """Why a sentence is kept out of the index, or None."""
    sentence = _unescaped(sentence)
    if _ROLE.search(sentence) or _TO_BOTS.search(sentence) or addresses_model(sentence):
        return INSTRUCTION
    if _CITATION.search(sentence):
        return CITATION
    if advises_running_through(sentence):
        return DANGEROUS
    return None


def _line_of(raw_lines: list[str], text: str) -> int:
    probe = collapse(_unescaped(text))[:60]
    for number, line in enumerate(raw_lines, start=1):
        if probe and probe in collapse(line):
            return number
    head = probe[:25]
    for number, line in enumerate(raw_lines, start=1):
        if head and head in collapse(line):
            return number
    return 0


def screen(
    article: CleanArticle,
    *,
    source_id: str,
    path: str,
    raw: str,
    hidden: list[tuple[int, str]] = (),  # type: ignore[assignment]
) -> Screened:
    """The article without flagged sentences (and headings), and what was flagged where."""
    raw_lines = raw.splitlines()
    flagged = [Flagged(source_id, path, line, HIDDEN, text) for line, text in hidden]

    def keep(line: str) -> str:
        sentences = split_sentences(line)
        kept = []
        for sentence in sentences:
            kind = kind_of(sentence)
            if kind is None:
                kept.append(sentence)
            else:
                flagged.append(
                    Flagged(source_id, path, _line_of(raw_lines, sentence), kind, _unescaped(sentence))
                )
        return line if len(kept) == len(sentences) else " ".join(kept)

    for section in article.sections:
        if section.heading and kind_of(section.heading):
            flagged.append(
                Flagged(
                    source_id,
                    path,
                    _line_of(raw_lines, section.heading),
                    kind_of(section.heading) or "",
                    section.heading,
                )
            )
            section.heading = ""
        section.lines = [kept for line in section.lines if (kept := keep(line))]
    for comment in article.comments:
        comment.lines = [kept for line in comment.lines if (kept := keep(line))]
    article.sections = [s for s in article.sections if s.lines]
    article.comments = [c for c in article.comments if c.lines]
    return Screened(article=article, flagged=sorted(flagged, key=lambda f: f.line))
