"""CoachService: the one core every front end calls. question -> triage -> retrieval -> verified Answer."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence

from coach.debates import DebateMap, MapDisagreement, map_key, read_map
from coach.embeddings import NamedEmbeddings, load_minilm
from coach.errors import IndexNotReady
from coach.extractive import Draft, compose
from coach.followup import condense_offline, format_history, leans_on_history
from coach.grounding import Grounder
from coach.llm import BackendUnavailable, ChatBackend, scrub
from coach.models import Answer, Chunk, Citation, Disagreement, Position, Source, Turn
from coach.prompts import prompts
from coach.retrieval import HybridRetriever, LexicalIndex, Mode, Retrieval
from coach.routines import Library, library_key, read_library
from coach.safety import addresses_model, find_red_flags, normalise_question, urgent_message
from coach.settings import Settings, load_settings
from coach.storage import read_snapshot
from coach.store import ChunkStore
from coach.text import collapse

log = logging.getLogger(__name__)

EXTRACTIVE = "extractive"
# Below this share of the question's words found in the corpus, even a fair dense match is not trusted:
# "taper plan before a marathon" sits close to running articles in embedding space.
MIN_COVERAGE = 0.5
STRONG_SIMILARITY = 0.55
_MARK = re.compile(r"\[(\d+)\]")

# Shown above the extractive answer when a configured model could not be used, so the user knows.
NOTE_UNAVAILABLE = "(The language model was unavailable; this answer is quoted directly from the articles.)"
NOTE_UNSUPPORTED = (
    "(The language model's answer could not be checked against the articles; "
    "this answer is quoted directly from them.)"
)
# Of the answer deadline, kept back for checking citations and composing the fallback after the model.
RESERVE_SHARE = 0.25
RESERVE_MAX_S = 2.0
CONDENSE_SHARE = 0.3  # most of the deadline a follow-up's condensing call may take
MAX_CONDENSED_CHARS = 400


class CoachService:
    """Holds the model, the store and the lexical index for the life of the process."""

    def __init__(
        self,
        settings: Settings,
        embeddings: NamedEmbeddings,
        store: ChunkStore,
        snapshot: dict[str, dict],
        *,
        backend: ChatBackend | None = None,
        debate_map: DebateMap | None = None,
        library: Library | None = None,
    ) -> None:
        self.settings = settings
        self.embeddings = embeddings
        self.store = store
        self.snapshot = snapshot
        self.lexical = LexicalIndex(store.all_chunks())
        self.retriever = HybridRetriever(store, embeddings, self.lexical)
        self._source_texts = {sid: entry.get("text", "") for sid, entry in snapshot.items()}
        self._titles = {sid: entry.get("title", sid) for sid, entry in snapshot.items()}
        self.backend = backend
        if backend is None and settings.llm and settings.llm != EXTRACTIVE:
            self.backend = ChatBackend.from_settings(settings)
        self.grounder = Grounder(embeddings, self._source_texts, self._titles)
        self.debate_map = debate_map or DebateMap(key="")
        self.library = library or Library(key="")

    @classmethod
    def open(
        cls,
        settings: Settings | None = None,
        *,
        embeddings: NamedEmbeddings | None = None,
    ) -> CoachService:
        """Open what `coach ingest` built, read-only. A missing index, or a disagreement map or exercise
        library missing or older than the index, is an IndexNotReady error that names `coach ingest`:
        opening never builds anything, so a bot and an ingest job never race to write the same files."""
        settings = settings or load_settings()
        embeddings = embeddings or load_minilm(settings.model_dir)
        if not settings.chroma_url and not (settings.chroma_dir / "chroma.sqlite3").exists():
            raise IndexNotReady(
                f"There is no index at {settings.chroma_dir} yet; run `coach ingest` to build it."
            )
        store = ChunkStore(settings, embeddings)
        snapshot = read_snapshot(settings)
        if not store.exists() or not snapshot:
            raise IndexNotReady(f"There is no index at {store.location} yet; run `coach ingest` to build it.")
        store.check_model()
        shas = {sid: entry.get("sha", "") for sid, entry in snapshot.items()}
        debate_map = read_map(settings.data_dir)
        if debate_map is None or debate_map.key != map_key(shas, embeddings.name):
            raise IndexNotReady(
                f"The disagreement map in {settings.data_dir} is missing or older than the index; "
                "run `coach ingest` to rebuild it."
            )
        library = read_library(settings.data_dir)
        if library is None or library.key != library_key(shas):
            raise IndexNotReady(
                f"The exercise library in {settings.data_dir} is missing or older than the index; "
                "run `coach ingest` to rebuild it."
            )
        return cls(settings, embeddings, store, snapshot, debate_map=debate_map, library=library)

    @property
    def backend_name(self) -> str:
        return self.backend.name if self.backend else EXTRACTIVE

    def sources(self) -> list[Source]:
        keys = Source.model_fields.keys()
        return [Source(**{k: v for k, v in entry.items() if k in keys}) for entry in self.snapshot.values()]

    def debates(self) -> list[dict]:
        """The whole disagreement map in the `coach debates --json` shape (ARCHITECTURE.md)."""
        return [d.public() for d in self.debate_map.disagreements]

    def search_query(self, question: str, history: Sequence[Turn] = ()) -> str:
        """The text retrieval searches for (offline condensing of a follow-up; what evals score)."""
        return condense_offline(question, history) if history else question

    def retrieve(self, question: str, *, mode: Mode = "hybrid") -> Retrieval:
        return self.retriever.retrieve(question, k=self.settings.top_k, mode=mode)

    def answer(self, question: str, history: Sequence[Turn] = ()) -> Answer:
        """A grounded answer: red flags first, then cited sentences, or an honest abstention.

        With a model configured, its answer is kept only as far as its citations check out; when it
        fails, hangs, is cooling down or has nothing supported to say, the extractive answer is given,
        marked as such, within settings.answer_deadline_s."""
        deadline = time.monotonic() + self.settings.answer_deadline_s
        text = normalise_question(question, max_chars=self.settings.max_question_chars)
        flags = find_red_flags(text)
        if flags:  # before any backend, condensing included: nothing may delay or soften this
            return Answer(question=text, backend=self.backend_name, answer=urgent_message(flags), urgent=True)
        standalone = self._standalone(text, history, deadline) if history else text
        if standalone != text and (flags := find_red_flags(standalone)):
            # "and now it's swollen?" after "I twisted my ankle": the warning sign spans two turns.
            return Answer(question=text, backend=self.backend_name, answer=urgent_message(flags), urgent=True)
        retrieval = self.retrieve(standalone)
        if not self._covered(retrieval):
            return self._abstain(text)
        note = None
        if self.backend is not None:
            try:
                draft = self._model_answer(standalone, retrieval, deadline)
            except BackendUnavailable:
                draft, note = None, NOTE_UNAVAILABLE
            else:
                if draft.citations:
                    return self._with_disagreements(text, self.backend.name, draft.text, draft, retrieval)
                note = NOTE_UNSUPPORTED
        draft = self._verified(
            compose(retrieval, self.lexical.idf, self._source_texts, self._titles), retrieval
        )
        if not draft.citations:
            return self._abstain(text)
        body = f"{note}\n\n{draft.text}" if note else draft.text
        return self._with_disagreements(text, EXTRACTIVE, body, draft, retrieval)

    def _with_disagreements(
        self, question: str, backend: str, body: str, draft: Draft, retrieval: Retrieval
    ) -> Answer:
        """The final answer, with the map's disagreements about the question on every backend."""
        citations, disagreements = self._disagreements(question, retrieval, draft.citations)
        return Answer(
            question=question,
            backend=backend,
            answer=body,
            citations=citations,
            disagreements=disagreements,
        )

    def _reserve(self) -> float:
        return min(RESERVE_MAX_S, RESERVE_SHARE * self.settings.answer_deadline_s)

    def _standalone(self, text: str, history: Sequence[Turn], deadline: float) -> str:
        """The follow-up rewritten to stand alone: by the model when there is one, else offline."""
        offline = condense_offline(text, history)
        if self.backend is None or not leans_on_history(text):
            return offline  # a question that stands alone is not worth a model round trip
        budget = min(
            CONDENSE_SHARE * self.settings.answer_deadline_s, deadline - time.monotonic() - self._reserve()
        )
        prompt = prompts()["condense"].format(history=format_history(history), question=text)
        try:
            # No system prompt: the coach's one is about answering from passages, which this is not.
            reply = self.backend.complete(None, prompt, budget)
        except BackendUnavailable:
            return offline
        lines = [line for line in (collapse(x) for x in reply.splitlines()) if line]
        condensed = (
            _MARK.sub("", lines[0].removeprefix("Standalone question:")).strip(" \"'") if lines else ""
        )
        if not condensed or len(condensed) > MAX_CONDENSED_CHARS:
            log.info("condensing gave nothing usable; using the offline condensation")
            return offline
        log.debug("condensed %r to %r", text, condensed)
        return condensed

    def _model_answer(self, question: str, retrieval: Retrieval, deadline: float) -> Draft:
        """The model's answer with every citation checked; raises BackendUnavailable on faults."""
        assert self.backend is not None
        passages = [hit.chunk for hit in retrieval.hits]
        user = prompts()["answer"].format(passages=format_passages(passages), question=question)
        budget = deadline - time.monotonic() - self._reserve()
        reply = self.backend.complete(prompts()["system"].template, user, budget)
        draft, report = self.grounder.ground(reply, passages)
        log.info(
            "model answer: %d of %d claims kept, marks dropped: %s",
            report.kept_claims,
            report.claims,
            report.dropped_marks,
        )
        if report.dropped_claims:
            log.debug("claims dropped: %s", [scrub(c) for c in report.dropped_claims])
        return self._verified(draft, retrieval)

    def _disagreements(
        self, question: str, retrieval: Retrieval, citations: list[Citation]
    ) -> tuple[list[Citation], list[Disagreement]]:
        """The map's disagreements about this question, their evidence appended to the citations.

        Evidence goes through the same check as the answer's own quotes: verbatim in its source and in
        a chunk that was retrieved for this question, here by the map lookup (see `_evidence_ok`).
        """
        if not self.debate_map.disagreements:
            return citations, []
        vector = retrieval.query_embedding or self.embeddings.embed_query(question)
        citations = list(citations)
        numbers = {(c.chunk_id, collapse(c.quote)): c.n for c in citations}
        found: list[Disagreement] = []
        for entry in self.debate_map.relevant(vector):
            added: list[Citation] = []
            disagreement = self._cite(entry, numbers, len(citations), added)
            if disagreement is not None:
                citations.extend(added)
                found.append(disagreement)
                numbers.update({(c.chunk_id, c.quote): c.n for c in added})
        return citations, found

    def _cite(
        self, entry: MapDisagreement, numbers: dict[tuple[str, str], int], used: int, added: list[Citation]
    ) -> Disagreement | None:
        """One map entry as a Disagreement whose positions cite by number; None when fewer than two
        positions keep verified evidence, or when two positions would cite one source."""
        local = dict(numbers)
        positions: list[Position] = []
        sources_seen: set[str] = set()
        for position in entry.positions:
            marks: list[int] = []
            sources = {e.source_id for e in position.evidence}
            if sources & sources_seen:
                log.error("disagreement %r has one source on two sides; not shown", entry.topic)
                return None
            for evidence in position.evidence:
                if not self._evidence_ok(evidence.chunk_id, evidence.source_id, evidence.quote):
                    log.error("dropping unverifiable evidence from %s", evidence.source_id)
                    continue
                key = (evidence.chunk_id, collapse(evidence.quote))
                if key not in local:
                    local[key] = used + len(added) + 1
                    added.append(
                        Citation(
                            n=local[key],
                            source_id=evidence.source_id,
                            title=self._titles.get(evidence.source_id, evidence.source_id),
                            chunk_id=evidence.chunk_id,
                            quote=key[1],
                        )
                    )
                marks.append(local[key])
            if marks:
                sources_seen |= sources
                positions.append(Position(summary=position.summary, citations=marks))
        if len(positions) < 2:
            added.clear()
            return None
        return Disagreement(topic=entry.topic, kind=entry.kind, positions=positions)

    def _evidence_ok(self, chunk_id: str, source_id: str, quote: str) -> bool:
        """The map's evidence counts as retrieved when its chunk is in the index, belongs to the source,
        and holds the quote; the quote must also be verbatim in the source, like every citation."""
        index = self.lexical.by_id.get(chunk_id)
        if index is None:
            return False
        chunk = self.lexical.chunks[index]
        quote = collapse(quote)
        return (
            chunk.source_id == source_id
            and quote in collapse(chunk.text)
            and quote in self._source_texts.get(source_id, "")
        )

    def _covered(self, retrieval: Retrieval) -> bool:
        if not retrieval.hits or retrieval.best_similarity < self.settings.min_relevance:
            return False
        return retrieval.coverage >= MIN_COVERAGE or retrieval.best_similarity >= STRONG_SIMILARITY

    def _abstain(self, question: str) -> Answer:
        titles = "; ".join(f"“{t}”" for t in self._titles.values())
        return Answer(
            question=question,
            backend=self.backend_name,
            abstained=True,
            answer=(
                "The articles I answer from don't cover that, so I won't guess. "
                f"They cover glute strength and running technique: {titles}."
            ),
        )

    def _verified(self, draft: Draft, retrieval: Retrieval) -> Draft:
        """Keep only citations whose quote is verbatim in its source and whose chunk was retrieved;
        drop any claim whose mark does not resolve; renumber what is left in order of appearance."""
        retrieved = {hit.chunk.chunk_id for hit in retrieval.hits}
        valid: dict[int, Citation] = {}
        for citation in draft.citations:
            source_text = self._source_texts.get(citation.source_id, "")
            if citation.chunk_id in retrieved and collapse(citation.quote) in source_text:
                valid[citation.n] = citation
            else:
                log.error("dropping unverifiable citation %s from %s", citation.n, citation.source_id)
        kept_lines: list[str] = []
        renumber: dict[int, int] = {}
        for line in draft.text.split("\n"):
            marks = [int(m) for m in _MARK.findall(line)]
            if marks and not all(m in valid for m in marks):
                continue
            if addresses_model(_MARK.sub("", line)):
                # an index built before ingest dropped such sentences may still hold one
                log.error("dropping a line that addresses a model")
                continue
            for m in marks:
                renumber.setdefault(m, len(renumber) + 1)
            kept_lines.append(_MARK.sub(lambda m: f"[{renumber[int(m.group(1))]}]", line))
        citations = [
            valid[old].model_copy(update={"n": new})
            for old, new in sorted(renumber.items(), key=lambda p: p[1])
        ]
        return Draft(text="\n".join(kept_lines).strip(), citations=citations)


def format_passages(chunks: Sequence[Chunk]) -> str:
    """The retrieved passages as numbered, delimited data; a delimiter inside a passage is defused."""
    blocks: list[str] = []
    for n, chunk in enumerate(chunks, start=1):
        body = re.sub(r"</?\s*passage", lambda m: m.group(0).replace("<", "‹"), chunk.text, flags=re.I)
        where = f"{chunk.title} / {chunk.section}" if chunk.section else chunk.title
        kind = " (a reader's comment)" if chunk.kind == "comment" else ""
        blocks.append(f'<passage n="{n}">\n[{where}{kind}]\n{body}\n</passage>')
    return "\n\n".join(blocks)
