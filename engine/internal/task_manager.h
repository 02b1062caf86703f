// TaskManager: a stream thread's tasks, as Kafka Streams' TaskManager. Turns
// an assignment into tasks (task directory, checkpoint, stores, restore
// registered with the ChangelogReader), starts them once restored, routes
// records to them, gathers what a commit needs, writes checkpoints and closes
// tasks on revocation. Eager rebalancing: a revocation closes every task, so
// a task never needs to be suspended.
// Thread-safety: used by its stream thread only.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/internal/changelog_reader.h"
#include "engine/internal/clients.h"
#include "engine/internal/stream_thread_options.h"
#include "engine/internal/task.h"
#include "engine/streams_status.h"
#include "spdlog/spdlog.h"

namespace tributary::internal {

class TaskManager {
 public:
  struct Clients {
    Consumer* consumer = nullptr;          // positions of the source partitions
    Consumer* restore_consumer = nullptr;  // their end offsets
    Producer* producer = nullptr;          // end offsets of changelogs (checkpoints)
    RecordCollector* collector = nullptr;  // where tasks send
  };
  // REQUIRES: `options`, the clients and `reader` outlive the manager.
  // `publish` receives task counter increments (for the thread's metrics).
  TaskManager(const StreamThreadOptions& options, std::string name, Clients clients,
              ChangelogReader* reader, std::function<void(const TaskCounters&)> publish);
  ~TaskManager();
  TaskManager(const TaskManager&) = delete;
  TaskManager& operator=(const TaskManager&) = delete;

  // Creates the tasks of `assigned` that do not exist yet; those with
  // nothing to restore start at once, the others restore first.
  absl::Status HandleAssignment(const std::vector<TopicPartition>& assigned);
  // Starts the tasks whose restore finished.
  absl::Status StartRestoredTasks();
  // True while some task is not running yet (restoring).
  bool restoring() const;
  // Closes every task. `clean`: running tasks checkpoint their changelogs'
  // ends and restoring ones what they restored; otherwise no checkpoint.
  absl::Status CloseAll(bool clean);

  // The running task that reads `polled`'s partition, or null.
  Task* Route(const PolledRecord& polled);
  absl::Status Punctuate(TimestampMs now);
  bool commit_requested() const;
  // Each running task's PrepareCommit.
  absl::Status PrepareCommit();
  // The offsets to commit of every running task; clears commit requests.
  OffsetMap TakeCommitOffsets();
  // At-least-once commit: a checkpoint per running task.
  absl::Status WriteCheckpoints();
  void PublishCounters();
  std::vector<TaskId> ids() const;
  // The task `id`, running or restoring, or nullptr.
  Task* Find(TaskId id);
  // The tasks not running yet (restoring).
  std::vector<TaskId> restoring_ids() const;
  // Each task's state, records processed and restore progress, by id.
  std::vector<TaskStatus> Status() const;

 private:
  // Claims `id`'s directory (StreamThreadOptions::state_directory) and
  // opens the task on it (OpenTask).
  absl::Status CreateTask(TaskId id);
  absl::Status OpenTask(TaskId id);
  absl::Status WriteCheckpoint(Task& task);
  absl::Status StartTask(Task& task);
  std::string TaskDir(TaskId id) const;
  absl::StatusOr<SourceProgress> QuerySourceProgress(const std::string& topic,
                                                     Partition partition);
  absl::Status RefreshEndOffsets();

  const StreamThreadOptions& options_;
  std::string name_;
  Clients clients_;
  ChangelogReader* reader_;
  std::function<void(const TaskCounters&)> publish_;
  std::shared_ptr<spdlog::logger> log_;
  std::map<std::string, int, std::less<>> subtopology_of_topic_;
  std::map<TaskId, std::unique_ptr<Task>> tasks_;
  // Running tasks by source partition, and the same by the consumer's topic
  // id (no string per record), filled as records come.
  std::map<TopicPartition, Task*> route_;
  std::vector<std::vector<Task*>> route_by_id_;
  double cache_bytes_per_weight_ = 0;
  // End offsets of the assigned source partitions, asked for together.
  OffsetMap end_offsets_;
  TimestampMs end_offsets_as_of_{-1};
};

}  // namespace tributary::internal
