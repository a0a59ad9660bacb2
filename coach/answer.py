"""CoachService: the one core every front end calls. question -> triage -> retrieval -> verified Answer,
within one deadline that the service owns (asyncio; the sync `answer` wraps `aanswer`)."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import replace

from coach.backends import (
    EXTRACTIVE,
    AnswerBackend,
    Articles,
    DraftRequest,
    ExtractiveBackend,
    ModelBackend,
    format_passages,
)
from coach.cues import load_cues, spell_out
from coach.debates import DebateMap, MapDisagreement, map_key, read_map, source_dates
from coach.domain import Domain, read_domain
from coach.embeddings import NamedEmbeddings, load_minilm
from coach.errors import IndexNotReady, StoreError
from coach.extractive import Draft
from coach.followup import format_history, leans_on_history
from coach.fragments import quotable_start, resolve
from coach.grounding import Grounder
from coach.intent import MIN_EXAMPLE_SIMILARITY, Examples, Reading, read
from coach.knowledge import Knowledge, read_statements
from coach.language import foreign_language
from coach.llm import BackendUnavailable, ChatBackend
from coach.lookup import gather
from coach.models import Answer, Citation, Disagreement, Position, Source, Turn
from coach.prompts import prompts
from coach.retrieval import HybridRetriever, LexicalIndex, Mode, Retrieval, lexical_key
from coach.routines import ExerciseNames, Library, library_key, read_library
from coach.safety import (
    RedFlag,
    Triager,
    addresses_model,
    followup_flags,
    normalise_question,
    read_anchors,
    urgent_message,
)
from coach.settings import Settings, load_settings
from coach.statements import statements_key
from coach.storage import read_snapshot
from coach.store import ChunkStore
from coach.text import collapse, terms
from coach.units import units_of

log = logging.getLogger(__name__)

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
MAX_TITLES_SHOWN = 5  # a library without a description is described by this many titles at most
RETRIEVAL_MARGIN_S = 0.2  # of the deadline, kept after a hung index to send the one-line reply


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
        domain: Domain | None = None,
        anchors: list[list[float]] | None = None,
        knowledge: Knowledge | None = None,
        lexical: LexicalIndex | None = None,
    ) -> None:
        self.settings = settings
        self.domain = domain or Domain()
        self.embeddings = embeddings
        self.store = store
        self.snapshot = snapshot
        # `open` passes the index ingest stored; without one it is built from the store's chunks.
        self.lexical = lexical if lexical is not None else LexicalIndex(store.all_chunks())
        self.retriever = HybridRetriever(store, embeddings, self.lexical, self.domain)
        self._source_texts = {sid: entry.get("text", "") for sid, entry in snapshot.items()}
        self._dates: dict[str, str] | None = None
        self._titles = {sid: entry.get("title", sid) for sid, entry in snapshot.items()}
        self.grounder = Grounder(embeddings, self._source_texts, self._titles)
        self.extractive = ExtractiveBackend(
            Articles(
                self._source_texts,
                self._titles,
                self.lexical.idf,
                self.domain.generic_terms | self.domain.anchor_stopwords,
            )
        )
        # The configured backend: the offline one, or a chat model whose drafts fall back to it.
        match settings.llm:
            case None | "" | "extractive" if backend is None:
                self.model: ModelBackend | None = None
            case _:
                self.model = ModelBackend(backend or ChatBackend.from_settings(settings), self.grounder)
        self.triager = Triager(embeddings, anchors=anchors)
        self.debate_map = debate_map or DebateMap(key="")
        self.library = library or Library(key="")
        # Built by `coach ingest` (statements.json); a service made without it (a test, a script) reads
        # the statements off the chunks now, without embeddings.
        self.knowledge = knowledge or Knowledge.from_chunks(
            self.lexical.chunks, self._source_texts, self.domain
        )
        self.cues = load_cues()
        names = [e.name for e in self.library.exercises] + [
            f.name for facts in self.knowledge.exercises.values() for f in facts
        ]
        self.exercise_names = ExerciseNames(list(dict.fromkeys(names)), self.domain)
        self.examples = Examples(self.domain.questions.examples, embeddings.embed_documents)
        # One event loop for the sync wrapper, kept for the service's life: model clients belong to the
        # loop that first used them.
        self._runner: asyncio.Runner | None = None
        self._runner_lock = threading.Lock()

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
        domain = read_domain(settings)
        debate_map = read_map(settings.data_dir)
        key = map_key(shas, embeddings.name, domain, source_dates(snapshot))
        if domain is None or debate_map is None or debate_map.key != key:
            raise IndexNotReady(
                f"The disagreement map in {settings.data_dir} is missing or older than the index; "
                "run `coach ingest` to rebuild it."
            )
        library = read_library(settings.data_dir)
        if library is None or library.key != library_key(shas, domain):
            raise IndexNotReady(
                f"The exercise library in {settings.data_dir} is missing or older than the index; "
                "run `coach ingest` to rebuild it."
            )
        statements = read_statements(settings.data_dir)
        if statements is None or statements.key != statements_key(shas, domain, embeddings.name):
            raise IndexNotReady(
                f"The typed statements in {settings.data_dir} are missing or older than the index; "
                "run `coach ingest` to rebuild them."
            )
        anchors = read_anchors(settings.data_dir, embeddings.name)  # missing: embedded when first needed
        stored = LexicalIndex.load(settings.lexical_dir)
        articles = {sid: entry.get("article", "") for sid, entry in snapshot.items()}
        if stored is None or stored[1] != lexical_key(articles):
            raise IndexNotReady(
                f"The lexical index in {settings.lexical_dir} is missing or older than the index; "
                "run `coach ingest` to rebuild it."
            )
        return cls(
            settings,
            embeddings,
            store,
            snapshot,
            debate_map=debate_map,
            library=library,
            domain=domain,
            anchors=anchors,
            knowledge=Knowledge(statements),
            lexical=stored[0],
        )

    @property
    def backend(self) -> ChatBackend | None:
        """The chat model client when a model backend is configured."""
        return self.model.chat if self.model else None

    @property
    def answer_backend(self) -> AnswerBackend:
        return self.model or self.extractive

    @property
    def backend_name(self) -> str:
        return self.answer_backend.name

    def sources(self) -> list[Source]:
        keys = Source.model_fields.keys()
        return [Source(**{k: v for k, v in entry.items() if k in keys}) for entry in self.snapshot.values()]

    def source_dates(self) -> dict[str, str]:
        """Each dated source's date as shown beside its citations ("2021-04-30", "updated 2023-01-09")."""
        if self._dates is not None:
            return self._dates
        out = {}
        for source in self.sources():
            if source.updated and source.published and source.updated != source.published:
                out[source.source_id] = (
                    f"{source.published.isoformat()}, updated {source.updated.isoformat()}"
                )
            elif source.dated:
                out[source.source_id] = source.dated.isoformat()
        self._dates = out
        return out

    def debates(self) -> list[dict]:
        """The whole disagreement map in the `coach debates --json` shape (ARCHITECTURE.md)."""
        return [d.public() for d in self.debate_map.disagreements]

    def search_query(self, question: str, history: Sequence[Turn] = ()) -> str:
        """The text retrieval searches for (offline condensing of a follow-up; what evals score)."""
        return self.read(question, history).standalone

    def read(self, question: str, history: Sequence[Turn] = ()) -> Reading:
        """What the question asks (its intent) and which exercises it is about, with the conversation.
        A question no cue fits takes the intent of the library's closest example question."""
        reading = self._read(question, history)
        if reading.intent is None:
            reading = self._guess(reading, self.embeddings.embed_query(reading.standalone))
        return reading

    # The cue tests the lookup takes, as methods: the knowledge keeps what one selects across the library
    # (every caution that mentions pain) for the service's life, keyed by the test.
    def _asks_frequency(self, text: str) -> bool:
        return bool(self.cues.frequencies.search(text))

    def _asks_timeline(self, text: str) -> bool:
        return bool(self.cues.timeline_question.search(spell_out(text)))

    def _mentions_pain(self, text: str) -> bool:
        return bool(self.cues.pain.search(spell_out(text)))

    def _read(self, question: str, history: Sequence[Turn]) -> Reading:
        return read(
            question,
            history,
            find_names=self.exercise_names,
            cues=self.cues,
            dose_units=self.domain.dose_units_pattern,
        )

    def _guess(self, reading: Reading, vector: Sequence[float] | None) -> Reading:
        """The intent of the closest example question (to the standalone question's embedding, the one
        retrieval computed), when it is close enough."""
        if reading.intent is not None or vector is None:
            return reading
        intent, similarity = self.examples.nearest(vector)
        return replace(reading, intent=intent) if similarity >= MIN_EXAMPLE_SIMILARITY else reading

    def warm_up(self) -> None:
        """Load the embedding model, the triage's warning-sign vectors and the intent examples now, so no
        runner's first question pays for them inside its deadline. Front ends call this once after opening."""
        self.embeddings.embed_query("warm up")
        self.triager.warm()
        self.examples.warm_up()

    def retrieve(
        self, question: str, *, mode: Mode = "hybrid", query_embedding: list[float] | None = None
    ) -> Retrieval:
        return self.retriever.retrieve(
            question, k=self.settings.top_k, mode=mode, query_embedding=query_embedding
        )

    def red_flag_answer(self, question: str) -> Answer | None:
        """The urgent answer when a raw message carries a red flag on its own, else None. Fast and touches
        no store or model server, so a front end can run it before anything else (the bot does, on its
        event loop). Raises UsageError for unusable input, like `answer`."""
        text = normalise_question(question, max_chars=self.settings.max_question_chars)
        triage = self.triager.triage(text)
        return self.urgent_answer(text, triage.flags) if triage.urgent else None

    def urgent_answer(self, question: str, flags: Sequence[RedFlag]) -> Answer:
        """The answer to a message with red flags: the stop-and-get-help advice, nothing else."""
        return Answer(
            question=question, backend=self.backend_name, answer=urgent_message(list(flags)), urgent=True
        )

    def answer(self, question: str, history: Sequence[Turn] = ()) -> Answer:
        """`aanswer` for callers without an event loop (the CLI, evals, scripts)."""
        with self._runner_lock:
            if self._runner is None:
                self._runner = asyncio.Runner()
            return self._runner.run(self.aanswer(question, history))

    async def aanswer(self, question: str, history: Sequence[Turn] = ()) -> Answer:
        """A grounded answer: red flags first, then cited sentences, or an honest abstention, within
        settings.answer_deadline_s.

        The service owns the one deadline: CPU-bound steps run in worker threads, the model and a Chroma
        server are awaited under asyncio timeouts (cancelled, never abandoned). With a model configured,
        its answer is kept only as far as its citations check out; when it fails, hangs, is cooling down
        or has nothing supported to say, the extractive answer is given, marked as such. A store that
        does not answer in time is a StoreError with one line to show."""
        deadline = time.monotonic() + self.settings.answer_deadline_s
        text = normalise_question(question, max_chars=self.settings.max_question_chars)
        # The triage embeds what the lexicon lets through: CPU, in a worker thread like every such step.
        triage = await asyncio.to_thread(self.triager.triage, text)
        if triage.urgent:  # before any backend, condensing included: nothing may delay or soften this
            return self.urgent_answer(text, triage.flags)
        language = await asyncio.to_thread(foreign_language, text, self.lexical.vocabulary)
        if language is not None:  # after triage: a red flag in any language is answered first
            return self._english_only(text, language)
        # An urgent turn quoted no article: its words would only pull retrieval away from a new question.
        calm = [turn for turn in history if not self.triager.triage(turn.question, semantic=False).urgent]
        reading = await asyncio.to_thread(self._read, text, calm)
        standalone = await self._standalone(text, calm, deadline, reading) if calm else text
        if history and (flags := followup_flags(self.triager, text, standalone, history[-1].question)):
            # "and now it's swollen?" after "I twisted my ankle": the warning sign spans two turns.
            return self.urgent_answer(text, flags)
        # The triage embedded the question already (when it read all of it): retrieval reuses it.
        retrieval = await self._retrieve_in_time(
            standalone, deadline, query_embedding=triage.vector if standalone == text else None
        )
        reading = self._guess(reading, retrieval.query_embedding)
        retrieval, material = gather(
            reading,
            retrieval,
            self.knowledge,
            self._chunk,
            self.domain.generic_terms | self.domain.anchor_stopwords,
            frequency=self._asks_frequency,
            timeline=self._asks_timeline,
            pain=self._mentions_pain,
        )
        # A question about an exercise the articles name, or a word they define, is covered however
        # little else it shares with them.
        if not self._covered(retrieval) and not reading.exercises and not material.defined:
            return self._abstain(text)
        request = DraftRequest(
            question=standalone, retrieval=retrieval, intent=reading.intent, material=material
        )
        note = None
        if self.model is not None:
            try:
                draft = self._verified(
                    await self.model.draft(request, deadline - time.monotonic() - self._reserve()), retrieval
                )
            except BackendUnavailable:
                note = NOTE_UNAVAILABLE
            else:
                if draft.citations:
                    return self._with_disagreements(
                        text, self.model.name, draft.text, draft, retrieval, reading
                    )
                note = NOTE_UNSUPPORTED
        draft = self._verified(await self.extractive.draft(request, deadline - time.monotonic()), retrieval)
        if not draft.citations:
            return self._abstain(text)
        body = f"{note}\n\n{draft.text}" if note else draft.text
        return self._with_disagreements(text, EXTRACTIVE, body, draft, retrieval, reading)

    def _chunk(self, chunk_id: str):  # noqa: ANN202 - Chunk | None
        index = self.lexical.by_id.get(chunk_id)
        return None if index is None else self.lexical.chunks[index]

    async def _retrieve_in_time(
        self, question: str, deadline: float, *, query_embedding: list[float] | None = None
    ) -> Retrieval:
        """Hybrid retrieval within what is left of the deadline (keeping back a moment to reply)."""
        budget = deadline - time.monotonic() - RETRIEVAL_MARGIN_S
        try:
            async with asyncio.timeout(max(budget, 0.0)):
                return await self.retriever.aretrieve(
                    question, k=self.settings.top_k, query_embedding=query_embedding
                )
        except TimeoutError:
            log.warning("the index did not answer within %.1f s", budget)
            raise StoreError(
                f"The article index at {self.store.location} did not answer within "
                f"{self.settings.answer_deadline_s:g} s, so I cannot look anything up right now; "
                "please ask again in a minute."
            ) from None

    def _with_disagreements(
        self,
        question: str,
        backend: str,
        body: str,
        draft: Draft,
        retrieval: Retrieval,
        reading: Reading | None = None,
    ) -> Answer:
        """The final answer, with the map's disagreements about the question on every backend, and a
        line saying which side the answer's own quotes stand on."""
        citations, disagreements = self._disagreements(question, retrieval, draft.citations, reading)
        body = self._sides(body, citations, disagreements)
        return Answer(
            question=question,
            backend=backend,
            answer=body,
            citations=citations,
            disagreements=disagreements,
        )

    def _reserve(self) -> float:
        return min(RESERVE_MAX_S, RESERVE_SHARE * self.settings.answer_deadline_s)

    async def _standalone(self, text: str, history: Sequence[Turn], deadline: float, reading: Reading) -> str:
        """The follow-up rewritten to stand alone: by the model when there is one, else offline (with
        what it points at resolved: "how do I do the first one?" names the exercise)."""
        offline = reading.standalone
        if self.model is None or not leans_on_history(text) or reading.exercises:
            return offline  # a question that stands alone is not worth a model round trip
        budget = min(
            CONDENSE_SHARE * self.settings.answer_deadline_s, deadline - time.monotonic() - self._reserve()
        )
        prompt = prompts()["condense"].format(history=format_history(history), question=text)
        try:
            # No system prompt: the coach's one is about answering from passages, which this is not.
            reply = await self.model.chat.acomplete(None, prompt, budget)
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

    def _disagreements(
        self, question: str, retrieval: Retrieval, citations: list[Citation], reading: Reading | None = None
    ) -> tuple[list[Citation], list[Disagreement]]:
        """The map's disagreements about this question, their evidence appended to the citations.

        Only those that concern what was asked: close to the question (the map's lookup) and either
        quoted by the answer, or of a kind that fits the question's intent (coach/cues.toml
        [disagreements]) and sharing one of its words. Evidence goes through the same check as the
        answer's own quotes: verbatim in its source and in a chunk that was retrieved for this question,
        here by the map lookup (see `_evidence_ok`).
        """
        if not self.debate_map.disagreements:
            return citations, []
        vector = retrieval.query_embedding or self.embeddings.embed_query(question)
        citations = list(citations)
        numbers = {(c.chunk_id, collapse(c.quote)): c.n for c in citations}
        found: list[Disagreement] = []
        retrieved = {hit.chunk.chunk_id for hit in retrieval.hits}
        for entry in self.debate_map.relevant(vector, retrieved=retrieved):
            if not self._concerns(entry, retrieval, citations, reading):
                continue
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
                key = (
                    evidence.chunk_id,
                    collapse(self._evidence_quote(evidence.chunk_id, collapse(evidence.quote))),
                )
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

    def _concerns(
        self, entry: MapDisagreement, retrieval: Retrieval, citations: list[Citation], reading: Reading | None
    ) -> bool:
        """Whether a disagreement the map finds close to the question is about what was asked."""
        quoted = [(c.source_id, c.quote) for c in citations]
        for position in entry.positions:
            for e in position.evidence:
                if any(sid == e.source_id and (e.quote in q or q in e.quote) for sid, q in quoted):
                    return True  # the answer quotes one side: the runner must hear the other
        intent = (reading.intent if reading else None) or "general"
        if intent == "dose" and reading and self.cues.timeline_question.search(spell_out(reading.question)):
            intent = "timeline"  # when results come is not how often to train
        if intent not in self.cues.disagreements.get(entry.rule, [intent]):
            return False
        asked = set(retrieval.query_terms) - self.domain.anchor_stopwords
        said = set(terms(entry.topic)) | {
            t for p in entry.positions for e in p.evidence for t in terms(e.quote)
        }
        return bool(asked & said)

    def _sides(self, body: str, citations: list[Citation], disagreements: list[Disagreement]) -> str:
        """A line per disagreement saying which side the answer's own quotes stand on."""
        used = {int(m) for m in _MARK.findall(body)}
        by_n = {c.n: c for c in citations}
        lines: list[str] = []
        for d in disagreements:
            # A side is the answer's when the answer quotes the passage its evidence is in.
            chunks = [{by_n[n].chunk_id for n in p.citations} for p in d.positions]
            quoted = [
                p
                for p, ids in zip(d.positions, chunks, strict=True)
                if any(by_n[n].chunk_id in ids for n in used)
            ]
            if not quoted:
                continue
            if len(quoted) == 1:
                label = quoted[0].summary.split(":", 1)[0].strip()
                lines.append(self.cues.template("side", topic=d.topic.rstrip("?"), label=label))
            else:
                lines.append(self.cues.template("side_both", topic=d.topic.rstrip("?")))
        return "\n\n".join([body, *lines]) if lines else body

    def _evidence_quote(self, chunk_id: str, quote: str) -> str:
        """The evidence as a quote that stands alone: with the sentences before it that it points at."""
        chunk = self._chunk(chunk_id)
        if chunk is None or quotable_start(quote, self.cues):
            return quote
        source = self._source_texts.get(chunk.source_id, "")
        units = [u.text for u in units_of(chunk, source)]
        for i, text in enumerate(units):
            if collapse(text).endswith(quote) or quote in collapse(text):
                return resolve(units, i, source, self.cues) or quote
        return quote

    def _english_only(self, question: str, language: str) -> Answer:
        name = self.cues.languages.get(language)
        covers = self.domain.description or self.covers()
        text = (
            self.cues.template("english_only", language=name, covers=covers)
            if name
            else self.cues.template("english_only_unknown", covers=covers)
        )
        return Answer(question=question, backend=self.backend_name, answer=text)

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

    def covers(self) -> str:
        """What the library covers, in a sentence: the domain file's description, else its titles."""
        if self.domain.description:
            return self.domain.description
        titles = list(self._titles.values())
        shown = "; ".join(f"“{t}”" for t in titles[:MAX_TITLES_SHOWN])
        more = f" and {len(titles) - MAX_TITLES_SHOWN} more" if len(titles) > MAX_TITLES_SHOWN else ""
        return f"{len(titles)} articles: {shown}{more}" if titles else "no articles yet"

    def _abstain(self, question: str) -> Answer:
        return Answer(
            question=question,
            backend=self.backend_name,
            abstained=True,
            answer=f"The articles I answer from don't cover that, so I won't guess. They cover {self.covers()}.",
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


__all__ = ["EXTRACTIVE", "CoachService", "format_passages"]
