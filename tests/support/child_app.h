// A program that a real-broker test runs, kills and restarts as a child
// process (count_app, order-aggregator), the test's scratch directory that
// holds its configs, state dirs and logs, and a broker of the test's own
// (scripts/kafka). Single-threaded: the test's thread only.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tests/support/kafka_fixture.h"

namespace tributary::testing {

// One instance of a child program: its config, its state dir and one log
// file per run, `<dir>/<name>.run<N>.log`.
struct ChildApp {
  // REQUIRES: no run is in progress. Starts run N+1 of `argv` (argv[0] the
  // program's path), its output in a new log file.
  absl::Status Start(const std::string& dir,
                     const std::vector<std::string>& argv);
  // SIGKILLs the current run and reaps it; an error unless SIGKILL ended it.
  absl::Status Kill(std::chrono::milliseconds timeout);
  // SIGTERM; an error unless the run then exits with 0.
  absl::Status Stop(std::chrono::milliseconds timeout);
  // Whether the current run has died (not killed or stopped by the test).
  bool Died() { return process != nullptr && !process->Running(); }
  // The last `lines` lines of the last two runs' logs, each under a header.
  std::string LogTails(int lines = 30) const;
  // The port the current run logs after `prefix` (e.g. "metrics endpoint on
  // http://127.0.0.1:"), waiting up to `timeout` for the line; 0 if the run
  // died or did not log it in time.
  int LoggedPort(std::string_view prefix, std::chrono::milliseconds timeout);

  std::string name;
  std::string config_path;
  std::string state_dir;
  std::vector<std::string> logs;  // one per run, the current one last
  std::unique_ptr<ChildProcess> process;
};

// A test's scratch directory: made on Create, and on Finish removed, or
// kept with its path printed when the test failed.
class ScratchDir {
 public:
  // `tag` prefixes the printed line, "[tag] kept <path> (<what>)".
  static absl::StatusOr<ScratchDir> Create(std::string_view base,
                                           std::string tag);
  ScratchDir() = default;

  void Finish(bool failed, std::string_view what) const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::string tag_;
};

// The topics of one order-aggregator application on the real broker, one
// partition each (a later transaction's events then move every partition
// past an earlier one): <prefix>.inventory.purchaseorder, .orderline,
// .transaction, <prefix>-out, and <prefix>-dlq (created by the application).
struct OrderAggregatorTopics {
  // Creates the topics and writes `app.config_path` for them: application.id
  // `prefix`, `app.state_dir`, exactly_once_v2, commit.interval.ms=100, then
  // `extra` ("key=value\n" lines).
  static absl::StatusOr<OrderAggregatorTopics> Create(const std::string& prefix,
                                                      const ChildApp& app,
                                                      std::string_view extra = "");

  std::string orders, lines, tx, output, dead_letters;
};

// Runs `scripts/kafka <command>` with this process's environment plus `env`
// ("TRIBUTARY_KAFKA_...=value" entries), its output appended to `log_path`.
// An error with the log's tail unless it exits 0 within `timeout`.
absl::Status RunKafkaScript(const std::string& command, const std::vector<std::string>& env,
                            const std::string& log_path, std::chrono::milliseconds timeout);

// A broker of the test's own (scripts/kafka, cached jars), never the suite's
// shared one: its ports and scratch directory are always passed explicitly.
// Stopped by the destructor (scripts/kafka stop: by the pid it recorded),
// also when the test failed. Single-threaded.
class OwnBroker {
 public:
  struct Options {
    int port = 0;             // PLAINTEXT listener; the controller on port + 1
    std::string dir;          // scratch dir: config, data, logs, pid
    std::string log_dir;      // where the scripts/kafka runs log
    std::vector<std::string> env;  // further TRIBUTARY_KAFKA_*=value settings
    std::chrono::milliseconds timeout = std::chrono::minutes(3);  // per script run
  };
  static absl::StatusOr<std::unique_ptr<OwnBroker>> Start(Options options);
  ~OwnBroker();
  OwnBroker(const OwnBroker&) = delete;
  OwnBroker& operator=(const OwnBroker&) = delete;

  // 127.0.0.1:<port>, the PLAINTEXT listener.
  std::string bootstrap_servers() const;
  // Idempotent.
  absl::Status Stop();

 private:
  explicit OwnBroker(Options options);
  absl::Status Run(const std::string& command);

  Options options_;
  std::vector<std::string> env_;
  int runs_ = 0;
  bool running_ = false;
};

}  // namespace tributary::testing
