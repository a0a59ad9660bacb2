"""Speed figures of the walking skeleton: ingest, cold `coach ask`, warm answers (median of 20).

Run: `.venv/bin/python -m evals.bench` (prints one JSON object). Issue #7 grows this into `coach bench`.
"""

from __future__ import annotations

import json
import os
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
]


def main() -> None:
    from coach.answer import CoachService
    from coach.embeddings import load_minilm
    from coach.settings import load_settings
    from ingest.pipeline import run_ingest

    data_dir = Path(tempfile.mkdtemp(prefix="coach-bench-"))
    settings = load_settings(data_dir=data_dir)
    embeddings = load_minilm()
    embeddings.embed_query("warm up the model")  # model load is not ingest work

    started = time.perf_counter()
    report = run_ingest(settings, embeddings)
    ingest_s = time.perf_counter() - started

    started = time.perf_counter()
    again = run_ingest(settings, embeddings)
    reingest_s = time.perf_counter() - started

    env = {**os.environ, "COACH_DATA_DIR": str(data_dir)}
    cold = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "coach.cli", "ask", "--json", QUESTIONS[0]],
            env=env,
            check=True,
            capture_output=True,
        )
        cold.append(time.perf_counter() - started)

    service = CoachService.open(settings, embeddings=embeddings, auto_ingest=False)
    for question in QUESTIONS:
        service.answer(question)
    warm = []
    for i in range(20):
        started = time.perf_counter()
        service.answer(QUESTIONS[i % len(QUESTIONS)])
        warm.append(time.perf_counter() - started)
    from coach.debates import build_map

    started = time.perf_counter()
    texts = {sid: entry["text"] for sid, entry in service.snapshot.items()}
    build_map(service.lexical.chunks, texts, embeddings, "bench")
    debates_build_s = time.perf_counter() - started
    vectors = [embeddings.embed_query(q) for q in QUESTIONS]
    lookup = []
    for i in range(20):
        started = time.perf_counter()
        service.debate_map.relevant(vectors[i % len(vectors)])
        lookup.append(time.perf_counter() - started)
    floor = []
    for i in range(20):
        started = time.perf_counter()
        service.store.query(embeddings.embed_query(QUESTIONS[i % len(QUESTIONS)]), 20)
        floor.append(time.perf_counter() - started)

    print(
        json.dumps(
            {
                "chunks": report.chunks_total,
                "ingest_s": round(ingest_s, 2),
                "reingest_unchanged_s": round(reingest_s, 3),
                "reingest_embedded": again.chunks_embedded,
                "cold_ask_s_median_of_3": round(statistics.median(cold), 2),
                "warm_answer_ms_median_of_20": round(statistics.median(warm) * 1000, 1),
                "floor_embed_plus_query_ms_median_of_20": round(statistics.median(floor) * 1000, 1),
                "disagreements": len(service.debate_map.disagreements),
                "debates_build_s": round(debates_build_s, 2),
                "debates_lookup_ms_median_of_20": round(statistics.median(lookup) * 1000, 3),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
