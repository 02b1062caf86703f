// Producing a CdcGenerator's stream to Kafka as Debezium's Kafka Connect
// worker would: table-topic records partitioned by murmur2 of the key bytes
// (Kafka's default partitioner), transaction markers on partition 0 of the
// one-partition transaction topic. Also creates the three topics.
// Thread-safety: call from one thread; the producer must not be used by
// another thread meanwhile.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "apps/cdc-gen/cdc_generator.h"
#include "apps/cdc-gen/expected_version.h"
#include "engine/kafka_clients.h"
#include "engine/mock_cluster.h"

namespace tributary::cdcgen {

struct ProduceStats;

struct ProduceOptions {
  // Hold the orderline topic's records back by this many transactions, so
  // that END markers (and order changes) arrive long before their lines, as
  // a reader lagging on that topic sees them. Not for a transaction a
  // reader can only prove complete by positions (every partition read to its
  // end, or past it; GeneratedTransaction::CompleteOnlyByPosition: END
  // undercounts after a restart, or a bad event counts for it): everything
  // held back, its own lines included, is written before its END, as
  // Debezium's producer writes them.
  int64_t skew_transactions = 0;
  // Source transactions per second, paced by a token bucket; 0 = unpaced.
  double rate = 0;
  // Bound on the final flush.
  int flush_timeout_ms = 120000;
  // After the `count` source transactions, one more: a huge one inserting
  // huge_tx_orders orders of huge_tx_lines_per_order lines each (see
  // CdcGenerator::HugeTransaction); 0 = none. Not paced by `rate`.
  int64_t huge_tx_orders = 0;
  int huge_tx_lines_per_order = 100;
  // Called after each unit is handed to the producer, with the counts so far
  // (cdc-gen's progress line). Optional.
  std::function<void(const ProduceStats&)> on_progress;
};

struct ProduceStats {
  int64_t transactions = 0;    // source transactions (kTransaction units)
  int64_t snapshot_reads = 0;  // kSnapshotRead units
  int64_t redeliveries = 0;    // kRedelivery units
  int64_t change_events = 0;   // distinct change events (END counts' sum)
  int64_t messages = 0;        // every record, incl. markers and tombstones
  int64_t bytes = 0;           // keys + values
  int64_t expected_versions = 0;
  // Source transactions with bad input (GeneratedTransaction::fault).
  int64_t faulted_transactions = 0;
  double seconds = 0;  // first produce to flush done
  // The huge transaction (ProduceOptions::huge_tx_orders > 0; counted in
  // `transactions` too): its xid and change events; 0 when none.
  int64_t huge_tx_xid = 0;
  int64_t huge_tx_rows = 0;
};

// A producer for ProduceTransactions: bootstrap.servers, idempotence, acks
// =all, batching suited to a load generator; then `overrides`.
// InvalidArgument for a bad setting.
absl::StatusOr<std::unique_ptr<KafkaProducer>> MakeCdcProducer(
    std::string_view bootstrap,
    const std::vector<std::pair<std::string, std::string>>& overrides = {});

// Produces units from `generator` until `count` source transactions (plus
// the snapshot reads and redeliveries the generator puts among them) are
// written, then the huge transaction if options.huge_tx_orders > 0, then
// flushes. Expected versions go to `expected` (may be null) in
// commit order as each unit is generated.
// REQUIRES: the three topics exist. FailedPrecondition when the transaction
// topic has more than one partition; NotFound when a topic is missing. After
// a failure the producer's undelivered records are dropped.
absl::StatusOr<ProduceStats> ProduceTransactions(KafkaProducer& producer,
                                                 CdcGenerator& generator,
                                                 int64_t count,
                                                 const ProduceOptions& options,
                                                 ExpectedSink* expected);

// Creates the generator's three topics on a real broker through the Admin
// API: the table topics with `table_partitions` partitions, the transaction
// topic with one; an existing topic is accepted (its partition count is
// checked by ProduceTransactions). Waits, bounded by `timeout_ms`, until every
// partition has a leader.
absl::Status CreateTopics(std::string_view bootstrap,
                          const GeneratorOptions& options, int table_partitions,
                          int timeout_ms = 30000);

// The same on librdkafka's mock cluster.
absl::Status CreateTopics(MockCluster& cluster, const GeneratorOptions& options,
                          int table_partitions);

// Kafka's default partitioner for a non-null key: murmur2 of the key bytes,
// positive, modulo the partition count (as Kafka's Java client does).
int32_t KeyPartition(std::string_view key, int32_t partition_count);

}  // namespace tributary::cdcgen
