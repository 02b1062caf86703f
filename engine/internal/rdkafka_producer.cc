#include "engine/internal/rdkafka_producer.h"

#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"
#include "base/status_macros.h"

namespace tributary::internal {
namespace {

constexpr int kKafkaTimeoutMs = 30000;

bool IsFencedCode(rd_kafka_resp_err_t err) {
  return err == RD_KAFKA_RESP_ERR__FENCED || err == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
         err == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH;
}

// After RD_KAFKA_RESP_ERR__FATAL: the producer's fatal error, fenced or not.
absl::Status FatalStatus(rd_kafka_t* producer, std::string_view context) {
  char reason[512] = "";
  rd_kafka_resp_err_t err = rd_kafka_fatal_error(producer, reason, sizeof(reason));
  std::string message = absl::StrCat(Sv(context), ": fatal: ", reason);
  if (IsFencedCode(err)) return ProducerFencedError(message);
  return absl::FailedPreconditionError(message);
}

}  // namespace

absl::StatusOr<std::unique_ptr<RdKafkaProducer>> RdKafkaProducer::Create(
    const std::map<std::string, std::string>& settings, StatsCallback on_stats) {
  std::unique_ptr<RdKafkaProducer> producer(new RdKafkaProducer());
  KafkaConf conf(rd_kafka_conf_new());
  rd_kafka_conf_set_dr_msg_cb(conf.get(), &RdKafkaProducer::DeliveryReport);
  if (on_stats) {
    producer->on_stats_ = std::move(on_stats);
    rd_kafka_conf_set_stats_cb(conf.get(), &ForwardStats<RdKafkaProducer>);
  }
  rd_kafka_conf_set_opaque(conf.get(), producer.get());
  TRIBUTARY_ASSIGN_OR_RETURN(producer->handle_,
                             NewKafkaClient(RD_KAFKA_PRODUCER, settings, conf.release()));
  return producer;
}

RdKafkaProducer::~RdKafkaProducer() {
  for (auto& [name, handle] : topics_) rd_kafka_topic_destroy(handle);
  handle_.reset();
}

void RdKafkaProducer::DeliveryReport(rd_kafka_t* rk, const rd_kafka_message_t* message,
                                     void* opaque) {
  if (message->err == RD_KAFKA_RESP_ERR_NO_ERROR || opaque == nullptr) return;
  auto* self = static_cast<RdKafkaProducer*>(opaque);
  if (!self->delivery_error_.ok()) return;
  std::string context = absl::StrCat("delivery to ", rd_kafka_topic_name(message->rkt), "[",
                                     message->partition, "]");
  self->delivery_error_ = message->err == RD_KAFKA_RESP_ERR__FATAL
                              ? FatalStatus(rk, context)
                              : KafkaStatus(message->err, context);
}

absl::Status RdKafkaProducer::TransactionStatus(rd_kafka_error_t* error,
                                                std::string_view context) {
  if (error != nullptr && rd_kafka_error_is_fatal(error) &&
      IsFencedCode(rd_kafka_error_code(error))) {
    std::string message = absl::StrCat(Sv(context), ": ", rd_kafka_error_string(error));
    rd_kafka_error_destroy(error);
    return ProducerFencedError(message);
  }
  return KafkaStatus(error, context);
}

absl::Status RdKafkaProducer::InitTransactions() {
  return TransactionStatus(rd_kafka_init_transactions(handle_.get(), kKafkaTimeoutMs),
                           "init_transactions");
}

absl::Status RdKafkaProducer::BeginTransaction() {
  return TransactionStatus(rd_kafka_begin_transaction(handle_.get()), "begin_transaction");
}

absl::Status RdKafkaProducer::SendOffsetsToTransaction(const OffsetMap& offsets,
                                                       std::string_view group_metadata) {
  rd_kafka_consumer_group_metadata_t* raw = nullptr;
  TRIBUTARY_RETURN_IF_ERROR(KafkaStatus(
      rd_kafka_consumer_group_metadata_read(&raw, group_metadata.data(), group_metadata.size()),
      "group metadata"));
  GroupMetadata metadata(raw);
  PartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size())));
  for (const auto& [tp, next] : offsets) {
    rd_kafka_topic_partition_list_add(list.get(), tp.first.c_str(), tp.second)->offset = next;
  }
  return TransactionStatus(rd_kafka_send_offsets_to_transaction(handle_.get(), list.get(),
                                                                metadata.get(), kKafkaTimeoutMs),
                           "send_offsets_to_transaction");
}

absl::Status RdKafkaProducer::CommitTransaction() {
  return TransactionStatus(rd_kafka_commit_transaction(handle_.get(), kKafkaTimeoutMs),
                           "commit_transaction");
}

absl::Status RdKafkaProducer::AbortTransaction() {
  return TransactionStatus(rd_kafka_abort_transaction(handle_.get(), kKafkaTimeoutMs),
                           "abort_transaction");
}

absl::Status RdKafkaProducer::Flush() {
  return KafkaStatus(rd_kafka_flush(handle_.get(), kKafkaTimeoutMs), "flush");
}

void RdKafkaProducer::Poll() { rd_kafka_poll(handle_.get(), 0); }

absl::Status RdKafkaProducer::TakeDeliveryError() {
  absl::Status error = std::move(delivery_error_);
  delivery_error_ = absl::OkStatus();
  return error;
}

rd_kafka_topic_t* RdKafkaProducer::Topic(std::string_view topic) {
  auto it = topics_.find(topic);
  if (it != topics_.end()) return it->second;
  std::string name(topic);
  rd_kafka_topic_t* handle = rd_kafka_topic_new(handle_.get(), name.c_str(), nullptr);
  if (handle == nullptr) return nullptr;
  topics_.emplace(std::move(name), handle);
  return handle;
}

void RdKafkaProducer::PrepareTopic(std::string_view topic) { (void)Topic(topic); }

absl::Status RdKafkaProducer::Send(std::string_view topic, const Record& record,
                                   std::optional<Partition> partition) {
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
        handle_.get(), RD_KAFKA_V_RKT(handle), RD_KAFKA_V_PARTITION(chosen),
        RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE(value, value_len),
        RD_KAFKA_V_TIMESTAMP(record.timestamp.value > 0 ? record.timestamp.value : 0),
        RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return delivery_error_;
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && attempt < 6000) {
      rd_kafka_poll(handle_.get(), 10);  // serve delivery reports to make room
      continue;
    }
    if (headers != nullptr) rd_kafka_headers_destroy(headers);
    std::string context = absl::StrCat("produce to ", Sv(topic));
    if (err == RD_KAFKA_RESP_ERR__FATAL) return FatalStatus(handle_.get(), context);
    return KafkaStatus(err, context);
  }
}

absl::StatusOr<int32_t> RdKafkaProducer::PartitionCount(std::string_view topic) {
  auto it = partition_counts_.find(topic);
  if (it != partition_counts_.end()) return it->second;
  std::string name(topic);
  rd_kafka_topic_t* handle = rd_kafka_topic_new(handle_.get(), name.c_str(), nullptr);
  const rd_kafka_metadata_t* metadata = nullptr;
  rd_kafka_resp_err_t err = rd_kafka_metadata(handle_.get(), 0, handle, &metadata, 10000);
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

absl::StatusOr<int64_t> RdKafkaProducer::EndOffset(const TopicPartition& partition) {
  TRIBUTARY_ASSIGN_OR_RETURN(auto watermarks, QueryWatermarks(handle_.get(), partition.first,
                                                              partition.second,
                                                              absl::Seconds(60)));
  return watermarks.second;
}

}  // namespace tributary::internal
