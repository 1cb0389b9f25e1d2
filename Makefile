# Shuiwu Hub - build/run/test entry points (GNU make).  `make` alone lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY := .venv/bin/python

.PHONY: help run test lint bench clean

help:
	@echo "make run    start the hub on SQLite with demo accounts and the bot (HUB_DEMO=1, HUB_BOT_AUTOSTART=1 unless set)"
	@echo "make test   install test deps, start PostgreSQL + Redis, run pytest (extra args: make test ARGS='-k x')"
	@echo "make lint   ruff check ."
	@echo "make bench  web chat, work-order, ACD, WeChat, sign-in, bot and IVR benchmarks, and the chaos run (parts of the"
	@echo "           hub killed under load: messages lost, duplicated, answered); results into docs/benchmarks.md"
	@echo "make clean  remove var/ and the ./.venv link (the cached venv is kept)"

run:
	@bash scripts/bootstrap.sh
	@bash scripts/bot-env.sh
	@bash scripts/bot-train.sh
	HUB_DEMO="$${HUB_DEMO:-1}" HUB_BOT_AUTOSTART="$${HUB_BOT_AUTOSTART:-1}" exec $(PY) -m router run

test:
	@bash scripts/run-tests.sh $(ARGS)

lint:
	@bash scripts/bootstrap.sh
	.venv/bin/ruff check .

bench:
	@bash scripts/bootstrap.sh test
	@bash scripts/services.sh
	$(PY) -m bench --write
	$(PY) -m bench.workorders --write
	@bash scripts/asterisk-root.sh
	$(PY) -m bench.acd --write
	$(PY) -m bench.wechat --write
	$(PY) -m bench.logins --write
	$(PY) -m bench.sms --write
	@bash scripts/bot-env.sh
	@bash scripts/bot-train.sh
	$(PY) -m bench.bot --write
	$(PY) -m bench.voice --write
	$(PY) -m bench.calls --write
	$(PY) -m bench.chaos --write

clean:
	rm -rf var
	if [ -L .venv ]; then rm -f .venv; fi
