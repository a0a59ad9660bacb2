"""The bot's parts without Telegram: HTML rendering and splitting, limits, answer cache, SQLite state."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.formatting import (
    MAX_MESSAGE,
    render_answer,
    render_debate,
    render_debate_list,
    render_disagreements,
    render_sources,
    split_html,
    utf16_len,
    visible_text,
)
from bot.limits import AnswerCache, SeenEdits, UserGate, Verdict
from bot.logs import REDACTED, protect_logs
from bot.longtext import pick_question, windows
from bot.order import ChatOrder
from coach.models import Answer, Citation, Disagreement, Position
from tests.botapi import ApiError, parse_html
from tests.conftest import make_bot_settings


def citation(n: int, quote: str = "Strong glutes keep the pelvis level & stable.") -> Citation:
    return Citation(
        n=n, source_id=f"src-{n}", title=f"Article <{n}> & co", chunk_id=f"src-{n}:x", quote=quote
    )


def answer_with(text: str, **extra: object) -> Answer:
    return Answer(question="q", backend="extractive", answer=text, **extra)


# --- rendering -------------------------------------------------------------------------------------------


def test_render_answer_escapes_everything_and_keeps_marks() -> None:
    answer = answer_with(
        "What the articles say:\n• Use <b>bands</b> & weights [1]\n\nTry 3 > 2 sets [2]",
        citations=[citation(1), citation(2)],
    )
    rendered = render_answer(answer)
    assert "<b>bands</b>" not in rendered
    shown = parse_html(rendered)  # raises on anything Telegram would refuse
    assert "• Use <b>bands</b> & weights [1]" in shown
    assert "Try 3 > 2 sets [2]" in shown
    assert rendered.startswith("<b>What the articles say:</b>\n")
    assert "Sources: [1] Article <1> & co; [2] Article <2> & co" in shown


def test_urgent_advice_is_bold_first() -> None:
    rendered = render_answer(answer_with("Stop running & see a doctor.\n\nMore.", urgent=True))
    assert rendered.startswith("<b>Stop running &amp; see a doctor.</b>")


def test_render_sources_quotes_each_citation() -> None:
    shown = parse_html(render_sources(answer_with("x [1]", citations=[citation(1, "a <quote> & more")])))
    assert "[1] Article <1> & co" in shown
    assert "a <quote> & more" in shown


def test_render_disagreements_from_a_constructed_answer() -> None:
    answer = answer_with(
        "Glutes and speed [1][2]",
        citations=[citation(1, "They drive you forward."), citation(2, "They keep the hips <centred>.")],
        disagreements=[
            Disagreement(
                topic="Do the glutes propel you forward?",
                kind="conflicting_opinions",
                positions=[
                    Position(summary="They drive you forward & up.", citations=[1]),
                    Position(summary="They keep the hips centred.", citations=[2]),
                ],
            )
        ],
    )
    rendered = render_disagreements(answer)
    shown = parse_html(rendered)
    assert "Do the glutes propel you forward? (conflicting opinions)" in shown
    assert "– They drive you forward & up. [1]" in shown
    assert "– They keep the hips centred. [2]" in shown
    assert "They keep the hips <centred>." in shown
    assert render_disagreements(answer_with("x")) == "The sources behind this answer do not disagree."


def test_the_debate_list_is_short_and_each_debate_says_each_side_once() -> None:
    items = [
        {"topic": "Squats <or> lunges", "kind": "complementary", "positions": [{"summary": "Both & more"}]},
        Disagreement(
            topic="Propulsion", kind="outdated", positions=[Position(summary="Old view", citations=[])]
        ),
    ]
    listed = parse_html(render_debate_list(items))
    assert "1. Squats <or> lunges" in listed
    assert "2. Propulsion" in listed
    assert "Both & more" not in listed  # the evidence is one button away
    frequency = {
        "topic": "How often?",
        "kind": "conflicting_opinions",
        "positions": [
            {
                "summary": "Daily: “…five minutes a day could save…”",
                "evidence": [
                    {"source_id": "a", "quote": "Spending five minutes a day could save you & me."},
                    {"source_id": "a", "quote": "Spending five minutes a day could save you & me."},
                ],
            },
            {"summary": "Twice: at least twice a week", "evidence": [{"source_id": "b", "quote": "Q <2>"}]},
        ],
    }
    shown = parse_html(render_debate(frequency, {"a": "Article A", "b": "Article B"}))
    assert "How often? (conflicting opinions)" in shown
    assert shown.count("five minutes a day") == 1  # the summary only repeated the quote
    assert "• Daily\n  “Spending five minutes a day could save you & me.” – Article A" in shown
    assert "• Twice: at least twice a week\n  “Q <2>” – Article B" in shown


def test_the_footer_names_only_the_marks_the_answer_shows() -> None:
    answer = Answer(
        question="q",
        backend="extractive",
        answer="Glutes keep the pelvis level [2].",
        citations=[citation(1), citation(2), citation(3)],
    )
    footer = parse_html(render_answer(answer)).split("\n\n")[-1]
    assert footer.startswith("Sources: [2] ")
    assert "[1]" not in footer
    assert "[3]" not in footer


# --- splitting -------------------------------------------------------------------------------------------


def _balanced(part: str) -> bool:
    parse_html(part)  # raises ApiError when tags are not nested properly or an entity is cut
    return True


def test_a_6000_character_answer_splits_at_paragraphs() -> None:
    paragraph = "What the articles say:\n" + "\n".join(f"• Glutes & hips <matter> [{i}]" for i in range(1, 9))
    answer = answer_with("\n\n".join([paragraph] * 30), citations=[citation(1)])
    assert len(answer.answer) > 6000
    rendered = render_answer(answer)
    parts = split_html(rendered)
    assert len(parts) >= 2
    assert all(utf16_len(p) <= MAX_MESSAGE and _balanced(p) for p in parts)
    # no paragraph is broken: each part is whole paragraphs of the rendered answer
    paragraphs = rendered.split("\n\n")
    assert [q for p in parts for q in p.split("\n\n")] == paragraphs


def test_one_huge_paragraph_splits_at_words_and_reopens_tags() -> None:
    text = "<b>" + " ".join(["stride&amp;cadence"] * 1500) + "</b>"
    parts = split_html(text, limit=1000)
    assert len(parts) > 20
    for part in parts:
        assert utf16_len(part) <= 1000
        assert part.startswith("<b>")
        assert part.endswith("</b>")
        assert _balanced(part)
        assert all(w == "stride&cadence" for w in visible_text(part).split())
    assert sum(len(visible_text(p).split()) for p in parts) == 1500


def test_splitting_counts_utf16_units_and_never_cuts_an_entity() -> None:
    text = "🏃" * 3000 + " " + "&amp;" * 3000
    parts = split_html(text, limit=MAX_MESSAGE)
    assert all(utf16_len(p) <= MAX_MESSAGE and _balanced(p) for p in parts)
    assert "".join(visible_text(p) for p in parts).replace(" ", "") == "🏃" * 3000 + "&" * 3000


def test_short_text_is_one_part() -> None:
    assert split_html("<i>hi</i> &amp; bye") == ["<i>hi</i> &amp; bye"]
    assert split_html("   ") == []


def test_the_standin_refuses_what_telegram_refuses() -> None:
    for bad in ["a < b", "fish & chips", "<b>open", "<b><i>x</b></i>", "<script>x</script>", "1 > 0"]:
        with pytest.raises(ApiError):
            parse_html(bad)
    assert parse_html('<a href="https://x.y">l</a> &lt;&amp;&#33;') == "l <&!"


# --- limits ----------------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_gate_allows_a_burst_then_refills() -> None:
    clock = Clock()
    gate = UserGate(burst=2, per_minute=6, clock=clock)
    assert gate.admit(1) is Verdict.GO
    assert gate.admit(1) is Verdict.GO  # queued behind the first, not refused
    assert gate.admit(2) is Verdict.GO  # other users are independent
    assert gate.admit(1) is Verdict.TOO_FAST
    assert gate.seconds_until_token(1) == pytest.approx(10)
    clock.now = 4.0
    assert gate.seconds_until_token(1) == pytest.approx(6)  # counted down as time passes
    clock.now = 10.0  # 6 per minute: one token per 10 s
    assert gate.admit(1) is Verdict.GO


def test_gate_forgets_idle_users() -> None:
    clock = Clock()
    gate = UserGate(burst=1, per_minute=60, clock=clock, max_tracked=2)
    for user_id in (1, 2):
        assert gate.admit(user_id) is Verdict.GO
    clock.now = 0.5
    assert gate.admit(3) is Verdict.GO
    clock.now = 1.2
    assert gate.admit(4) is Verdict.GO  # over max_tracked: users idle past a refill are dropped
    assert set(gate._buckets) == {3, 4}


async def test_chat_order_answers_in_arrival_order_and_lets_released_tickets_go() -> None:
    import asyncio

    order = ChatOrder()
    for ticket in (1, 2, 3):
        order.register(7, ticket)
    order.register(8, 4)
    done: list[int] = []

    async def answer(ticket: int) -> None:
        await order.turn(7, ticket)
        done.append(ticket)
        order.release(7, ticket)

    third = asyncio.create_task(answer(3))
    await order.turn(8, 4)  # another chat waits for nobody
    await asyncio.sleep(0)
    assert done == []
    order.release(7, 2)  # refused: ticket 3 now waits only for 1
    first = asyncio.create_task(answer(1))
    await asyncio.gather(first, third)
    assert done == [1, 3]
    await order.turn(7, 99)  # never registered (a test's direct update): no wait
    assert len(order) == 1


def test_long_messages_are_answered_by_their_last_question() -> None:
    story = (
        "I run 40 km a week. " * 150 + "My left knee aches after long runs. Why does my knee hurt? Thanks!"
    )
    asked = pick_question(story, 2000)
    assert asked == type(asked)("Why does my knee hurt?", partial=True)
    short = "why do my knees hurt?"
    assert pick_question(short, 2000).partial is False
    no_question = "I ran. " * 400 + "My hip hurts after hills."
    assert pick_question(no_question, 2000).question == "My hip hurts after hills."
    pieces = list(windows(story, 200))
    assert all(len(p) <= 200 for p in pieces)
    assert " ".join(pieces) == " ".join(story.split())


def test_an_edit_is_answered_once() -> None:
    seen = SeenEdits(size=2)
    assert seen.first((1, 10, 100))
    assert not seen.first((1, 10, 100))
    assert seen.first((1, 10, 101))  # edited again: a new question


def test_answer_cache_is_bounded_lru() -> None:
    cache = AnswerCache(size=3)
    keys = [cache.put(answer_with(f"a{i}")) for i in range(3)]
    assert all(len(f"dis:{k}".encode()) <= 64 for k in keys)
    assert cache.get(keys[0]).answer == "a0"  # now most recently used
    newest = cache.put(answer_with("a3"))
    assert len(cache) == 3
    assert cache.get(keys[1]) is None
    assert cache.get(keys[0]).answer == "a0"
    assert cache.get(newest).answer == "a3"


# --- settings and logs -----------------------------------------------------------------------------------


def test_webhook_secret_must_be_telegram_shaped_and_is_not_echoed(tmp_path: Path) -> None:
    assert (
        make_bot_settings(tmp_path, webhook_secret="ok_Secret-1").webhook_secret.get_secret_value()
        == "ok_Secret-1"
    )
    assert make_bot_settings(tmp_path, webhook_secret="").webhook_secret is None
    with pytest.raises(ValidationError) as info:
        make_bot_settings(tmp_path, webhook_secret="has spaces & symbols!")
    assert "has spaces" not in str(info.value)


def test_protect_logs_redacts_messages_args_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    secret = "777:unit-test-secret-token"
    protect_logs(secret)
    log = logging.getLogger("some.library")
    with caplog.at_level(logging.DEBUG):
        log.info("GET https://api.telegram.org/bot%s/getMe", secret)
        log.info("encoded %s", "777%3Aunit-test-secret-token")
        try:
            raise RuntimeError(f"failed for url bot{secret}/x")
        except RuntimeError:
            log.exception("boom")
    assert secret not in caplog.text
    assert "777%3Aunit" not in caplog.text
    assert len(re.findall(re.escape(REDACTED), caplog.text)) >= 3
    assert logging.getLogger("httpx").level == logging.WARNING
