#include "apps/common/shutdown.h"

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "absl/synchronization/mutex.h"

namespace tributary {
namespace {

absl::Mutex mu;
bool requested ABSL_GUARDED_BY(mu) = false;

const char* SignalName(int signo) { return signo == SIGINT ? "SIGINT" : "SIGTERM"; }

void TakeSignals(std::string program, sigset_t set) {
  int seen = 0;
  while (true) {
    int signo = 0;
    if (sigwait(&set, &signo) != 0) continue;
    if (seen++ == 0) {
      std::fprintf(stderr,
                   "%s: %s: closing (commit, checkpoints, leave the group); a second SIGINT or "
                   "SIGTERM exits at once\n",
                   program.c_str(), SignalName(signo));
      absl::MutexLock lock(&mu);
      requested = true;
      continue;
    }
    std::fprintf(stderr,
                 "%s: second signal (%s): exiting at once with code %d, without finishing the "
                 "close; a restart goes on from the last commit\n",
                 program.c_str(), SignalName(signo), kExitSecondSignalBase + signo);
    std::fflush(stderr);
    std::_Exit(kExitSecondSignalBase + signo);
  }
}

}  // namespace

void InstallShutdownSignals(std::string program) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  if (int err = pthread_sigmask(SIG_BLOCK, &set, nullptr); err != 0) {
    std::fprintf(stderr, "%s: cannot block SIGINT/SIGTERM: %s\n", program.c_str(),
                 std::strerror(err));
    std::exit(kExitUsage);
  }
  std::thread(TakeSignals, std::move(program), set).detach();
}

bool ShutdownRequested() {
  absl::MutexLock lock(&mu);
  return requested;
}

bool AwaitShutdownRequest(absl::Duration timeout) {
  absl::MutexLock lock(&mu);
  return mu.AwaitWithTimeout(absl::Condition(&requested), timeout);
}

int RunUntilShutdown(KafkaStreams& streams, const RunOptions& options) {
  const char* program = options.program.c_str();
  absl::Time last_status = absl::Now();
  while (IsRunningOrRebalancing(streams.state())) {
    if (AwaitShutdownRequest(absl::Milliseconds(100))) break;
    if (options.print_status && absl::Now() - last_status >= options.status_interval) {
      last_status = absl::Now();
      options.print_status();
    }
  }
  const bool signalled = ShutdownRequested();
  std::fprintf(stderr, "%s: %s; closing within %s\n", program,
               signalled ? "stop requested" : StateName(streams.state()),
               absl::FormatDuration(options.close_timeout).c_str());
  const absl::Status closed = streams.Close(options.close_timeout);
  const KafkaStreams::State state = streams.state();
  const bool finished =
      state == KafkaStreams::State::kNotRunning || state == KafkaStreams::State::kError;
  if (options.print_status) options.print_status();
  auto fail = [&](const char* what, const absl::Status& status) {
    if (options.print_failure) {
      options.print_failure(what, status);
    } else {
      std::fprintf(stderr, "%s: %s: %s\n", program, what, status.ToString().c_str());
    }
  };
  if (!finished) {
    const absl::Status error = streams.error();
    if (!error.ok()) fail("stopped with an error", error);
    std::fprintf(stderr,
                 "%s: %s; exiting without waiting longer (a restart goes on from the last "
                 "commit)\n",
                 program, closed.ToString().c_str());
    std::fflush(stderr);
    std::_Exit(error.ok() && signalled ? kExitCloseTimeout : kExitStreamError);
  }
  if (!closed.ok()) {
    fail("stopped with an error", closed);
    return kExitStreamError;
  }
  std::fprintf(stderr, "%s: closed cleanly\n", program);
  return kExitStopped;
}

}  // namespace tributary
