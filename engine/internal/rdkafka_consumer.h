// RdKafkaConsumer: Consumer over a librdkafka consumer handle. Thin: every
// method is one or two librdkafka calls; the rebalance callback assigns (or
// unassigns) and tells the listener.
// Thread-safety: as Consumer (one polling thread).
#pragma once

#include <librdkafka/rdkafka.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "engine/internal/clients.h"
#include "engine/internal/rdkafka_handles.h"

namespace tributary::internal {

class RdKafkaConsumer final : public Consumer {
 public:
  // A consumer configured with `settings` (librdkafka names); `on_stats`
  // (may be empty) gets its statistics, inside Poll and Close.
  static absl::StatusOr<std::unique_ptr<RdKafkaConsumer>> Create(
      const std::map<std::string, std::string>& settings, StatsCallback on_stats = {});
  ~RdKafkaConsumer() override;
  RdKafkaConsumer(const RdKafkaConsumer&) = delete;
  RdKafkaConsumer& operator=(const RdKafkaConsumer&) = delete;

  absl::Status Subscribe(const std::vector<std::string>& topics,
                         RebalanceListener* listener) override;
  absl::StatusOr<absl::Span<const PolledRecord>> Poll(absl::Duration timeout,
                                                      int max_records) override;
  absl::Status Assign(const OffsetMap& start) override;
  absl::Status Seek(const OffsetMap& offsets) override;
  absl::StatusOr<std::vector<TopicPartition>> Assignment() override;
  absl::Status Pause(const std::vector<TopicPartition>& partitions) override;
  absl::Status Resume(const std::vector<TopicPartition>& partitions) override;
  absl::StatusOr<OffsetMap> Committed(const std::vector<TopicPartition>& partitions,
                                      absl::Duration timeout) override;
  std::optional<int64_t> Position(const TopicPartition& partition) override;
  absl::Status CommitOffsets(const OffsetMap& offsets) override;
  absl::StatusOr<std::string> GroupMetadata() override;
  absl::StatusOr<std::pair<int64_t, int64_t>> Watermarks(const TopicPartition& partition,
                                                         absl::Duration timeout) override;
  absl::StatusOr<OffsetMap> EndOffsets(const std::vector<TopicPartition>& partitions,
                                       absl::Duration timeout) override;
  void Close() override;
  void Wake() override;

 private:
  RdKafkaConsumer() = default;
  static void RebalanceCallback(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                rd_kafka_topic_partition_list_t* partitions, void* opaque);
  void ReleaseBatch();
  int32_t TopicId(rd_kafka_topic_t* topic);

  template <typename Client>
  friend int ForwardStats(rd_kafka_t*, char*, size_t, void*);
  StatsCallback on_stats_;
  KafkaHandle handle_;
  KafkaQueue queue_;
  RebalanceListener* listener_ = nullptr;
  bool closed_ = false;
  // The last batch: owned messages and their records.
  std::vector<rd_kafka_message_t*> raw_;
  std::vector<KafkaMessage> messages_;
  std::vector<PolledRecord> records_;
  // Topic ids by handle; holds a reference to each handle so that an address
  // always means the same topic.
  absl::flat_hash_map<const rd_kafka_topic_t*, int32_t> topic_ids_;
  std::vector<rd_kafka_topic_t*> held_topics_;
};

}  // namespace tributary::internal
