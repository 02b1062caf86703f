// RecordCollector: where a task's sinks, changelogs and dead letters go.
// The runtime's implementation sends through the stream thread's
// (transactional) producer; TopologyTestDriver's keeps records in memory.
// Thread-safety: used only by the stream thread that owns the task.
#pragma once

#include <optional>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/record.h"
#include "engine/types.h"

namespace tributary::internal {

class RecordCollector {
 public:
  virtual ~RecordCollector() = default;
  // Sends `record` (key, value, headers, timestamp) to `topic`. With no
  // `partition`, the default partitioner picks one: murmur2 of the key (as
  // Kafka's Java clients), a random one for a null key. Copies everything it
  // needs before returning.
  virtual absl::Status Send(std::string_view topic, const Record& record,
                            std::optional<Partition> partition) = 0;
  // A hint that records for `topic` will follow (the Kafka collector starts
  // the topic's metadata lookup). Optional.
  virtual void PrepareTopic(std::string_view topic) { (void)topic; }
  // Number of partitions of `topic`, or an error if it is unknown.
  virtual absl::StatusOr<int32_t> PartitionCount(std::string_view topic) = 0;
};

// Kafka's default partition for a non-null key: murmur2 (Java client's
// variant) masked positive, modulo `partitions`.
int32_t DefaultPartition(std::string_view key, int32_t partitions);

}  // namespace tributary::internal
