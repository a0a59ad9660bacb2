"""Load the corpus: sources.toml plus one article per file, repaired, cleaned and split into chunks.

An article that cannot be used (unreadable, too large, nothing left after cleaning, a chunk that is not
verbatim in it) is skipped with one line naming the file and the reason; the rest of the corpus loads.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from langchain_core.documents import Document
from langchain_text_splitters import RecursiveCharacterTextSplitter

from coach.errors import CorpusError
from coach.models import Chunk, Source
from coach.text import collapse, passage_sentences, split_sentences
from ingest.clean import (
    CleanArticle,
    Section,
    clean_html,
    clean_markdown,
    clean_text,
    first_line_title,
    repair_text,
)
from ingest.quarantine import Flagged, screen, strip_hidden_html

log = logging.getLogger(__name__)

ARTICLE_SUFFIXES = (".txt", ".md", ".html", ".htm")
CHUNK_SIZE = 700
DEFAULT_MAX_ARTICLE_MB = 5.0


class ArticleUnusable(CorpusError):
    """One article cannot be used; ingest skips it and goes on with the rest."""


@dataclass(frozen=True)
class Skipped:
    """An article left out of the index, and why (one line for the ingest summary)."""

    path: Path
    reason: str

    def line(self) -> str:
        return f"skipped {self.path.name}: {self.reason}"


@dataclass
class LoadedSource:
    source: Source
    verbatim_text: str  # what quotes are checked against: the repaired file, or trafilatura's text for HTML
    article: CleanArticle
    flagged: list[Flagged] = field(default_factory=list)  # kept out of the index (ingest/quarantine.py)
    path: Path = field(default_factory=Path)
    raw: str = ""  # raw_digest of the file and facts it was loaded from

    @property
    def sha(self) -> str:
        return hashlib.sha256(self.verbatim_text.encode()).hexdigest()


def read_catalogue(corpus_dir: Path) -> dict[str, dict]:
    path = corpus_dir / "sources.toml"
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CorpusError(f"{path} is not valid TOML ({exc}); fix or remove it.") from exc


def load_corpus(
    corpus_dir: Path,
    *,
    max_article_mb: float = DEFAULT_MAX_ARTICLE_MB,
    skipped: list[Skipped] | None = None,
    known: dict[str, str] | None = None,
    reused: dict[str, str] | None = None,
) -> list[LoadedSource]:
    """Every usable article under `corpus_dir`; the file stem is the source id. An unusable one is
    appended to `skipped` (or logged, when the caller keeps no list) and the rest still load.

    `known`: source id -> `raw_digest` of the version already indexed; an article whose file and facts
    still have that digest is not read again, only listed in `reused` (id -> digest): re-ingesting a
    large unchanged library reads bytes, not articles."""
    if not corpus_dir.is_dir():
        raise CorpusError(f"Corpus directory {corpus_dir} does not exist; set COACH_CORPUS_DIR.")
    files = sorted(
        p
        for p in corpus_dir.iterdir()
        if p.suffix.lower() in ARTICLE_SUFFIXES and (p.is_file() or p.is_symlink())
    )
    # A link could make ingest read (and the coach quote) any file the process can read: a linked
    # article is skipped like any unusable one; a linked catalogue stops ingest (it describes them all).
    root = corpus_dir.resolve()

    def outside(p: Path) -> bool:
        return p.is_symlink() or not p.resolve().is_relative_to(root)

    catalogue_path = corpus_dir / "sources.toml"
    if catalogue_path.exists() and outside(catalogue_path):
        raise CorpusError(
            f"Refusing {catalogue_path}: it is a symbolic link or lies outside {corpus_dir}; "
            "copy the real file into the corpus directory instead."
        )
    catalogue = read_catalogue(corpus_dir)
    for p in [p for p in files if outside(p)]:
        note_skipped(
            skipped, Skipped(p, "a symbolic link or outside the corpus directory; copy the real file in")
        )
        files.remove(p)
    if not files:
        raise CorpusError(f"No articles (.txt, .md, .html) in {corpus_dir}.")
    seen: dict[str, Path] = {}
    loaded = []
    for path in files:
        source_id = path.stem
        if source_id in seen:
            raise CorpusError(
                f"Two articles share the source id {source_id!r}: {seen[source_id]} and {path}."
            )
        seen[source_id] = path
        facts = catalogue.get(source_id, {})
        try:
            if known and source_id in known:
                digest = raw_digest(path, facts)
                if digest == known[source_id]:
                    if reused is not None:
                        reused[source_id] = digest
                    continue
            loaded.append(load_article(path, facts, max_article_mb=max_article_mb))
        except ArticleUnusable as exc:
            note_skipped(skipped, Skipped(path, str(exc)))
        except OSError as exc:
            note_skipped(skipped, Skipped(path, f"cannot be read ({exc.strerror or exc})"))
    return loaded


@functools.cache
def _code_version() -> str:
    """The loader's and the cleaner's source: a change to either reads every article again."""
    here = Path(__file__).parent
    code = b"".join((here / name).read_bytes() for name in ("loader.py", "clean.py", "quarantine.py"))
    return hashlib.sha256(code).hexdigest()


def raw_digest(path: Path, facts: dict) -> str:
    """Identity of what an article's chunks are made from: its bytes, its facts in sources.toml and this
    code."""
    digest = hashlib.sha256(path.read_bytes())
    digest.update(json.dumps(facts, sort_keys=True, default=str).encode())
    digest.update(_code_version().encode())
    return digest.hexdigest()


def note_skipped(skipped: list[Skipped] | None, item: Skipped) -> None:
    if skipped is None:
        log.warning("%s", item.line())
    else:
        skipped.append(item)


def read_article(path: Path, *, max_article_mb: float = DEFAULT_MAX_ARTICLE_MB) -> str:
    """The file's text, repaired (coach.clean.repair_text). Bytes that are not UTF-8 are read as
    Windows-1252, what browsers assume for a page without a charset, and ftfy repairs what that
    decoding leaves; a file that is neither is unusable."""
    try:
        size = path.stat().st_size
        if size > max_article_mb * 1_000_000:
            raise ArticleUnusable(
                f"{size / 1_000_000:.1f} MB, over the {max_article_mb:g} MB limit per article "
                "(COACH_MAX_ARTICLE_MB); split it or raise the limit"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise ArticleUnusable(f"cannot be read ({exc.strerror or exc})") from exc
    try:
        raw = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        try:
            raw = data.decode("cp1252")
        except UnicodeDecodeError:
            raise ArticleUnusable(
                f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start} is invalid)"
            ) from None
        log.info("%s is not UTF-8; read as Windows-1252", path.name)
    return repair_text(raw)


def _date(value: object, field_name: str, path: Path) -> dt.date | None:
    """A date from sources.toml (a TOML date, or an ISO string) or from the page's own metadata."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        raise ArticleUnusable(f"{field_name} {value!r} is not a date like 2021-04-30") from None


def load_article(path: Path, facts: dict, *, max_article_mb: float = DEFAULT_MAX_ARTICLE_MB) -> LoadedSource:
    raw = read_article(path, max_article_mb=max_article_mb)
    title = str(facts.get("title") or first_line_title(raw))
    suffix = path.suffix.lower()
    hidden: list[tuple[int, str]] = []
    page_dates: dict[str, str | None] = {}
    if suffix in (".html", ".htm"):
        shown, hidden = strip_hidden_html(raw)  # before trafilatura: it would read hidden text as text
        article, verbatim, page_dates = clean_html(shown, title=title)
    elif suffix == ".md":
        article, verbatim = clean_markdown(raw, title=title), raw
    else:
        article, verbatim = clean_text(raw, title=title), raw
    if not article.sections and not article.comments:
        raise ArticleUnusable("no article text left after cleaning (is it a page of links, or empty?)")
    screened = screen(article, source_id=path.stem, path=str(path), raw=raw, hidden=hidden)
    source = Source(
        source_id=path.stem,
        title=title,
        authors=list(facts.get("authors", [])),
        publisher=facts.get("publisher"),
        note=facts.get("note"),
        path=str(path),
        # sources.toml wins; an HTML page's own metadata (trafilatura) fills what it leaves out
        published=_date(facts.get("published") or page_dates.get("published"), "published", path),
        updated=_date(facts.get("updated") or page_dates.get("updated"), "updated", path),
    )
    return LoadedSource(
        source=source,
        verbatim_text=verbatim,
        article=screened.article,
        flagged=screened.flagged,
        path=path,
        raw=raw_digest(path, facts),
    )


# The article's sections come from cleaning (headings by format or by shape), so each is split on its own:
# paragraphs and list items, then sentence ends; there is deliberately no character-level fallback, so no
# sentence is ever cut. LangChain's MarkdownHeaderTextSplitter used to re-find the sections from a
# Markdown rendering; it drops characters it deems unprintable, so chunks no longer matched their source.
_BODY_SPLITTER = RecursiveCharacterTextSplitter(
    separators=["\n\n", "\n", r"(?<=[.!?])\s+(?=[\"“‘(]?[A-Z0-9])"],
    is_separator_regex=True,
    keep_separator="end",
    chunk_size=CHUNK_SIZE,
    chunk_overlap=0,
)
# A paragraph longer than this is split at its sentence ends by our own splitter before LangChain's sees
# it: the recursive splitter re-joins and re-measures pieces, which is quadratic in a paragraph's length
# (a 20 MB article never finished).
LONG_PARAGRAPH = 20 * CHUNK_SIZE
RUN_ON = 2 * CHUNK_SIZE


def _sections(article: CleanArticle) -> list[Section]:
    """Consecutive sections under the same heading are one (as the Markdown splitter had them, so chunk
    ids stay what they were)."""
    merged: list[Section] = []
    for section in article.sections:
        if merged and merged[-1].heading == section.heading:
            merged[-1] = Section(heading=section.heading, lines=[*merged[-1].lines, *section.lines])
        else:
            merged.append(section)
    return merged


def chunk_source(loaded: LoadedSource) -> list[Document]:
    """The source's chunks, each with its section title and kind (article or reader comment); an
    ArticleUnusable error when a chunk is not verbatim in the source."""
    src = loaded.source
    base = {"source": src.source_id, "title": src.title}
    docs: list[Document] = []
    for section in _sections(loaded.article):
        meta = {**base, "section": section.heading, "kind": "article", "commenter": ""}
        # Lines joined as the Markdown splitter joined them ("  \n", a Markdown line break), so chunk
        # texts, and their ids, stay what they were.
        body = "  \n".join(line.strip() for line in section.lines if line.strip())
        docs.extend(Document(page_content=t, metadata=dict(meta)) for t in _split_body(body))
    for comment in loaded.article.comments:
        meta = {**base, "section": "Reader comments", "kind": "comment", "commenter": comment.commenter or ""}
        body = "\n".join(comment.lines)
        docs.extend(Document(page_content=t, metadata=dict(meta)) for t in _split_body(body))
    for position, doc in enumerate(docs):
        doc.metadata["position"] = position
    check_verbatim(docs, loaded.verbatim_text, src.source_id)
    if not docs:
        raise ArticleUnusable("no article text left after cleaning")
    return docs


def _split_body(text: str) -> list[str]:
    # Paragraph breaks everywhere, so the body splitter prefers them.
    paragraphs = [p for p in text.replace("\n", "\n\n").split("\n\n") if p.strip()]
    out: list[str] = []
    batch: list[str] = []
    for paragraph in paragraphs:
        if len(paragraph) <= LONG_PARAGRAPH:
            batch.append(paragraph)
            continue
        if batch:
            out.extend(_BODY_SPLITTER.split_text("\n\n".join(batch)))
            batch = []
        out.extend(_pack_sentences(paragraph))
    if batch:
        out.extend(_BODY_SPLITTER.split_text("\n\n".join(batch)))
    return [t for t in out if t.strip()]


def _pack_sentences(paragraph: str) -> list[str]:
    """A very long paragraph in chunks of whole sentences up to CHUNK_SIZE (one sentence longer than
    that is a chunk of its own), in one linear pass."""
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for sentence in (piece for s in split_sentences(paragraph) for piece in _cut_run_on(s)):
        if current and size + 1 + len(sentence) > CHUNK_SIZE:
            chunks.append(" ".join(current))
            current, size = [], 0
        current.append(sentence)
        size += len(sentence) + (1 if size else 0)
    if current:
        chunks.append(" ".join(current))
    return chunks


def _cut_run_on(sentence: str) -> list[str]:
    """A "sentence" of more than RUN_ON characters (text without stops: a pasted list, a table, a
    minified script) cut at white space into CHUNK_SIZE pieces. Not prose, so no real sentence is cut,
    and what reads chunks sentence by sentence (the exercise rules) never sees one unbounded line."""
    if len(sentence) <= RUN_ON:
        return [sentence]
    pieces: list[str] = []
    start = 0
    while start < len(sentence):
        end = min(start + CHUNK_SIZE, len(sentence))
        if end < len(sentence):
            space = sentence.rfind(" ", start + 1, end)
            end = space if space > start else end
        pieces.append(sentence[start:end].strip())
        start = end
    return [p for p in pieces if p]


def check_verbatim(docs: list[Document], verbatim_text: str, source_id: str) -> None:
    """Every sentence of every chunk must be verbatim in the source (both white-space collapsed).

    Sentences come in the source's order, so each is looked for from where the last was found (and
    from the start only when that fails): linear in the article, where a search from the start for
    every sentence was quadratic."""
    haystack = collapse(verbatim_text)
    cursor = 0
    for doc in docs:
        for sentence in passage_sentences(doc.page_content):
            needle = collapse(sentence)
            at = haystack.find(needle, cursor)
            if at < 0:
                at = haystack.find(needle)
            if at < 0:
                raise ArticleUnusable(f"a chunk is not verbatim in the source: {sentence[:80]!r}")
            cursor = at + len(needle)


def chunk_key(doc: Document) -> str:
    """Stable chunk id: the source id plus a hash of the chunk's content and metadata."""
    digest = hashlib.sha256(
        (doc.page_content + json.dumps(doc.metadata, sort_keys=True)).encode("utf-8")
    ).hexdigest()
    return f"{doc.metadata['source']}:{digest[:24]}"


def corpus_chunks(corpus_dir: Path) -> tuple[list[Chunk], dict[str, str], dict[str, str]]:
    """The chunks ingest would store (same loader, same ids, nothing embedded), with each source's
    collapsed text and title: what the maps are built from, for tests and benchmarks without an index."""
    from coach.store import chunk_from

    chunks: list[Chunk] = []
    texts: dict[str, str] = {}
    titles: dict[str, str] = {}
    for loaded in load_corpus(corpus_dir):
        texts[loaded.source.source_id] = collapse(loaded.verbatim_text)
        titles[loaded.source.source_id] = loaded.source.title
        chunks.extend(
            chunk_from(chunk_key(doc), doc.page_content, doc.metadata) for doc in chunk_source(loaded)
        )
    return chunks, texts, titles
