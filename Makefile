# meshwire — the two commands a new machine needs are `make demo` and `make test`.
# Everything else here is what they are made of.

CARGO ?= cargo
DEMO_PORT ?= 8080

.PHONY: test demo bench setup lint check-fmt unit relay-bin

## make test — install what is missing, then run every check and test.
test: setup check-fmt lint unit

## make demo — build the relay and serve the demo on http://localhost:$(DEMO_PORT).
demo: relay-bin
	./target/release/meshwire-relay --port $(DEMO_PORT) --static examples/status

## make bench — relay throughput/latency/memory benchmark (writes docs/benchmarks.md).
bench:
	bash bench/run.sh

setup:
	bash scripts/setup.sh

check-fmt:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

unit:
	$(CARGO) test --workspace --locked

relay-bin:
	$(CARGO) build --release --locked -p meshwire-relay
