"""`python -m bot`: the same as `coach bot`, without the command line around it."""

import logging
import sys

from bot.app import serve
from coach.errors import CoachError

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        serve()
    except CoachError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
