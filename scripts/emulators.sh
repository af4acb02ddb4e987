# Sourced by scripts/test: installs (once, into .tools/) and starts the
# emulators the cloud entry tests need, on free loopback ports, and stops them
# on exit. Exports where they listen:
#   RELAY_TEST_MOTO_URL            moto server (AWS: Secrets Manager, DynamoDB, SQS)
#   RELAY_TEST_AZURITE_TABLE_URL   Azurite Table service (Azure Table Storage)
#   RELAY_TEST_AZURITE_QUEUE_URL   Azurite Queue service (Azure Storage Queues)
#   RELAY_TEST_FIRESTORE_URL       Firestore emulator (GCP)
#   RELAY_TEST_PUBSUB_URL          Pub/Sub emulator (GCP)
# and RELAY_TEST_REQUIRE_EMULATORS=1, so a test that cannot reach them fails
# instead of skipping. Needs python3 (venv + pip), node/npm, and java with
# the Google Cloud CLI's Firestore and Pub/Sub emulator packages.

TOOLS="$PWD/.tools"
EMULATOR_LOGS="$TOOLS/logs"
mkdir -p "$TOOLS" "$EMULATOR_LOGS"
EMULATOR_PIDS=()

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_port() { # port name seconds
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "$2 did not start on port $1; its log:" >&2
  cat "$EMULATOR_LOGS/$2.log" >&2 || true
  return 1
}

stop_emulators() {
  local pid
  for pid in "${EMULATOR_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${EMULATOR_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_emulators EXIT

# --- moto (PyPI moto[server]) ---
if [ ! -x "$TOOLS/venv/bin/moto_server" ]; then
  echo "installing moto[server] into .tools/venv" >&2
  python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]==5.2.5'
fi
MOTO_PORT=$(free_port)
"$TOOLS/venv/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$EMULATOR_LOGS/moto.log" 2>&1 &
EMULATOR_PIDS+=($!)

# --- Azurite (npm azurite), Table service only ---
if [ ! -f "$TOOLS/npm/node_modules/azurite/dist/src/table/main.js" ]; then
  echo "installing azurite into .tools/npm" >&2
  npm install --silent --no-audit --no-fund --prefix "$TOOLS/npm" azurite@3.37.0 >/dev/null
fi
AZURITE_PORT=$(free_port)
node "$TOOLS/npm/node_modules/azurite/dist/src/table/main.js" \
  --tableHost 127.0.0.1 --tablePort "$AZURITE_PORT" --inMemoryPersistence --skipApiVersionCheck --loose \
  >"$EMULATOR_LOGS/azurite.log" 2>&1 &
EMULATOR_PIDS+=($!)
# The Queue service of the same install, on a port of its own.
AZURITE_QUEUE_PORT=$(free_port)
node "$TOOLS/npm/node_modules/azurite/dist/src/queue/main.js" \
  --queueHost 127.0.0.1 --queuePort "$AZURITE_QUEUE_PORT" --inMemoryPersistence --skipApiVersionCheck --loose \
  >"$EMULATOR_LOGS/azurite-queue.log" 2>&1 &
EMULATOR_PIDS+=($!)

wait_port "$MOTO_PORT" moto 60
wait_port "$AZURITE_PORT" azurite 60
wait_port "$AZURITE_QUEUE_PORT" azurite-queue 60
export RELAY_TEST_MOTO_URL="http://127.0.0.1:$MOTO_PORT"
export RELAY_TEST_AZURITE_TABLE_URL="http://127.0.0.1:$AZURITE_PORT"
export RELAY_TEST_AZURITE_QUEUE_URL="http://127.0.0.1:$AZURITE_QUEUE_PORT"
export RELAY_TEST_REQUIRE_EMULATORS=1
echo "emulators: moto $RELAY_TEST_MOTO_URL, azurite table $RELAY_TEST_AZURITE_TABLE_URL, azurite queue $RELAY_TEST_AZURITE_QUEUE_URL" >&2

# --- Firestore emulator (GCP), from the Google Cloud CLI's apt package
# google-cloud-cli-firestore-emulator (part of this machine image; elsewhere
# `gcloud components install cloud-firestore-emulator`); needs Java 11+.
# Started as java itself so that stop_emulators stops it (the SDK's wrapper
# script does not exec).
FIRESTORE_JAR=""
if command -v gcloud >/dev/null 2>&1; then
  FIRESTORE_JAR="$(dirname "$(readlink -f "$(command -v gcloud)")")/../platform/cloud-firestore-emulator/cloud-firestore-emulator.jar"
fi
if [ ! -f "$FIRESTORE_JAR" ] || ! command -v java >/dev/null 2>&1; then
  echo "the Firestore emulator is missing: apt-get install google-cloud-cli-firestore-emulator default-jre-headless" >&2
  return 1
fi
FIRESTORE_PORT=$(free_port)
java -Duser.language=en -cp "$FIRESTORE_JAR" com.google.cloud.datastore.emulator.firestore.CloudFirestore \
  --host 127.0.0.1 --port "$FIRESTORE_PORT" >"$EMULATOR_LOGS/firestore.log" 2>&1 &
EMULATOR_PIDS+=($!)
wait_port "$FIRESTORE_PORT" firestore 60
export RELAY_TEST_FIRESTORE_URL="http://127.0.0.1:$FIRESTORE_PORT"
echo "emulators: firestore $RELAY_TEST_FIRESTORE_URL" >&2

# --- Pub/Sub emulator (GCP), from the same Google Cloud CLI install
# (google-cloud-cli-pubsub-emulator; elsewhere `gcloud components install
# pubsub-emulator`). Started as java itself, like the Firestore emulator.
PUBSUB_JAR=""
if command -v gcloud >/dev/null 2>&1; then
  PUBSUB_JAR="$(ls "$(dirname "$(readlink -f "$(command -v gcloud)")")"/../platform/pubsub-emulator/lib/cloud-pubsub-emulator-*.jar 2>/dev/null | head -n 1)"
fi
if [ -z "$PUBSUB_JAR" ] || [ ! -f "$PUBSUB_JAR" ]; then
  echo "the Pub/Sub emulator is missing: apt-get install google-cloud-cli-pubsub-emulator" >&2
  return 1
fi
PUBSUB_PORT=$(free_port)
java -Duser.language=en -jar "$PUBSUB_JAR" --host=127.0.0.1 --port="$PUBSUB_PORT" \
  >"$EMULATOR_LOGS/pubsub.log" 2>&1 &
EMULATOR_PIDS+=($!)
wait_port "$PUBSUB_PORT" pubsub 60
export RELAY_TEST_PUBSUB_URL="http://127.0.0.1:$PUBSUB_PORT"
echo "emulators: pubsub $RELAY_TEST_PUBSUB_URL" >&2
