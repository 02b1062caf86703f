// The order aggregator of the seeds' order service, shared by the
// production binary (main.cc) and the embedded demo (demo.cc): its
// configuration keys, the topology built from the generic CDC operators, and
// a status line from the metrics. Call from one thread.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "engine/kafka_streams.h"
#include "engine/streams_config.h"
#include "engine/topology.h"
#include "operators/transaction_aggregate.h"

namespace tributary::order_aggregator {

// The application's keys beside Kafka Streams' (topics, columns, policies)
// with their defaults.
const AppKeys& Keys();

struct App {
  Topology topology;
  TransactionAggregateSpec spec;  // of the aggregate; the outbox is optional
};

// The topology `config` describes: the transaction aggregate and, when
// outbox.topic is set, the outbox route in the same topology (its output
// commits in the same Kafka transactions). Sets processing.error.policy to
// continue (bad input to the dead-letter topic) unless `config` sets it.
// InvalidArgument for a bad setting.
absl::StatusOr<App> Build(StreamsConfig& config);

// Records processed, transactions released and pending, aggregates emitted,
// dead letters, duplicates dropped, outbox events routed.
std::string StatusLine(KafkaStreams& streams);

}  // namespace tributary::order_aggregator
