"""The scripted first week (tests/first_week.py) as a test: every message answered, no used button left
live, and the chat reads as it should at the points that matter."""

from __future__ import annotations

from pathlib import Path

import pytest

from coach.answer import CoachService
from tests.first_week import FirstWeek

pytestmark = pytest.mark.integration


async def test_a_runners_first_week(service: CoachService, tmp_path: Path) -> None:
    week = FirstWeek(service, tmp_path / "bot-data")
    chat = await week.run()  # raises when a message goes unanswered or a used button stays live
    print(chat)
    assert chat.count("Runner: ") == len([t for t in week.api.timeline if t[0] == "runner"]) == 17
    assert "Hi! I am a running coach for glute strength for runners" in chat
    assert "The next one comes today at 19:00." in chat  # the changed time, still ahead that day
    assert "✅ Done. Streak: 1." in chat
    assert "⏰ Snoozed: I will send it again at 20:00." in chat
    assert "✅ Done. Streak: 2." in chat
    assert chat.count("I did not take this one") == 2  # the burst of five: three answered, two refused
    assert "Your message was long, so I answered its last question" in chat
    assert "Runner: (edited) why do my knees hurt when I run?" in chat
    assert "Your next routine: it comes today at 19:00" in chat
    # No subscribe or nudge keyboard stays: the flows are over, the nudges are done.
    for shown in week.api.messages(42):
        labels = [b["text"] for row in (shown.reply_markup or {}).get("inline_keyboard", []) for b in row]
        assert set(labels) <= {"Sources", "Where sources disagree"}, labels
