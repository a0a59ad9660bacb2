"""Load the corpus: sources.toml plus one article per file, cleaned and split into chunks."""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from langchain_core.documents import Document
from langchain_text_splitters import MarkdownHeaderTextSplitter, RecursiveCharacterTextSplitter

from coach.errors import CorpusError
from coach.models import Chunk, Source
from coach.text import collapse, passage_sentences
from ingest.clean import CleanArticle, clean_html, clean_markdown, clean_text, first_line_title
from ingest.quarantine import Flagged, screen, strip_hidden_html

ARTICLE_SUFFIXES = (".txt", ".md", ".html", ".htm")
CHUNK_SIZE = 700


@dataclass
class LoadedSource:
    source: Source
    verbatim_text: str  # what quotes are checked against: the file, or trafilatura's text for HTML
    article: CleanArticle
    flagged: list[Flagged] = field(default_factory=list)  # kept out of the index (ingest/quarantine.py)

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


def load_corpus(corpus_dir: Path) -> list[LoadedSource]:
    """Every article under `corpus_dir`; the file stem is the source id."""
    if not corpus_dir.is_dir():
        raise CorpusError(f"Corpus directory {corpus_dir} does not exist; set COACH_CORPUS_DIR.")
    catalogue = read_catalogue(corpus_dir)
    files = sorted(
        p
        for p in corpus_dir.iterdir()
        if p.suffix.lower() in ARTICLE_SUFFIXES and (p.is_file() or p.is_symlink())
    )
    # A link could make ingest read (and the coach quote) any file the process can read.
    root = corpus_dir.resolve()
    refused = [
        p.name
        for p in [*files, corpus_dir / "sources.toml"]
        if p.is_symlink() or not p.resolve().is_relative_to(root)
    ]
    if refused:
        raise CorpusError(
            f"Refusing corpus files that are symbolic links or lie outside {corpus_dir}: {', '.join(refused)}; "
            "copy the real files into the corpus directory instead."
        )
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
        loaded.append(load_article(path, catalogue.get(source_id, {})))
    return loaded


def load_article(path: Path, facts: dict) -> LoadedSource:
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(f"Cannot read {path}: {exc}") from exc
    title = str(facts.get("title") or first_line_title(raw))
    suffix = path.suffix.lower()
    hidden: list[tuple[int, str]] = []
    if suffix in (".html", ".htm"):
        shown, hidden = strip_hidden_html(raw)  # before trafilatura: it would read hidden text as text
        article, verbatim = clean_html(shown, title=title)
    elif suffix == ".md":
        article, verbatim = clean_markdown(raw, title=title), raw
    else:
        article, verbatim = clean_text(raw, title=title), raw
    screened = screen(article, source_id=path.stem, path=str(path), raw=raw, hidden=hidden)
    source = Source(
        source_id=path.stem,
        title=title,
        authors=list(facts.get("authors", [])),
        publisher=facts.get("publisher"),
        note=facts.get("note"),
        path=str(path),
    )
    return LoadedSource(
        source=source, verbatim_text=verbatim, article=screened.article, flagged=screened.flagged
    )


# Split on the article's structure first (sections), then paragraphs and list items, then
# sentence ends; there is deliberately no character-level fallback, so no sentence is ever cut.
_SECTION_SPLITTER = MarkdownHeaderTextSplitter(headers_to_split_on=[("#", "section")], strip_headers=True)
_BODY_SPLITTER = RecursiveCharacterTextSplitter(
    separators=["\n\n", "\n", r"(?<=[.!?])\s+(?=[\"“‘(]?[A-Z0-9])"],
    is_separator_regex=True,
    keep_separator="end",
    chunk_size=CHUNK_SIZE,
    chunk_overlap=0,
)


def _as_markdown(article: CleanArticle) -> str:
    parts = []
    for section in article.sections:
        parts.append(f"# {section.heading}" if section.heading else "")
        parts.append("\n\n".join(section.lines))
    return "\n\n".join(parts)


def chunk_source(loaded: LoadedSource) -> list[Document]:
    """The source's chunks, each with its section title and kind (article or reader comment)."""
    src = loaded.source
    base = {"source": src.source_id, "title": src.title}
    docs: list[Document] = []
    for part in _SECTION_SPLITTER.split_text(_as_markdown(loaded.article)):
        meta = {**base, "section": part.metadata.get("section", ""), "kind": "article", "commenter": ""}
        docs.extend(Document(page_content=t, metadata=dict(meta)) for t in _split_body(part.page_content))
    for comment in loaded.article.comments:
        meta = {**base, "section": "Reader comments", "kind": "comment", "commenter": comment.commenter or ""}
        body = "\n".join(comment.lines)
        docs.extend(Document(page_content=t, metadata=dict(meta)) for t in _split_body(body))
    for position, doc in enumerate(docs):
        doc.metadata["position"] = position
    check_verbatim(docs, loaded.verbatim_text, src.source_id)
    return docs


def _split_body(text: str) -> list[str]:
    # MarkdownHeaderTextSplitter joins a section's lines with single newlines; restore paragraph
    # breaks so the body splitter prefers them.
    return [t for t in _BODY_SPLITTER.split_text(text.replace("\n", "\n\n")) if t.strip()]


def check_verbatim(docs: list[Document], verbatim_text: str, source_id: str) -> None:
    """Every sentence of every chunk must be verbatim in the source; anything else is a pipeline bug."""
    haystack = collapse(verbatim_text)
    for doc in docs:
        for sentence in passage_sentences(doc.page_content):
            if collapse(sentence) not in haystack:
                raise CorpusError(f"Chunk text not verbatim in {source_id}: {sentence[:80]!r}")


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
