# meshwire — the two commands a new machine needs are `make demo` and `make test`.
# Everything else here is what they are made of.

CARGO ?= cargo
DEMO_PORT ?= 8080
WASM_TARGET = wasm32-unknown-unknown

.PHONY: test demo bench setup lint check-fmt unit sdk-test sdk-web relay-bin

## make test — install what is missing, then run every check and test.
test: setup check-fmt lint unit sdk-test

## make demo — build the relay and the SDK, serve the demo on http://localhost:$(DEMO_PORT).
demo: relay-bin sdk-web
	./target/release/meshwire-relay --port $(DEMO_PORT) --static examples/demo

## make bench — relay throughput/latency/memory, SDK bundle size, and the SDK against a
## raw-JS baseline in headless Chromium (writes docs/benchmarks.md).
bench:
	bash bench/run.sh
	bash scripts/bundle-size.sh
	bash bench/sdk/run.sh

setup:
	bash scripts/setup.sh

check-fmt:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) clippy -p meshwire --all-targets --locked --target $(WASM_TARGET) -- -D warnings

unit:
	$(CARGO) test --workspace --locked --exclude meshwire

## The SDK in headless Chromium against a real relay.
sdk-test:
	bash scripts/test-sdk.sh

## The SDK as an ES module for the demo page (examples/demo/pkg).
sdk-web:
	bash scripts/build-sdk.sh examples/demo/pkg

relay-bin:
	$(CARGO) build --release --locked -p meshwire-relay
