// StateDirectory: the application's state directory (state.dir/
// <application.id>) as the stream threads of one KafkaStreams share it:
// which task directories (<root>/<subtopology>_<partition>) a thread has a
// task open on, and the cleaner that deletes the others once nothing has
// written to them for state.cleanup.delay.ms (Kafka Streams'
// StateDirectory.cleanRemovedTasks): the state of a task that moved to
// another instance, or of an old topology, does not stay on disk forever.
// A directory comes back, restored from its changelogs, if the task does.
// Thread-safe.
#pragma once

#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "engine/types.h"

namespace tributary::internal {

class StateDirectory {
 public:
  explicit StateDirectory(std::string root) : root_(std::move(root)) {}
  StateDirectory(const StateDirectory&) = delete;
  StateDirectory& operator=(const StateDirectory&) = delete;

  const std::string& root() const { return root_; }
  std::string TaskDir(TaskId id) const;

  // Marks `id`'s directory in use until Release: the cleaner leaves it be.
  // Under an eager rebalance an old and a new owner thread may claim one id
  // for a moment: claims are counted.
  void Claim(TaskId id);
  void Release(TaskId id);

  // Deletes every task directory that is not claimed and whose last change
  // (of the directory or its .checkpoint) is more than `delay` before `now`.
  // Returns the names of those deleted; other entries of the root (the lock,
  // the process id) are never touched.
  std::vector<std::string> CleanUnused(absl::Duration delay, absl::Time now);

 private:
  const std::string root_;
  absl::Mutex mu_;
  std::map<TaskId, int> claims_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tributary::internal
