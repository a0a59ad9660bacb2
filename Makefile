# Every target creates .venv/ in the repo root on first use and installs into it.
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check -c requirements.lock
COACH  := $(VENV)/bin/coach
QUESTION ?= why do my knees hurt?

.PHONY: quickstart install install-test test test-unit robustness lint ingest ask chat bot first-week eval bench clean

quickstart: install ## install, build the index, answer one question
	$(COACH) ask "$(QUESTION)"

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) -e '.[test]'
	touch $@

test: install-test lint ## lint, then the whole test suite
	$(PY) -m pytest -q

test-unit: install-test
	$(PY) -m pytest -q -m "not integration"

robustness: install-test ## the hardening suite alone; rewrites docs/robustness.md from its run
	$(PY) -m pytest -q -m robustness --robustness-table docs/robustness.md

lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

ingest: install
	$(COACH) ingest

ask: quickstart

chat: install
	$(COACH) chat

bot: install ## build or update the index, then run the bot (the bot itself only opens the index)
	$(COACH) ingest
	$(COACH) bot

first-week: install-test ## replay a runner's first week with the bot (stand-in Telegram) and print the chat
	$(COACH) ingest
	$(PY) -m tests.first_week

eval: install
	$(COACH) ingest
	$(COACH) eval

bench: install
	$(COACH) bench

clean:
	rm -rf $(VENV) data
