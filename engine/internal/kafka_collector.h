// KafkaRecordCollector: RecordCollector over a stream thread's librdkafka
// producer. Under exactly-once it opens the thread's Kafka transaction on the
// first send after a commit. Delivery failures are remembered and reported by
// TakeError(), which the commit path checks.
// Thread-safety: used by its stream thread only (delivery reports are served
// on that thread by rd_kafka_poll / flush).
#pragma once

#include <librdkafka/rdkafka.h>

#include <map>
#include <string>

#include "absl/status/status.h"
#include "engine/internal/record_collector.h"

namespace tributary::internal {

class KafkaRecordCollector : public RecordCollector {
 public:
  explicit KafkaRecordCollector(bool transactional) : transactional_(transactional) {}
  ~KafkaRecordCollector() override;
  KafkaRecordCollector(const KafkaRecordCollector&) = delete;
  KafkaRecordCollector& operator=(const KafkaRecordCollector&) = delete;
  // REQUIRES: before any Send; `producer` outlives this object and was created
  // with this object as its opaque and DeliveryReport as its callback.
  void set_producer(rd_kafka_t* producer) { producer_ = producer; }

  absl::Status Send(std::string_view topic, const Record& record,
                    std::optional<Partition> partition) override;
  absl::StatusOr<int32_t> PartitionCount(std::string_view topic) override;

  bool in_transaction() const { return in_transaction_; }
  // Opens a transaction if none is open. REQUIRES: transactional.
  absl::Status EnsureTransaction();
  // Marks the transaction closed (after commit or abort).
  void TransactionEnded() { in_transaction_ = false; }

  // Creates (and keeps) the producer's handle for `topic`, which starts its
  // metadata lookup now instead of at the first send. Idempotent.
  void PrepareTopic(std::string_view topic) override;

  int64_t sent() const { return sent_; }
  // The first delivery failure since the last call, if any.
  absl::Status TakeError();

  // For rd_kafka_conf_set_dr_msg_cb; `opaque` is the collector.
  static void DeliveryReport(rd_kafka_t* rk, const rd_kafka_message_t* message,
                             void* opaque);

 private:
  rd_kafka_t* producer_ = nullptr;
  bool transactional_;
  bool in_transaction_ = false;
  int64_t sent_ = 0;
  absl::Status delivery_error_;
  std::map<std::string, int32_t, std::less<>> partition_counts_;
  // Topic handles by name, owned (one reference each) until destruction.
  std::map<std::string, rd_kafka_topic_t*, std::less<>> topics_;
  rd_kafka_topic_t* Topic(std::string_view topic);
};

}  // namespace tributary::internal
