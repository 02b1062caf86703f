// order-aggregator: the purchase-order / order-line aggregation of the seeds'
// order service, built from the generic CDC operators.
//
//   order-aggregator --config FILE   run against the configured cluster until
//                                    SIGINT/SIGTERM, then commit and exit 0
// The embedded demo (mock cluster, generated traffic, checked against the
// generator's model) is its own binary, order-aggregator-demo (demo.cc).
// Exit codes (apps/common/shutdown.h; README "Lifecycle and exit codes"):
// 0 stopped by SIGINT/SIGTERM and closed in time; 1 bad command line or
// configuration; 2 the stream failed (message says why), a full disk under
// state.dir among others (at start or while running: the open transaction is
// aborted, and a start with space again restores the state from the
// changelogs), or another instance's kShutdownApplication; 3 the close did
// not finish within commit.interval.ms + 30 s; 130 / 143 a second SIGINT /
// SIGTERM during the close.
#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "apps/common/shutdown.h"
#include "apps/order-aggregator/order_aggregator.h"
#include "engine/kafka_streams.h"

ABSL_FLAG(std::string, config, "", "properties file (required)");

namespace tributary {
namespace {

using order_aggregator::StatusLine;

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

int Main() {
  const std::string path = absl::GetFlag(FLAGS_config);
  if (path.empty()) {
    std::fprintf(stderr,
                 "order-aggregator: --config FILE is required; the embedded demo is "
                 "order-aggregator-demo (scripts/demo)\n");
    return kExitUsage;
  }
  absl::StatusOr<StreamsConfig> config = StreamsConfig::FromFile(path, order_aggregator::Keys());
  if (!config.ok()) {
    std::fprintf(stderr, "order-aggregator: %s\n", config.status().ToString().c_str());
    return kExitUsage;
  }
  absl::StatusOr<order_aggregator::App> app = order_aggregator::Build(*config);
  if (!app.ok()) {
    std::fprintf(stderr, "order-aggregator: %s\n", app.status().ToString().c_str());
    return kExitUsage;
  }
  const std::string state_dir = config->state_dir();
  auto streams = KafkaStreams::Open(std::move(app->topology), *config);
  if (!streams.ok()) {
    // A full disk is no configuration error: the same as when running.
    if (absl::IsResourceExhausted(streams.status())) {
      PrintFailure("cannot start", streams.status(), state_dir);
      return kExitStreamError;
    }
    std::fprintf(stderr, "order-aggregator: %s\n", streams.status().ToString().c_str());
    return kExitUsage;
  }
  if (absl::Status s = (*streams)->Start(); !s.ok()) {
    PrintFailure("cannot start", s, state_dir);
    return kExitStreamError;
  }
  std::fprintf(stderr, "order-aggregator: running against %s; SIGINT or SIGTERM stops\n",
               (*streams)->bootstrap_servers().c_str());
  KafkaStreams& running = **streams;
  RunOptions options;
  options.program = "order-aggregator";
  options.close_timeout = config->commit_interval() + kCloseBound;
  options.status_interval =
      absl::Milliseconds(config->GetInt("status.interval.ms").value_or(30000));
  options.print_status = [&running] {
    std::fprintf(stderr, "order-aggregator: %s\n", StatusLine(running).c_str());
  };
  options.print_failure = [&state_dir](const char* what, const absl::Status& status) {
    PrintFailure(what, status, state_dir);
  };
  return RunUntilShutdown(running, options);
}

}  // namespace
}  // namespace tributary

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "order-aggregator --config FILE: transaction-consistent order aggregates from "
      "Debezium CDC topics");
  absl::ParseCommandLine(argc, argv);
  tributary::InstallShutdownSignals("order-aggregator");
  return tributary::Main();
}
