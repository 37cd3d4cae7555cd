# gridbot developer interface. `make run` and `make test` set everything up
# themselves on a fresh machine (both Python environments from the locks, the
# Rasa model when its inputs changed).
SHELL := /bin/bash
.DEFAULT_GOAL := help
export PYTHONPATH := $(CURDIR)
export TF_CPP_MIN_LOG_LEVEL := 2
# Rasa reports nothing to its vendor (telemetry, Sentry error reports): not from here.
export RASA_TELEMETRY_ENABLED := false
APP := .venv-app/bin
RASA := .venv-rasa/bin
RASA_DATA := data/nlu data/rules data/stories

.PHONY: help setup model run test lint validate test-stories pytest lock clean

help:
	@echo "make run    - start Rasa, the action server and the bot (127.0.0.1), demo data loaded;"
	@echo "             without TELEGRAM_BOT_TOKEN: a chat with the bot in this terminal, with the"
	@echo "             broadcast sender and the reminder scheduler (REMINDER_LEAD=N: demo reminder lead)"
	@echo "make test   - install what is missing, train if needed, lint, validate, run every test and make test-cluster"
	@echo "make lock   - re-resolve locks/*.txt from pyproject.toml"
	@echo "make eval-nlu [DATA=file.csv] [BASELINE=1] - NLU figures; make bench-chat - 50 residents at once"
	@echo "make bench-reminders - 10,000 duty reminders; make bench-broadcast [N=3000] - one notice to N people"
	@echo "make bench-mobilise [PEOPLE=5000] - an emergency call-out to PEOPLE people at Telegram's pace, the sender killed"
	@echo "make test-cluster - 2 bot replicas, 2 Rasa, 2 action servers behind nginx on their own PostgreSQL and Redis, killed"
	@echo "make fuzz [INPUTS=10000] - bad input of every kind through the real Application"
	@echo "make bench-capacity [ONLY=single] - the highest message rate at reply p95 <= 300 ms, one set and two"
	@echo "make bench-chaos [RESIDENTS=200] [REPORTS=5] [KILLS=3] - reports while bot, Rasa, actions are killed"
	@echo "make bench-deadlines [TICKETS=20000] - time limits of 20,000 tickets due over 5 minutes, a restart"
	@echo "make bench-stats - one month's rates over 100,000 historical tickets (DATABASE_URL_BENCH for PostgreSQL)"
	@echo "make bench-open311 [TICKETS=100000] - Open311 GET requests of 1,000 results, SQLite and PostgreSQL"
	@echo "make bench-dashboard [TICKETS=100000] - the command centre's main page and filtered list, SQLite and PostgreSQL"

setup:
	@scripts/setup-envs.sh all

model: setup
	@scripts/train-if-changed.sh

run: model
	@$(APP)/gridbot demo
	@exec $(APP)/python -m cli.run

lint: setup
	$(APP)/ruff check core bot actions cli web nlu tests scripts
	$(APP)/mypy

validate: setup
	$(RASA)/rasa data validate --config config.yml --domain domain --data $(RASA_DATA) --fail-on-warnings

test-stories: model
	$(RASA)/rasa test core --model models/gridbot.tar.gz --stories tests/stories \
	    --endpoints endpoints.yml --out var/results/stories --fail-on-prediction-errors

pytest: model
	$(RASA)/python -m pytest tests/nlu -p no:cacheprovider -W ignore::pytest.PytestConfigWarning
	$(APP)/python -m pytest tests/app -n 3 --dist loadfile

test: lint validate test-stories pytest test-cluster

lock:
	@scripts/setup-envs.sh tools
	.venv-tools/bin/uv pip compile pyproject.toml --extra rasa --python-version 3.10 --generate-hashes --no-header -o locks/rasa.txt
	.venv-tools/bin/uv pip compile pyproject.toml --extra app --python-version 3.10 --generate-hashes --no-header -o locks/app.txt

clean:
	rm -rf .venv-app .venv-rasa .venv-tools models var/results

.PHONY: eval-nlu
# make eval-nlu [DATA=file.csv] [BASELINE=1]: per-category table, last line JSON.
eval-nlu: model
	@$(RASA)/python scripts/eval_nlu.py $(if $(DATA),--data $(DATA)) $(if $(BASELINE),--baseline) $(if $(ERRORS),--errors $(ERRORS))

.PHONY: bench-chat
# make bench-chat [USERS=50]: concurrent residents through bot, Rasa and actions; last line JSON.
bench-chat: model
	@$(APP)/python scripts/bench_chat.py $(if $(USERS),--users $(USERS))

.PHONY: bench-capacity
# make bench-capacity [START=10] [STEP=5] [SECONDS=20]: the message rate rises step by step until reply
# p95 passes 300 ms, on one set of processes, then on 2 bots and 2 Rasa servers (PostgreSQL + Redis,
# BENCH_POSTGRES_URL, BENCH_REDIS_URL); last line JSON.
bench-capacity: model
	@$(APP)/python scripts/bench_capacity.py $(if $(START),--start $(START)) $(if $(STEP),--step $(STEP)) \
	    $(if $(SECONDS),--seconds $(SECONDS)) $(if $(ONLY),--only $(ONLY))

.PHONY: bench-reminders
# make bench-reminders: 10,000 duty reminders for 1,000 members, scheduler restart mid-run; last line JSON.
bench-reminders: setup
	@$(APP)/python scripts/bench_reminders.py $(if $(DATABASE_URL_BENCH),--database-url $(DATABASE_URL_BENCH))

.PHONY: bench-broadcast
# make bench-broadcast [N=3000]: a notice to N residents through a fake Telegram enforcing 30/s and
# 1/s per chat (1% 429, 1% 403), the sender SIGKILLed mid-way and restarted; last line JSON.
bench-broadcast: setup
	@$(APP)/python scripts/bench_broadcast.py $(if $(N),--recipients $(N))

.PHONY: bench-mobilise
# make bench-mobilise [PEOPLE=5000] [LATENCY_MS=0]: one "mobilise.call" per person through the bot's outbox
# dispatcher to a fake Telegram enforcing 30/s and 1/s per chat (1% 429, 1% 403), the sender SIGKILLed
# mid-way and restarted (DATABASE_URL_BENCH: an empty database instead of SQLite); last line JSON
# (targets: ratio <= 1.10, 0 duplicates, 0 lost).
bench-mobilise: setup
	@$(APP)/python scripts/bench_mobilise.py $(if $(PEOPLE),--people $(PEOPLE)) \
	    $(if $(LATENCY_MS),--latency-ms $(LATENCY_MS)) $(if $(DATABASE_URL_BENCH),--database-url $(DATABASE_URL_BENCH))

.PHONY: bench-chaos
# make bench-chaos [RESIDENTS=200] [REPORTS=5] [KILLS=3]: residents report through the `make run` stack
# (fake Telegram over HTTP) while bot, Rasa and actions are SIGKILLed in turn; last line JSON.
bench-chaos: model
	@$(APP)/python scripts/bench_chaos.py $(if $(RESIDENTS),--residents $(RESIDENTS)) \
	    $(if $(REPORTS),--reports $(REPORTS)) $(if $(KILLS),--kills $(KILLS))

.PHONY: test-cluster
# make test-cluster: its own PostgreSQL, Redis and nginx; 2 bot replicas (webhook), 2 Rasa and 2 action
# servers; 100 residents report while one of each is SIGKILLed and PostgreSQL restarts; last line JSON.
test-cluster: model
	@$(APP)/python scripts/test_cluster.py $(if $(KEEP),--keep)

.PHONY: fuzz
# make fuzz [INPUTS=10000]: generated bad input through the real Application, Rasa and actions; last line JSON.
fuzz: model
	@$(APP)/python scripts/fuzz.py $(if $(INPUTS),--inputs $(INPUTS))

.PHONY: bench-deadlines
# make bench-deadlines [TICKETS=20000]: time-limit steps of TICKETS open tickets due over 5 minutes,
# the scheduler restarted in the middle; last line JSON (lateness p99 target < 1 s, 0 duplicates, 0 missed).
bench-deadlines: setup
	@$(APP)/python scripts/bench_deadlines.py $(if $(TICKETS),--tickets $(TICKETS)) $(if $(DATABASE_URL_BENCH),--database-url $(DATABASE_URL_BENCH))

.PHONY: bench-stats
# make bench-stats: one month's rates over 100,000 historical tickets; last line JSON (target < 1 s).
bench-stats: setup
	@$(APP)/python scripts/bench_stats.py $(if $(DATABASE_URL_BENCH),--database-url $(DATABASE_URL_BENCH))

.PHONY: bench-open311
# make bench-open311 [TICKETS=100000]: Open311 GET requests answering 1,000 of TICKETS tickets, server
# time p95 on SQLite and PostgreSQL (TEST_POSTGRES_URL's server); last line JSON.
bench-open311: setup
	@$(APP)/python scripts/bench_open311.py $(if $(TICKETS),--tickets $(TICKETS))

.PHONY: bench-dashboard
# make bench-dashboard [TICKETS=100000]: the command centre's main page and its ticket list filtered by grid
# and month, server time p95 on SQLite and PostgreSQL (TEST_POSTGRES_URL's server); last line JSON.
bench-dashboard: setup
	@$(APP)/python scripts/bench_dashboard.py $(if $(TICKETS),--tickets $(TICKETS))
