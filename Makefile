# pasarela: the two commands a newcomer needs are `make demo` and `make test`.
CARGO_TARGET_DIR ?= $(HOME)/.cache/pasarela-target
export CARGO_TARGET_DIR
CARGO ?= cargo

.PHONY: build test unit e2e faults lint demo bench chaos up down clean-test-state

## build: every binary (workers, vendor-sim, pasarela)
build:
	$(CARGO) build --workspace --bins

## test: formatting, lints, unit tests, end-to-end tests, then the fault tests alone
test: lint build unit e2e faults

unit:
	$(CARGO) test --workspace --exclude pasarela-e2e

e2e: build
	$(CARGO) test -p pasarela-e2e --test otp_send --test otp_verify --test vendor_call --test documents --test shutdown --test cli --test report --test promise --test black_hole --test document_checks --test hostile

# These stop and start the shared broker and database: never beside other tests.
faults chaos: build
	$(CARGO) test -p pasarela-e2e --test faults -- --test-threads=1

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## demo: the vendor simulator, the workers and a sample workload against local services
demo: build
	scripts/demo.sh

## bench: otp.send throughput and latency against the broker's own floor, release build
bench:
	$(CARGO) build --release --workspace --bins
	$(CARGO_TARGET_DIR)/release/pasarela-bench $(BENCH_ARGS)

## up / down: the whole stack in Docker (RabbitMQ, PostgreSQL, Tempo, Prometheus, Grafana, workers)
up:
	docker compose up -d --build

down:
	docker compose down
