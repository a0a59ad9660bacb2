"""A runner's first week with the bot, scripted: the real bot (long polling, handlers, nudge tick, SQLite
state, the real CoachService) against the Bot API stand-in over HTTP, with a clock the script moves.
It prints the chat as the runner sees it, text only, and fails when a message goes unanswered or a
used button stays live.

    make first-week      (builds the index if needed, then runs this)
    python -m tests.first_week [DATA_DIR]

tests/integration/test_first_week.py runs it as a test.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.app import ALLOWED_UPDATES, build_application
from bot.handlers import CoachApplication
from coach.answer import CoachService
from tests.botapi import BotApiStandIn, message
from tests.conftest import make_bot_settings

TOKEN = "123456789:AAE-first_week-token-0123456789"
CHAT = 42
BERLIN = timedelta(hours=2)  # June: Berlin is UTC+2
REPLY_WITHIN_S = 60.0
STORY = (
    "Some background first. I started running two years ago after a long break, and this spring I built up "
    "to about 40 km a week: three easy runs on roads, one interval session on the track and a longer run on "
    "Sundays, usually 16 to 18 km. I sit at a desk most of the day, and to be honest I rarely stretch or do "
    "any strength work; when I have time I would rather go for another run. My shoes are about eight months "
    "old and I have put roughly 900 km on them. Three weeks ago, after a hilly 18 km run with a long descent "
    "at the end, the outside of my left knee started to ache. I took four days off and it felt fine, but "
    "since then it comes back after about 8 km of every run, first as a dull feeling and then as a sharper "
    "ache that makes me slow down. It does not hurt when I walk, climb stairs or sit, and there is no "
    "swelling. Going downhill is the worst part, and on flat ground it takes longer to start. A friend who "
    "runs told me it may come from my hips rather than my knee, which surprised me, because my hips never "
    "hurt. Another friend said I should just buy new shoes, and a third said I should stop running for a "
    "month. I have also read that foam rolling the side of the thigh helps, but it is very painful and I "
    "am not sure it changes anything. I watched a video of myself running on the treadmill at the gym and "
    "I think my left hip drops a little when I land on that leg, and my knee seems to move inwards, but I "
    "do not really know what I should be looking for. I would like to keep training for a half marathon "
    "in the autumn, ideally under two hours, and I do not want to lose the fitness I have built over the "
    "spring. I can spare about twenty minutes a day for exercises if they help, and I have a pair of "
    "dumbbells and a mat at home. My training plan has me adding a fourth easy run in July and a few "
    "races in September, a 10 km and a hilly 15 km, before the half marathon in October. Last year I had "
    "a sore Achilles for a while, which went away when I cut back the hills, so I worry that this is the "
    "same story in another place. What should I do about my knee pain?"
)


@dataclass
class Clock:
    t: datetime

    def now(self) -> datetime:
        return self.t


class Unanswered(AssertionError):
    pass


class FirstWeek:
    def __init__(self, service: CoachService, data_dir: Path) -> None:
        self.service, self.data_dir = service, data_dir
        self.clock = Clock(datetime(2026, 6, 1, 6, 0, tzinfo=UTC))  # Mon 1 Jun, 08:00 in Berlin
        self.api = BotApiStandIn(token=TOKEN)
        self.app: CoachApplication | None = None
        self.update_id = 0
        self.message_id = 0

    # --- the runner's side ---------------------------------------------------------------------------

    def _message(self, text: str) -> dict:
        self.update_id += 1
        self.message_id += 1
        update = message(self.update_id, text, user_id=CHAT)
        update["message"]["message_id"] = self.message_id
        return update

    def _sent(self) -> int:
        return len(self.api.delivered_to(CHAT))

    async def _replies(self, before: int, count: int) -> None:
        try:
            await self.api.wait_for(lambda: self._sent() >= before + count, within=REPLY_WITHIN_S)
        except AssertionError:
            raise Unanswered(f"expected {count} new messages, got {self._sent() - before}") from None

    async def say(self, text: str) -> None:
        """One message, and its reply."""
        before = self._sent()
        self.api.push(self._message(text))
        await self._replies(before, 1)

    async def burst(self, texts: list[str]) -> None:
        """Several messages at once: one reply each (an answer or a refusal quoting it)."""
        before = self._sent()
        self.api.push(*(self._message(t) for t in texts))
        await self._replies(before, len(texts))
        await asyncio.sleep(0.3)
        new = self.api.delivered_to(CHAT)[before:]
        assert len(new) == len(texts), f"{len(new)} replies to {len(texts)} messages"
        quoted = [m["reply_parameters"]["message_id"] for m in new if m.get("reply_parameters")]
        assert len(set(quoted)) == len(quoted), "a message was refused twice"

    async def edit(self, text: str) -> None:
        """Edit the runner's last message (a fixed typo): answered as a new question."""
        self.update_id += 1
        before = self._sent()
        update = message(self.update_id, text, user_id=CHAT, kind="edited_message")
        update["edited_message"]["message_id"] = self.message_id
        self.api.push(update)
        await self._replies(before, 1)

    async def press(self, label: str, message_id: int | None = None, *, replies: int = 0) -> None:
        """Press a live button (under the chat's last message by default); wait for the `replies` new
        messages it brings and for the button to be gone."""
        before = self._sent()
        message_id = message_id if message_id is not None else self.api.last(CHAT).message_id
        self.update_id += 1
        self.api.press(CHAT, message_id, label, update_id=self.update_id)
        await self.api.wait_for(lambda: self._sent() >= before + replies and not self.api.used_but_live(CHAT))

    def answer_message(self) -> int:
        """The last message with answer buttons."""
        return next(
            m.message_id
            for m in reversed(self.api.messages(CHAT))
            if any(
                b["text"] == "Sources"
                for row in (m.reply_markup or {}).get("inline_keyboard", [])
                for b in row
            )
        )

    # --- time ------------------------------------------------------------------------------------------

    async def at(self, when: datetime, label: str) -> None:
        """Move the clock (the gate's allowance refills with it) and send whatever is due."""
        self.clock.t = when
        self.api.note(CHAT, f"{label}, {(when + BERLIN):%a %d %b %H:%M} in Berlin")
        await self.app.bot_data.nudger.run_due()

    # --- the week --------------------------------------------------------------------------------------

    async def run(self) -> str:
        await self.api.start()
        settings = make_bot_settings(
            self.data_dir,
            TELEGRAM_BOT_TOKEN=TOKEN,
            telegram_base_url=self.api.base_url,
            bot_refusals_per_s=20.0,
        )
        self.app = build_application(settings, self.service, clock=self.clock)
        # The runner's allowance follows the script's clock, so a day later it is full again.
        self.app.bot_data.gate.clock = lambda: self.clock.now().timestamp()
        await self.app.initialize()
        await self.app.post_init(self.app)
        await self.app.updater.start_polling(timeout=1, allowed_updates=ALLOWED_UPDATES)
        await self.app.start()
        try:
            await self._week()
        finally:
            await self.app.updater.stop()
            await self.app.stop()
            await self.app.post_shutdown(self.app)
            await self.app.shutdown()
            await self.api.stop()
        return self.api.transcript(CHAT)

    async def _week(self) -> None:
        api = self.api
        api.note(CHAT, "Day 1, Mon 01 Jun 08:00 in Berlin")
        await self.say("/start")
        await self.say("why do my knees hurt?")
        await self.press("Sources", replies=1)
        await self.say("do the glutes propel you forward when you run?")
        answer = self.answer_message()
        labels = [b["text"] for row in api.shown[(CHAT, answer)].reply_markup["inline_keyboard"] for b in row]
        await self.press(labels[-1], answer, replies=1)  # "Where sources disagree" when there is one
        await self.say("how often should I train my glutes?")
        await self.press("Sources", replies=1)

        await self.at(datetime(2026, 6, 1, 9, 0, tzinfo=UTC), "Day 1")
        await self.say("/subscribe")
        await self.press("07:30")
        await self.press("Europe/Berlin")
        await self.press("Daily")
        await self.say("/subscribe 19:00 Europe/Berlin daily")  # 07:30 has passed today: 19:00 is ahead

        before = self._sent()
        await self.at(datetime(2026, 6, 1, 17, 0, tzinfo=UTC), "Day 1")
        assert self._sent() == before + 1, "no nudge at 19:00 on day 1"
        await self.press("Done")

        before = self._sent()
        await self.at(datetime(2026, 6, 2, 17, 0, tzinfo=UTC), "Day 2")
        assert self._sent() == before + 1, "no nudge on day 2"
        await self.press("Snooze 1 h")
        before = self._sent()
        await self.at(datetime(2026, 6, 2, 18, 0, tzinfo=UTC), "Day 2")
        assert self._sent() == before + 1, "no reminder an hour after Snooze"
        await self.press("Done")
        await self.say("/stats")

        await self.at(datetime(2026, 6, 3, 6, 0, tzinfo=UTC), "Day 3")
        await self.burst(
            [
                "what exercises strengthen the glutes?",
                "how many sets should I do?",
                "are clams good for runners?",
                "what does a hip drop mean?",
                "should I stretch my hip flexors?",
            ]
        )
        await self.at(datetime(2026, 6, 3, 6, 1, tzinfo=UTC), "Day 3")
        await self.say("should I stretch my hip flexors?")  # sent again when the bot said to

        await self.at(datetime(2026, 6, 4, 10, 0, tzinfo=UTC), "Day 4")
        await self.say(STORY)
        await self.say("why do my kness hurt whn I run")
        await self.edit("why do my knees hurt when I run?")
        await self.say("/routine")

        await asyncio.sleep(0.5)  # anything late would show now
        self.check()

    def check(self) -> None:
        api = self.api
        assert api.used_but_live(CHAT) == [], f"used buttons still live: {api.used_but_live(CHAT)}"
        for shown in api.messages(CHAT):
            kinds = {
                b["callback_data"].split("|")[0]
                for row in (shown.reply_markup or {}).get("inline_keyboard", [])
                for b in row
            }
            assert not kinds & {"sub", "snz"}, (
                f"a subscribe or snooze keyboard is still live: {shown.text[:60]}"
            )
        runner = [t for who, chat, t in api.timeline if who == "runner" and chat == CHAT]
        assert len(api.delivered_to(CHAT)) >= len(runner)
        assert not [e for e in api.errors if "not modified" not in e[1]], api.errors


async def first_week(service: CoachService, data_dir: Path) -> str:
    return await FirstWeek(service, data_dir).run()


def main() -> None:
    from coach.settings import Settings

    settings = Settings(**({"data_dir": Path(sys.argv[1])} if len(sys.argv) > 1 else {}))
    service = CoachService.open(settings)
    service.warm_up()
    with tempfile.TemporaryDirectory() as bot_dir:
        settings_dir = Path(bot_dir)
        transcript = asyncio.run(first_week(service, settings_dir))
    print(transcript)
    print("\nEvery message was answered; no used button stayed live.")


if __name__ == "__main__":
    main()
