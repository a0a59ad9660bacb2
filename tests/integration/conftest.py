"""Fixtures the bot's integration tests share."""

from __future__ import annotations

import pytest

from tests.botapi import BotApiStandIn
from tests.integration.test_bot import TOKEN


@pytest.fixture
async def api():
    """A Bot API stand-in on loopback that accepts the test bot's token."""
    standin = await BotApiStandIn(token=TOKEN).start()
    yield standin
    await standin.stop()
