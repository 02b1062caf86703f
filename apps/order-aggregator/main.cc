// order-aggregator: the purchase-order / order-line aggregation of the seeds'
// order service, built from the generic CDC operators.
//
//   order-aggregator --config FILE   run against the configured cluster until
//                                    SIGINT/SIGTERM, then commit and exit 0
// The embedded demo (mock cluster, generated traffic, checked against the
// generator's model) is its own binary, order-aggregator-demo (demo.cc).
// Exit codes: 0 ok; 1 bad configuration; 2 the stream failed (message says
// why), a full disk under state.dir among others (at start or while running:
// the open transaction is aborted, and a start with space again restores the
// state from the changelogs).
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "apps/order-aggregator/order_aggregator.h"
#include "engine/kafka_streams.h"

ABSL_FLAG(std::string, config, "", "properties file (required)");

namespace tributary {
namespace {

using order_aggregator::StatusLine;

std::atomic<bool> stop_requested{false};

// The one line that says why the program stops with exit code 2. A state
// store on a full disk fails with RESOURCE_EXHAUSTED (its message names the
// store's directory and RocksDB's "No space left on device").
void PrintFailure(const char* what, const absl::Status& status, const std::string& state_dir) {
  if (absl::IsResourceExhausted(status)) {
    std::fprintf(stderr,
                 "order-aggregator: %s: the disk under state.dir %s is full; nothing "
                 "uncommitted was kept, and a start with space again restores the state from "
                 "the changelogs: %s\n",
                 what, state_dir.c_str(), status.ToString().c_str());
    return;
  }
  std::fprintf(stderr, "order-aggregator: %s: %s\n", what, status.ToString().c_str());
}

// Runs until a signal or a stream error.
int RunService(KafkaStreams& streams, std::chrono::milliseconds status_interval,
               const std::string& state_dir) {
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
    PrintFailure("stopped with an error", closed, state_dir);
    return 2;
  }
  std::fprintf(stderr, "order-aggregator: closed cleanly\n");
  return 0;
}

int Main() {
  const std::string path = absl::GetFlag(FLAGS_config);
  if (path.empty()) {
    std::fprintf(stderr,
                 "order-aggregator: --config FILE is required; the embedded demo is "
                 "order-aggregator-demo (scripts/demo)\n");
    return 1;
  }
  absl::StatusOr<StreamsConfig> config = StreamsConfig::FromFile(path, order_aggregator::Keys());
  if (!config.ok()) {
    std::fprintf(stderr, "order-aggregator: %s\n", config.status().ToString().c_str());
    return 1;
  }
  absl::StatusOr<order_aggregator::App> app = order_aggregator::Build(*config);
  if (!app.ok()) {
    std::fprintf(stderr, "order-aggregator: %s\n", app.status().ToString().c_str());
    return 1;
  }
  const std::string state_dir = config->state_dir();
  auto streams = KafkaStreams::Open(std::move(app->topology), *config);
  if (!streams.ok()) {
    // A full disk is no configuration error: the same as when running.
    if (absl::IsResourceExhausted(streams.status())) {
      PrintFailure("cannot start", streams.status(), state_dir);
      return 2;
    }
    std::fprintf(stderr, "order-aggregator: %s\n", streams.status().ToString().c_str());
    return 1;
  }
  if (absl::Status s = (*streams)->Start(); !s.ok()) {
    PrintFailure("cannot start", s, state_dir);
    return 2;
  }
  std::fprintf(stderr, "order-aggregator: running against %s; SIGINT or SIGTERM stops\n",
               (*streams)->bootstrap_servers().c_str());
  return RunService(
      **streams,
      std::chrono::milliseconds(config->GetInt("status.interval.ms").value_or(30000)),
      state_dir);
}

}  // namespace
}  // namespace tributary

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "order-aggregator --config FILE: transaction-consistent order aggregates from "
      "Debezium CDC topics");
  absl::ParseCommandLine(argc, argv);
  std::signal(SIGINT, [](int) { tributary::stop_requested = true; });
  std::signal(SIGTERM, [](int) { tributary::stop_requested = true; });
  return tributary::Main();
}
