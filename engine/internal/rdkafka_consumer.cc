#include "engine/internal/rdkafka_consumer.h"

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/internal/log.h"

namespace tributary::internal {
namespace {

PartitionList ListOf(const std::vector<TopicPartition>& partitions) {
  PartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size())));
  for (const auto& [topic, partition] : partitions) {
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), partition);
  }
  return list;
}

PartitionList ListOf(const OffsetMap& offsets) {
  PartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size())));
  for (const auto& [tp, offset] : offsets) {
    rd_kafka_topic_partition_list_add(list.get(), tp.first.c_str(), tp.second)->offset = offset;
  }
  return list;
}

std::vector<TopicPartition> PartitionsOf(const rd_kafka_topic_partition_list_t* list) {
  std::vector<TopicPartition> partitions;
  for (int i = 0; i < list->cnt; ++i) {
    partitions.emplace_back(list->elems[i].topic, list->elems[i].partition);
  }
  return partitions;
}

// The partitions of `list` without an error and with a real offset.
OffsetMap OffsetsOf(const rd_kafka_topic_partition_list_t* list) {
  OffsetMap offsets;
  for (int i = 0; i < list->cnt; ++i) {
    const rd_kafka_topic_partition_t& tp = list->elems[i];
    if (tp.err == RD_KAFKA_RESP_ERR_NO_ERROR && tp.offset >= 0) {
      offsets[{tp.topic, tp.partition}] = tp.offset;
    }
  }
  return offsets;
}

int TimeoutMs(absl::Duration timeout) {
  return static_cast<int>(absl::ToInt64Milliseconds(timeout));
}

}  // namespace

absl::StatusOr<std::unique_ptr<RdKafkaConsumer>> RdKafkaConsumer::Create(
    const std::map<std::string, std::string>& settings, StatsCallback on_stats) {
  std::unique_ptr<RdKafkaConsumer> consumer(new RdKafkaConsumer());
  KafkaConf conf(rd_kafka_conf_new());
  rd_kafka_conf_set_rebalance_cb(conf.get(), &RdKafkaConsumer::RebalanceCallback);
  if (on_stats) {
    consumer->on_stats_ = std::move(on_stats);
    rd_kafka_conf_set_stats_cb(conf.get(), &ForwardStats<RdKafkaConsumer>);
  }
  rd_kafka_conf_set_opaque(conf.get(), consumer.get());
  TRIBUTARY_ASSIGN_OR_RETURN(consumer->handle_,
                             NewKafkaClient(RD_KAFKA_CONSUMER, settings, conf.release()));
  rd_kafka_poll_set_consumer(consumer->handle_.get());
  consumer->queue_.reset(rd_kafka_queue_get_consumer(consumer->handle_.get()));
  return consumer;
}

RdKafkaConsumer::~RdKafkaConsumer() {
  ReleaseBatch();
  for (rd_kafka_topic_t* topic : held_topics_) rd_kafka_topic_destroy(topic);
  queue_.reset();
  handle_.reset();
}

void RdKafkaConsumer::RebalanceCallback(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                        rd_kafka_topic_partition_list_t* partitions,
                                        void* opaque) {
  auto* self = static_cast<RdKafkaConsumer*>(opaque);
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    rd_kafka_assign(rk, partitions);
    if (self->listener_ != nullptr) self->listener_->OnPartitionsAssigned(PartitionsOf(partitions));
  } else {
    if (self->listener_ != nullptr) {
      if (rd_kafka_assignment_lost(rk)) {
        self->listener_->OnPartitionsLost(PartitionsOf(partitions));
      } else {
        self->listener_->OnPartitionsRevoked(PartitionsOf(partitions));
      }
    }
    rd_kafka_assign(rk, nullptr);
  }
}

absl::Status RdKafkaConsumer::Subscribe(const std::vector<std::string>& topics,
                                        RebalanceListener* listener) {
  listener_ = listener;
  PartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(topics.size())));
  for (const std::string& topic : topics) {
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), RD_KAFKA_PARTITION_UA);
  }
  return KafkaStatus(rd_kafka_subscribe(handle_.get(), list.get()), "subscribe");
}

void RdKafkaConsumer::ReleaseBatch() {
  records_.clear();
  messages_.clear();
}

int32_t RdKafkaConsumer::TopicId(rd_kafka_topic_t* topic) {
  auto it = topic_ids_.find(topic);
  if (it != topic_ids_.end()) return it->second;
  rd_kafka_topic_t* held = rd_kafka_topic_new(handle_.get(), rd_kafka_topic_name(topic), nullptr);
  if (held == nullptr) return -1;
  held_topics_.push_back(held);
  const auto id = static_cast<int32_t>(topic_ids_.size());
  topic_ids_[held] = id;
  return id;
}

absl::StatusOr<absl::Span<const PolledRecord>> RdKafkaConsumer::Poll(absl::Duration timeout,
                                                                     int max_records) {
  ReleaseBatch();
  raw_.resize(static_cast<size_t>(max_records));
  ssize_t count =
      rd_kafka_consume_batch_queue(queue_.get(), TimeoutMs(timeout), raw_.data(), raw_.size());
  if (count < 0) return KafkaStatus(rd_kafka_last_error(), "consume batch");
  // Own every message first, so that an early return releases them all.
  for (ssize_t i = 0; i < count; ++i) messages_.emplace_back(raw_[i]);
  records_.reserve(messages_.size());
  for (size_t i = 0; i < messages_.size(); ++i) {
    const rd_kafka_message_t* message = messages_[i].get();
    PolledRecord polled;
    Record& record = polled.record;
    record.topic = message->rkt != nullptr ? rd_kafka_topic_name(message->rkt) : "";
    record.partition = Partition{message->partition};
    record.offset = Offset{message->offset};
    if (message->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      polled.end_of_partition = true;
      records_.push_back(polled);
      continue;
    }
    if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      absl::Status error = KafkaStatus(message->err, "consume");
      if (message->err == RD_KAFKA_RESP_ERR__FATAL) return error;
      // Retrying will not fix credentials: fatal. (A TLS handshake error is
      // fatal at start only: while running, a broker restart can cut one.)
      if (message->err == RD_KAFKA_RESP_ERR__AUTHENTICATION) {
        return ConnectionError(message->err, rd_kafka_message_errstr(message));
      }
      EngineLogger()->warn("{}", error.ToString());
      continue;
    }
    polled.topic_id = TopicId(message->rkt);
    if (message->key != nullptr) {
      record.key = std::string_view(static_cast<const char*>(message->key), message->key_len);
    }
    if (message->payload != nullptr) {
      record.value = std::string_view(static_cast<const char*>(message->payload), message->len);
    }
    record.timestamp = TimestampMs{rd_kafka_message_timestamp(message, nullptr)};
    rd_kafka_headers_t* headers = nullptr;
    if (rd_kafka_message_headers(message, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      const char* name = nullptr;
      const void* value = nullptr;
      size_t size = 0;
      for (size_t h = 0; rd_kafka_header_get_all(headers, h, &name, &value, &size) ==
                         RD_KAFKA_RESP_ERR_NO_ERROR;
           ++h) {
        Header header{name, std::nullopt};
        if (value != nullptr) header.value = std::string_view(static_cast<const char*>(value), size);
        record.headers.push_back(header);
      }
    }
    records_.push_back(polled);
  }
  return absl::MakeConstSpan(records_);
}

absl::Status RdKafkaConsumer::Assign(const OffsetMap& start) {
  ReleaseBatch();
  PartitionList list = ListOf(start);
  return KafkaStatus(rd_kafka_assign(handle_.get(), list.get()), "assign");
}

absl::Status RdKafkaConsumer::Seek(const OffsetMap& offsets) {
  ReleaseBatch();
  PartitionList list = ListOf(offsets);
  TRIBUTARY_RETURN_IF_ERROR(KafkaStatus(
      rd_kafka_seek_partitions(handle_.get(), list.get(), /*timeout_ms=*/10000), "seek"));
  for (int i = 0; i < list->cnt; ++i) {
    TRIBUTARY_RETURN_IF_ERROR(KafkaStatus(
        list->elems[i].err, absl::StrCat("seek ", list->elems[i].topic, "[",
                                         list->elems[i].partition, "]")));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<TopicPartition>> RdKafkaConsumer::Assignment() {
  rd_kafka_topic_partition_list_t* raw = nullptr;
  TRIBUTARY_RETURN_IF_ERROR(KafkaStatus(rd_kafka_assignment(handle_.get(), &raw), "assignment"));
  PartitionList list(raw);
  return PartitionsOf(list.get());
}

absl::Status RdKafkaConsumer::Pause(const std::vector<TopicPartition>& partitions) {
  PartitionList list = ListOf(partitions);
  return KafkaStatus(rd_kafka_pause_partitions(handle_.get(), list.get()), "pause");
}

absl::Status RdKafkaConsumer::Resume(const std::vector<TopicPartition>& partitions) {
  PartitionList list = ListOf(partitions);
  return KafkaStatus(rd_kafka_resume_partitions(handle_.get(), list.get()), "resume");
}

absl::StatusOr<OffsetMap> RdKafkaConsumer::Committed(
    const std::vector<TopicPartition>& partitions, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  OffsetMap committed;
  std::vector<TopicPartition> ask = partitions;
  while (true) {
    PartitionList list = ListOf(ask);
    TRIBUTARY_RETURN_IF_ERROR(KafkaStatus(
        rd_kafka_committed(handle_.get(), list.get(),
                           TimeoutMs(std::max(absl::Milliseconds(1), deadline - absl::Now()))),
        "committed"));
    // A partition whose offsets another producer's open transaction is
    // committing answers UNSTABLE_OFFSET_COMMIT until that transaction ends
    // (KIP-447): ask again. Not an absent commit: starting it from the
    // beginning would process it all again.
    std::vector<TopicPartition> unstable;
    for (int i = 0; i < list->cnt; ++i) {
      const rd_kafka_topic_partition_t& tp = list->elems[i];
      if (tp.err == RD_KAFKA_RESP_ERR_UNSTABLE_OFFSET_COMMIT) {
        unstable.emplace_back(tp.topic, tp.partition);
      } else if (tp.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return KafkaStatus(tp.err, absl::StrCat("committed offset of ", tp.topic, "[",
                                                tp.partition, "]"));
      }
    }
    committed.merge(OffsetsOf(list.get()));
    if (unstable.empty()) return committed;
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "committed offsets of ", unstable.size(), " partition(s), e.g. ", unstable[0].first,
          "[", unstable[0].second, "], still unstable (a transaction committing them is open) "
          "after ", absl::FormatDuration(timeout)));
    }
    absl::SleepFor(absl::Milliseconds(50));  // the other transaction ends or times out
    ask = std::move(unstable);
  }
}

std::optional<int64_t> RdKafkaConsumer::Position(const TopicPartition& partition) {
  PartitionList list = ListOf(std::vector<TopicPartition>{partition});
  if (rd_kafka_position(handle_.get(), list.get()) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      list->elems[0].offset < 0) {
    return std::nullopt;
  }
  return list->elems[0].offset;
}

absl::Status RdKafkaConsumer::CommitOffsets(const OffsetMap& offsets) {
  PartitionList list = ListOf(offsets);
  return KafkaStatus(rd_kafka_commit(handle_.get(), list.get(), 0), "commit offsets");
}

absl::StatusOr<std::string> RdKafkaConsumer::GroupMetadata() {
  internal::GroupMetadata metadata(rd_kafka_consumer_group_metadata(handle_.get()));
  if (!metadata) return absl::FailedPreconditionError("no consumer group metadata");
  void* buffer = nullptr;
  size_t size = 0;
  TRIBUTARY_RETURN_IF_ERROR(KafkaStatus(
      rd_kafka_consumer_group_metadata_write(metadata.get(), &buffer, &size), "group metadata"));
  std::string serialized(static_cast<const char*>(buffer), size);
  rd_kafka_mem_free(nullptr, buffer);
  return serialized;
}

absl::StatusOr<std::pair<int64_t, int64_t>> RdKafkaConsumer::Watermarks(
    const TopicPartition& partition, absl::Duration timeout) {
  return QueryWatermarks(handle_.get(), partition.first, partition.second, timeout);
}

absl::StatusOr<OffsetMap> RdKafkaConsumer::EndOffsets(
    const std::vector<TopicPartition>& partitions, absl::Duration timeout) {
  PartitionList list = ListOf(partitions);
  // Timestamp -1 (Kafka's LATEST): each partition's end offset, all in one
  // ListOffsets request per broker.
  for (int i = 0; i < list->cnt; ++i) list->elems[i].offset = -1;
  TRIBUTARY_RETURN_IF_ERROR(
      KafkaStatus(rd_kafka_offsets_for_times(handle_.get(), list.get(), TimeoutMs(timeout)),
                  "end offsets"));
  return OffsetsOf(list.get());
}

void RdKafkaConsumer::Close() {
  if (closed_) return;
  closed_ = true;
  ReleaseBatch();
  rd_kafka_consumer_close(handle_.get());
}

void RdKafkaConsumer::Wake() {
  // queue_ lives as long as the consumer; yielding it ends a blocking
  // rd_kafka_consume_batch_queue early (thread-safe).
  if (queue_ != nullptr) rd_kafka_queue_yield(queue_.get());
}

}  // namespace tributary::internal
