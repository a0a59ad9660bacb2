"""Turn a raw article capture (.txt, .md or .html) into clean sections and marked reader comments.

Raw captures carry page furniture: navigation, cookie banners, share prompts, comment forms, bylines,
image credits, promotions and stray CSS. No library cleans *plain text* captures (trafilatura and its
peers work on HTML markup), so the text rules below are ours; HTML goes through trafilatura first.
Every line kept is a verbatim slice of the capture, so quotes drawn from it stay verifiable.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from dataclasses import dataclass, field

from coach.text import BULLET, collapse, split_sentences

# --- repair: what every article goes through first ---------------------------------------------------
# Format characters (category Cf) are invisible: soft hyphens, zero-width spaces, direction marks, a BOM
# inside the text. They split words for search and make a quote typed by a reader fail to match, so
# they go; the zero-width joiner stays, because it is part of emoji sequences (👩‍👩‍👧) and harmless elsewhere.
_KEEP_FORMAT = {"\u200d"}


def repair_text(raw: str) -> str:
    """The text of a raw capture as quotes are checked against: mojibake fixed by ftfy ("Johnâ€™s" ->
    "John’s"), control characters (NUL included) and invisible format characters removed, Unicode in
    NFC. Quotes, typography and HTML entities are left as written (ftfy's other fixes are off)."""
    import ftfy

    config = ftfy.TextFixerConfig(
        unescape_html=False,
        uncurl_quotes=False,
        fix_latin_ligatures=False,
        fix_character_width=False,
        remove_terminal_escapes=True,
        remove_control_chars=True,
        normalization="NFC",
        explain=False,
    )
    return ftfy.fix_text(raw, config).translate(_invisible_table())


@functools.cache
def _invisible_table() -> dict[int, None]:
    """str.translate's table deleting every control and format character but white space and the ZWJ.
    Planes 2 to 13 (ideographs, unassigned) and 15 to 16 (private use) hold none: not walked (a whole
    walk of Unicode cost a quarter of a second in every ingest)."""
    codes = itertools.chain(range(0x20000), range(0xE0000, 0xF0000))
    return {
        code: None
        for code in codes
        if unicodedata.category(chr(code)) in ("Cf", "Cc")
        and chr(code) not in "\t\n\r\f"
        and chr(code) not in _KEEP_FORMAT
    }


# Whole lines that are page furniture, matched on the collapsed line, case-insensitively.
_FURNITURE = [
    r"(jump|skip) to (main )?content",
    r"access keys",
    r"(main )?menu|search|home|navigation|post navigation",
    r"(all|related|more|recent) (articles|posts|stories)\b.*",
    r"(previous|next) (post|article)\b.*",
    r".*\bcookies?\b.*\b(policy|accept|settings|consent|close)\b.*",
    r"(accept|reject)( all)? cookies\b.*",
    r"manage (cookie )?settings",
    r"share (this|on)\b.*",
    r"(tweet|pin it|email|print)",
    r"leave a (reply|comment)\b.*",
    r"your email address will not be published.*",
    r".*required fields are marked.*",
    r"comments are closed\.?",
    r"\W*(this post has )?\d+ (comments?|responses?|replies)",
    r"(posted )?by [\w .,'’&-]{1,60}",
    r"about the author\b.*",
    r"references?( ?(&|and) ?resources)?\b.*",
    r"see (also|our)\b.*",
    r"(read|learn) more\b.*|click here\b.*",
    r"\W*(filed|posted) (under|in):? .*",
    r"abn \d[\d ]*",
    r".*\((image|photo|picture|credit|source)s?: [^)]*\)",
    r"/\*.*\*/(\s*/\*.*\*/)*",
    r"[{}<>].*[{}<>]",
]
_FURNITURE_RE = re.compile(r"^(?:" + "|".join(_FURNITURE) + r")$", re.IGNORECASE)

# Sentences that sell rather than inform (calls to action); dropped from paragraphs.
_PROMO_RE = re.compile(
    r"\b(contact us|book (an|your) appointment|join our|sign up|subscribe|we[’']d love to hear"
    r"|click here|buy now|follow us|we (operate|offer) |our (online )?(program|course|classes|shop))",
    re.IGNORECASE,
)

_LINK_LABEL_RE = re.compile(r"\s*-?\s*(learn how|watch (the )?video|read more)\s*$", re.IGNORECASE)
_COMMENTS_START_RE = re.compile(
    r"^\W*(this post has )?\d+ (comments?|responses?|replies)$|^comments?$|^reader comments$", re.IGNORECASE
)
_COMMENTER_SAYS_RE = re.compile(r"^\s*\d{1,3}\.\s+(?P<name>[^.!?\n]{1,40}?)\s+says:?\s*$", re.IGNORECASE)
_COMMENTER_RE = re.compile(r"^\s*\d{1,3}\.\s+(?P<name>[^.!?,\n]{1,40}?)\s*$")
_MD_HEADING_RE = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


@dataclass
class Section:
    heading: str
    lines: list[str] = field(default_factory=list)


@dataclass
class Comment:
    commenter: str | None
    lines: list[str] = field(default_factory=list)


@dataclass
class CleanArticle:
    sections: list[Section]
    comments: list[Comment]


# Furniture is short (a menu item, a cookie banner); the patterns' ".*" pairs backtrack over a long line
# (quadratic: 3 s on one 120,000-character line), and a paragraph that long is not furniture anyway.
MAX_FURNITURE_CHARS = 400


def _is_furniture(line: str) -> bool:
    return len(line) <= MAX_FURNITURE_CHARS and bool(_FURNITURE_RE.match(line))


def _is_heading_candidate(line: str) -> bool:
    """A short line that reads as a title: no list marker, no sentence ending but "?", one sentence."""
    if BULLET.match(line) or len(line) > 90:
        return False
    words = line.split()
    if not 1 <= len(words) <= 12 or line[-1] in ".,;:!":
        return False
    return len(split_sentences(line)) == 1


def _drop_promotions(line: str) -> str | None:
    """Remove call-to-action sentences; a paragraph that is mostly promotion goes whole."""
    sentences = split_sentences(line)
    promos = [s for s in sentences if _PROMO_RE.search(s)]
    if not promos:
        return line
    if len(promos) * 3 >= len(sentences):
        return None
    return " ".join(s for s in sentences if s not in promos)


def clean_lines(raw_lines: list[str], *, title: str, known_headings: set[int] | None = None) -> CleanArticle:
    """Classify the capture's lines into sections and comments, dropping furniture.

    `known_headings` holds indexes of lines the format marks as headings (Markdown, HTML); for plain
    text, headings are recognised by shape: a short title-like line, the first of a run of such lines.
    """
    known_headings = known_headings or set()
    lines = [collapse(line) for line in raw_lines]
    norm_title = collapse(title).lower()

    # Everything before the article's own title line is masthead and breadcrumbs.
    start = next((i + 1 for i, line in enumerate(lines) if line.lower() == norm_title), 0)

    sections: list[Section] = [Section(heading="")]
    comments: list[Comment] = []
    in_comments = False
    run: list[str] = []  # consecutive heading-like lines not yet placed
    run_is_navigation = False

    def flush_run() -> None:
        nonlocal run_is_navigation
        if run and not run_is_navigation:
            sections.append(Section(heading=run[0], lines=list(run[1:])))
        run.clear()
        run_is_navigation = False

    for index in range(start, len(lines)):
        line = lines[index]
        if not line:  # sentences that address a model are screened out later (ingest/quarantine.py)
            continue
        says = _COMMENTER_SAYS_RE.match(line)
        if says or _COMMENTS_START_RE.match(line):
            flush_run()
            in_comments = True
            if says:
                comments.append(Comment(commenter=says.group("name").strip()))
            continue
        if _is_furniture(line):
            continue
        if in_comments:
            named = _COMMENTER_RE.match(line)
            if named:
                comments.append(Comment(commenter=named.group("name").strip()))
            elif comments:
                comments[-1].lines.append(line)
            else:
                comments.append(Comment(commenter=None, lines=[line]))
            continue
        if line.lower() == norm_title:
            # The article's own title inside a run of title-like lines: a list of links (navigation).
            run_is_navigation = run_is_navigation or bool(run)
            continue
        if index in known_headings:
            flush_run()
            run.append(line)
            continue
        if not known_headings and _is_heading_candidate(line):
            run.append(line)
            continue
        flush_run()
        kept = _drop_promotions(_LINK_LABEL_RE.sub("", line))
        if kept:
            sections[-1].lines.append(kept)
    flush_run()
    kept_sections = [s for s in sections if s.lines]
    kept_comments = [c for c in comments if c.lines]
    return CleanArticle(sections=kept_sections, comments=kept_comments)


def clean_text(raw: str, *, title: str) -> CleanArticle:
    """Plain-text capture."""
    return clean_lines(raw.splitlines(), title=title)


def clean_markdown(raw: str, *, title: str) -> CleanArticle:
    """Markdown capture: '#' lines are headings (their text kept, the marks dropped)."""
    lines: list[str] = []
    headings: set[int] = set()
    for line in raw.splitlines():
        match = _MD_HEADING_RE.match(line)
        if match:
            headings.add(len(lines))
            lines.append(match.group(2))
        else:
            lines.append(line)
    return clean_lines(lines, title=title, known_headings=headings)


def clean_html(raw: str, *, title: str) -> tuple[CleanArticle, str, dict[str, str | None]]:
    """HTML capture through trafilatura's main-content extractor; also returns the extracted text,
    which is what quotes from an HTML source are checked against, and the dates the page's metadata
    gives (`published`, and `updated` when the page says it was modified), as ISO strings."""
    import trafilatura

    extracted = trafilatura.bare_extraction(
        raw, output_format="python", include_comments=True, include_formatting=True, with_metadata=True
    )
    if extracted is None:
        return CleanArticle(sections=[], comments=[]), "", {}
    body = repair_text(extracted.text or "")
    article = clean_markdown(body, title=title)
    comment_text = repair_text(extracted.comments or "")
    if comment_text.strip():
        article.comments.extend(
            Comment(commenter=None, lines=[collapse(p)]) for p in comment_text.split("\n") if collapse(p)
        )
    return article, body + "\n" + comment_text, page_dates(raw, extracted.date)


def page_dates(raw: str, extracted_date: str | None) -> dict[str, str | None]:
    """Publication and modification dates from the page's metadata. trafilatura's date is the original
    publication date (its default, `original_date=True`); asked again without it, it gives the latest
    date the page states, which is the update when that differs."""
    if not extracted_date:
        return {}
    from trafilatura.metadata import extract_metadata

    latest = None
    try:
        latest = extract_metadata(raw, date_config={"original_date": False, "extensive_search": False}).date
    except Exception:  # noqa: BLE001 - metadata is a bonus; the article is what matters
        latest = None
    return {"published": extracted_date, "updated": latest if latest and latest > extracted_date else None}


def first_line_title(raw: str) -> str:
    """A title for an article that sources.toml does not describe: its first non-empty line."""
    for line in raw.splitlines():
        if collapse(line):
            return collapse(line)[:120]
    return "Untitled"
