# pasarela: the two commands a newcomer needs are `make demo` and `make test`.
CARGO_TARGET_DIR ?= $(HOME)/.cache/pasarela-target
export CARGO_TARGET_DIR
CARGO ?= cargo

.PHONY: build test unit e2e browser-deps faults lint demo bench bench-console bench-curve flamegraph chaos cluster fuzz up down clean-test-state schemas asyncapi examples alerts deploy-check

## build: every binary (workers, vendor-sim, pasarela)
build:
	$(CARGO) build --workspace --bins

## test: formatting, lints, unit tests, end-to-end tests, then the fault tests alone
test: lint asyncapi alerts deploy-check build unit e2e faults

unit:
	$(CARGO) test --workspace --exclude pasarela-e2e

e2e: build browser-deps
	$(CARGO) test -p pasarela-e2e --test otp_send --test otp_verify --test vendor_call --test documents --test shutdown --test cli --test report --test promise --test black_hole --test document_checks --test hostile --test vendor_readings --test signing_outcomes --test examples --test traces --test config --test tls --test console --test console_browser

# playwright-core for the console's browser test, from its lockfile; it drives Debian's chromium
# (.ci/run installs it), never a browser of its own.
browser-deps:
	cd tests/browser && npm ci --no-audit --no-fund --loglevel=error

# These stop and start the shared broker and database: never beside other tests.
faults: build
	$(CARGO) test -p pasarela-e2e --test faults -- --test-threads=1

## chaos: 20,000 messages while workers are killed, then a broker stop, a database restart, a vendor
## outage and a client endpoint down; prints each scenario's published, terminal, lost and repeats
chaos: build
	$(CARGO) test -p pasarela-e2e --test chaos -- --ignored --nocapture --test-threads=1

## cluster: a three-node RabbitMQ cluster on loopback, the failover test against it, then stop it
CLUSTER_URLS = amqp://guest:guest@127.0.0.1:5701/%2f,amqp://guest:guest@127.0.0.1:5702/%2f,amqp://guest:guest@127.0.0.1:5703/%2f
cluster: build
	tools/cluster/cluster.sh start
	AMQP_URL='$(CLUSTER_URLS)' $(CARGO) test -p pasarela-e2e --test cluster -- --ignored --nocapture; \
		status=$$?; tools/cluster/cluster.sh stop; exit $$status

## fuzz: every cargo fuzz target (libFuzzer, nightly) for FUZZ_SECONDS each (600)
FUZZ_SECONDS ?= 600
FUZZ_TARGETS := work_messages vendor_answers callback_body aes_payload
fuzz:
	cd fuzz && for t in $(FUZZ_TARGETS); do \
		CARGO_TARGET_DIR=$(CURDIR)/fuzz/target cargo +nightly fuzz run $$t -- \
			-max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096 -print_final_stats=1 || exit 1; \
	done

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## demo: the vendor simulator, the workers and a sample workload against local services
demo: build
	scripts/demo.sh

## examples: the Python, Node, Go and Java producers under examples/ against the broker and the workers;
## a language whose toolchain is missing is skipped with the reason printed
examples: build
	$(CARGO) test -p pasarela-e2e --test examples -- --nocapture --test-threads=1

## asyncapi: validate docs/asyncapi.yaml with the AsyncAPI parser, pinned in tools/asyncapi
asyncapi:
	@if command -v npm >/dev/null 2>&1; then \
		cd tools/asyncapi && npm ci --no-audit --no-fund --loglevel=error && node validate.mjs; \
	elif [ -n "$$CI" ]; then \
		echo "asyncapi: npm is required in CI"; exit 1; \
	else \
		echo "asyncapi: skipped: npm is not installed (the drift test in make unit still runs)"; \
	fi

## alerts: check the Prometheus config and rules, and run the rules' unit tests (promtool)
alerts:
	@if command -v promtool >/dev/null 2>&1; then \
		cd deploy/prometheus && promtool check config prometheus.yml && promtool test rules rules.test.yml; \
	elif [ -n "$$CI" ]; then \
		echo "alerts: promtool is required in CI (Debian's prometheus package)"; exit 1; \
	else \
		echo "alerts: skipped: promtool is not installed (Debian's prometheus package has it)"; \
	fi

## deploy-check: render the Kustomize base and example overlay and validate them against the Kubernetes
## schemas (kubernetes-validate), and check docker-compose.yml (compose-spec) and deploy/Dockerfile
deploy-check:
	scripts/deploy-check.sh

## schemas: write docs/schemas/*.json from the contract's types (a test fails when they drift)
schemas:
	PASARELA_WRITE_SCHEMAS=1 $(CARGO) test -p pasarela-shared --test schemas

## bench: every worker kind against the broker's own floor, release build; table, docs/bench/bench.json and SVG charts
bench:
	$(CARGO) build --release --workspace --bins
	$(CARGO_TARGET_DIR)/release/pasarela-bench --json docs/bench/bench.json --charts docs/bench $(BENCH_ARGS)
	$(CARGO_TARGET_DIR)/release/pasarela-bench --console-pages --json docs/bench/console.json

## bench-console: the operator console's pages over 1,000,000 stored sends (make bench runs it too)
bench-console:
	$(CARGO) build --release --workspace --bins
	$(CARGO_TARGET_DIR)/release/pasarela-bench --console-pages --json docs/bench/console.json

## flamegraph: otp-send sampled by perf (Debian's linux-perf) at its peak, drawn to docs/bench/flamegraph-otp-send.svg
flamegraph:
	$(CARGO) build --release --workspace --bins
	$(CARGO_TARGET_DIR)/release/pasarela-bench --kinds otp-send --flamegraphs docs/bench $(BENCH_ARGS)

## bench-curve: otp.send at 1, 2, 4 and 8 worker processes, and over 10k, 100k and 1M rows already stored
bench-curve:
	$(CARGO) build --release --workspace --bins
	$(CARGO_TARGET_DIR)/release/pasarela-bench --curve $(BENCH_ARGS)

## up / down: the whole stack in Docker (RabbitMQ, PostgreSQL, Tempo, Prometheus, Grafana, workers)
up:
	docker compose up -d --build

down:
	docker compose down
