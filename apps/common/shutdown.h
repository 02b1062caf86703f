// How the apps (order-aggregator, word-count) stop: the first SIGINT or
// SIGTERM closes KafkaStreams gracefully (commit, checkpoints, leave the
// group) within commit.interval.ms + 30 s; a second one exits at once.
// InstallShutdownSignals from main before any thread starts; the rest from
// the main thread.
#pragma once

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "engine/kafka_streams.h"

namespace tributary {

// The exit codes of an app that runs KafkaStreams until a signal.
inline constexpr int kExitStopped = 0;       // a signal, then a clean close in time
inline constexpr int kExitUsage = 1;         // bad command line or configuration
inline constexpr int kExitStreamError = 2;   // the stream failed (at start or running)
inline constexpr int kExitCloseTimeout = 3;  // the close did not finish within its bound
// A second signal while closing: 128 + its number (130 SIGINT, 143 SIGTERM).
inline constexpr int kExitSecondSignalBase = 128;

// What the graceful close may take beyond commit.interval.ms.
inline constexpr absl::Duration kCloseBound = absl::Seconds(30);

// Blocks SIGINT and SIGTERM in the calling thread and every thread started
// after, and starts a thread that takes them: the first one logs
// "<program>: <signal>: closing ..." and makes ShutdownRequested() true; a
// second one logs and ends the process at once with 128 + its number, with
// no commit (what was not committed is aborted by the broker or read again:
// a restart goes on from the last commit). REQUIRES: called once, from main,
// before any other thread exists.
void InstallShutdownSignals(std::string program);
bool ShutdownRequested();
// Waits until ShutdownRequested() or `timeout` passes; returns the former.
bool AwaitShutdownRequest(absl::Duration timeout);

struct RunOptions {
  std::string program;
  // commit.interval.ms + kCloseBound.
  absl::Duration close_timeout = kCloseBound;
  // Called every `status_interval` while running and once after the close.
  absl::Duration status_interval = absl::InfiniteDuration();
  std::function<void()> print_status;
  // Prints the line that says why the program exits with kExitStreamError;
  // null: "<program>: <what>: <status>".
  std::function<void(const char* what, const absl::Status& status)> print_failure;
};

// Runs until a signal or until `streams` stops by itself (an error, another
// instance's kShutdownApplication), then closes it within
// `options.close_timeout`. Returns the exit code; when the close did not
// finish in time it does not return but ends the process (_Exit) with
// kExitCloseTimeout after a signal, kExitStreamError after an error.
// REQUIRES: `streams` started.
int RunUntilShutdown(KafkaStreams& streams, const RunOptions& options);

}  // namespace tributary
