#!/usr/bin/env bash
# bench/kstreams-baseline/scripts/side_by_side.sh — Tributary's order-aggregator
# (exactly_once_v2) against the Kafka Streams baseline (exactly_once_v2) on the
# same cdc-gen input, alternating, RUNS runs each. A first piece of issue 10's
# harness, not the whole of it (no bare pipe, no at-least-once runs here).
#
#   N=50000 RUNS=3 bench/kstreams-baseline/scripts/side_by_side.sh
#
# Needs: a broker (scripts/kafka start), the Release build of cdc-gen and
# order-aggregator in TRIBUTARY_BIN (default build-bench/bin: see bench/README.md),
# the baseline's jar (mvn -q -T1 package in bench/kstreams-baseline), GNU time
# (/usr/bin/time, Debian package `time`), bc. Prints, per run: wall time from
# start to the last transaction released and emitted, CPU-seconds (user + system,
# all threads: the JVM's JIT and GC included) and peak RSS; results also in
# $OUT/results-<prefix>.txt. Every wait is bounded (10 min per run).
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
N=${N:-50000}; RUNS=${RUNS:-3}; P=${PREFIX:-ks$(date +%s)}
T=${TRIBUTARY_BIN:-$ROOT/build-bench/bin}; JAR=$ROOT/bench/kstreams-baseline/target/kstreams-baseline.jar
BOOT=${TRIBUTARY_BOOTSTRAP:-127.0.0.1:19092}
OUT=${OUT:-/tmp/tributary-bench}
mkdir -p "$OUT"
for need in "$T/cdc-gen" "$T/order-aggregator" "$JAR" /usr/bin/time; do
  [ -e "$need" ] || { echo "side_by_side: $need not found (see the header)" >&2; exit 1; }
done
command -v bc > /dev/null || { echo "side_by_side: bc not found" >&2; exit 1; }
$T/cdc-gen --bootstrap $BOOT --count $N --create_topics --partitions 3 --prefix $P --duplicates 0.01 --bulk_lines 0 > $OUT/gen-$P.log 2>&1 || { echo gen failed; exit 1; }
tail -1 $OUT/gen-$P.log
for run in $(seq 1 $RUNS); do
  for v in T K; do
    id=$P-$v-$run
    cat > $OUT/$id.properties <<EOC
application.id=$id
bootstrap.servers=$BOOT
state.dir=$OUT/state-$id
orders.topic=$P.inventory.purchaseorder
lines.topic=$P.inventory.orderline
transaction.topic=$P.transaction
output.topic=$id-out
status.interval.ms=250
EOC
    start=$(date +%s.%N)
    if [ $v = T ]; then
      /usr/bin/time -v $T/order-aggregator --config $OUT/$id.properties > $OUT/$id.log 2>&1 &
    else
      /usr/bin/time -v java -Xmx512m -jar $JAR --config $OUT/$id.properties > $OUT/$id.log 2>&1 &
    fi
    tpid=$!
    sleep 0.5
    child=$(pgrep -P $tpid | head -1)
    done_at=""; last=""
    for i in $(seq 1 2400); do
      if [ $v = T ]; then
        grep -q "transactions released $N, pending 0" $OUT/$id.log && { done_at=$(date +%s.%N); break; }
      else
        cur=$(grep -o "released=$N emitted=[0-9]*" $OUT/$id.log | tail -1)
        if [ -n "$cur" ] && [ "$cur" = "$last" ]; then done_at=$(date +%s.%N); break; fi
        [ -n "$cur" ] && last=$cur
      fi
      sleep 0.25
    done
    kill -TERM $child; wait $tpid
    user=$(grep "User time" $OUT/$id.log | awk '{print $NF}'); sys=$(grep "System time" $OUT/$id.log | awk '{print $NF}')
    rss=$(grep "Maximum resident" $OUT/$id.log | awk '{print $NF}')
    wall=$(echo "${done_at:-0} - $start" | bc)
    echo "$v run $run: wall_to_done ${wall}s cpu $(echo "$user + $sys" | bc)s rss ${rss}KB $last" | tee -a $OUT/results-$P.txt
    rm -rf $OUT/state-$id
  done
done
