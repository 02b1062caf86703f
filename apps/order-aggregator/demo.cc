// order-aggregator-demo: the order aggregator on the embedded default,
// librdkafka's in-process mock cluster, fed by the CDC generator
// (apps/cdc-gen) and read back with read_committed; every order's final
// aggregate is checked against the generator's model. scripts/demo runs it.
// Exit codes: 0 ok; 1 bad configuration; 2 the stream or the generator
// failed; 3 the output did not match the model.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "apps/cdc-gen/cdc_generator.h"
#include "apps/cdc-gen/cdc_producer.h"
#include "apps/order-aggregator/order_aggregator.h"
#include "engine/kafka_clients.h"
#include "engine/kafka_streams.h"

ABSL_FLAG(int64_t, transactions, 2000, "source transactions to generate");
ABSL_FLAG(int, partitions, 3, "partitions of the table topics");
ABSL_FLAG(uint64_t, seed, 42, "generator seed");

namespace tributary {
namespace {

using order_aggregator::StatusLine;

std::atomic<bool> stop_requested{false};

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
         IsRunningOrRebalancing(streams.state())) {
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
  absl::StatusOr<StreamsConfig> config =
      StreamsConfig::FromMap({{"application.id", "order-aggregator"},
                              {"state.dir", "/tmp/tributary-demo-state"}},
                             order_aggregator::Keys());
  if (!config.ok()) {
    std::fprintf(stderr, "order-aggregator: %s\n", config.status().ToString().c_str());
    return 1;
  }
  absl::StatusOr<order_aggregator::App> app = order_aggregator::Build(*config);
  if (!app.ok()) {
    std::fprintf(stderr, "order-aggregator: %s\n", app.status().ToString().c_str());
    return 1;
  }
  // A fresh demo every run: the mock cluster starts empty.
  std::error_code ec;
  std::filesystem::remove_all(absl::StrCat(config->state_dir(), "/", config->application_id()),
                              ec);
  auto streams = KafkaStreams::Open(std::move(app->topology), *config);
  if (!streams.ok()) {
    std::fprintf(stderr, "order-aggregator: %s\n", streams.status().ToString().c_str());
    return 1;
  }
  return RunEmbeddedDemo(**streams, app->spec);
}

}  // namespace
}  // namespace tributary

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "order-aggregator-demo [--transactions N] [--partitions P] [--seed S]: the order "
      "aggregator on the embedded mock cluster, checked against the generator's model");
  absl::ParseCommandLine(argc, argv);
  std::signal(SIGINT, [](int) { tributary::stop_requested = true; });
  std::signal(SIGTERM, [](int) { tributary::stop_requested = true; });
  return tributary::Main();
}
