"""Chroma access: the embedded PersistentClient by default, an HttpClient when COACH_CHROMA_URL is set."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from coach.errors import IndexMismatchError, StoreError
from coach.models import Chunk
from coach.redact import mask_url

if TYPE_CHECKING:
    from langchain_chroma import Chroma

    from coach.embeddings import NamedEmbeddings
    from coach.settings import Settings

log = logging.getLogger(__name__)
__all__ = ["mask_url"]  # kept importable from here; the one redaction path is coach/redact.py

REBUILD_HINT = "rebuild it with `coach ingest --rebuild`"
PAGE = 5000  # rows per get(); Chroma's SQLite refuses one query with ~100,000 ids
HEARTBEAT_PATH = "/api/v2/heartbeat"  # Chroma 1.x's liveness route (chromadb.config.APIVersion.V2)
# chromadb's HttpClient waits forever (httpx timeout=None); the pre-flight heartbeat bounds the wait
# for a server that is down or a host that drops packets, so users get an answer in seconds.
HEARTBEAT_TIMEOUT_S = 5.0
# Chroma's embedded store waits without a limit for a SQLite lock held by another process (its Rust
# side retries forever), so the coach looks first and waits at most this long.
LOCK_WAIT_S = 3.0


@dataclass
class DenseHit:
    chunk: Chunk
    similarity: float  # cosine similarity, 1 is identical


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


def unreachable_message(url: str, exc: BaseException) -> str:
    """The one line users get when the Chroma server cannot be reached (at start or mid-way)."""
    return (
        f"The Chroma server at {mask_url(url)} is not reachable ({_short(exc)}); start it "
        "(`docker compose up -d chroma`, or `chroma run --path DIR`), or unset COACH_CHROMA_URL "
        "to use the embedded store."
    )


def server_down(exc: BaseException) -> bool:
    """Whether a failure is the connection to the server (refused, reset, timed out), not a bad request."""
    import httpx

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, httpx.TransportError | ConnectionError | TimeoutError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def parse_server_url(raw: str) -> tuple[str, int, bool]:
    """(host, port, ssl) of COACH_CHROMA_URL; Chroma's default port is 8000."""
    url = urlparse(raw)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise StoreError(f"COACH_CHROMA_URL {mask_url(raw)!r} is not a URL like http://host:8000.")
    try:
        port = url.port
    except ValueError as exc:
        raise StoreError(f"COACH_CHROMA_URL {mask_url(raw)!r} has an invalid port.") from exc
    return url.hostname, port or (443 if url.scheme == "https" else 8000), url.scheme == "https"


def heartbeat(raw_url: str, timeout: float = HEARTBEAT_TIMEOUT_S) -> None:
    """GET the server's heartbeat within `timeout` seconds, or raise the one-line StoreError."""
    import httpx

    host, port, ssl = parse_server_url(raw_url)
    url = f"{'https' if ssl else 'http'}://{host}:{port}{HEARTBEAT_PATH}"
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        raise StoreError(unreachable_message(raw_url, exc)) from exc
    if response.status_code != 200:
        raise StoreError(
            f"{mask_url(raw_url)} answered {response.status_code} to {HEARTBEAT_PATH}; is it a Chroma 1.x server?"
        )


def store_failure(settings: Settings, action: str, exc: BaseException) -> StoreError:
    """The StoreError for a failed store call: "not reachable" when the server went away."""
    if settings.chroma_url and server_down(exc):
        return StoreError(unreachable_message(settings.chroma_url, exc))
    location = mask_url(settings.chroma_url) or str(settings.chroma_dir)
    return StoreError(f"Could not {action} the index at {location} ({_short(exc)}).")


def check_not_locked(settings: Settings, *, wait_s: float = LOCK_WAIT_S) -> None:
    """Raise a one-line StoreError when another process holds a write lock on the embedded index's SQLite
    database for more than `wait_s`. Chroma's client writes when it starts, so a reader waits for writers
    too (measured: Chroma 1.5.9 waits without end behind `BEGIN IMMEDIATE` in another process).

    A look before Chroma opens it, not a guarantee: a lock taken a moment later still makes Chroma wait,
    but a user starting the coach while another writer is busy is told so instead of waiting forever."""
    import sqlite3

    path = settings.chroma_dir / "chroma.sqlite3"
    if not path.exists():
        return
    try:
        db = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=wait_s)
    except sqlite3.Error:
        return  # unreadable for another reason: Chroma's own error says which
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        db.rollback()
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise StoreError(
                f"The index at {settings.chroma_dir} is locked by another process (another `coach ingest`, "
                f"or a program holding it open for writing) and stayed locked for {wait_s:.0f} s; "
                "try again when it has finished."
            ) from exc
    except sqlite3.DatabaseError:
        pass  # not a database at all: Chroma reports it as corrupt, with the rebuild hint
    finally:
        db.close()


def open_client(settings: Settings) -> Any:
    """A Chroma client for the configured store; failures become one-line StoreErrors."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.chroma_url:
        host, port, ssl = parse_server_url(settings.chroma_url)
        heartbeat(settings.chroma_url)
        try:
            return chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=chroma_settings)
        except Exception as exc:  # chromadb raises several types for "cannot connect"
            if server_down(exc):
                raise StoreError(unreachable_message(settings.chroma_url, exc)) from exc
            raise StoreError(
                f"The Chroma server at {mask_url(settings.chroma_url)} did not accept the client ({_short(exc)})."
            ) from exc
    try:
        settings.chroma_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"Cannot create the index directory {settings.chroma_dir}: {exc.strerror}.") from exc
    check_not_locked(settings)
    try:
        return chromadb.PersistentClient(path=str(settings.chroma_dir), settings=chroma_settings)
    except Exception as exc:
        raise StoreError(
            f"The index at {settings.chroma_dir} cannot be opened ({_short(exc)}); {REBUILD_HINT}."
        ) from exc


class ChunkStore:
    """The chunk collection: its identity (embedding model), queries and the full text list for BM25."""

    def __init__(
        self,
        settings: Settings,
        embeddings: NamedEmbeddings,
        client: Any | None = None,
    ) -> None:
        self.settings = settings
        self.embeddings = embeddings
        self.client = client if client is not None else open_client(settings)
        self._vectorstore: Chroma | None = None
        self._async_collections: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._collection: Any | None = None

    @property
    def location(self) -> str:
        return mask_url(self.settings.chroma_url) or str(self.settings.chroma_dir)

    def failure(self, action: str, exc: BaseException) -> StoreError:
        return store_failure(self.settings, action, exc)

    def _guard(self, action: str, fn, *args, **kwargs):  # noqa: ANN001, ANN202
        try:
            return fn(*args, **kwargs)
        except (StoreError, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise self.failure(action, exc) from exc

    def exists(self) -> bool:
        """Whether the collection exists and holds chunks."""
        names = self._guard("list collections of", self.client.list_collections)
        names = [getattr(c, "name", c) for c in names]
        if self.settings.collection not in names:
            return False
        return self.count() > 0

    def _collection_metadata(self) -> dict:
        return {"embedding_model": self.embeddings.name, "embedding_dim": self.embeddings.dim}

    def check_model(self) -> None:
        """Refuse to mix models: the index must have been built with the configured one."""
        collection = self._guard(
            "open the collection of", self.client.get_collection, name=self.settings.collection
        )
        meta = collection.metadata or {}
        built_with = meta.get("embedding_model")
        dim = meta.get("embedding_dim")
        if built_with != self.embeddings.name or dim != self.embeddings.dim:
            raise IndexMismatchError(
                f"The index at {self.location} was built with {built_with or 'an unknown model'} "
                f"(dimension {dim or '?'}), but the coach uses {self.embeddings.name} "
                f"(dimension {self.embeddings.dim}); {REBUILD_HINT}."
            )

    @property
    def vectorstore(self) -> Chroma:
        """LangChain's Chroma wrapper over the collection (created with our model's identity)."""
        if self._vectorstore is None:
            from langchain_chroma import Chroma

            self._vectorstore = self._guard(
                "open",
                Chroma,
                client=self.client,
                collection_name=self.settings.collection,
                embedding_function=self.embeddings,
                collection_metadata=self._collection_metadata(),
                collection_configuration={"hnsw": {"space": "cosine"}},
            )
            self.check_model()
        return self._vectorstore

    @property
    def collection(self) -> Any:
        """The existing Chroma collection, which reads and queries go to directly: answering then never
        imports langchain_chroma (0.4 s of a cold start). Ingest writes through `vectorstore`."""
        if self._collection is None:
            self._collection = self._guard(
                "open the collection of",
                self.client.get_collection,
                name=self.settings.collection,
                embedding_function=None,  # never Chroma's default, which would download a model
            )
        return self._collection

    def count(self) -> int:
        collection = self._guard("open", self.client.get_collection, name=self.settings.collection)
        return self._guard("count", collection.count)

    def ids(self) -> list[str]:
        return [id_ for page in self._pages(include=[]) for id_ in page["ids"]]

    def _pages(self, include: list[str]):  # noqa: ANN202
        """The whole collection in pages: one get() of 100,000 rows exceeds SQLite's variable limit."""
        offset = 0
        while True:
            page = self._guard("read", self.collection.get, include=include, limit=PAGE, offset=offset)
            if not page["ids"]:
                return
            yield page
            offset += len(page["ids"])

    def delete(self, ids: list[str]) -> None:
        if ids:
            self._guard("delete from", self.vectorstore.delete, ids=ids)

    def all_chunks(self) -> list[Chunk]:
        """Every chunk's text and metadata (for the lexical index); read once per process."""
        return [
            chunk_from(id_, text, meta)
            for page in self._pages(include=["documents", "metadatas"])
            for id_, text, meta in zip(page["ids"], page["documents"], page["metadatas"], strict=True)
        ]

    def chunks_of(self, source_id: str) -> list[Chunk]:
        """One source's chunks, in their order in the article."""
        page = self._guard(
            "read", self.vectorstore.get, where={"source": source_id}, include=["documents", "metadatas"]
        )
        found = [
            (meta.get("position", 0), chunk_from(id_, text, meta))
            for id_, text, meta in zip(page["ids"], page["documents"], page["metadatas"], strict=True)
        ]
        return [chunk for _, chunk in sorted(found, key=lambda p: p[0])]

    def query(self, embedding: list[float], k: int) -> list[DenseHit]:
        results = self._guard(
            "query",
            self.collection.query,
            query_embeddings=[embedding],
            n_results=k,
            include=["documents", "metadatas", "distances"],
        )
        return [
            DenseHit(chunk=chunk_from(id_, text, meta or {}), similarity=1.0 - distance)
            for id_, text, meta, distance in zip(
                results["ids"][0],
                results["documents"][0],
                results["metadatas"][0],
                results["distances"][0],
                strict=True,
            )
            if text is not None
        ]

    async def aquery(self, embedding: list[float], k: int) -> list[DenseHit]:
        """The vector query, awaitable and cancellable. Against a server it goes through chromadb's async
        HTTP client, so a caller's timeout cancels the request (the sync client waits without a limit);
        the embedded store answers in-process, in a worker thread."""
        if not self.settings.chroma_url:
            return await asyncio.to_thread(self.query, embedding, k)
        try:
            collection = await self._async_collection()
            result = await collection.query(
                query_embeddings=[embedding], n_results=k, include=["documents", "metadatas", "distances"]
            )
        except (StoreError, asyncio.CancelledError):
            raise
        except Exception as exc:
            raise self.failure("query", exc) from exc
        return [
            DenseHit(chunk=chunk_from(id_, text or "", meta or {}), similarity=1.0 - distance)
            for id_, text, meta, distance in zip(
                result["ids"][0],
                result["documents"][0],
                result["metadatas"][0],
                result["distances"][0],
                strict=True,
            )
        ]

    async def _async_collection(self) -> Any:
        """The collection through chromadb's AsyncHttpClient, one per event loop (its HTTP client
        belongs to the loop that made it)."""
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        loop = asyncio.get_running_loop()
        collection = self._async_collections.get(loop)
        if collection is None:
            host, port, ssl = parse_server_url(self.settings.chroma_url or "")
            client = await chromadb.AsyncHttpClient(
                host=host, port=port, ssl=ssl, settings=ChromaSettings(anonymized_telemetry=False)
            )
            collection = self._async_collections[loop] = await client.get_collection(self.settings.collection)
        return collection

    def reset(self) -> None:
        """Drop the collection (or, if it cannot even be opened, move the embedded directory aside)."""
        try:
            names = [getattr(c, "name", c) for c in self.client.list_collections()]
            if self.settings.collection in names:
                self.client.delete_collection(self.settings.collection)
        except Exception as exc:
            if self.settings.chroma_url:
                raise self.failure("reset", exc) from exc
            self.move_aside()
        self._vectorstore = None
        self._collection = None
        self._async_collections.clear()

    def move_aside(self) -> None:
        """Keep an unreadable embedded index for inspection and start a new one beside it."""
        move_aside(self.settings)
        self.client = open_client(self.settings)
        self._vectorstore = None
        self._collection = None
        self._async_collections.clear()


def move_aside(settings: Settings) -> None:
    """Rename an unreadable embedded index to chroma.broken-<time> (kept, never deleted)."""
    from chromadb.api.client import SharedSystemClient

    aside = settings.chroma_dir.with_name(f"chroma.broken-{int(time.time())}")
    log.warning("moving unreadable index %s to %s", settings.chroma_dir, aside)
    SharedSystemClient.clear_system_cache()
    try:
        shutil.move(str(settings.chroma_dir), str(aside))
    except OSError as exc:
        raise StoreError(f"Cannot move the unreadable index {settings.chroma_dir} aside: {exc}.") from exc


def chunk_from(chunk_id: str | None, text: str, meta: dict) -> Chunk:
    return Chunk(
        chunk_id=chunk_id or "",
        source_id=str(meta.get("source", "")),
        title=str(meta.get("title", "")),
        section=str(meta.get("section", "")),
        kind="comment" if meta.get("kind") == "comment" else "article",
        commenter=str(meta.get("commenter") or "") or None,
        text=text,
    )
