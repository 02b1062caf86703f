// The two Kafka clients a stream thread uses, as small interfaces (after
// Redpanda's transform source / sink / offset tracker), so that its commit,
// abort, fencing, restore and rebalance logic can be tested with fakes. The
// real implementations (rdkafka_consumer.h, rdkafka_producer.h) are thin.
// Thread-safety: a client is used by the one stream thread that owns it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "engine/record.h"
#include "engine/types.h"

namespace tributary::internal {

// (topic, partition): the same pair the tasks use for consumed offsets.
using TopicPartition = std::pair<std::string, int32_t>;
// An offset per partition: next offsets to commit, or positions to start at.
using OffsetMap = std::map<TopicPartition, int64_t>;

// Start positions for Consumer::Assign besides a real offset.
inline constexpr int64_t kOffsetBeginning = -2;    // the partition's start
inline constexpr int64_t kOffsetCommitted = -1001;  // committed, else auto.offset.reset

// One polled record. Views stay valid until the next Poll, Assign or Close.
struct PolledRecord {
  Record record;
  // A small number the consumer gives each topic it returns records of,
  // stable for its lifetime: lets the thread route without hashing names.
  int32_t topic_id = -1;
  // No record: `record.topic`/`record.partition` reached its end (only with
  // end-of-partition events enabled, as on the restore consumer).
  bool end_of_partition = false;
};

// Called inside Consumer::Poll (or Close) on the polling thread, as Kafka's
// ConsumerRebalanceListener. Eager protocol: a revocation takes everything.
class RebalanceListener {
 public:
  virtual ~RebalanceListener() = default;
  // After the consumer took `partitions` (positioned at their committed offsets).
  virtual void OnPartitionsAssigned(const std::vector<TopicPartition>& partitions) = 0;
  // Before the consumer gives `partitions` up.
  virtual void OnPartitionsRevoked(const std::vector<TopicPartition>& partitions) = 0;
  // Instead of OnPartitionsRevoked when the consumer has lost `partitions`
  // already (its session timed out: the group gave them to another member,
  // which reads them from their committed offsets). Nothing processed from
  // them may be committed any more. Defaults to OnPartitionsRevoked.
  virtual void OnPartitionsLost(const std::vector<TopicPartition>& partitions) {
    OnPartitionsRevoked(partitions);
  }
};

class Consumer {
 public:
  virtual ~Consumer() = default;
  // Joins the group on `topics`; `listener` (REQUIRES: outlives the consumer)
  // is told about assignments.
  virtual absl::Status Subscribe(const std::vector<std::string>& topics,
                                 RebalanceListener* listener) = 0;
  // Up to `max_records` records, waiting at most `timeout`. Serves rebalance
  // callbacks. Returns an error only for a fatal consumer error.
  virtual absl::StatusOr<absl::Span<const PolledRecord>> Poll(absl::Duration timeout,
                                                              int max_records) = 0;
  // Replaces the assignment with the partitions of `start`, each positioned at
  // its offset (or kOffsetBeginning / kOffsetCommitted); drops fetched records.
  virtual absl::Status Assign(const OffsetMap& start) = 0;
  virtual absl::StatusOr<std::vector<TopicPartition>> Assignment() = 0;
  // Positions assigned partitions at the offsets of `offsets`; records of
  // them fetched before are dropped. Call between polls (it may release the
  // last polled batch).
  virtual absl::Status Seek(const OffsetMap& offsets) = 0;
  virtual absl::Status Pause(const std::vector<TopicPartition>& partitions) = 0;
  virtual absl::Status Resume(const std::vector<TopicPartition>& partitions) = 0;
  // The group's committed offsets of `partitions`; a partition with none is
  // missing from the result.
  virtual absl::StatusOr<OffsetMap> Committed(const std::vector<TopicPartition>& partitions,
                                              absl::Duration timeout) = 0;
  // The next offset this consumer returns for `partition`, if it knows one.
  virtual std::optional<int64_t> Position(const TopicPartition& partition) = 0;
  // Commits `offsets` for the group (at-least-once).
  virtual absl::Status CommitOffsets(const OffsetMap& offsets) = 0;
  // The group metadata (member, generation) for
  // Producer::SendOffsetsToTransaction, serialized.
  virtual absl::StatusOr<std::string> GroupMetadata() = 0;
  // Low and high (for read_committed: last stable) offsets of `partition`;
  // retries the errors of a fresh or moving partition until `timeout`.
  virtual absl::StatusOr<std::pair<int64_t, int64_t>> Watermarks(
      const TopicPartition& partition, absl::Duration timeout) = 0;
  // End offsets of `partitions` in one request; partitions without one are
  // missing from the result.
  virtual absl::StatusOr<OffsetMap> EndOffsets(const std::vector<TopicPartition>& partitions,
                                               absl::Duration timeout) = 0;
  // Leaves the group (revoking through the listener). Idempotent.
  virtual void Close() = 0;
  // Makes a Poll under way (or the next one) return at once with what it
  // has, e.g. so that the thread serves an interactive query. The one call
  // that may come from another thread; nothing by default.
  virtual void Wake() {}
};

// Error contract of Producer's transactional calls, which StreamsProducer
// relies on: Aborted = the transaction must be aborted (abortable error);
// Unavailable = retriable; DeadlineExceeded = timed out; an error carrying
// the fenced payload (ProducerFencedError) or FailedPrecondition = fatal.
class Producer {
 public:
  virtual ~Producer() = default;
  virtual absl::Status InitTransactions() = 0;
  virtual absl::Status BeginTransaction() = 0;
  // Sends asynchronously (copies everything); with no `partition` the
  // default partitioner picks one. Returns the enqueue error, or the first
  // delivery failure not yet taken by TakeDeliveryError.
  virtual absl::Status Send(std::string_view topic, const Record& record,
                            std::optional<Partition> partition) = 0;
  virtual absl::Status SendOffsetsToTransaction(const OffsetMap& offsets,
                                                std::string_view group_metadata) = 0;
  virtual absl::Status CommitTransaction() = 0;
  virtual absl::Status AbortTransaction() = 0;
  // Waits for all sends to be delivered (or failed).
  virtual absl::Status Flush() = 0;
  // The first delivery failure since the last call, if any.
  virtual absl::Status TakeDeliveryError() = 0;
  // Serves what the client has for this thread (delivery reports,
  // statistics) without waiting. Optional.
  virtual void Poll() {}
  virtual absl::StatusOr<int32_t> PartitionCount(std::string_view topic) = 0;
  // A hint that records for `topic` will follow. Optional.
  virtual void PrepareTopic(std::string_view topic) { (void)topic; }
  // The high watermark of `partition` (checkpoints of changelogs).
  virtual absl::StatusOr<int64_t> EndOffset(const TopicPartition& partition) = 0;
};

// The error of a producer fenced by a newer one with its transactional.id.
absl::Status ProducerFencedError(std::string_view message);
bool IsProducerFenced(const absl::Status& status);

// Deletes the records of partitions below given offsets (the Admin API's
// DeleteRecords), without waiting: the stream thread purges the repartition
// topics it has committed offsets of, as Kafka Streams does.
class RecordsDeleter {
 public:
  // The answer for one partition of a request.
  struct Result {
    TopicPartition partition;
    absl::Status status;
    int64_t low_watermark = -1;  // the partition's first offset now, when OK
  };
  virtual ~RecordsDeleter() = default;
  // Starts deleting, for each partition of `before`, the records below its
  // offset, and returns at once. One request at a time: while the previous
  // one has not answered, starts nothing and returns false.
  virtual bool Start(const OffsetMap& before) = 0;
  // The answers that came since the last call, without waiting.
  virtual std::vector<Result> TakeResults() = 0;
};

// A stream thread's clients: the group consumer, the restore consumer
// (group-less, read_committed, end-of-partition events on), the producer
// (transactional under exactly-once) and the records deleter (null: nothing
// is purged).
struct ThreadClients {
  std::unique_ptr<Consumer> consumer;
  std::unique_ptr<Consumer> restore_consumer;
  std::unique_ptr<Producer> producer;
  std::unique_ptr<RecordsDeleter> deleter;
};

}  // namespace tributary::internal
