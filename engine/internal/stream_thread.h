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
#include "engine/internal/task.h"
#include "engine/metrics.h"
#include "engine/topology.h"
#include "state/rocksdb_store.h"

namespace tributary::internal {

struct StreamThreadOptions {
  int index = 0;
  std::string application_id;
  std::string bootstrap_servers;
  bool exactly_once = true;
  absl::Duration commit_interval = absl::Milliseconds(100);
  absl::Duration poll_timeout = absl::Milliseconds(100);
  int max_poll_records = 1000;
  std::string state_dir;         // <state.dir>/<application.id>
  std::string process_id;        // stable per state dir: names the producer
  bool rocksdb_wal = false;
  // Record cache budget of this thread (its share of cache.max.bytes), split
  // evenly among the stores of the tasks it owns after each assignment; 0:
  // stores are not cached.
  size_t cache_bytes = 0;
  ErrorPolicy error_policy = ErrorPolicy::kFail;
  std::string dead_letter_topic;
  std::map<std::string, std::string> consumer_settings;  // librdkafka pass-through
  std::map<std::string, std::string> producer_settings;
  const Topology* topology = nullptr;           // REQUIRES: outlives the thread
  RocksDbResources* rocksdb = nullptr;          // REQUIRES: outlives the thread
  Metrics* metrics = nullptr;                   // REQUIRES: outlives the thread
  std::function<std::string(std::string_view)> topic_name;
};

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
  std::vector<TaskId> task_ids_;
  friend class Impl;
};

}  // namespace tributary::internal
