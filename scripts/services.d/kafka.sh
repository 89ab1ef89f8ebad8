# shellcheck shell=bash
# Apache Kafka (KRaft, one combined broker + controller): the broker jars from Maven Central
# through a throwaway pom, cached per version. Sourced by scripts/services.

ensure_kafka() {
  [[ -f $KAFKA_HOME/.complete ]] && return
  need_cmd java openjdk-17-jre-headless
  need_cmd mvn maven
  say "fetching Apache Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_HOME"
  rm -rf "$KAFKA_HOME"
  mkdir -p "$KAFKA_HOME"
  render kafka-pom.xml "$KAFKA_HOME/pom.xml" KAFKA_VERSION KAFKA_SCALA LOG4J_VERSION
  (cd "$KAFKA_HOME" && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=lib) \
    >"$KAFKA_HOME/mvn.log" 2>&1 || fail_service kafka "$KAFKA_HOME/mvn.log" "mvn could not fetch the Kafka jars"
  [[ -f $KAFKA_HOME/lib/kafka_$KAFKA_SCALA-$KAFKA_VERSION.jar ]] ||
    fail_service kafka "$KAFKA_HOME/mvn.log" "kafka_$KAFKA_SCALA-$KAFKA_VERSION.jar missing after mvn"
  touch "$KAFKA_HOME/.complete"
}

kafka_java() { java -cp "$KAFKA_HOME/lib/*" "$@"; }

# Kafka's command-line tools, logging errors only.
kafka_tool() {
  timeout "$1" java -Dlog4j2.configurationFile="$SVC/kafka/tools-log4j2.properties" -cp "$KAFKA_HOME/lib/*" "${@:2}"
}

kafka_write_config() {
  local d=$SVC/kafka
  mkdir -p "$d/data"
  export KAFKA_DATA=$d/data KAFKA_LOG=$LOGS/kafka.log
  render kafka-server.properties "$d/server.properties" KAFKA_PORT KAFKA_CONTROLLER_PORT KAFKA_DATA
  render kafka-log4j2.properties "$d/log4j2.properties" KAFKA_LOG
  cp "$TEMPLATES/kafka-tools-log4j2.properties" "$d/tools-log4j2.properties"
}

kafka_metadata_ok() {
  kafka_tool 30 org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" --list
}

start_kafka() {
  if running_pid kafka >/dev/null; then return; fi
  ensure_kafka
  kafka_write_config
  local d=$SVC/kafka
  if [[ ! -f $d/data/meta.properties ]]; then
    say "formatting Kafka storage in $d/data"
    local id
    id=$(kafka_java kafka.tools.StorageTool random-uuid 2>>"$LOGS/kafka.log")
    kafka_java -Dlog4j2.configurationFile="$d/tools-log4j2.properties" kafka.tools.StorageTool format \
      --standalone -t "$id" -c "$d/server.properties" >>"$LOGS/kafka.log" 2>&1 ||
      fail_service kafka "$LOGS/kafka.log" "formatting the KRaft storage failed"
  fi
  say "starting Kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT"
  launch kafka "$LOGS/kafka.out" java -Xmx512m -Xms128m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$d/log4j2.properties" -cp "$KAFKA_HOME/lib/*" kafka.Kafka "$d/server.properties"
}

wait_kafka() {
  local pid
  pid=$(running_pid kafka) || fail_service kafka "$LOGS/kafka.out" "the broker process is not running"
  wait_until kafka "$LOGS/kafka.log" "$KAFKA_READY_TIMEOUT" "$pid" port_in_use "$KAFKA_PORT"
  wait_until kafka "$LOGS/kafka.log" "$KAFKA_READY_TIMEOUT" "$pid" kafka_metadata_ok
}

stop_kafka() { stop_service kafka; }

status_kafka() {
  local pid
  if pid=$(running_pid kafka); then
    status_row kafka running "$pid" "127.0.0.1:$KAFKA_PORT" "Apache Kafka $KAFKA_VERSION"
  else
    status_row kafka stopped - "127.0.0.1:$KAFKA_PORT" "Apache Kafka $KAFKA_VERSION"
    return 3
  fi
}

# Creates topics (3 partitions) unless they exist: the consumer group only joins once its
# topics exist, so the quick start creates Reflex's own topics up front.
kafka_create_topics() {
  running_pid kafka >/dev/null || die "Kafka is not running; run: scripts/services up"
  local topic
  for topic in "$@"; do
    kafka_tool 60 org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" \
      --create --if-not-exists --topic "$topic" --partitions 3 --replication-factor 1 >/dev/null ||
      die "could not create topic $topic (Kafka log: $LOGS)"
    say "topic $topic ready"
  done
}
