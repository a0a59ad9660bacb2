"""Red-flag triage time per message, as the bot pays it on its event loop.

    python -m evals.triage_bench [--rounds 3]

Prints milliseconds per message over the phrase set (evals/red_flag_phrasings.toml), warm (model loaded,
lexicon compiled, descriptions embedded): the lexicon alone; the whole triage with a message never seen
(its embedding computed: what the bot pays); the whole triage again on the same message (the answer
thread's call, which finds the embedding in the cache); and the embedding call alone, for comparison.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from evals.red_flag_eval import load_phrasings


def timed(fn: Callable[[str], object], texts: list[str]) -> list[float]:
    out = []
    for text in texts:
        started = time.perf_counter()
        fn(text)
        out.append((time.perf_counter() - started) * 1000)
    return out


def line(name: str, ms: list[float]) -> str:
    ms = sorted(ms)
    p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))]
    return (
        f"{name:44} mean {statistics.fmean(ms):7.2f} ms  median {statistics.median(ms):7.2f}  p95 {p95:7.2f}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="passes over the phrase set (fresh texts each)")
    args = parser.parse_args(argv)

    from coach.embeddings import load_minilm
    from coach.safety import Triager

    embeddings = load_minilm()
    triager = Triager(embeddings)
    triager.warm()
    embeddings.embed_query("warm up the model")
    texts = [p.text for p in load_phrasings()]
    for text in texts:  # the model's first calls at each length are slower: not what a bot pays warm
        triager.triage(f"{text} (warm-up)")
    lexical: list[float] = []
    fresh: list[float] = []
    cached: list[float] = []
    embed: list[float] = []
    flagged_by_lexicon = 0
    batches: list[str] = []
    for round_ in range(args.rounds):
        batch = [f"{text} ({round_})" for text in texts]  # never seen before: no cache hit
        batches += batch
        lexical += timed(lambda t: triager.triage(t, semantic=False), batch)
        fresh += timed(triager.triage, batch)
        cached += timed(triager.triage, batch)
        embed += timed(embeddings.embed_query, [f"{t} [{round_}]" for t in texts])
        flagged_by_lexicon += sum(bool(triager.triage(t, semantic=False).flags) for t in batch)
    n = len(texts) * args.rounds
    print(f"triage of {len(texts)} phrasings x {args.rounds} rounds ({n} messages), warm:")
    print(line("lexicon alone", lexical))
    print(line("whole triage, new message (the bot's call)", fresh))
    print(line("whole triage, same message again (cached)", cached))
    print(line("embedding one message alone", embed))
    unflagged = [
        ms for ms, text in zip(fresh, batches, strict=True) if not triager.triage(text, semantic=False).flags
    ]
    print(line("whole triage, new message the lexicon passes", unflagged))
    print(
        f"the lexicon flagged {flagged_by_lexicon / n:.0%} of these messages (urgent at once, no embedding); "
        "the others paid one embedding, which retrieval then reuses"
    )


if __name__ == "__main__":
    main()
