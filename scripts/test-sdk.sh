#!/usr/bin/env bash
# The SDK's browser tests: starts a relay (and the fault-injecting proxy in front of a
# second listener path) on free ports, plus coturn behind its own fault proxy and a
# second relay that hands out credentials for it, a relay that requires JWTs behind a
# third fault proxy, and a WebSocket server that never
# welcomes, then runs `cargo test -p meshwire` for wasm32 in
# headless Chromium through wasm-bindgen-test-runner. URLs reach the tests at compile
# time (MESHWIRE_RELAY_URL, MESHWIRE_PROXY_URL, MESHWIRE_PROXY_CONTROL,
# MESHWIRE_TURN_RELAY_URL, MESHWIRE_TURN_CONTROL, MESHWIRE_SILENT_URL, MESHWIRE_AUTH_URL,
# MESHWIRE_AUTH_CONTROL, MESHWIRE_JWT_SECRET).
set -euo pipefail
cd "$(dirname "$0")/.."

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RELAY_PORT=$(free_port); PROXY_PORT=$(free_port); CONTROL_PORT=$(free_port)
TURN_PORT=$(free_port); TURN_PROXY_PORT=$(free_port); TURN_CONTROL_PORT=$(free_port)
TURN_RELAY_PORT=$(free_port); SILENT_PORT=$(free_port)
AUTH_PORT=$(free_port); AUTH_PROXY_PORT=$(free_port); AUTH_CONTROL_PORT=$(free_port)
TURN_SECRET="meshwire-test-$RANDOM$RANDOM"
JWT_SECRET="meshwire-jwt-$RANDOM$RANDOM"

cargo build --locked -p meshwire-relay -p meshwire-e2e
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# A short grace keeps the socket-death test quick; the outage test resumes well within it.
# A 6 s ping period (welcome's limits.pingIntervalMs) has the SDK give up a silent
# connection within ~10 s instead of ~25 s.
RUST_LOG=warn target/debug/meshwire-relay --bind 127.0.0.1 --port "$RELAY_PORT" \
  --resume-grace 5s --ping-interval 6s &
PIDS+=($!)
target/debug/fault-proxy --listen "127.0.0.1:$PROXY_PORT" --upstream "127.0.0.1:$RELAY_PORT" \
  --control "127.0.0.1:$CONTROL_PORT" &
PIDS+=($!)

# The TURN path: coturn behind a second fault proxy (TURN over TCP, so cutting the
# proxy breaks every relayed candidate at once), and a relay that hands out coturn
# REST credentials for it. The ICE-restart tests force media through it.
turnserver -n --listening-ip=127.0.0.1 --relay-ip=127.0.0.1 --listening-port="$TURN_PORT" \
  --use-auth-secret --static-auth-secret="$TURN_SECRET" --realm=meshwire.test \
  --allow-loopback-peers --no-tls --no-dtls --min-port=49400 --max-port=49600 --no-cli \
  --fingerprint --log-file=stdout --simple-log >/dev/null &
PIDS+=($!)
target/debug/fault-proxy --listen "127.0.0.1:$TURN_PROXY_PORT" --upstream "127.0.0.1:$TURN_PORT" \
  --control "127.0.0.1:$TURN_CONTROL_PORT" &
PIDS+=($!)
RUST_LOG=warn target/debug/meshwire-relay --bind 127.0.0.1 --port "$TURN_RELAY_PORT" \
  --turn "turn:127.0.0.1:$TURN_PROXY_PORT?transport=tcp" --turn-secret "$TURN_SECRET" &
PIDS+=($!)

# A relay that requires a JWT (HS256, JWT_SECRET), behind a third fault proxy: the
# token tests cut it to make the SDK reconnect with a fresh token.
RUST_LOG=warn target/debug/meshwire-relay --bind 127.0.0.1 --port "$AUTH_PORT" \
  --jwt-secret "$JWT_SECRET" &
PIDS+=($!)
target/debug/fault-proxy --listen "127.0.0.1:$AUTH_PROXY_PORT" --upstream "127.0.0.1:$AUTH_PORT" \
  --control "127.0.0.1:$AUTH_CONTROL_PORT" &
PIDS+=($!)

# A WebSocket server that accepts, answers one malformed `welcome` and then says
# nothing: joining it must time out (joinTimeoutMs) rather than hang.
python3 - "$SILENT_PORT" <<'SILENT' &
import asyncio, base64, hashlib, sys

async def handle(reader, writer):
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:"))
        accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        frame = b'{"type":"welcome"}'
        writer.write(bytes([0x81, len(frame)]) + frame)
        await writer.drain()
        while await reader.read(4096):
            pass
    except (OSError, ValueError, StopIteration, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()

async def main(port):
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()

asyncio.run(main(int(sys.argv[1])))
SILENT
PIDS+=($!)

for port in "$RELAY_PORT" "$TURN_RELAY_PORT" "$TURN_PORT" "$SILENT_PORT" "$AUTH_PORT"; do
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
done

export MESHWIRE_RELAY_URL="ws://127.0.0.1:$RELAY_PORT"
export MESHWIRE_PROXY_URL="ws://127.0.0.1:$PROXY_PORT"
export MESHWIRE_PROXY_CONTROL="http://127.0.0.1:$CONTROL_PORT"
export MESHWIRE_TURN_RELAY_URL="ws://127.0.0.1:$TURN_RELAY_PORT"
export MESHWIRE_TURN_CONTROL="http://127.0.0.1:$TURN_CONTROL_PORT"
export MESHWIRE_SILENT_URL="ws://127.0.0.1:$SILENT_PORT"
export MESHWIRE_AUTH_URL="ws://127.0.0.1:$AUTH_PROXY_PORT"
export MESHWIRE_AUTH_CONTROL="http://127.0.0.1:$AUTH_CONTROL_PORT"
export MESHWIRE_JWT_SECRET="$JWT_SECRET"
export WASM_BINDGEN_TEST_WEBDRIVER_JSON="$PWD/sdk-wasm/webdriver.json"
export WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-300}
export CHROMEDRIVER=${CHROMEDRIVER:-$(command -v chromedriver)}
cargo test --locked -p meshwire --target wasm32-unknown-unknown --test browser "$@"
