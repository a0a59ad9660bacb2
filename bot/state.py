"""Opens the bot's state from its settings: PostgreSQL when COACH_STATE_URL names one, else SQLite at
COACH_DATA_DIR/bot.sqlite. The stores themselves live in the core (coach/state/)."""

from __future__ import annotations

from bot.settings import BotSettings
from coach.state import State, open_state


async def open_bot_state(settings: BotSettings) -> State:
    """Open and migrate the state database (a StateError, password masked, when it cannot be)."""
    url = settings.state_url.get_secret_value() if settings.state_url is not None else None
    return await open_state(url, settings.bot_db)
