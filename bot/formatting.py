"""Telegram HTML for answers, sources and disagreements, and splitting long HTML into sendable messages."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence

from coach.models import Answer, Source

MAX_MESSAGE = 4096  # Telegram's limit on a message's text
# Tags Telegram's HTML parse mode accepts (https://core.telegram.org/bots/api#html-style).
ALLOWED_TAGS = frozenset({"b", "i", "u", "s", "a", "code", "pre", "blockquote", "tg-spoiler", "span"})

_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z-]*)([^>]*)>")
_ENTITY_MAX = 10  # the longest entity we ever write (&#x1F600;) is shorter than this


def esc(text: str) -> str:
    """Every piece of text that goes into a message passes through here."""
    return html.escape(text, quote=True)


def _marks(numbers: Iterable[int]) -> str:
    return "".join(f"[{n}]" for n in numbers)


def _dated(title: str, source_id: str, dates: Mapping[str, str] | None) -> str:
    """A source's title with its date when sources.toml (or the page) gives one."""
    when = (dates or {}).get(source_id)
    return f"{esc(title)} ({esc(when)})" if when else esc(title)


_MARK = re.compile(r"\[(\d+)\]")


def visible_marks(text: str) -> set[int]:
    """The citation numbers a text shows as [n] marks."""
    return {int(n) for n in _MARK.findall(text)}


def render_answer(answer: Answer, dates: Mapping[str, str] | None = None) -> str:
    """The answer as HTML: paragraphs kept, a heading line ("What you can do:") in bold, urgent advice in
    bold, citation marks as they are, then one line naming the sources behind the marks."""
    paragraphs = [p.strip() for p in answer.answer.split("\n\n") if p.strip()]
    rendered: list[str] = []
    for i, paragraph in enumerate(paragraphs):
        if answer.urgent and i == 0:
            rendered.append(f"<b>{esc(paragraph)}</b>")
            continue
        first, _, rest = paragraph.partition("\n")
        if rest and first.endswith(":"):
            rendered.append(f"<b>{esc(first)}</b>\n{esc(rest)}")
        else:
            rendered.append(esc(paragraph) + _sides_under(paragraph, answer))
    # The footer names the sources behind the marks the runner can see, and no others.
    shown = visible_marks(visible_text("\n\n".join(rendered)))
    by_title: dict[tuple[str, str], list[int]] = {}
    for citation in answer.citations:
        if citation.n in shown:
            by_title.setdefault((citation.title, citation.source_id), []).append(citation.n)
    if by_title:
        lines = [f"{_marks(ns)} {_dated(title, sid, dates)}" for (title, sid), ns in by_title.items()]
        rendered.append("<i>Sources: " + "; ".join(lines) + "</i>")
    return "\n\n".join(rendered)


def _sides_under(paragraph: str, answer: Answer) -> str:
    """A line that names a disagreement and ends in a colon ("...; this answer quotes both sides:") is
    followed by the sides, each with its marks, so the chat shows what the line announces (the CLI
    prints them below the answer; here they would otherwise be a button away)."""
    if not paragraph.rstrip().endswith(":"):
        return ""
    lines = [
        f"\n– {esc(p.summary)} {_marks(p.citations)}".rstrip()
        for d in answer.disagreements
        if d.topic.rstrip("?") in paragraph
        for p in d.positions
    ]
    return "".join(lines)


def render_sources(answer: Answer, dates: Mapping[str, str] | None = None) -> str:
    """The quoted passages behind an answer's marks, each source with its date when known."""
    if not answer.citations:
        return "This answer quotes no passages."
    blocks = ["<b>Sources</b>"]
    for c in answer.citations:
        title = _dated(c.title, c.source_id, dates)
        blocks.append(f"<b>[{c.n}]</b> <i>{title}</i>\n<blockquote>{esc(c.quote)}</blockquote>")
    return "\n\n".join(blocks)


def render_disagreements(answer: Answer) -> str:
    """Where the sources behind an answer disagree, each position with its marks."""
    if not answer.disagreements:
        return "The sources behind this answer do not disagree."
    blocks = ["<b>Where the sources disagree</b>"]
    for d in answer.disagreements:
        lines = [f"<b>{esc(d.topic)}</b> <i>({esc(d.kind.replace('_', ' '))})</i>"]
        lines += [f"– {esc(p.summary)} {_marks(p.citations)}".rstrip() for p in d.positions]
        blocks.append("\n".join(lines))
    # Only the passages the positions rest on: the rest of the answer's citations are under Sources.
    cited = {n for d in answer.disagreements for p in d.positions for n in p.citations}
    quotes = [
        f"<b>[{c.n}]</b> <i>{esc(c.title)}</i>: “{esc(c.quote)}”" for c in answer.citations if c.n in cited
    ]
    if quotes:
        blocks.append("\n".join(quotes))
    return "\n\n".join(blocks)


def render_source_list(sources: Sequence[Source]) -> str:
    if not sources:
        return "No articles are indexed yet."
    lines = []
    for s in sources:
        by = ", ".join(s.authors) or s.publisher or ""
        when = s.dated.isoformat() if s.dated else ""
        lines.append(
            f"• <i>{esc(s.title)}</i>" + (f" — {esc(by)}" if by else "") + (f" ({when})" if when else "")
        )
    return "\n".join(lines)


def render_debate_list(items: Sequence[object]) -> str:
    """The disagreement map, short: one numbered line per topic; the evidence is one button away."""
    if not items:
        return "The articles do not disagree on anything I have mapped."
    lines = ["<b>Where the articles disagree</b>"]
    for number, item in enumerate(items, start=1):
        topic = str(_field(item, "topic") or "(untitled)")
        sides = len(_field(item, "positions") or [])
        lines.append(f"{number}. {esc(topic)}" + (f" <i>({sides} views)</i>" if sides else ""))
    lines.append("\nTap a topic to read what each side says, quoted.")
    return "\n".join(lines)


def _bare(text: str) -> str:
    return " ".join(text.strip().strip("“”\"'…").replace("…", " ").split())


def render_debate(item: object, titles: dict[str, str], *, heading: bool = True) -> str:
    """One disagreement (`coach debates --json` shape, a dict or an object): each side once, its label,
    its summary unless that only repeats a quote, and each quote once with its article's title."""
    lines = []
    if heading:
        kind = str(_field(item, "kind") or "").replace("_", " ")
        topic = str(_field(item, "topic") or "(untitled)")
        lines.append(f"<b>{esc(topic)}</b>" + (f" <i>({esc(kind)})</i>" if kind else ""))
    for position in _field(item, "positions") or []:
        summary = str(_field(position, "summary") or "")
        quotes: dict[str, str] = {}
        for evidence in _field(position, "evidence") or []:
            quote = str(_field(evidence, "quote") or "")
            source = str(_field(evidence, "source_id") or "")
            quotes.setdefault(quote, titles.get(source, source))
        label, sep, rest = summary.partition(": ")
        said = _bare(rest if sep else summary)
        if said and any(said in _bare(q) for q in quotes):  # the summary is a quote: say it once
            summary = label if sep else ""
        lines.append(f"\n• <b>{esc(summary)}</b>" if summary else "\n•")
        lines += [f"  <i>“{esc(q)}”</i> – {esc(title)}" for q, title in quotes.items()]
    return "\n".join(lines).replace("•\n  ", "• ")


def _field(item: object, name: str) -> object:
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


# --- splitting -----------------------------------------------------------------------------------------


def utf16_len(text: str) -> int:
    """Telegram counts message length in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def _prefix_within(text: str, budget: int) -> int:
    """The longest prefix of `text` (as a str index) that is at most `budget` UTF-16 units."""
    used = 0
    for i, ch in enumerate(text):
        used += 2 if ord(ch) > 0xFFFF else 1
        if used > budget:
            return i
    return len(text)


def _outside_markup(text: str, pos: int) -> int:
    """Move `pos` back so it is not inside a tag or an entity."""
    lt, gt = text.rfind("<", 0, pos), text.rfind(">", 0, pos)
    if lt > gt:
        pos = lt
    amp, semi = text.rfind("&", 0, pos), text.rfind(";", 0, pos)
    if amp > semi and pos - amp <= _ENTITY_MAX:
        pos = amp
    return pos


def _cut_point(text: str, end: int) -> int:
    """Where to cut `text[:end]`: a paragraph break, else a line break, else a space, else anywhere
    outside markup. A break in the first third would leave a stub message, so it is passed over."""
    floor = end // 3
    for sep in ("\n\n", "\n", " "):
        at = text.rfind(sep, 0, end)
        while at > floor:
            safe = _outside_markup(text, at)
            if safe == at:
                return at
            at = text.rfind(sep, 0, safe)
    return _outside_markup(text, end)


def _open_tags(fragment: str) -> list[tuple[str, str]]:
    """(name, opening tag) of every tag still open at the end of `fragment`."""
    stack: list[tuple[str, str]] = []
    for m in _TAG.finditer(fragment):
        name = m.group(2).lower()
        if m.group(1):
            for i in range(len(stack) - 1, -1, -1):
                if stack[i][0] == name:
                    del stack[i]
                    break
        else:
            stack.append((name, m.group(0)))
    return stack


def visible_text(fragment: str) -> str:
    """What Telegram shows for an HTML fragment: tags dropped, entities decoded."""
    return html.unescape(_TAG.sub("", fragment))


def split_html(text: str, limit: int = MAX_MESSAGE) -> list[str]:
    """Split HTML into messages of at most `limit` UTF-16 units, preferring paragraph, then line, then
    word boundaries; a tag open at a cut is closed there and reopened in the next message, and no cut
    falls inside a tag or an entity. Hand-written because PTB has no HTML-aware splitter."""
    if limit < 64:
        raise ValueError("limit too small to hold tags")
    parts: list[str] = []
    rest = text.strip()
    while rest:
        if utf16_len(rest) <= limit:
            parts.append(rest)
            break
        reserve = 0
        while True:
            end = _prefix_within(rest, limit - reserve)
            cut = _cut_point(rest, end)
            if cut <= 0:  # an unbreakable run of markup: cut at the budget rather than loop forever
                cut = end
            head = rest[:cut].rstrip()
            stack = _open_tags(head)
            closers = "".join(f"</{name}>" for name, _ in reversed(stack))
            if utf16_len(head) + utf16_len(closers) <= limit or reserve >= limit // 2:
                break
            reserve = utf16_len(closers) + reserve + 1
        parts.append(head + closers)
        rest = "".join(tag for _, tag in stack) + rest[cut:].lstrip()
    return [p for p in parts if visible_text(p).strip()]
