// TopologyTestDriver: runs a Topology in-process with no broker, like Kafka
// Streams' class of the same name. Every sub-topology runs as one task
// (partition 0); records written to the topology's repartition topics are fed
// straight back into the reading task; everything else a sink, changelog or
// dead-letter path writes is kept per topic for the test to read. Stores are
// in memory, behind a record cache as in the engine; the caches are flushed
// (as a commit would) after every PipeInput and AdvanceWallClockTime, so
// changelog records are visible when those return, and several writes of one
// key within one call collapse into one record. Wall-clock time is fake and
// moves only with AdvanceWallClockTime.
// Thread-safety: single-threaded.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/metrics.h"
#include "engine/record.h"
#include "engine/streams_config.h"
#include "engine/topology.h"
#include "state/key_value_store.h"

namespace tributary::internal {
class Task;
}

namespace tributary::testing {

class TopologyTestDriver {
 public:
  struct Options {
    std::string application_id = "test-app";
    TimestampMs start_wall_clock{0};
    ErrorPolicy error_policy = ErrorPolicy::kFail;
    std::string dead_letter_topic = "test-app-dlq";
    // Record cache budget per unit of StoreSpec::cache_weight (1 for most
    // stores); 0: no caching (every write reaches the store and its changelog
    // at once).
    size_t cache_bytes_per_store = 1 << 20;
    // Partition counts ProcessorContext::PartitionCount reports; 1 for a
    // topic not listed.
    std::map<std::string, int32_t, std::less<>> partitions;
  };

  static absl::StatusOr<std::unique_ptr<TopologyTestDriver>> Create(Topology topology,
                                                                    Options options);
  static absl::StatusOr<std::unique_ptr<TopologyTestDriver>> Create(Topology topology) {
    return Create(std::move(topology), Options());
  }
  ~TopologyTestDriver();
  TopologyTestDriver(const TopologyTestDriver&) = delete;
  TopologyTestDriver& operator=(const TopologyTestDriver&) = delete;

  // Processes one record read from `topic` (a source topic of the topology),
  // and everything it causes through repartition topics, before returning.
  absl::Status PipeInput(std::string_view topic, std::optional<std::string_view> key,
                         std::optional<std::string_view> value,
                         TimestampMs timestamp = TimestampMs{0},
                         std::vector<Header> headers = {});
  // As PipeInput, with the record marked as read from `partition` (every
  // sub-topology still runs as the one task of partition 0).
  absl::Status PipeInputAt(std::string_view topic, Partition partition,
                           std::optional<std::string_view> key,
                           std::optional<std::string_view> value,
                           TimestampMs timestamp = TimestampMs{0},
                           std::vector<Header> headers = {});
  // What ProcessorContext::QuerySourceProgress reports as the end offset of
  // `topic` (partition 0) from now on, to let a test pretend that records are
  // still to come; by default the end is what has been piped in.
  void SetSourceEndOffset(std::string_view topic, int64_t end) {
    end_offset_override_[std::string(topic)] = end;
  }

  // The offset the next record piped into `topic` gets (offsets are per topic,
  // shared by its partitions); lets a test pretend a topic was re-created.
  void SetNextInputOffset(std::string_view topic, int64_t offset) {
    next_offset_[std::string(topic)] = offset;
  }

  // Moves the fake wall clock and runs the wall-clock punctuations due.
  absl::Status AdvanceWallClockTime(absl::Duration duration);

  // Takes (and forgets) what was written to `topic` since the last call.
  std::vector<OwnedRecord> ReadOutput(std::string_view topic);
  // Every record ever written to `topic` (not drained by ReadOutput).
  const std::vector<OwnedRecord>& AllOutput(std::string_view topic);
  // Topics written so far (sinks, changelogs, dead letters), sorted.
  std::vector<std::string> OutputTopics() const;

  // The store as processors see it, or nullptr.
  KeyValueStore* GetStore(std::string_view name);
  TimestampMs wall_clock() const { return wall_clock_; }
  // The registry processors see through ProcessorContext::metrics().
  Metrics& metrics() { return metrics_; }
  // The real name of a topology topic (repartition topics get the prefix).
  std::string TopicName(std::string_view topic) const;
  // How often a processor left a record unfinished (ProcessorContext::
  // Unfinished): the driver committed and gave it the record again.
  int64_t unfinished_records() const { return unfinished_records_; }

 private:
  class Collector;
  TopologyTestDriver(Topology topology, Options options);
  absl::Status Init();
  absl::Status Drain();
  // Processes `record` until `task` has finished it.
  absl::Status ProcessFully(internal::Task& task, const Record& record);
  // Drain, then flush every task's record caches (PrepareCommit).
  absl::Status Settle();

  Topology topology_;
  Options options_;
  TimestampMs wall_clock_;
  Metrics metrics_;
  std::unique_ptr<Collector> collector_;
  std::vector<std::unique_ptr<internal::Task>> tasks_;
  std::map<std::string, internal::Task*, std::less<>> task_of_topic_;
  std::map<std::string, std::vector<OwnedRecord>, std::less<>> output_;
  std::map<std::string, size_t, std::less<>> read_position_;
  std::map<std::string, int64_t, std::less<>> next_offset_;
  std::map<std::string, int64_t, std::less<>> end_offset_override_;
  std::deque<OwnedRecord> pending_;  // written to repartition topics, not yet read
  int64_t unfinished_records_ = 0;
};

}  // namespace tributary::testing
