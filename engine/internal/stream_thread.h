// StreamThread: one consumer (member of the group application.id), one
// producer (transactional under exactly-once) and the tasks of the partitions
// assigned to it. Polls, routes each record to its task, punctuates, and
// commits every commit interval: under exactly-once the outputs, changelog
// writes and consumed offsets of all its tasks commit in one Kafka
// transaction (EOS v2, send_offsets_to_transaction with group metadata).
// Thread-safety: Start/RequestShutdown/Join/state/RunQuery from any thread;
// everything else runs on the thread it starts.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "engine/internal/stream_thread_options.h"
#include "engine/internal/task.h"
#include "engine/streams_status.h"

namespace tributary::internal {

class TaskManager;

// As Kafka Streams' StreamThread.State. kStarting until the first assignment
// (and again when the thread starts over with new clients); kDead is final.
enum class ThreadState {
  kCreated,
  kStarting,
  kPartitionsRevoked,
  kPartitionsAssigned,
  kRunning,
  kPendingShutdown,
  kDead
};
const char* ThreadStateName(ThreadState state);

class StreamThread {
 public:
  explicit StreamThread(StreamThreadOptions options);
  ~StreamThread();
  StreamThread(const StreamThread&) = delete;
  StreamThread& operator=(const StreamThread&) = delete;

  void Start();
  void RequestShutdown() { shutdown_requested_ = true; }
  bool shutdown_requested() const { return shutdown_requested_; }
  // Waits for the thread to end; returns why it ended (OK after a clean
  // shutdown).
  absl::Status Join();
  ThreadState state() const { return state_.load(); }
  // Why the thread ended. REQUIRES: state() == kDead.
  const absl::Status& result() const { return result_; }
  // What the uncaught-error handler decided for the error that ended the
  // thread (kShutdownClient when a replacement was refused as one too many);
  // nullopt when it was not asked. REQUIRES: state() == kDead.
  const std::optional<StreamThreadErrorResponse>& error_response() const {
    return error_response_;
  }
  // Tasks currently owned, for tests and metrics.
  std::vector<TaskId> task_ids() const;
  // What the readiness check (GET /ready) reports of this thread.
  struct Readiness {
    bool assigned = false;          // has an assignment (none since a revocation)
    std::vector<TaskId> restoring;  // its tasks not running yet
    uint64_t rebalances = 0;        // assignments, revocations and losses so far
  };
  Readiness readiness() const;
  // Its tasks as of its last commit or assignment change, at most about a
  // second old (for the status page); the name is the thread's once it has
  // started.
  ThreadStatus status() const;

  // Interactive queries: runs `query` for `key` against the stores of task
  // `task` on this thread, between two records (the task's processors see
  // the same state), and returns its answer. NotFound when the thread does
  // not own the task; Unavailable when the task is restoring, the thread is
  // not running, or it did not get to the query within `timeout`.
  // REQUIRES: `query` outlives the thread.
  absl::StatusOr<std::optional<std::string>> RunQuery(TaskId task, const QuerySpec& query,
                                                      std::string key, absl::Duration timeout);

 private:
  class Impl;
  void Run();
  struct PendingQuery;
  // Answers the queued queries from `tasks` (nullptr: the thread is not
  // running: Unavailable). On the thread.
  void ServeQueries(TaskManager* tasks);
  // Moves to `next` when the transition is allowed (a revocation inside the
  // consumer's close at shutdown is not one) and tells on_state_change.
  // Called on the stream thread (and by Start before it runs).
  void SetState(ThreadState next);

  StreamThreadOptions options_;
  std::unique_ptr<Impl> impl_;
  std::thread thread_;
  std::atomic<bool> shutdown_requested_{false};
  std::atomic<ThreadState> state_{ThreadState::kCreated};
  absl::Status result_;
  std::optional<StreamThreadErrorResponse> error_response_;
  mutable std::mutex tasks_mutex_;
  std::vector<TaskId> task_ids_;          // guarded by tasks_mutex_
  Readiness readiness_;                   // guarded by tasks_mutex_
  absl::Mutex queries_mu_;
  std::vector<std::shared_ptr<PendingQuery>> queries_ ABSL_GUARDED_BY(queries_mu_);
  std::atomic<bool> queries_waiting_{false};  // queries_ is not empty
  // The running Impl's group consumer, woken for a query.
  Consumer* wake_ ABSL_GUARDED_BY(queries_mu_) = nullptr;
  uint64_t rebalances_total_ = 0;  // of the runs before the current one; on the thread
  std::string name_;                      // guarded by tasks_mutex_
  std::vector<TaskStatus> task_status_;   // guarded by tasks_mutex_
  friend class Impl;
};

}  // namespace tributary::internal
