// RdKafkaProducer: Producer over a librdkafka producer handle. Thin: the
// transactional calls map librdkafka's error classes onto Producer's error
// contract (fenced, abortable, retriable); Send retries a full queue.
// Thread-safety: as Producer (one thread; delivery reports are served on it
// by Send, Flush and the transactional calls).
#pragma once

#include <librdkafka/rdkafka.h>

#include <map>
#include <memory>
#include <string>

#include "engine/internal/clients.h"
#include "engine/internal/rdkafka_handles.h"

namespace tributary::internal {

class RdKafkaProducer final : public Producer {
 public:
  // A producer configured with `settings` (librdkafka names); `on_stats`
  // (may be empty) gets its statistics, inside Poll, Send, Flush and the
  // transactional calls.
  static absl::StatusOr<std::unique_ptr<RdKafkaProducer>> Create(
      const std::map<std::string, std::string>& settings, StatsCallback on_stats = {});
  ~RdKafkaProducer() override;
  RdKafkaProducer(const RdKafkaProducer&) = delete;
  RdKafkaProducer& operator=(const RdKafkaProducer&) = delete;

  absl::Status InitTransactions() override;
  absl::Status BeginTransaction() override;
  absl::Status Send(std::string_view topic, const Record& record,
                    std::optional<Partition> partition) override;
  absl::Status SendOffsetsToTransaction(const OffsetMap& offsets,
                                        std::string_view group_metadata) override;
  absl::Status CommitTransaction() override;
  absl::Status AbortTransaction() override;
  absl::Status Flush() override;
  void Poll() override;
  absl::Status TakeDeliveryError() override;
  absl::StatusOr<int32_t> PartitionCount(std::string_view topic) override;
  void PrepareTopic(std::string_view topic) override;
  absl::StatusOr<int64_t> EndOffset(const TopicPartition& partition) override;

 private:
  RdKafkaProducer() = default;
  static void DeliveryReport(rd_kafka_t* rk, const rd_kafka_message_t* message, void* opaque);
  rd_kafka_topic_t* Topic(std::string_view topic);
  // `error` (consumed) as Producer's error contract says.
  absl::Status TransactionStatus(rd_kafka_error_t* error, std::string_view context);

  template <typename Client>
  friend int ForwardStats(rd_kafka_t*, char*, size_t, void*);
  StatsCallback on_stats_;
  KafkaHandle handle_;
  absl::Status delivery_error_;
  std::map<std::string, int32_t, std::less<>> partition_counts_;
  // Topic handles by name, owned (one reference each) until destruction.
  std::map<std::string, rd_kafka_topic_t*, std::less<>> topics_;
};

}  // namespace tributary::internal
