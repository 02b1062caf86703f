#include "apps/order-aggregator/order_aggregator.h"

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"
#include "base/status_macros.h"
#include "operators/outbox_router.h"

namespace tributary::order_aggregator {
namespace {

const AppKeys& AllKeys() {
  static const AppKeys keys = {
      {"orders.topic", "dbserver1.inventory.purchaseorder"},
      {"lines.topic", "dbserver1.inventory.orderline"},
      {"transaction.topic", "dbserver1.transaction"},
      {"output.topic", "order-aggregates"},
      {"orders.data.collection", "inventory.purchaseorder"},
      {"lines.data.collection", "inventory.orderline"},
      {"root.key.column", "id"},
      {"child.key.column", "id"},
      {"child.parent.column", "order_id"},
      {"child.array.field", "lines"},
      {"source.connector", "postgresql"},
      {"value.format", "readable"},
      {"incomplete.transaction.policy", "hold"},
      {"incomplete.transaction.timeout.ms", "300000"},
      {"partial.transaction.policy", "release"},
      {"aggregate.partitions", "0"},
      {"held.memory.bytes", "16777216"},
      {"aggregate.cache.bytes", "8388608"},
      {"aggregate.max.bytes", "998976"},
      {"release.piece.changes", "20000"},
      {"aggregate.source.field", "source_tx"},
      {"aggregate.version.field", "version"},
      {"unavailable.value.placeholder", "__debezium_unavailable_value"},
      {"progress.interval.ms", "1000"},
      {"visibility.grace.ms", "1000"},
      {"status.interval.ms", "30000"},
      {"outbox.topic", ""},  // empty: no outbox routing
      {"outbox.topic.prefix", "outbox.event."},
      {"outbox.input.mode", "debezium"},
      {"outbox.data.collection", "inventory.outbox"},
  };
  return keys;
}

// A size in bytes from `key`: not negative.
absl::StatusOr<size_t> ByteBudget(const StreamsConfig& config, std::string_view key) {
  TRIBUTARY_ASSIGN_OR_RETURN(int64_t bytes, config.GetInt(key));
  if (bytes < 0) return absl::InvalidArgumentError(absl::StrCat(Sv(key), " must not be negative"));
  return static_cast<size_t>(bytes);
}

absl::StatusOr<TransactionAggregateSpec> SpecFrom(const StreamsConfig& config) {
  auto get = [&](std::string_view key) { return config.GetString(key).value_or(""); };
  TransactionAggregateSpec spec;
  spec.name = "orders";
  spec.root = {get("orders.topic"), get("orders.data.collection"), get("root.key.column"),
               "", ""};
  spec.children = {{get("lines.topic"), get("lines.data.collection"),
                    get("child.key.column"), get("child.parent.column"),
                    get("child.array.field")}};
  spec.transaction_topic = get("transaction.topic");
  spec.output_topic = get("output.topic");
  std::string connector = get("source.connector");
  if (connector == "postgresql") {
    spec.tx_id_mode = TxIdMode::kPostgres;
  } else if (connector == "mysql" || connector == "sqlserver" || connector == "other") {
    spec.tx_id_mode = TxIdMode::kWhole;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "source.connector '", connector, "': expected postgresql, mysql, sqlserver or other"));
  }
  const std::string values = get("value.format");
  if (values == "readable") {
    spec.value_mode = ValueMode::kReadable;
  } else if (values == "raw") {
    spec.value_mode = ValueMode::kRaw;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("value.format '", values, "': expected readable or raw"));
  }
  TRIBUTARY_ASSIGN_OR_RETURN(spec.incomplete_policy,
                             ParseIncompletePolicy(get("incomplete.transaction.policy")));
  TRIBUTARY_ASSIGN_OR_RETURN(spec.partial_policy,
                             ParseIncompletePolicy(get("partial.transaction.policy")));
  TRIBUTARY_ASSIGN_OR_RETURN(int64_t timeout_ms,
                             config.GetInt("incomplete.transaction.timeout.ms"));
  spec.incomplete_timeout = absl::Milliseconds(timeout_ms);
  TRIBUTARY_ASSIGN_OR_RETURN(int64_t partitions, config.GetInt("aggregate.partitions"));
  spec.aggregate_partitions = static_cast<int32_t>(partitions);
  TRIBUTARY_ASSIGN_OR_RETURN(spec.held_memory_bytes, ByteBudget(config, "held.memory.bytes"));
  TRIBUTARY_ASSIGN_OR_RETURN(spec.aggregate_cache_bytes,
                             ByteBudget(config, "aggregate.cache.bytes"));
  TRIBUTARY_ASSIGN_OR_RETURN(spec.max_aggregate_bytes, ByteBudget(config, "aggregate.max.bytes"));
  TRIBUTARY_ASSIGN_OR_RETURN(spec.release_piece_changes,
                             ByteBudget(config, "release.piece.changes"));
  // A version the producer refuses would stop the application: the limit
  // must leave room for the record's overhead under the producer's.
  int64_t producer_max = 1'000'000;  // librdkafka's default message.max.bytes
  const std::map<std::string, std::string> producer = config.ProducerSettings();
  if (auto it = producer.find("message.max.bytes"); it != producer.end() &&
                                                    !absl::SimpleAtoi(it->second, &producer_max)) {
    return absl::InvalidArgumentError("producer.message.max.bytes: not a number");
  }
  if (spec.max_aggregate_bytes == 0 ||
      static_cast<int64_t>(spec.max_aggregate_bytes) + 1024 > producer_max) {
    return absl::InvalidArgumentError(absl::StrCat(
        "aggregate.max.bytes (", spec.max_aggregate_bytes, ") must be > 0 and at least 1024 "
        "below the producer's message.max.bytes (", producer_max, "): raise "
        "producer.message.max.bytes, and the output topic's max.message.bytes with it"));
  }
  spec.source_field = get("aggregate.source.field");
  spec.version_field = get("aggregate.version.field");
  spec.unavailable_placeholder = get("unavailable.value.placeholder");
  TRIBUTARY_ASSIGN_OR_RETURN(int64_t progress_ms, config.GetInt("progress.interval.ms"));
  TRIBUTARY_ASSIGN_OR_RETURN(int64_t grace_ms, config.GetInt("visibility.grace.ms"));
  if (progress_ms <= 0 || grace_ms < 0) {
    return absl::InvalidArgumentError(
        "progress.interval.ms must be > 0 and visibility.grace.ms >= 0");
  }
  spec.progress_interval = absl::Milliseconds(progress_ms);
  spec.visibility_grace = absl::Milliseconds(grace_ms);
  return spec;
}

// The outbox route, when outbox.topic is set; nullopt otherwise.
absl::StatusOr<std::optional<OutboxSpec>> OutboxSpecFrom(const StreamsConfig& config) {
  auto get = [&](std::string_view key) { return config.GetString(key).value_or(""); };
  if (get("outbox.topic").empty()) return std::nullopt;
  OutboxSpec spec;
  spec.topic = get("outbox.topic");
  spec.topic_prefix = get("outbox.topic.prefix");
  spec.data_collection = get("outbox.data.collection");
  const std::string mode = get("outbox.input.mode");
  if (mode == "debezium") {
    spec.input_mode = OutboxSpec::InputMode::kDebezium;
  } else if (mode == "plain") {
    spec.input_mode = OutboxSpec::InputMode::kPlainRow;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("outbox.input.mode '", mode, "': expected debezium or plain"));
  }
  return spec;
}

int64_t MetricSum(KafkaStreams& streams, std::string_view name) {
  int64_t sum = 0;
  for (const MetricSample& sample : streams.metrics().Snapshot()) {
    if (sample.name == name) sum += sample.value;
  }
  return sum;
}

}  // namespace

std::string StatusLine(KafkaStreams& streams) {
  return absl::StrCat("records processed ", MetricSum(streams, metric_names::kProcessTotal),
                      ", transactions released ",
                      MetricSum(streams, metric_names::kCdcTransactionsReleasedTotal),
                      ", pending ", MetricSum(streams, metric_names::kCdcTransactionsPending),
                      ", aggregates emitted ", MetricSum(streams, metric_names::kCdcAggregatesEmittedTotal),
                      ", dead letters ", MetricSum(streams, metric_names::kRecordsDeadLetteredTotal),
                      ", duplicates dropped ",
                      MetricSum(streams, metric_names::kCdcDuplicatesDroppedTotal),
                      ", outbox events routed ",
                      MetricSum(streams, metric_names::kOutboxEventsRoutedTotal));
}

const AppKeys& Keys() { return AllKeys(); }

absl::StatusOr<App> Build(StreamsConfig& config) {
  // Bad input goes to the dead-letter topic unless the user says otherwise.
  if (!config.IsSet("processing.error.policy")) {
    (void)config.Set("processing.error.policy", "continue");
  }
  App app;
  TRIBUTARY_ASSIGN_OR_RETURN(app.spec, SpecFrom(config));
  TRIBUTARY_RETURN_IF_ERROR(AddTransactionAggregate(app.topology, app.spec));
  // The outbox route shares the topology, so its output commits in the same
  // Kafka transactions as the aggregates.
  TRIBUTARY_ASSIGN_OR_RETURN(std::optional<OutboxSpec> outbox, OutboxSpecFrom(config));
  if (outbox) TRIBUTARY_RETURN_IF_ERROR(AddOutboxRouter(app.topology, *outbox));
  return app;
}

}  // namespace tributary::order_aggregator
