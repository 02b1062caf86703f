// order-aggregator: the purchase-order / order-line aggregation of the seeds'
// order service, built from the generic CDC operators.
//
//   order-aggregator --config FILE   run against the configured cluster until
//                                    SIGINT/SIGTERM, then commit and exit 0
//   order-aggregator                 embedded demo: librdkafka's mock cluster
//                                    fed by the CDC generator, checked against
//                                    the generator's model, then exit
// Exit codes: 0 ok; 1 bad configuration; 2 the stream failed (message says
// why); 3 the embedded demo's output did not match the model.
#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "apps/cdc-gen/cdc_generator.h"
#include "apps/cdc-gen/cdc_producer.h"
#include "base/status_macros.h"
#include "engine/kafka_clients.h"
#include "engine/kafka_streams.h"
#include "operators/outbox_router.h"
#include "operators/transaction_aggregate.h"

ABSL_FLAG(std::string, config, "", "properties file; without one: embedded demo");
ABSL_FLAG(int64_t, transactions, 2000, "embedded demo: source transactions to generate");
ABSL_FLAG(int, partitions, 3, "embedded demo: partitions of the table topics");
ABSL_FLAG(uint64_t, seed, 42, "embedded demo: generator seed");

namespace tributary {
namespace {

std::atomic<bool> stop_requested{false};

const AppKeys& OrderAggregatorKeys() {
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
      {"aggregate.partitions", "0"},
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
  TRIBUTARY_ASSIGN_OR_RETURN(int64_t timeout_ms,
                             config.GetInt("incomplete.transaction.timeout.ms"));
  spec.incomplete_timeout = absl::Milliseconds(timeout_ms);
  TRIBUTARY_ASSIGN_OR_RETURN(int64_t partitions, config.GetInt("aggregate.partitions"));
  spec.aggregate_partitions = static_cast<int32_t>(partitions);
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

// Runs until a signal or a stream error.
int RunService(KafkaStreams& streams, std::chrono::milliseconds status_interval) {
  auto last_status = std::chrono::steady_clock::now();
  while (!stop_requested && streams.state() == KafkaStreams::State::kRunning) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (std::chrono::steady_clock::now() - last_status >= status_interval) {
      last_status = std::chrono::steady_clock::now();
      std::fprintf(stderr, "order-aggregator: %s\n", StatusLine(streams).c_str());
    }
  }
  absl::Status closed = streams.Close();
  std::fprintf(stderr, "order-aggregator: %s\n", StatusLine(streams).c_str());
  if (!closed.ok()) {
    std::fprintf(stderr, "order-aggregator: stopped with an error: %s\n",
                 closed.ToString().c_str());
    return 2;
  }
  std::fprintf(stderr, "order-aggregator: closed cleanly\n");
  return 0;
}

// The generator's final model: root id -> expected aggregate (nullopt: deleted).
class FinalModel : public cdcgen::ExpectedSink {
 public:
  absl::Status Write(const cdcgen::ExpectedVersion& version) override {
    std::lock_guard<std::mutex> lock(mutex_);
    final_[absl::StrCat(version.root_id)] = version.aggregate;
    ++versions_;
    return absl::OkStatus();
  }
  std::map<std::string, std::optional<std::string>> final() {
    std::lock_guard<std::mutex> lock(mutex_);
    return final_;
  }
  int64_t versions() {
    std::lock_guard<std::mutex> lock(mutex_);
    return versions_;
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::optional<std::string>> final_;
  int64_t versions_ = 0;
};

// The aggregate without the engine's source and version fields (which come
// last, the source field first).
std::string WithoutEngineFields(const std::string& aggregate, std::string_view source_field) {
  size_t cut = aggregate.rfind(absl::StrCat(",\"", std::string(source_field), "\":"));
  if (cut == std::string::npos) return aggregate;
  return aggregate.substr(0, cut) + "}";
}

int RunEmbeddedDemo(KafkaStreams& streams,
                    const TransactionAggregateSpec& spec) {
  MockCluster& cluster = *streams.mock_cluster();
  cdcgen::GeneratorOptions options;
  options.seed = absl::GetFlag(FLAGS_seed);
  options.duplicate_rate = 0.01;
  // As after connector restarts inside transactions (Debezium < 3.7): a
  // second BEGIN and an END that undercounts.
  options.restart_inside_rate = 0.01;
  const int partitions = absl::GetFlag(FLAGS_partitions);
  const int64_t transactions = absl::GetFlag(FLAGS_transactions);
  if (absl::Status s = cdcgen::CreateTopics(cluster, options, partitions); !s.ok()) {
    std::fprintf(stderr, "order-aggregator: %s\n", s.ToString().c_str());
    return 2;
  }
  if (absl::Status s = cluster.CreateTopic(spec.output_topic, partitions); !s.ok()) {
    std::fprintf(stderr, "order-aggregator: %s\n", s.ToString().c_str());
    return 2;
  }
  if (absl::Status s = streams.Start(); !s.ok()) {
    std::fprintf(stderr, "order-aggregator: %s\n", s.ToString().c_str());
    return 2;
  }
  std::printf("order-aggregator: embedded mock cluster at %s; generating %lld transactions "
              "over %d-partition table topics (1%% repeated events, lines lagging)\n",
              streams.bootstrap_servers().c_str(), static_cast<long long>(transactions),
              partitions);

  FinalModel model;
  absl::StatusOr<cdcgen::ProduceStats> produced;
  std::atomic<bool> producer_finished{false};
  auto start = std::chrono::steady_clock::now();
  std::thread producer_thread([&] {
    auto generator = cdcgen::CdcGenerator::Create(options);
    auto producer = cdcgen::MakeCdcProducer(streams.bootstrap_servers());
    if (!generator.ok() || !producer.ok()) {
      produced = !generator.ok() ? generator.status() : producer.status();
    } else {
      cdcgen::ProduceOptions produce;
      produce.skew_transactions = 5;
      produced = cdcgen::ProduceTransactions(**producer, **generator, transactions,
                                             produce, &model);
    }
    producer_finished = true;
  });

  // Read the output as a downstream service would: read_committed.
  absl::StatusOr<std::unique_ptr<KafkaReader>> reader_or =
      KafkaReader::Open({{"bootstrap.servers", streams.bootstrap_servers()},
                         {"group.id", "order-aggregator-demo-reader"},
                         {"isolation.level", "read_committed"},
                         {"auto.offset.reset", "earliest"},
                         {"log_level", "3"}});
  if (reader_or.ok()) {
    if (absl::Status s = (*reader_or)->Subscribe({spec.output_topic}); !s.ok()) {
      reader_or = s;
    }
  }
  if (!reader_or.ok()) {
    std::fprintf(stderr, "order-aggregator: output reader: %s\n",
                 reader_or.status().ToString().c_str());
    stop_requested = true;  // let the producer thread finish, then fail below
    producer_thread.join();
    (void)streams.Close();
    return 2;
  }
  KafkaReader& reader = **reader_or;

  std::map<std::string, std::optional<std::string>> latest;
  int64_t read = 0;
  bool producer_done = false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  auto last_record = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() < deadline && !stop_requested &&
         streams.state() == KafkaStreams::State::kRunning) {
    if (!producer_done && producer_finished) {
      producer_thread.join();
      producer_done = true;
      if (!produced.ok()) break;
    }
    absl::StatusOr<std::optional<ConsumedRecord>> record = reader.Poll(100);
    if (record.ok() && *record && !(*record)->end_of_partition) {
      latest[(*record)->key] = std::move((*record)->value);
      ++read;
      last_record = std::chrono::steady_clock::now();
    }
    if (producer_done && read >= model.versions()) break;
  }
  if (producer_thread.joinable()) producer_thread.join();
  double seconds =
      std::chrono::duration<double>(last_record - start).count();
  reader.Close();
  absl::Status closed = streams.Close();

  if (!produced.ok()) {
    std::fprintf(stderr, "order-aggregator: generator failed: %s\n",
                 produced.status().ToString().c_str());
    return 2;
  }
  if (!closed.ok()) {
    std::fprintf(stderr, "order-aggregator: stream failed: %s\n", closed.ToString().c_str());
    return 2;
  }
  std::map<std::string, std::optional<std::string>> expected = model.final();
  int mismatched = 0;
  for (const auto& [root, aggregate] : expected) {
    auto it = latest.find(root);
    std::optional<std::string> got =
        it == latest.end() ? std::nullopt
                           : (it->second ? std::optional<std::string>(
                                               WithoutEngineFields(*it->second, spec.source_field))
                                         : std::nullopt);
    if (it == latest.end() || got != aggregate) ++mismatched;
  }
  std::printf("produced %lld source transactions, %lld change events (%lld Kafka records)\n",
              static_cast<long long>(produced->transactions),
              static_cast<long long>(produced->change_events),
              static_cast<long long>(produced->messages));
  std::printf("%s\n", StatusLine(streams).c_str());
  std::printf("read %lld aggregate versions with read_committed (model expects %lld) "
              "%.1f s after start (group join included): %.0f change events/s\n",
              static_cast<long long>(read), static_cast<long long>(model.versions()), seconds,
              produced->change_events / std::max(seconds, 1e-3));
  int shown = 0;
  for (const auto& [root, aggregate] : latest) {
    if (!aggregate || aggregate->find("\"lines\":[{") == std::string::npos) continue;
    std::printf("sample aggregate %s: %s\n", root.c_str(), aggregate->c_str());
    if (++shown == 2) break;
  }
  if (read != model.versions() || mismatched != 0) {
    std::fprintf(stderr,
                 "FAILED: %lld versions read, %lld expected; %d of %zu final aggregates differ "
                 "from the generator's model\n",
                 static_cast<long long>(read), static_cast<long long>(model.versions()),
                 mismatched, expected.size());
    return 3;
  }
  std::printf("OK: every one of %zu orders' final aggregate equals the generator's model, "
              "one version per transaction and order\n",
              expected.size());
  return 0;
}

int Main() {
  const std::string path = absl::GetFlag(FLAGS_config);
  absl::StatusOr<StreamsConfig> config =
      path.empty() ? StreamsConfig::FromMap({{"application.id", "order-aggregator"},
                                             {"state.dir", "/tmp/tributary-demo-state"}},
                                            OrderAggregatorKeys())
                   : StreamsConfig::FromFile(path, OrderAggregatorKeys());
  if (!config.ok()) {
    std::fprintf(stderr, "order-aggregator: %s\n", config.status().ToString().c_str());
    return 1;
  }
  // Bad input goes to the dead-letter topic unless the user says otherwise.
  if (!config->IsSet("processing.error.policy")) {
    (void)config->Set("processing.error.policy", "continue");
  }
  absl::StatusOr<TransactionAggregateSpec> spec = SpecFrom(*config);
  if (!spec.ok()) {
    std::fprintf(stderr, "order-aggregator: %s\n", spec.status().ToString().c_str());
    return 1;
  }
  Topology topology;
  if (absl::Status s = AddTransactionAggregate(topology, *spec); !s.ok()) {
    std::fprintf(stderr, "order-aggregator: %s\n", s.ToString().c_str());
    return 1;
  }
  // The outbox route shares the topology, so its output commits in the same
  // Kafka transactions as the aggregates.
  absl::StatusOr<std::optional<OutboxSpec>> outbox = OutboxSpecFrom(*config);
  if (!outbox.ok()) {
    std::fprintf(stderr, "order-aggregator: %s\n", outbox.status().ToString().c_str());
    return 1;
  }
  if (*outbox) {
    if (absl::Status s = AddOutboxRouter(topology, **outbox); !s.ok()) {
      std::fprintf(stderr, "order-aggregator: %s\n", s.ToString().c_str());
      return 1;
    }
  }
  const bool embedded = config->uses_mock_cluster();
  if (embedded && path.empty()) {
    // A fresh demo every run: the mock cluster starts empty.
    std::error_code ec;
    std::filesystem::remove_all(absl::StrCat(config->state_dir(), "/", config->application_id()),
                                ec);
  }
  auto streams = KafkaStreams::Open(std::move(topology), *config);
  if (!streams.ok()) {
    std::fprintf(stderr, "order-aggregator: %s\n", streams.status().ToString().c_str());
    return 1;
  }
  if (embedded) return RunEmbeddedDemo(**streams, *spec);
  if (absl::Status s = (*streams)->Start(); !s.ok()) {
    std::fprintf(stderr, "order-aggregator: cannot start: %s\n", s.ToString().c_str());
    return 2;
  }
  std::fprintf(stderr, "order-aggregator: running against %s; SIGINT or SIGTERM stops\n",
               (*streams)->bootstrap_servers().c_str());
  return RunService(**streams, std::chrono::milliseconds(
                                   config->GetInt("status.interval.ms").value_or(30000)));
}

}  // namespace
}  // namespace tributary

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "order-aggregator [--config FILE]: transaction-consistent order aggregates from "
      "Debezium CDC topics; without --config, an embedded demo on the mock cluster");
  absl::ParseCommandLine(argc, argv);
  std::signal(SIGINT, [](int) { tributary::stop_requested = true; });
  std::signal(SIGTERM, [](int) { tributary::stop_requested = true; });
  return tributary::Main();
}
