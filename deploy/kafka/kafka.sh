#!/usr/bin/env bash
# Local Apache Kafka (KRaft, single node) from the jars in .cache/kafka/lib.
#   kafka.sh fetch                       download the broker jars (Maven Central) if missing
#   kafka.sh start DATA_DIR [PORT] [CONTROLLER_PORT]
#                                        format DATA_DIR on first use, then run the broker in the
#                                        foreground (exec: signals reach java directly)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
lib="${KAFKA_LIB_DIR:-$root/.cache/kafka/lib}"

fetch() {
  if ls "$lib"/kafka_2.13-*.jar >/dev/null 2>&1; then return 0; fi
  command -v mvn >/dev/null || { echo "kafka.sh: Maven (mvn) is needed to fetch the Kafka jars" >&2; exit 1; }
  command -v java >/dev/null || { echo "kafka.sh: Java 17+ is needed to run Kafka" >&2; exit 1; }
  echo "kafka.sh: fetching Apache Kafka jars into $lib" >&2
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$lib" >&2
}

start() {
  local data=${1:?data dir} port=${2:-9092} cport=${3:-9093}
  fetch
  mkdir -p "$data/log"
  data=$(cd "$data" && pwd)
  sed -e "s#@PORT@#$port#; s#@CONTROLLER_PORT@#$cport#; s#@LOG_DIR@#$data/log#" \
      "$here/server.properties.template" > "$data/server.properties"
  export KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"
  local java_opts=(-cp "$lib/*" $KAFKA_HEAP_OPTS -XX:+UseG1GC -Djava.awt.headless=true
                   -Dlog4j2.configurationFile="$here/log4j2.yaml")
  if [ ! -f "$data/log/meta.properties" ]; then
    java "${java_opts[@]}" kafka.tools.StorageTool format --standalone \
         -t "$(java "${java_opts[@]}" kafka.tools.StorageTool random-uuid)" \
         -c "$data/server.properties" >/dev/null
  fi
  exec java "${java_opts[@]}" kafka.Kafka "$data/server.properties"
}

case "${1:-}" in
  fetch) fetch ;;
  start) shift; start "$@" ;;
  *) echo "usage: kafka.sh fetch | start DATA_DIR [PORT] [CONTROLLER_PORT]" >&2; exit 2 ;;
esac
