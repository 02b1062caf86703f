// Small Kafka clients for programs that run beside a KafkaStreams instance: a
// producer (load generators, benchmark fills), a read_committed reader (an
// application's output as a downstream service sees it) and an admin client
// (topics, offsets, consumer groups: what tributary-reset needs). Thin
// wrappers over librdkafka; the engine's own clients are not these.
// Thread-safety: each object is used by one thread at a time; its delivery
// reports are served inside its calls.
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
#include "absl/types/span.h"
#include "engine/types.h"

namespace tributary {

// librdkafka properties (bootstrap.servers, ...).
using KafkaSettings = std::map<std::string, std::string>;

class KafkaProducer {
 public:
  // Lets the configured partitioner choose (librdkafka's RD_KAFKA_PARTITION_UA).
  static constexpr int32_t kAnyPartition = -1;

  // A producer with `settings`. InvalidArgument names a setting librdkafka
  // refused.
  static absl::StatusOr<std::unique_ptr<KafkaProducer>> Open(const KafkaSettings& settings);
  // Records not yet delivered are dropped.
  ~KafkaProducer();
  KafkaProducer(const KafkaProducer&) = delete;
  KafkaProducer& operator=(const KafkaProducer&) = delete;

  // Kafka's default partitioner for a non-null key: murmur2 of the key bytes,
  // positive, modulo `partition_count` (as Kafka's Java client does).
  static int32_t DefaultPartition(std::string_view key, int32_t partition_count);

  // The topic's partition count from the cluster's metadata; NotFound when
  // the topic does not exist.
  absl::StatusOr<int32_t> PartitionCount(std::string_view topic, int timeout_ms);

  // Enqueues a copy of one record (`value` nullopt: a tombstone). While the
  // local queue is full it serves delivery reports and retries; it returns
  // DeliveryStatus() if a delivery failed meanwhile.
  absl::Status Send(std::string_view topic, int32_t partition, std::string_view key,
                    std::optional<std::string_view> value);

  // Serves delivery reports, waiting up to `timeout_ms` for one.
  void Poll(int timeout_ms);

  // Waits up to `timeout_ms` until every record is delivered; then
  // DeliveryStatus(), or an error naming the records still undelivered.
  absl::Status Flush(int timeout_ms);

  // OK, or the first failed delivery since Open (it sticks: an idempotent
  // producer that lost a record cannot continue the sequence).
  absl::Status DeliveryStatus() const;
  int64_t delivered() const;

  // Drops every record not yet delivered and serves their reports (bounded
  // by `timeout_ms`), e.g. after an error.
  void Purge(int timeout_ms);

 private:
  struct Impl;
  explicit KafkaProducer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A record as a KafkaReader saw it; owns its bytes.
struct ConsumedRecord {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  std::string key;
  std::optional<std::string> value;  // nullopt: a tombstone
  // Not a record: the reader reached the end of `partition` (only with
  // enable.partition.eof=true).
  bool end_of_partition = false;
};

class KafkaReader {
 public:
  // A consumer that sees committed records only: isolation.level is
  // read_committed and auto.offset.reset earliest unless `settings` (which
  // need bootstrap.servers and group.id) say otherwise.
  static absl::StatusOr<std::unique_ptr<KafkaReader>> Open(const KafkaSettings& settings);
  // Closes (leaves the group) if Close was not called.
  ~KafkaReader();
  KafkaReader(const KafkaReader&) = delete;
  KafkaReader& operator=(const KafkaReader&) = delete;

  // Joins the group for `topics`.
  absl::Status Subscribe(const std::vector<std::string>& topics);
  // Reads partitions 0..partitions-1 of `topic` from the beginning, outside
  // any group assignment.
  absl::Status AssignFromBeginning(std::string_view topic, int32_t partitions);

  // The next record, or nullopt when none arrived within `timeout_ms`; a
  // consume error as a Status (the reader stays usable).
  absl::StatusOr<std::optional<ConsumedRecord>> Poll(int timeout_ms);

  void Close();

 private:
  struct Impl;
  explicit KafkaReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A committed offset of a consumer group, or one to commit.
struct TopicPartitionOffset {
  std::string topic;
  Partition partition;
  Offset offset;
  auto operator<=>(const TopicPartitionOffset&) const = default;
};

class KafkaAdmin {
 public:
  struct NewTopic {
    std::string name;
    int partitions = 1;
    int replication_factor = 1;
  };
  struct GroupMember {
    std::string member_id;
    std::string client_id;
    std::string host;  // as the coordinator saw it, e.g. "/127.0.0.1"
    // The partitions the group's last assignment gave it (empty while the
    // group rebalances).
    std::vector<std::pair<std::string, int32_t>> assignment;
  };
  struct GroupDescription {
    std::string state;  // librdkafka's name: "Stable", "Empty", "Dead", ...
    std::vector<GroupMember> members;
  };
  // The low (first) and high (next to be written) offset of a partition.
  struct Watermarks {
    Offset low;
    Offset high;
  };

  static absl::StatusOr<std::unique_ptr<KafkaAdmin>> Open(const KafkaSettings& settings);
  ~KafkaAdmin();
  KafkaAdmin(const KafkaAdmin&) = delete;
  KafkaAdmin& operator=(const KafkaAdmin&) = delete;

  // Creates `topics` (an existing one is accepted as it is), then waits until
  // every partition of each has a leader; the whole bounded by `timeout_ms`.
  absl::Status CreateTopics(absl::Span<const NewTopic> topics, int timeout_ms);
  // Deletes `names` (one that does not exist counts as deleted), then waits
  // until the cluster's metadata no longer lists any of them; the whole
  // bounded by `timeout_ms`. An error names each topic that failed.
  absl::Status DeleteTopics(absl::Span<const std::string> names, int timeout_ms);
  // Every topic in the cluster's metadata with its partition count, the
  // broker's own (names starting with "__") left out.
  absl::StatusOr<std::map<std::string, int32_t>> ListTopics(int timeout_ms);
  // As KafkaProducer::PartitionCount; with `require_leaders`, Unavailable
  // until every partition has a leader.
  absl::StatusOr<int32_t> PartitionCount(std::string_view topic, bool require_leaders,
                                         int timeout_ms);

  // The partition's watermarks as a read_uncommitted consumer sees them.
  // Retries while the partition has no leader, up to `timeout_ms`.
  absl::StatusOr<Watermarks> QueryWatermarks(std::string_view topic, Partition partition,
                                             int timeout_ms);
  // For each of `partitions` of `topic`, in order: the first offset whose
  // record timestamp is at or after `time`, or nullopt when no record is (as
  // Kafka's offsetsForTimes).
  absl::StatusOr<std::vector<std::optional<Offset>>> OffsetsForTime(
      std::string_view topic, absl::Span<const Partition> partitions, TimestampMs time,
      int timeout_ms);

  // The group's state and members. A group that does not exist is "Dead"
  // with no members.
  absl::StatusOr<GroupDescription> DescribeGroup(std::string_view group, int timeout_ms);
  // Every offset `group` has committed, sorted by topic and partition.
  absl::StatusOr<std::vector<TopicPartitionOffset>> CommittedOffsets(std::string_view group,
                                                                     int timeout_ms);
  // Commits `offsets` for `group`. REQUIRES: the group has no active member
  // (the broker refuses otherwise: the error names each refused partition).
  absl::Status AlterGroupOffsets(std::string_view group,
                                 absl::Span<const TopicPartitionOffset> offsets, int timeout_ms);
  // Deletes the group's committed offsets of the partitions in `committed`
  // (their `offset` is not looked at), e.g. entries of CommittedOffsets.
  // REQUIRES: as AlterGroupOffsets.
  absl::Status DeleteGroupOffsets(std::string_view group,
                                  absl::Span<const TopicPartitionOffset> committed,
                                  int timeout_ms);

 private:
  struct Impl;
  explicit KafkaAdmin(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tributary
