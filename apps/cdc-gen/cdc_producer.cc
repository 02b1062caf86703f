#include "apps/cdc-gen/cdc_producer.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <deque>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"
#include "base/status_macros.h"

namespace tributary::cdcgen {
namespace {

using Clock = std::chrono::steady_clock;
using internal::KafkaStatus;

constexpr std::array<CdcTopic, 3> kTopics = {
    CdcTopic::kTransaction, CdcTopic::kPurchaseOrder, CdcTopic::kOrderLine};

// Delivery outcomes of the records one ProduceTransactions call sent; the
// records carry a pointer to it as their opaque.
struct DeliveryTracker {
  int64_t delivered = 0;
  int64_t failed = 0;
  rd_kafka_resp_err_t first_error = RD_KAFKA_RESP_ERR_NO_ERROR;
  std::string first_error_topic;
};

void OnDelivery(rd_kafka_t* /*rk*/, const rd_kafka_message_t* message,
                void* /*opaque*/) {
  auto* tracker = static_cast<DeliveryTracker*>(message->_private);
  if (tracker == nullptr) return;  // a record someone else produced
  if (message->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    ++tracker->delivered;
    return;
  }
  if (tracker->failed++ == 0) {
    tracker->first_error = message->err;
    tracker->first_error_topic = rd_kafka_topic_name(message->rkt);
  }
}

absl::Status DeliveryStatus(const DeliveryTracker& tracker) {
  if (tracker.failed == 0) return absl::OkStatus();
  return KafkaStatus(
      tracker.first_error,
      absl::StrCat(tracker.failed, " record(s) not delivered, first to ",
                   tracker.first_error_topic));
}

struct TopicDeleter {
  void operator()(rd_kafka_topic_t* topic) const {
    rd_kafka_topic_destroy(topic);
  }
};
using TopicHandle = std::unique_ptr<rd_kafka_topic_t, TopicDeleter>;

struct MetadataDeleter {
  void operator()(const rd_kafka_metadata_t* metadata) const {
    rd_kafka_metadata_destroy(metadata);
  }
};
using Metadata = std::unique_ptr<const rd_kafka_metadata_t, MetadataDeleter>;

// The topic's partition count; with `require_leaders`, Unavailable until
// every partition has a leader.
absl::StatusOr<int32_t> PartitionCount(rd_kafka_t* rk, rd_kafka_topic_t* topic,
                                       bool require_leaders, int timeout_ms) {
  const rd_kafka_metadata_t* raw = nullptr;
  const std::string name = rd_kafka_topic_name(topic);
  TRIBUTARY_RETURN_IF_ERROR(KafkaStatus(
      rd_kafka_metadata(rk, /*all_topics=*/0, topic, &raw, timeout_ms),
      absl::StrCat("metadata for ", name)));
  Metadata metadata(raw);
  if (metadata->topic_cnt != 1) {
    return absl::UnavailableError(absl::StrCat("no metadata for ", name));
  }
  const rd_kafka_metadata_topic_t& t = metadata->topics[0];
  if (t.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
      t.err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC || t.partition_cnt == 0) {
    return absl::NotFoundError(absl::StrCat(
        "topic ", name,
        " does not exist; create it first (cdc-gen --create-topics)"));
  }
  TRIBUTARY_RETURN_IF_ERROR(
      KafkaStatus(t.err, absl::StrCat("metadata for ", name)));
  if (require_leaders) {
    for (int i = 0; i < t.partition_cnt; ++i) {
      if (t.partitions[i].err != RD_KAFKA_RESP_ERR_NO_ERROR ||
          t.partitions[i].leader < 0) {
        return absl::UnavailableError(
            absl::StrCat(name, " partition ", i, " has no leader yet"));
      }
    }
  }
  return t.partition_cnt;
}

// Paces source transactions at `rate` per second. Tokens accrue
// continuously up to a small burst; waiting serves the producer's delivery
// reports.
class TokenBucket {
 public:
  explicit TokenBucket(double rate)
      : rate_(rate), burst_(std::max(1.0, rate / 50)), last_(Clock::now()) {}

  void Acquire(rd_kafka_t* rk) {
    if (rate_ <= 0) return;
    while (true) {
      const Clock::time_point now = Clock::now();
      tokens_ = std::min(
          burst_,
          tokens_ + std::chrono::duration<double>(now - last_).count() * rate_);
      last_ = now;
      if (tokens_ >= 1) break;
      const int wait_ms = std::max(
          1, static_cast<int>(std::ceil((1 - tokens_) / rate_ * 1000)));
      rd_kafka_poll(rk, wait_ms);
    }
    tokens_ -= 1;
  }

 private:
  double rate_;
  double burst_;
  double tokens_ = 1;
  Clock::time_point last_;
};

absl::Status SetConfig(rd_kafka_conf_t* conf, const std::string& key,
                       const std::string& value) {
  char errstr[512];
  if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), errstr,
                        sizeof(errstr)) != RD_KAFKA_CONF_OK) {
    return absl::InvalidArgumentError(
        absl::StrCat("producer config ", key, "=", value, ": ", errstr));
  }
  return absl::OkStatus();
}

// Sends the records of one ProduceTransactions call.
class Sender {
 public:
  Sender(rd_kafka_t* rk, DeliveryTracker* tracker, ProduceStats* stats)
      : rk_(rk), tracker_(tracker), stats_(stats) {}

  absl::Status Open(const CdcGenerator& generator) {
    for (CdcTopic topic : kTopics) {
      const int i = static_cast<int>(topic);
      topics_[i].reset(
          rd_kafka_topic_new(rk_, generator.topic(topic).c_str(), nullptr));
      if (topics_[i] == nullptr) {
        return KafkaStatus(
            rd_kafka_last_error(),
            absl::StrCat("topic handle ", generator.topic(topic)));
      }
      TRIBUTARY_ASSIGN_OR_RETURN(
          partitions_[i],
          PartitionCount(rk_, topics_[i].get(), /*require_leaders=*/false,
                         /*timeout_ms=*/10000));
    }
    const int32_t markers =
        partitions_[static_cast<int>(CdcTopic::kTransaction)];
    if (markers != 1) {
      return absl::FailedPreconditionError(absl::StrCat(
          "transaction topic ", generator.topic(CdcTopic::kTransaction),
          " has ", markers,
          " partitions; it must have exactly one, because BEGIN/END markers "
          "are only in commit order within one partition"));
    }
    return absl::OkStatus();
  }

  absl::Status Send(const CdcMessage& message) {
    const int i = static_cast<int>(message.topic);
    const int32_t partition = message.topic == CdcTopic::kTransaction
                                  ? 0
                                  : KeyPartition(message.key, partitions_[i]);
    void* value =
        message.value ? const_cast<char*>(message.value->data()) : nullptr;
    const size_t value_size = message.value ? message.value->size() : 0;
    while (true) {
      const rd_kafka_resp_err_t err = rd_kafka_producev(
          rk_, RD_KAFKA_V_RKT(topics_[i].get()),
          RD_KAFKA_V_PARTITION(partition),
          RD_KAFKA_V_KEY(message.key.data(), message.key.size()),
          RD_KAFKA_V_VALUE(value, value_size),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(tracker_),
          RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        return KafkaStatus(
            err,
            absl::StrCat("produce to ", rd_kafka_topic_name(topics_[i].get())));
      }
      rd_kafka_poll(rk_, 10);  // the local queue is full: let it drain
      TRIBUTARY_RETURN_IF_ERROR(DeliveryStatus(*tracker_));
    }
    ++stats_->messages;
    stats_->bytes += static_cast<int64_t>(message.key.size() + value_size);
    if ((stats_->messages & 1023) == 0) rd_kafka_poll(rk_, 0);
    return absl::OkStatus();
  }

 private:
  rd_kafka_t* rk_;
  DeliveryTracker* tracker_;
  ProduceStats* stats_;
  std::array<TopicHandle, 3> topics_;
  std::array<int32_t, 3> partitions_{};
};

absl::Status ProduceAll(rd_kafka_t* producer, CdcGenerator& generator,
                        int64_t count, const ProduceOptions& options,
                        ExpectedSink* expected, DeliveryTracker* tracker,
                        ProduceStats& stats) {
  Sender sender(producer, tracker, &stats);
  TRIBUTARY_RETURN_IF_ERROR(sender.Open(generator));
  const Clock::time_point start = Clock::now();
  TokenBucket bucket(options.rate);
  GeneratedTransaction unit;
  // Orderline records held back by `skew_transactions` units.
  std::deque<std::vector<CdcMessage>> held;
  const auto send_oldest = [&]() -> absl::Status {
    for (const CdcMessage& message : held.front()) {
      TRIBUTARY_RETURN_IF_ERROR(sender.Send(message));
    }
    held.pop_front();
    return absl::OkStatus();
  };

  while (stats.transactions < count) {
    TRIBUTARY_RETURN_IF_ERROR(generator.NextTransaction(unit));
    switch (unit.kind) {
      case GeneratedTransaction::Kind::kTransaction:
        bucket.Acquire(producer);
        ++stats.transactions;
        break;
      case GeneratedTransaction::Kind::kSnapshotRead:
        ++stats.snapshot_reads;
        break;
      case GeneratedTransaction::Kind::kRedelivery:
        ++stats.redeliveries;
        break;
    }
    stats.change_events += unit.change_events;
    if (expected != nullptr) {
      for (const ExpectedVersion& version : unit.expected) {
        TRIBUTARY_RETURN_IF_ERROR(expected->Write(version));
      }
    }
    stats.expected_versions += static_cast<int64_t>(unit.expected.size());

    std::vector<CdcMessage>* lines = nullptr;
    if (options.skew_transactions > 0) lines = &held.emplace_back();
    for (size_t i = 0; i < unit.messages.size(); ++i) {
      CdcMessage& message = unit.messages[i];
      if (lines != nullptr && unit.restarted && i + 1 == unit.messages.size()) {
        // Its END: a reader knows a restarted transaction complete only by
        // positions, so (as Debezium does) every event goes out before END.
        while (!held.empty()) TRIBUTARY_RETURN_IF_ERROR(send_oldest());
        lines = nullptr;
      }
      if (lines != nullptr && message.topic == CdcTopic::kOrderLine) {
        lines->push_back(std::move(message));
      } else {
        TRIBUTARY_RETURN_IF_ERROR(sender.Send(message));
      }
    }
    while (static_cast<int64_t>(held.size()) > options.skew_transactions) {
      TRIBUTARY_RETURN_IF_ERROR(send_oldest());
    }
    TRIBUTARY_RETURN_IF_ERROR(DeliveryStatus(*tracker));
  }
  while (!held.empty()) TRIBUTARY_RETURN_IF_ERROR(send_oldest());

  const rd_kafka_resp_err_t flushed =
      rd_kafka_flush(producer, options.flush_timeout_ms);
  stats.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  TRIBUTARY_RETURN_IF_ERROR(DeliveryStatus(*tracker));
  if (flushed != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return KafkaStatus(flushed,
                       absl::StrCat("flush: ", rd_kafka_outq_len(producer),
                                    " record(s) still undelivered"));
  }
  return absl::OkStatus();
}

}  // namespace

int32_t KeyPartition(std::string_view key, int32_t partition_count) {
  return rd_kafka_msg_partitioner_murmur2(nullptr, key.data(), key.size(),
                                          partition_count, nullptr, nullptr);
}

absl::StatusOr<internal::KafkaHandle> MakeCdcProducer(
    std::string_view bootstrap,
    const std::vector<std::pair<std::string, std::string>>& overrides) {
  internal::KafkaConf conf(rd_kafka_conf_new());
  const std::pair<std::string, std::string> defaults[] = {
      {"bootstrap.servers", std::string(bootstrap)},
      {"enable.idempotence", "true"},
      {"acks", "all"},
      {"linger.ms", "10"},
      {"batch.num.messages", "10000"},
      {"batch.size", "1000000"},
      {"queue.buffering.max.messages", "1000000"},
      {"queue.buffering.max.kbytes", "1048576"},
  };
  for (const auto& [key, value] : defaults) {
    TRIBUTARY_RETURN_IF_ERROR(SetConfig(conf.get(), key, value));
  }
  for (const auto& [key, value] : overrides) {
    TRIBUTARY_RETURN_IF_ERROR(SetConfig(conf.get(), key, value));
  }
  rd_kafka_conf_set_dr_msg_cb(conf.get(), OnDelivery);
  char errstr[512];
  internal::KafkaHandle producer(
      rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), errstr, sizeof(errstr)));
  if (!producer) {
    return absl::InvalidArgumentError(absl::StrCat("rd_kafka_new: ", errstr));
  }
  conf.release();  // owned by the producer now
  return producer;
}

absl::StatusOr<ProduceStats> ProduceTransactions(rd_kafka_t* producer,
                                                 CdcGenerator& generator,
                                                 int64_t count,
                                                 const ProduceOptions& options,
                                                 ExpectedSink* expected) {
  if (count < 0 || options.skew_transactions < 0 || !(options.rate >= 0)) {
    return absl::InvalidArgumentError(
        "count, skew and rate must not be negative");
  }
  // Records in flight point at the tracker until their delivery report has
  // been served, so it must outlive them: on a failure the queue is purged
  // and drained; if records still remain after that, the tracker is leaked
  // on purpose rather than left dangling.
  auto tracker = std::make_unique<DeliveryTracker>();
  ProduceStats stats;
  absl::Status status = ProduceAll(producer, generator, count, options,
                                   expected, tracker.get(), stats);
  if (!status.ok()) {
    rd_kafka_purge(producer,
                   RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    (void)rd_kafka_flush(producer, 10000);  // serves the purged reports
    if (rd_kafka_outq_len(producer) > 0) (void)tracker.release();
    return status;
  }
  return stats;
}

absl::Status CreateTopics(std::string_view bootstrap,
                          const GeneratorOptions& options, int table_partitions,
                          int timeout_ms) {
  if (table_partitions < 1) {
    return absl::InvalidArgumentError(
        "table topics need at least one partition");
  }
  TRIBUTARY_ASSIGN_OR_RETURN(internal::KafkaHandle admin,
                             MakeCdcProducer(bootstrap, {}));
  rd_kafka_t* rk = admin.get();
  const Clock::time_point deadline =
      Clock::now() + std::chrono::milliseconds(timeout_ms);

  struct NewTopicDeleter {
    void operator()(rd_kafka_NewTopic_t* t) const {
      rd_kafka_NewTopic_destroy(t);
    }
  };
  struct OptionsDeleter {
    void operator()(rd_kafka_AdminOptions_t* o) const {
      rd_kafka_AdminOptions_destroy(o);
    }
  };
  struct EventDeleter {
    void operator()(rd_kafka_event_t* e) const { rd_kafka_event_destroy(e); }
  };
  char errstr[512];
  std::vector<std::unique_ptr<rd_kafka_NewTopic_t, NewTopicDeleter>> owned;
  std::vector<rd_kafka_NewTopic_t*> topics;
  for (CdcTopic topic : kTopics) {
    const std::string name = options.TopicName(topic);
    const int partitions =
        topic == CdcTopic::kTransaction ? 1 : table_partitions;
    owned.emplace_back(rd_kafka_NewTopic_new(name.c_str(), partitions,
                                             /*replication_factor=*/1, errstr,
                                             sizeof(errstr)));
    if (owned.back() == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("topic ", name, ": ", errstr));
    }
    topics.push_back(owned.back().get());
  }
  std::unique_ptr<rd_kafka_AdminOptions_t, OptionsDeleter> admin_options(
      rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS));
  if (rd_kafka_AdminOptions_set_request_timeout(admin_options.get(), timeout_ms,
                                                errstr, sizeof(errstr)) ||
      rd_kafka_AdminOptions_set_operation_timeout(
          admin_options.get(), timeout_ms, errstr, sizeof(errstr))) {
    return absl::InvalidArgumentError(absl::StrCat("admin options: ", errstr));
  }
  internal::KafkaQueue queue(rd_kafka_queue_new(rk));
  rd_kafka_CreateTopics(rk, topics.data(), topics.size(), admin_options.get(),
                        queue.get());
  std::unique_ptr<rd_kafka_event_t, EventDeleter> event(
      rd_kafka_queue_poll(queue.get(), timeout_ms + 5000));
  if (event == nullptr) {
    return absl::DeadlineExceededError(
        absl::StrCat("CreateTopics: no answer in ", timeout_ms, " ms"));
  }
  TRIBUTARY_RETURN_IF_ERROR(
      KafkaStatus(rd_kafka_event_error(event.get()), "CreateTopics"));
  const rd_kafka_CreateTopics_result_t* result =
      rd_kafka_event_CreateTopics_result(event.get());
  if (result == nullptr) {
    return absl::InternalError("CreateTopics: unexpected answer");
  }
  size_t result_count = 0;
  const rd_kafka_topic_result_t** results =
      rd_kafka_CreateTopics_result_topics(result, &result_count);
  for (size_t i = 0; i < result_count; ++i) {
    const rd_kafka_resp_err_t err = rd_kafka_topic_result_error(results[i]);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR ||
        err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
      continue;
    }
    const char* message = rd_kafka_topic_result_error_string(results[i]);
    return KafkaStatus(err, absl::StrCat("create topic ",
                                         rd_kafka_topic_result_name(results[i]),
                                         message != nullptr ? ": " : "",
                                         message != nullptr ? message : ""));
  }

  // Wait until the broker serves every partition.
  for (CdcTopic topic : kTopics) {
    TopicHandle handle(
        rd_kafka_topic_new(rk, options.TopicName(topic).c_str(), nullptr));
    while (true) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                            deadline - Clock::now())
                            .count();
      absl::StatusOr<int32_t> ready =
          PartitionCount(rk, handle.get(), /*require_leaders=*/true,
                         static_cast<int>(std::max<int64_t>(left, 1000)));
      if (ready.ok()) break;
      if (Clock::now() >= deadline) return ready.status();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  return absl::OkStatus();
}

absl::Status CreateTopics(MockCluster& cluster, const GeneratorOptions& options,
                          int table_partitions) {
  if (table_partitions < 1) {
    return absl::InvalidArgumentError(
        "table topics need at least one partition");
  }
  for (CdcTopic topic : kTopics) {
    TRIBUTARY_RETURN_IF_ERROR(cluster.CreateTopic(
        options.TopicName(topic),
        topic == CdcTopic::kTransaction ? 1 : table_partitions));
  }
  return absl::OkStatus();
}

}  // namespace tributary::cdcgen
