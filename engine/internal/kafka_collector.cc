#include "engine/internal/kafka_collector.h"

#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"
#include "base/status_macros.h"
#include "engine/internal/rdkafka_handles.h"

namespace tributary::internal {

void KafkaRecordCollector::DeliveryReport(rd_kafka_t*, const rd_kafka_message_t* message,
                                          void* opaque) {
  if (message->err == RD_KAFKA_RESP_ERR_NO_ERROR || opaque == nullptr) return;
  auto* self = static_cast<KafkaRecordCollector*>(opaque);
  if (self->delivery_error_.ok()) {
    self->delivery_error_ = KafkaStatus(
        message->err, absl::StrCat("delivery to ", rd_kafka_topic_name(message->rkt),
                                   "[", message->partition, "]"));
  }
}

KafkaRecordCollector::~KafkaRecordCollector() {
  for (auto& [name, handle] : topics_) rd_kafka_topic_destroy(handle);
}

rd_kafka_topic_t* KafkaRecordCollector::Topic(std::string_view topic) {
  auto it = topics_.find(topic);
  if (it != topics_.end()) return it->second;
  std::string name(topic);
  rd_kafka_topic_t* handle = rd_kafka_topic_new(producer_, name.c_str(), nullptr);
  if (handle == nullptr) return nullptr;
  topics_.emplace(std::move(name), handle);
  return handle;
}

void KafkaRecordCollector::PrepareTopic(std::string_view topic) { (void)Topic(topic); }

absl::Status KafkaRecordCollector::TakeError() {
  absl::Status error = std::move(delivery_error_);
  delivery_error_ = absl::OkStatus();
  return error;
}

absl::Status KafkaRecordCollector::EnsureTransaction() {
  if (in_transaction_) return absl::OkStatus();
  TRIBUTARY_RETURN_IF_ERROR(
      KafkaStatus(rd_kafka_begin_transaction(producer_), "begin_transaction"));
  in_transaction_ = true;
  return absl::OkStatus();
}

absl::Status KafkaRecordCollector::Send(std::string_view topic, const Record& record,
                                        std::optional<Partition> partition) {
  if (transactional_) TRIBUTARY_RETURN_IF_ERROR(EnsureTransaction());
  rd_kafka_topic_t* handle = Topic(topic);
  if (handle == nullptr) {
    return KafkaStatus(rd_kafka_last_error(), absl::StrCat("topic handle for ", Sv(topic)));
  }
  rd_kafka_headers_t* headers = nullptr;
  if (!record.headers.empty()) {
    headers = rd_kafka_headers_new(record.headers.size());
    for (const Header& h : record.headers) {
      rd_kafka_header_add(headers, h.key.data(), static_cast<ssize_t>(h.key.size()),
                          h.value ? h.value->data() : nullptr,
                          h.value ? static_cast<ssize_t>(h.value->size()) : 0);
    }
  }
  const void* key = record.key ? record.key->data() : nullptr;
  size_t key_len = record.key ? record.key->size() : 0;
  void* value = record.value ? const_cast<char*>(record.value->data()) : nullptr;
  size_t value_len = record.value ? record.value->size() : 0;
  int32_t chosen = partition ? partition->value : RD_KAFKA_PARTITION_UA;
  for (int attempt = 0;; ++attempt) {
    rd_kafka_resp_err_t err = rd_kafka_producev(
        producer_, RD_KAFKA_V_RKT(handle), RD_KAFKA_V_PARTITION(chosen),
        RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE(value, value_len),
        RD_KAFKA_V_TIMESTAMP(record.timestamp.value > 0 ? record.timestamp.value : 0),
        RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      ++sent_;
      return delivery_error_;
    }
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && attempt < 6000) {
      rd_kafka_poll(producer_, 10);  // serve delivery reports to make room
      continue;
    }
    if (headers != nullptr) rd_kafka_headers_destroy(headers);
    return KafkaStatus(err, absl::StrCat("produce to ", Sv(topic)));
  }
}

absl::StatusOr<int32_t> KafkaRecordCollector::PartitionCount(std::string_view topic) {
  auto it = partition_counts_.find(topic);
  if (it != partition_counts_.end()) return it->second;
  std::string name(topic);
  rd_kafka_topic_t* handle = rd_kafka_topic_new(producer_, name.c_str(), nullptr);
  const rd_kafka_metadata_t* metadata = nullptr;
  rd_kafka_resp_err_t err = rd_kafka_metadata(producer_, 0, handle, &metadata, 10000);
  rd_kafka_topic_destroy(handle);
  TRIBUTARY_RETURN_IF_ERROR(KafkaStatus(err, absl::StrCat("metadata of ", name)));
  int32_t count = 0;
  absl::Status status;
  if (metadata->topic_cnt == 1 && metadata->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    count = metadata->topics[0].partition_cnt;
  } else {
    status = absl::NotFoundError(absl::StrCat("topic '", name, "' not found"));
  }
  rd_kafka_metadata_destroy(metadata);
  TRIBUTARY_RETURN_IF_ERROR(status);
  partition_counts_[name] = count;
  return count;
}

}  // namespace tributary::internal
