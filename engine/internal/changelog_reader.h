// ChangelogReader: restores the stores of a stream thread's new tasks from
// their changelog topics through the restore consumer, a bounded step at a
// time, so that the thread keeps polling its group consumer (and serving
// rebalances) while it restores. Logs progress: records restored of those to
// restore, per task.
// Thread-safety: used by its stream thread only.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "engine/internal/clients.h"
#include "engine/internal/task.h"
#include "spdlog/spdlog.h"
#include "state/checkpoint.h"
#include "state/key_value_store.h"

namespace tributary::internal {

class ChangelogReader {
 public:
  // REQUIRES: `restore_consumer` outlives the reader. `name` prefixes logs.
  ChangelogReader(Consumer* restore_consumer, std::string name, size_t records_per_step);
  ChangelogReader(const ChangelogReader&) = delete;
  ChangelogReader& operator=(const ChangelogReader&) = delete;

  // REQUIRES: `task` is kCreated and outlives its registration. Starts
  // restoring its changelogs from the offsets in `checkpoint` (where they are
  // valid) up to their current ends; the task becomes kRestoring unless it
  // has nothing to restore.
  absl::Status Register(Task& task, const CheckpointFile::Offsets& checkpoint);
  // Restores up to records_per_step records over all registered tasks.
  absl::Status Restore();
  bool IsRestored(TaskId id) const;
  // Records of task `id` restored so far, and to restore in all, since it
  // was registered; {0, 0} for a task not registered.
  std::pair<int64_t, int64_t> Progress(TaskId id) const;
  // Forgets task `id`; returns, for each of its changelog partitions, the
  // offset up to which its store is restored (a checkpoint, once flushed).
  CheckpointFile::Offsets Unregister(TaskId id);

 private:
  struct PartitionState {
    Task* task = nullptr;
    std::string store;
    int64_t end = 0;   // restored when the position reaches it
    int64_t next = 0;  // the store reflects the changelog up to here
    bool done = false;
    WriteBatch batch;
  };
  struct TaskState {
    int64_t to_restore = 0;
    int64_t restored = 0;
    absl::Time started;
    absl::Time progressed;  // when a record was last restored (or started)
    CheckpointFile::Offsets restored_to;  // of changelogs with nothing to restore
  };

  absl::Status Apply(PartitionState& partition);
  absl::Status Finish(const TopicPartition& tp, PartitionState& partition);
  void LogProgress(bool force);

  Consumer* consumer_;
  std::string name_;
  size_t records_per_step_;
  std::shared_ptr<spdlog::logger> log_;
  std::map<TopicPartition, PartitionState> partitions_;
  std::map<TaskId, TaskState> tasks_;
  bool reassign_ = false;  // the partitions to read changed
  absl::Time last_progress_log_ = absl::InfinitePast();
};

}  // namespace tributary::internal
