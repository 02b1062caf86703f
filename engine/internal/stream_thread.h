// StreamThread: one consumer (member of the group application.id), one
// producer (transactional under exactly-once) and the tasks of the partitions
// assigned to it. Polls, routes each record to its task, punctuates, and
// commits every commit interval: under exactly-once the outputs, changelog
// writes and consumed offsets of all its tasks commit in one Kafka
// transaction (EOS v2, send_offsets_to_transaction with group metadata).
// Thread-safety: Start/RequestShutdown/Join/state from any thread; everything
// else runs on the thread it starts.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/internal/stream_thread_options.h"
#include "engine/internal/task.h"
#include "engine/streams_status.h"

namespace tributary::internal {

enum class ThreadState { kCreated, kStarting, kPartitionsAssigned, kRunning, kPendingShutdown, kDead };
const char* ThreadStateName(ThreadState state);

class StreamThread {
 public:
  explicit StreamThread(StreamThreadOptions options);
  ~StreamThread();
  StreamThread(const StreamThread&) = delete;
  StreamThread& operator=(const StreamThread&) = delete;

  void Start();
  void RequestShutdown() { shutdown_requested_ = true; }
  // Waits for the thread to end; returns why it ended (OK after a clean
  // shutdown).
  absl::Status Join();
  ThreadState state() const { return state_.load(); }
  // Why the thread ended. REQUIRES: state() == kDead.
  const absl::Status& result() const { return result_; }
  // Tasks currently owned, for tests and metrics.
  std::vector<TaskId> task_ids() const;
  // What the readiness check (GET /ready) reports of this thread.
  struct Readiness {
    bool assigned = false;          // has an assignment (none since a revocation)
    std::vector<TaskId> restoring;  // its tasks not running yet
  };
  Readiness readiness() const;
  // Its tasks as of its last commit or assignment change, at most about a
  // second old (for the status page); the name is the thread's once it has
  // started.
  ThreadStatus status() const;

 private:
  class Impl;
  void Run();

  StreamThreadOptions options_;
  std::unique_ptr<Impl> impl_;
  std::thread thread_;
  std::atomic<bool> shutdown_requested_{false};
  std::atomic<ThreadState> state_{ThreadState::kCreated};
  absl::Status result_;
  mutable std::mutex tasks_mutex_;
  std::vector<TaskId> task_ids_;          // guarded by tasks_mutex_
  Readiness readiness_;                   // guarded by tasks_mutex_
  std::string name_;                      // guarded by tasks_mutex_
  std::vector<TaskStatus> task_status_;   // guarded by tasks_mutex_
  friend class Impl;
};

}  // namespace tributary::internal
