# meshwire — the two commands a new machine needs are `make demo` and `make test`.
# Everything else here is what they are made of.

CARGO ?= cargo
DEMO_PORT ?= 8080
WASM_TARGET = wasm32-unknown-unknown

.PHONY: test demo bench setup setup-build lint check-fmt unit sdk-test package npm-test e2e relay-bin

## make test — install what is missing, then run every check and test.
test: setup check-fmt lint unit sdk-test npm-test e2e

## make demo — build the relay and the SDK, serve the demo on http://localhost:$(DEMO_PORT).
demo: setup-build relay-bin package
	bash scripts/demo-package.sh
	@echo "meshwire demo: open http://localhost:$(DEMO_PORT) in two tabs (another port: make demo DEMO_PORT=9090)"
	./target/release/meshwire-relay --port $(DEMO_PORT) --static examples/demo

## make bench — relay throughput/latency/memory (single instance and cluster), SDK bundle
## size, the SDK against a raw-JS baseline in headless Chromium, npm package size and time
## to first remote frame (writes docs/benchmarks.md).
bench:
	bash bench/run.sh
	bash scripts/bundle-size.sh
	bash bench/sdk/run.sh
	bash scripts/bench-package.sh

setup:
	bash scripts/setup.sh

## What building needs (the wasm target, rust-src, wasm-bindgen-cli), for `make demo`.
setup-build:
	bash scripts/setup.sh --build

check-fmt:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) clippy -p meshwire --all-targets --locked --target $(WASM_TARGET) -- -D warnings
	$(CARGO) clippy -p meshwire --lib --locked --target $(WASM_TARGET) --no-default-features --features bundle -- -D warnings

unit:
	$(CARGO) test --workspace --locked --exclude meshwire

## The SDK in headless Chromium against a real relay.
sdk-test:
	bash scripts/test-sdk.sh

## The npm package: the SDK's wasm plus the TypeScript/React layer, packed (npm/meshwire-*.tgz).
package:
	bash scripts/build-npm.sh

## The package's own checks: the SDK bundle's size budget, type tests (tsc, with
## @ts-expect-error misuse), hook unit tests and the server-rendering test (vitest).
npm-test: package
	bash scripts/bundle-size.sh --check npm/src/wasm
	cd npm && npm test

## The demo, the Vite app and the Next.js app in headless Chromium against a real relay.
e2e: package
	SKIP_PACK=1 bash scripts/test-e2e.sh

relay-bin:
	$(CARGO) build --release --locked -p meshwire-relay
