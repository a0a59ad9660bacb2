"""`python -m bot`: the same as `coach bot`."""

from coach.cli import app

if __name__ == "__main__":
    app(["bot"])
