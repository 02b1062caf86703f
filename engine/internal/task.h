// Task: one partition index of one sub-topology, with its own processors and
// state stores. Shared by the runtime (StreamThread) and TopologyTestDriver.
// Thread-safety: single-threaded; a task is used by one stream thread at a
// time and hands its records to a RecordCollector on that same thread.
//
// Lifecycle (allowed transitions):
//   kCreated  --BeginRestore-->  kRestoring  --Start-->  kRunning
//   kCreated  --Start-->  kRunning          (nothing to restore)
//   any       --Close-->  kClosed
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/processor.h"
#include "engine/record.h"
#include "engine/streams_config.h"
#include "engine/topology.h"
#include "engine/types.h"
#include "engine/internal/dead_letter_log.h"
#include "engine/internal/record_collector.h"
#include "state/caching_store.h"
#include "state/changelog.h"
#include "state/key_value_store.h"

namespace tributary::internal {

enum class TaskState { kCreated, kRestoring, kRunning, kClosed };
const char* TaskStateName(TaskState state);

// Opens the raw (not change-logging) store `spec` for task `id`.
using StoreOpener = std::function<absl::StatusOr<std::unique_ptr<KeyValueStore>>(
    const StoreSpec& spec, TaskId id)>;

struct TaskOptions {
  TaskId id;
  const Topology* topology = nullptr;  // REQUIRES: built; outlives the task
  std::string application_id;
  // Maps a topic name used in the topology to the real one (internal
  // repartition topics get the application id prefix).
  std::function<std::string(std::string_view)> topic_name;
  RecordCollector* collector = nullptr;  // REQUIRES: outlives the task
  StoreOpener open_store;
  std::function<TimestampMs()> wall_clock;
  ErrorPolicy error_policy = ErrorPolicy::kFail;
  std::string dead_letter_topic;  // used with kContinue
  // Told of every dead letter sent; nullptr: not kept.
  DeadLetterLog* dead_letters = nullptr;  // REQUIRES: outlives the task
  Metrics* metrics = nullptr;  // nullptr: the task keeps a registry of its own
  // End offset and consumer position of (real topic, partition), as
  // ProcessorContext::QuerySourceProgress; nullptr: positions are unknown.
  std::function<absl::StatusOr<SourceProgress>(const std::string& topic, Partition partition)>
      query_source_progress;
  // Record cache (CachingStore) budget of the task's stores per unit of
  // StoreSpec::cache_weight; 0: the stores are not cached.
  double cache_bytes_per_weight = 0;
};

struct TaskCounters {
  int64_t processed = 0;
  int64_t dead_lettered = 0;
  int64_t punctuations = 0;
  int64_t restored = 0;
  // Gets of the task's record caches (CachingStore::Stats), summed.
  int64_t cache_hits = 0;
  int64_t cache_misses = 0;
};

// Header names on dead-lettered records.
inline constexpr char kDlqErrorHeader[] = "tributary.error";
inline constexpr char kDlqTopicHeader[] = "tributary.source.topic";
inline constexpr char kDlqPartitionHeader[] = "tributary.source.partition";
inline constexpr char kDlqOffsetHeader[] = "tributary.source.offset";
// The source transaction of the record, when the processor could tell.
inline constexpr char kDlqTransactionHeader[] = "tributary.source.transaction";
// On a dead letter whose value was too large to send: the value's size; the
// record is in its source topic at the offset the headers give.
inline constexpr char kDlqValueOmittedHeader[] = "tributary.value.omitted";

// The changelog topic of `store` in application `application_id`.
std::string ChangelogTopic(std::string_view application_id, std::string_view store);

class Task {
 public:
  struct Changelog {
    std::string store;
    std::string topic;
    Partition partition;
  };

  static absl::StatusOr<std::unique_ptr<Task>> Create(TaskOptions options);
  ~Task();
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;

  TaskId id() const { return options_.id; }
  TaskState state() const { return state_; }
  const TaskCounters& counters() const { return counters_; }
  // Counter increments since the previous call (for metrics).
  TaskCounters TakeCounterDeltas();

  // Real names of the topics this task reads, and its changelog partitions.
  const std::vector<std::string>& source_topics() const { return source_topics_; }
  const std::vector<Changelog>& changelogs() const { return changelogs_; }

  // kCreated -> kRestoring.
  absl::Status BeginRestore();
  // REQUIRES: kRestoring. Applies changelog records to `store`'s local
  // storage without logging them again.
  absl::Status Restore(std::string_view store, const WriteBatch& batch);
  // kCreated | kRestoring -> kRunning: initializes the processors.
  absl::Status Start();

  // REQUIRES: kRunning. Processes one record read from Kafka; record.topic
  // (a real topic name) selects the source node.
  absl::Status Process(const Record& record);
  // REQUIRES: kRunning. Runs wall-clock punctuations that are due at `now`.
  absl::Status PunctuateWallClock(TimestampMs now);

  // See ProcessorContext::QuerySourceProgress; `topic` as the topology names it.
  absl::StatusOr<SourceProgress> QuerySourceProgress(std::string_view topic);

  // Next offset to commit for each (topic, partition) this task consumed.
  std::map<std::pair<std::string, int32_t>, int64_t> consumed_offsets() const;
  // Whether the last record Process was given is unfinished: it must be
  // given again after a commit (ProcessorContext::Unfinished).
  bool unfinished() const { return unfinished_; }
  bool commit_requested() const { return commit_requested_; }
  void clear_commit_request() { commit_requested_ = false; }

  // Writes the record caches' dirty entries to the stores below them, which
  // appends their changelog records (into the open transaction under
  // exactly-once). Call before committing: what stays cached is not part of
  // the commit.
  absl::Status PrepareCommit();
  // Makes local store writes durable (before a checkpoint is written); flushes
  // the record caches first.
  absl::Status FlushStores();
  // Closes processors (when running) and stores. Idempotent.
  absl::Status Close();

  // Store `name` as processors see it: the caching layer when caching is on,
  // over the change-logging layer when logging is on.
  KeyValueStore* store(std::string_view name);

 private:
  class NodeContext;
  class StoreChangelogWriter;
  struct NodeRuntime;
  struct Schedule;

  explicit Task(TaskOptions options);
  absl::Status Init();
  absl::Status Deliver(int node, const Record& record);
  absl::Status Forward(int node, const Record& record);
  absl::Status DeadLetter(const Record& record, const absl::Status& error);
  absl::Status PunctuateStreamTime();
  // Takes the record caches' hit and miss counts into counters_.
  void CountCacheGets();

  TaskOptions options_;
  TaskState state_ = TaskState::kCreated;
  TaskCounters counters_;
  TaskCounters published_;
  std::vector<NodeRuntime> nodes_;
  struct Source {
    int node = 0;         // the source node reading the topic
    size_t topic = 0;     // index into source_topics_ and next_offsets_
  };
  absl::flat_hash_map<std::string, Source> source_by_topic_;
  // Next offset to commit per source topic (this task's partition); -1: none.
  std::vector<int64_t> next_offsets_;
  // ProcessorContext::HoldCommittedOffset, per source topic (-1: none).
  std::vector<int64_t> held_offsets_;
  std::vector<std::string> source_topics_;
  std::vector<Changelog> changelogs_;
  // Stores as processors see them, their caching layers (observed), and the
  // raw local ones used by Restore.
  std::map<std::string, std::unique_ptr<KeyValueStore>, std::less<>> stores_;
  std::vector<CachingStore*> caching_stores_;
  std::map<std::string, KeyValueStore*, std::less<>> raw_stores_;
  std::vector<std::unique_ptr<StoreChangelogWriter>> changelog_writers_;
  std::vector<std::shared_ptr<Schedule>> schedules_;
  TimestampMs stream_time_{-1};
  bool commit_requested_ = false;
  bool unfinished_ = false;
  std::unique_ptr<Metrics> own_metrics_;
};

}  // namespace tributary::internal
