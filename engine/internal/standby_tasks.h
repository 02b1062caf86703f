// StandbyTasks: the warm copies of other instances' tasks that one
// KafkaStreams instance keeps (num.standby.replicas), so that a task failing
// over to it restores only the changelog's tail. librdkafka has no custom
// assignor, so placement is a rule every instance computes alike: after each
// rebalance (and every refresh interval) it describes the group (its members
// and their assignments, Admin DescribeConsumerGroups); an instance is the
// members whose client.id starts "<application.id>-<process id>-"; for each
// task with a persistent logged store, the instances other than its active
// one are ranked by a hash of (instance, task) and the first
// num.standby.replicas keep a standby (rendezvous hashing: a member joining
// or leaving moves few standbys). A standby consumes its stores' changelog
// partitions (its own consumer: assign(), read_committed, no group commits)
// into the task directory's stores and writes the task's .checkpoint as it
// goes; when the task becomes active here, the stream thread takes it over
// (TakeOver) and restores from that checkpoint. A standby task's directory
// is claimed in StateDirectory (the state cleaner leaves it alone); one no
// longer wanted is checkpointed, closed and released (the cleaner deletes
// it after state.cleanup.delay.ms).
// Thread-safety: thread-safe. It runs a thread of its own; TakeOver,
// Released and Kick may be called from any stream thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/internal/clients.h"
#include "engine/internal/state_directory.h"
#include "engine/metrics.h"
#include "engine/topology.h"
#include "engine/types.h"
#include "spdlog/spdlog.h"
#include "state/rocksdb_store.h"

namespace tributary {
class KafkaAdmin;
}

namespace tributary::internal {

struct StandbyOptions {
  int replicas = 1;
  std::string application_id;
  std::string bootstrap_servers;
  std::string process_id;
  std::string state_dir;  // <state.dir>/<application.id>
  bool rocksdb_wal = false;
  std::map<std::string, std::string> consumer_settings;  // librdkafka pass-through
  std::map<std::string, std::string> admin_settings;
  const Topology* topology = nullptr;          // REQUIRES: outlives the object
  std::function<std::string(std::string_view)> topic_name;
  StateDirectory* state_directory = nullptr;   // REQUIRES: outlives the object
  RocksDbResources* rocksdb = nullptr;         // REQUIRES: outlives the object
  Metrics* metrics = nullptr;                  // REQUIRES: outlives the object
  // The group is described again at least this often.
  absl::Duration refresh_interval = absl::Seconds(5);
  // A standby's checkpoint is written at most this often while it reads.
  absl::Duration checkpoint_interval = absl::Seconds(1);
};

// The instance key of a group member: its client.id up to "-StreamThread-"
// (the stream threads name their consumers "<application.id>-<process
// id>-StreamThread-<n>-consumer"); empty for a client.id of another form.
std::string InstanceOfClientId(std::string_view client_id);

// The placement rule: for `task`, active on instance `active`, the
// `replicas` instances of `instances` (other than `active`) that keep a
// standby, best first. Deterministic: every instance computes the same.
std::vector<std::string> StandbyInstances(TaskId task, const std::string& active,
                                          const std::set<std::string>& instances, int replicas);

class StandbyTasks {
 public:
  // Starts the standby thread. Errors: the clients could not be created.
  static absl::StatusOr<std::unique_ptr<StandbyTasks>> Start(StandbyOptions options);
  // Stops the thread; every standby is checkpointed and closed.
  ~StandbyTasks();
  StandbyTasks(const StandbyTasks&) = delete;
  StandbyTasks& operator=(const StandbyTasks&) = delete;

  // A stream thread is about to open task `id` as active: a standby of it is
  // flushed, checkpointed at what it read and closed before this returns, and
  // none is opened while the task is active here (until Released).
  void TakeOver(TaskId id);
  // The stream thread closed its active task `id` (after Close).
  void Released(TaskId id);
  // The group changed (an assignment): describe it again soon.
  void Kick();

  // The tasks kept as standbys, and their lag (records between what each
  // read and its changelogs' ends, as of the last look), for tests and logs.
  std::map<TaskId, int64_t> lags() const;

 private:
  struct Standby;
  explicit StandbyTasks(StandbyOptions options);
  void Run();
  // The standby tasks the group's last stable description gives this
  // instance; nullopt while the group is not stable (keep what there is).
  absl::StatusOr<std::optional<std::set<TaskId>>> Wanted();
  absl::Status Reconcile(const std::set<TaskId>& wanted);  // REQUIRES: mu_
  absl::Status Open(TaskId id);                             // REQUIRES: mu_
  absl::Status Close(TaskId id);                            // REQUIRES: mu_
  absl::Status Checkpoint(Standby& standby);                // REQUIRES: mu_
  absl::Status Step();                                      // REQUIRES: mu_
  // From the changelogs' end offsets `ends`.
  void UpdateLags(const OffsetMap& ends);                   // REQUIRES: mu_

  StandbyOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  std::string instance_;  // this instance's key
  std::map<std::string, int, std::less<>> subtopology_of_topic_;
  std::unique_ptr<KafkaAdmin> admin_;
  std::unique_ptr<Consumer> consumer_;  // used under mu_

  mutable std::mutex mu_;
  std::condition_variable kicked_cv_;
  bool kicked_ = false;        // guarded by mu_
  bool stop_ = false;          // guarded by mu_
  std::map<TaskId, int> active_here_;                   // guarded by mu_ (counted claims)
  std::map<TaskId, std::unique_ptr<Standby>> standbys_;  // guarded by mu_
  std::set<TaskId> wanted_;                             // guarded by mu_
  bool reassign_ = false;                               // guarded by mu_
  uint64_t generation_ = 0;  // guarded by mu_; changes when the partitions to read do
  std::map<TaskId, int64_t> lags_;                      // guarded by mu_
  std::thread thread_;

  Gauge* tasks_gauge_ = nullptr;
  Gauge* lag_gauge_ = nullptr;
  Counter* records_ = nullptr;
};

}  // namespace tributary::internal
