#include "engine/kafka_clients.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "base/absl_compat.h"
#include "base/status_macros.h"
#include "engine/internal/rdkafka_handles.h"

namespace tributary {
namespace {

using Clock = std::chrono::steady_clock;
using internal::KafkaHandle;
using internal::KafkaStatus;

struct TopicDeleter {
  void operator()(rd_kafka_topic_t* topic) const { rd_kafka_topic_destroy(topic); }
};
using TopicHandle = std::unique_ptr<rd_kafka_topic_t, TopicDeleter>;

struct AdminDeleter {
  void operator()(const rd_kafka_metadata_t* m) const { rd_kafka_metadata_destroy(m); }
  void operator()(rd_kafka_NewTopic_t* t) const { rd_kafka_NewTopic_destroy(t); }
  void operator()(rd_kafka_DeleteTopic_t* t) const { rd_kafka_DeleteTopic_destroy(t); }
  void operator()(rd_kafka_AdminOptions_t* o) const { rd_kafka_AdminOptions_destroy(o); }
  void operator()(rd_kafka_event_t* e) const { rd_kafka_event_destroy(e); }
  void operator()(rd_kafka_ListConsumerGroupOffsets_t* l) const {
    rd_kafka_ListConsumerGroupOffsets_destroy(l);
  }
  void operator()(rd_kafka_AlterConsumerGroupOffsets_t* a) const {
    rd_kafka_AlterConsumerGroupOffsets_destroy(a);
  }
  void operator()(rd_kafka_DeleteConsumerGroupOffsets_t* d) const {
    rd_kafka_DeleteConsumerGroupOffsets_destroy(d);
  }
};
template <typename T>
using AdminPtr = std::unique_ptr<T, AdminDeleter>;

// The topic's partition count; with `require_leaders`, Unavailable until
// every partition has a leader.
absl::StatusOr<int32_t> PartitionCountOf(rd_kafka_t* rk, rd_kafka_topic_t* topic,
                                         bool require_leaders, int timeout_ms) {
  const rd_kafka_metadata_t* raw = nullptr;
  const std::string name = rd_kafka_topic_name(topic);
  TRIBUTARY_RETURN_IF_ERROR(
      KafkaStatus(rd_kafka_metadata(rk, /*all_topics=*/0, topic, &raw, timeout_ms),
                  absl::StrCat("metadata for ", name)));
  AdminPtr<const rd_kafka_metadata_t> metadata(raw);
  if (metadata->topic_cnt != 1) {
    return absl::UnavailableError(absl::StrCat("no metadata for ", name));
  }
  const rd_kafka_metadata_topic_t& t = metadata->topics[0];
  if (t.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
      t.err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC || t.partition_cnt == 0) {
    return absl::NotFoundError(absl::StrCat("topic ", name, " does not exist"));
  }
  TRIBUTARY_RETURN_IF_ERROR(KafkaStatus(t.err, absl::StrCat("metadata for ", name)));
  if (require_leaders) {
    for (int i = 0; i < t.partition_cnt; ++i) {
      if (t.partitions[i].err != RD_KAFKA_RESP_ERR_NO_ERROR || t.partitions[i].leader < 0) {
        return absl::UnavailableError(absl::StrCat(name, " partition ", i, " has no leader yet"));
      }
    }
  }
  return t.partition_cnt;
}

absl::StatusOr<int32_t> PartitionCountByName(rd_kafka_t* rk, std::string_view topic,
                                             bool require_leaders, int timeout_ms) {
  TopicHandle handle(rd_kafka_topic_new(rk, std::string(topic).c_str(), nullptr));
  if (handle == nullptr) {
    return KafkaStatus(rd_kafka_last_error(), absl::StrCat("topic handle ", Sv(topic)));
  }
  return PartitionCountOf(rk, handle.get(), require_leaders, timeout_ms);
}

// Admin options for `op` with a request timeout (and, for topic operations,
// the same operation timeout: the broker answers once the controller is done).
absl::StatusOr<AdminPtr<rd_kafka_AdminOptions_t>> NewAdminOptions(rd_kafka_t* rk,
                                                                  rd_kafka_admin_op_t op,
                                                                  int timeout_ms) {
  char errstr[512];
  AdminPtr<rd_kafka_AdminOptions_t> options(rd_kafka_AdminOptions_new(rk, op));
  if (rd_kafka_AdminOptions_set_request_timeout(options.get(), timeout_ms, errstr,
                                                sizeof(errstr))) {
    return absl::InvalidArgumentError(absl::StrCat("admin options: ", errstr));
  }
  if ((op == RD_KAFKA_ADMIN_OP_CREATETOPICS || op == RD_KAFKA_ADMIN_OP_DELETETOPICS) &&
      rd_kafka_AdminOptions_set_operation_timeout(options.get(), timeout_ms, errstr,
                                                  sizeof(errstr))) {
    return absl::InvalidArgumentError(absl::StrCat("admin options: ", errstr));
  }
  return options;
}

// The answer to an admin request sent to `queue`, or its request-level error.
absl::StatusOr<AdminPtr<rd_kafka_event_t>> AwaitAdminResult(rd_kafka_queue_t* queue,
                                                            int timeout_ms,
                                                            std::string_view what) {
  AdminPtr<rd_kafka_event_t> event(rd_kafka_queue_poll(queue, timeout_ms + 5000));
  if (event == nullptr) {
    return absl::DeadlineExceededError(
        absl::StrCat(Sv(what), ": no answer in ", timeout_ms, " ms"));
  }
  if (rd_kafka_event_error(event.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::Status(
        KafkaStatus(rd_kafka_event_error(event.get()), what).code(),
        absl::StrCat(Sv(what), ": ", rd_kafka_event_error_string(event.get())));
  }
  return event;
}

// A status for a group result's error (owned by the result), or per
// partition errors named; OK when neither.
absl::Status GroupResultStatus(const rd_kafka_group_result_t* result, std::string_view what) {
  if (const rd_kafka_error_t* error = rd_kafka_group_result_error(result)) {
    return absl::Status(KafkaStatus(rd_kafka_error_code(error), what).code(),
                        absl::StrCat(Sv(what), ": ", rd_kafka_error_string(error)));
  }
  const rd_kafka_topic_partition_list_t* partitions = rd_kafka_group_result_partitions(result);
  std::vector<std::string> failed;
  rd_kafka_resp_err_t first = RD_KAFKA_RESP_ERR_NO_ERROR;
  for (int i = 0; partitions != nullptr && i < partitions->cnt; ++i) {
    const rd_kafka_topic_partition_t& p = partitions->elems[i];
    if (p.err == RD_KAFKA_RESP_ERR_NO_ERROR) continue;
    if (first == RD_KAFKA_RESP_ERR_NO_ERROR) first = p.err;
    failed.push_back(absl::StrCat(p.topic, "[", p.partition, "]: ", rd_kafka_err2name(p.err)));
  }
  if (failed.empty()) return absl::OkStatus();
  return absl::Status(KafkaStatus(first, what).code(),
                      absl::StrCat(Sv(what), ": ", absl::StrJoin(failed, ", ")));
}

// The one group result of a group offsets request.
absl::StatusOr<const rd_kafka_group_result_t*> OneGroupResult(
    const rd_kafka_group_result_t** groups, size_t count, std::string_view what) {
  if (groups == nullptr || count != 1) {
    return absl::InternalError(absl::StrCat(Sv(what), ": ", count, " group results"));
  }
  return groups[0];
}

internal::PartitionList ToPartitionList(absl::Span<const TopicPartitionOffset> offsets) {
  internal::PartitionList list(
      rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size())));
  for (const TopicPartitionOffset& o : offsets) {
    rd_kafka_topic_partition_list_add(list.get(), o.topic.c_str(), o.partition.value)->offset =
        o.offset.value;
  }
  return list;
}

// Delivery outcomes of everything a KafkaProducer sent; the producer's opaque.
struct DeliveryTracker {
  int64_t delivered = 0;
  int64_t failed = 0;
  rd_kafka_resp_err_t first_error = RD_KAFKA_RESP_ERR_NO_ERROR;
  std::string first_error_topic;

  absl::Status Status() const {
    if (failed == 0) return absl::OkStatus();
    return KafkaStatus(first_error, absl::StrCat(failed, " record(s) not delivered, first to ",
                                                 first_error_topic));
  }
};

void OnDelivery(rd_kafka_t* /*rk*/, const rd_kafka_message_t* message, void* opaque) {
  auto* tracker = static_cast<DeliveryTracker*>(opaque);
  if (message->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    ++tracker->delivered;
    return;
  }
  if (tracker->failed++ == 0) {
    tracker->first_error = message->err;
    tracker->first_error_topic = rd_kafka_topic_name(message->rkt);
  }
}

}  // namespace

// --- KafkaProducer -------------------------------------------------------------

struct KafkaProducer::Impl {
  // Members are destroyed bottom up: topic handles before the client, the
  // client (which serves its last reports) before the tracker.
  DeliveryTracker tracker;
  KafkaHandle rk;
  absl::flat_hash_map<std::string, TopicHandle> topics;

  absl::StatusOr<rd_kafka_topic_t*> Topic(std::string_view name) {
    auto it = topics.find(Sv(name));
    if (it != topics.end()) return it->second.get();
    TopicHandle handle(rd_kafka_topic_new(rk.get(), std::string(name).c_str(), nullptr));
    if (handle == nullptr) {
      return KafkaStatus(rd_kafka_last_error(), absl::StrCat("topic handle ", Sv(name)));
    }
    return topics.emplace(std::string(name), std::move(handle)).first->second.get();
  }
};

KafkaProducer::KafkaProducer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
KafkaProducer::~KafkaProducer() = default;

absl::StatusOr<std::unique_ptr<KafkaProducer>> KafkaProducer::Open(
    const KafkaSettings& settings) {
  auto impl = std::make_unique<Impl>();
  internal::KafkaConf conf(rd_kafka_conf_new());
  rd_kafka_conf_set_opaque(conf.get(), &impl->tracker);
  rd_kafka_conf_set_dr_msg_cb(conf.get(), OnDelivery);
  TRIBUTARY_ASSIGN_OR_RETURN(impl->rk,
                             internal::NewKafkaClient(RD_KAFKA_PRODUCER, settings, conf.release()));
  return std::unique_ptr<KafkaProducer>(new KafkaProducer(std::move(impl)));
}

int32_t KafkaProducer::DefaultPartition(std::string_view key, int32_t partition_count) {
  return rd_kafka_msg_partitioner_murmur2(nullptr, key.data(), key.size(), partition_count,
                                          nullptr, nullptr);
}

absl::StatusOr<int32_t> KafkaProducer::PartitionCount(std::string_view topic, int timeout_ms) {
  TRIBUTARY_ASSIGN_OR_RETURN(rd_kafka_topic_t * handle, impl_->Topic(topic));
  return PartitionCountOf(impl_->rk.get(), handle, /*require_leaders=*/false, timeout_ms);
}

absl::Status KafkaProducer::Send(std::string_view topic, int32_t partition, std::string_view key,
                                 std::optional<std::string_view> value) {
  TRIBUTARY_ASSIGN_OR_RETURN(rd_kafka_topic_t * handle, impl_->Topic(topic));
  void* payload = value ? const_cast<char*>(value->data()) : nullptr;
  const size_t payload_size = value ? value->size() : 0;
  while (true) {
    const rd_kafka_resp_err_t err = rd_kafka_producev(
        impl_->rk.get(), RD_KAFKA_V_RKT(handle), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_KEY(key.data(), key.size()), RD_KAFKA_V_VALUE(payload, payload_size),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return absl::OkStatus();
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      return KafkaStatus(err, absl::StrCat("produce to ", Sv(topic)));
    }
    rd_kafka_poll(impl_->rk.get(), 10);  // the local queue is full: let it drain
    TRIBUTARY_RETURN_IF_ERROR(impl_->tracker.Status());
  }
}

void KafkaProducer::Poll(int timeout_ms) { rd_kafka_poll(impl_->rk.get(), timeout_ms); }

absl::Status KafkaProducer::Flush(int timeout_ms) {
  const rd_kafka_resp_err_t flushed = rd_kafka_flush(impl_->rk.get(), timeout_ms);
  TRIBUTARY_RETURN_IF_ERROR(impl_->tracker.Status());
  if (flushed != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return KafkaStatus(flushed, absl::StrCat("flush: ", rd_kafka_outq_len(impl_->rk.get()),
                                             " record(s) still undelivered"));
  }
  return absl::OkStatus();
}

absl::Status KafkaProducer::DeliveryStatus() const { return impl_->tracker.Status(); }
int64_t KafkaProducer::delivered() const { return impl_->tracker.delivered; }

void KafkaProducer::Purge(int timeout_ms) {
  rd_kafka_purge(impl_->rk.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  (void)rd_kafka_flush(impl_->rk.get(), timeout_ms);  // serves the purged reports
}

// --- KafkaReader ---------------------------------------------------------------

struct KafkaReader::Impl {
  KafkaHandle rk;
  bool closed = false;
};

KafkaReader::KafkaReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
KafkaReader::~KafkaReader() { Close(); }

absl::StatusOr<std::unique_ptr<KafkaReader>> KafkaReader::Open(const KafkaSettings& settings) {
  KafkaSettings all = {{"isolation.level", "read_committed"}, {"auto.offset.reset", "earliest"}};
  for (const auto& [key, value] : settings) all[key] = value;
  auto impl = std::make_unique<Impl>();
  TRIBUTARY_ASSIGN_OR_RETURN(impl->rk, internal::NewKafkaClient(RD_KAFKA_CONSUMER, all));
  rd_kafka_poll_set_consumer(impl->rk.get());
  return std::unique_ptr<KafkaReader>(new KafkaReader(std::move(impl)));
}

absl::Status KafkaReader::Subscribe(const std::vector<std::string>& topics) {
  internal::PartitionList list(
      rd_kafka_topic_partition_list_new(static_cast<int>(topics.size())));
  for (const std::string& topic : topics) {
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), RD_KAFKA_PARTITION_UA);
  }
  return KafkaStatus(rd_kafka_subscribe(impl_->rk.get(), list.get()), "subscribe");
}

absl::Status KafkaReader::AssignFromBeginning(std::string_view topic, int32_t partitions) {
  internal::PartitionList list(rd_kafka_topic_partition_list_new(partitions));
  const std::string name(topic);
  for (int32_t p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(list.get(), name.c_str(), p)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
  }
  return KafkaStatus(rd_kafka_assign(impl_->rk.get(), list.get()),
                     absl::StrCat("assign ", name));
}

absl::StatusOr<std::optional<ConsumedRecord>> KafkaReader::Poll(int timeout_ms) {
  internal::KafkaMessage message(rd_kafka_consumer_poll(impl_->rk.get(), timeout_ms));
  if (!message) return std::nullopt;
  ConsumedRecord record;
  record.partition = message->partition;
  record.offset = message->offset;
  if (message->rkt != nullptr) record.topic = rd_kafka_topic_name(message->rkt);
  if (message->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
    record.end_of_partition = true;
    return record;
  }
  if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return KafkaStatus(message->err, absl::StrCat("consume ", record.topic));
  }
  if (message->key != nullptr) {
    record.key.assign(static_cast<const char*>(message->key), message->key_len);
  }
  if (message->payload != nullptr) {
    record.value.emplace(static_cast<const char*>(message->payload), message->len);
  }
  return record;
}

void KafkaReader::Close() {
  if (impl_->closed) return;
  impl_->closed = true;
  rd_kafka_consumer_close(impl_->rk.get());
}

// --- KafkaAdmin ----------------------------------------------------------------

struct KafkaAdmin::Impl {
  KafkaHandle rk;
};

KafkaAdmin::KafkaAdmin(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
KafkaAdmin::~KafkaAdmin() = default;

absl::StatusOr<std::unique_ptr<KafkaAdmin>> KafkaAdmin::Open(const KafkaSettings& settings) {
  auto impl = std::make_unique<Impl>();
  TRIBUTARY_ASSIGN_OR_RETURN(impl->rk, internal::NewKafkaClient(RD_KAFKA_PRODUCER, settings));
  return std::unique_ptr<KafkaAdmin>(new KafkaAdmin(std::move(impl)));
}

absl::StatusOr<int32_t> KafkaAdmin::PartitionCount(std::string_view topic, bool require_leaders,
                                                   int timeout_ms) {
  return PartitionCountByName(impl_->rk.get(), topic, require_leaders, timeout_ms);
}

absl::Status KafkaAdmin::CreateTopics(absl::Span<const NewTopic> topics, int timeout_ms) {
  rd_kafka_t* rk = impl_->rk.get();
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  char errstr[512];
  std::vector<AdminPtr<rd_kafka_NewTopic_t>> owned;
  std::vector<rd_kafka_NewTopic_t*> requests;
  for (const NewTopic& topic : topics) {
    owned.emplace_back(rd_kafka_NewTopic_new(topic.name.c_str(), topic.partitions,
                                             topic.replication_factor, errstr, sizeof(errstr)));
    if (owned.back() == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("topic ", topic.name, ": ", errstr));
    }
    requests.push_back(owned.back().get());
  }
  TRIBUTARY_ASSIGN_OR_RETURN(
      AdminPtr<rd_kafka_AdminOptions_t> options,
      NewAdminOptions(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS, timeout_ms));
  internal::KafkaQueue queue(rd_kafka_queue_new(rk));
  rd_kafka_CreateTopics(rk, requests.data(), requests.size(), options.get(), queue.get());
  TRIBUTARY_ASSIGN_OR_RETURN(AdminPtr<rd_kafka_event_t> event,
                             AwaitAdminResult(queue.get(), timeout_ms, "CreateTopics"));
  const rd_kafka_CreateTopics_result_t* result = rd_kafka_event_CreateTopics_result(event.get());
  if (result == nullptr) return absl::InternalError("CreateTopics: unexpected answer");
  size_t result_count = 0;
  const rd_kafka_topic_result_t** results =
      rd_kafka_CreateTopics_result_topics(result, &result_count);
  for (size_t i = 0; i < result_count; ++i) {
    const rd_kafka_resp_err_t err = rd_kafka_topic_result_error(results[i]);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
      continue;
    }
    const char* message = rd_kafka_topic_result_error_string(results[i]);
    return KafkaStatus(err, absl::StrCat("create topic ", rd_kafka_topic_result_name(results[i]),
                                         message != nullptr ? ": " : "",
                                         message != nullptr ? message : ""));
  }

  // Wait until the cluster serves every partition.
  for (const NewTopic& topic : topics) {
    while (true) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      absl::StatusOr<int32_t> ready =
          PartitionCountByName(rk, topic.name, /*require_leaders=*/true,
                               static_cast<int>(std::max<int64_t>(left, 1000)));
      if (ready.ok()) break;
      if (Clock::now() >= deadline) return ready.status();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  return absl::OkStatus();
}

absl::Status KafkaAdmin::DeleteTopics(absl::Span<const std::string> names, int timeout_ms) {
  if (names.empty()) return absl::OkStatus();
  rd_kafka_t* rk = impl_->rk.get();
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  std::vector<AdminPtr<rd_kafka_DeleteTopic_t>> owned;
  std::vector<rd_kafka_DeleteTopic_t*> requests;
  for (const std::string& name : names) {
    owned.emplace_back(rd_kafka_DeleteTopic_new(name.c_str()));
    requests.push_back(owned.back().get());
  }
  TRIBUTARY_ASSIGN_OR_RETURN(
      AdminPtr<rd_kafka_AdminOptions_t> options,
      NewAdminOptions(rk, RD_KAFKA_ADMIN_OP_DELETETOPICS, timeout_ms));
  internal::KafkaQueue queue(rd_kafka_queue_new(rk));
  rd_kafka_DeleteTopics(rk, requests.data(), requests.size(), options.get(), queue.get());
  TRIBUTARY_ASSIGN_OR_RETURN(AdminPtr<rd_kafka_event_t> event,
                             AwaitAdminResult(queue.get(), timeout_ms, "DeleteTopics"));
  const rd_kafka_DeleteTopics_result_t* result = rd_kafka_event_DeleteTopics_result(event.get());
  if (result == nullptr) return absl::InternalError("DeleteTopics: unexpected answer");
  size_t result_count = 0;
  const rd_kafka_topic_result_t** results =
      rd_kafka_DeleteTopics_result_topics(result, &result_count);
  std::vector<std::string> failed;
  rd_kafka_resp_err_t first = RD_KAFKA_RESP_ERR_NO_ERROR;
  for (size_t i = 0; i < result_count; ++i) {
    const rd_kafka_resp_err_t err = rd_kafka_topic_result_error(results[i]);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
      continue;
    }
    if (first == RD_KAFKA_RESP_ERR_NO_ERROR) first = err;
    const char* message = rd_kafka_topic_result_error_string(results[i]);
    failed.push_back(absl::StrCat(rd_kafka_topic_result_name(results[i]), ": ",
                                  message != nullptr ? message : rd_kafka_err2name(err)));
  }
  if (!failed.empty()) {
    return absl::Status(KafkaStatus(first, "DeleteTopics").code(),
                        absl::StrCat("DeleteTopics: ", absl::StrJoin(failed, "; ")));
  }

  // Wait until the cluster's metadata shows none of them any more.
  while (true) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    absl::StatusOr<std::map<std::string, int32_t>> topics =
        ListTopics(static_cast<int>(std::max<int64_t>(left, 1000)));
    std::vector<std::string> remaining;
    if (topics.ok()) {
      for (const std::string& name : names) {
        if (topics->count(name) > 0) remaining.push_back(name);
      }
      if (remaining.empty()) return absl::OkStatus();
    }
    if (Clock::now() >= deadline) {
      if (!topics.ok()) return topics.status();
      return absl::DeadlineExceededError(absl::StrCat("DeleteTopics: still listed after ",
                                                      timeout_ms, " ms: ",
                                                      absl::StrJoin(remaining, ", ")));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

absl::StatusOr<std::map<std::string, int32_t>> KafkaAdmin::ListTopics(int timeout_ms) {
  const rd_kafka_metadata_t* raw = nullptr;
  TRIBUTARY_RETURN_IF_ERROR(KafkaStatus(
      rd_kafka_metadata(impl_->rk.get(), /*all_topics=*/1, nullptr, &raw, timeout_ms),
      "metadata of all topics"));
  AdminPtr<const rd_kafka_metadata_t> metadata(raw);
  std::map<std::string, int32_t> topics;
  for (int i = 0; i < metadata->topic_cnt; ++i) {
    const rd_kafka_metadata_topic_t& t = metadata->topics[i];
    if (t.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || absl::StartsWith(t.topic, "__")) {
      continue;
    }
    topics[t.topic] = t.partition_cnt;
  }
  return topics;
}

absl::StatusOr<KafkaAdmin::Watermarks> KafkaAdmin::QueryWatermarks(std::string_view topic,
                                                                   Partition partition,
                                                                   int timeout_ms) {
  TRIBUTARY_ASSIGN_OR_RETURN(
      auto marks, internal::QueryWatermarks(impl_->rk.get(), std::string(topic), partition.value,
                                            absl::Milliseconds(timeout_ms)));
  return Watermarks{Offset{marks.first}, Offset{marks.second}};
}

absl::StatusOr<std::vector<std::optional<Offset>>> KafkaAdmin::OffsetsForTime(
    std::string_view topic, absl::Span<const Partition> partitions, TimestampMs time,
    int timeout_ms) {
  if (partitions.empty()) return std::vector<std::optional<Offset>>{};
  const std::string name(topic);
  internal::PartitionList list(
      rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size())));
  for (Partition p : partitions) {
    rd_kafka_topic_partition_list_add(list.get(), name.c_str(), p.value)->offset = time.value;
  }
  TRIBUTARY_RETURN_IF_ERROR(
      KafkaStatus(rd_kafka_offsets_for_times(impl_->rk.get(), list.get(), timeout_ms),
                  absl::StrCat("offsets of ", name, " by time")));
  std::vector<std::optional<Offset>> offsets;
  for (Partition p : partitions) {
    const rd_kafka_topic_partition_t* found =
        rd_kafka_topic_partition_list_find(list.get(), name.c_str(), p.value);
    if (found == nullptr) {
      return absl::InternalError(absl::StrCat("offsets of ", name, " by time: no answer for [",
                                              p.value, "]"));
    }
    TRIBUTARY_RETURN_IF_ERROR(
        KafkaStatus(found->err, absl::StrCat("offset of ", name, "[", p.value, "] by time")));
    offsets.push_back(found->offset >= 0 ? std::optional<Offset>(Offset{found->offset})
                                         : std::nullopt);
  }
  return offsets;
}

absl::StatusOr<KafkaAdmin::GroupDescription> KafkaAdmin::DescribeGroup(std::string_view group,
                                                                       int timeout_ms) {
  rd_kafka_t* rk = impl_->rk.get();
  const std::string name(group);
  const std::string what = absl::StrCat("describe group ", name);
  TRIBUTARY_ASSIGN_OR_RETURN(
      AdminPtr<rd_kafka_AdminOptions_t> options,
      NewAdminOptions(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS, timeout_ms));
  const char* groups[] = {name.c_str()};
  internal::KafkaQueue queue(rd_kafka_queue_new(rk));
  rd_kafka_DescribeConsumerGroups(rk, groups, 1, options.get(), queue.get());
  TRIBUTARY_ASSIGN_OR_RETURN(AdminPtr<rd_kafka_event_t> event,
                             AwaitAdminResult(queue.get(), timeout_ms, what));
  const rd_kafka_DescribeConsumerGroups_result_t* result =
      rd_kafka_event_DescribeConsumerGroups_result(event.get());
  size_t count = 0;
  const rd_kafka_ConsumerGroupDescription_t** descriptions =
      result == nullptr ? nullptr : rd_kafka_DescribeConsumerGroups_result_groups(result, &count);
  if (descriptions == nullptr || count != 1) {
    return absl::InternalError(absl::StrCat(what, ": ", count, " results"));
  }
  const rd_kafka_ConsumerGroupDescription_t* d = descriptions[0];
  GroupDescription description;
  if (const rd_kafka_error_t* error = rd_kafka_ConsumerGroupDescription_error(d)) {
    if (rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND) {
      description.state = "Dead";
      return description;
    }
    return absl::Status(KafkaStatus(rd_kafka_error_code(error), what).code(),
                        absl::StrCat(what, ": ", rd_kafka_error_string(error)));
  }
  description.state =
      rd_kafka_consumer_group_state_name(rd_kafka_ConsumerGroupDescription_state(d));
  const size_t members = rd_kafka_ConsumerGroupDescription_member_count(d);
  for (size_t i = 0; i < members; ++i) {
    const rd_kafka_MemberDescription_t* m = rd_kafka_ConsumerGroupDescription_member(d, i);
    const char* host = rd_kafka_MemberDescription_host(m);
    GroupMember member{rd_kafka_MemberDescription_consumer_id(m),
                       rd_kafka_MemberDescription_client_id(m), host != nullptr ? host : "", {}};
    const rd_kafka_MemberAssignment_t* assignment = rd_kafka_MemberDescription_assignment(m);
    const rd_kafka_topic_partition_list_t* partitions =
        assignment != nullptr ? rd_kafka_MemberAssignment_partitions(assignment) : nullptr;
    for (int p = 0; partitions != nullptr && p < partitions->cnt; ++p) {
      member.assignment.emplace_back(partitions->elems[p].topic, partitions->elems[p].partition);
    }
    description.members.push_back(std::move(member));
  }
  return description;
}

absl::StatusOr<std::vector<TopicPartitionOffset>> KafkaAdmin::CommittedOffsets(
    std::string_view group, int timeout_ms) {
  rd_kafka_t* rk = impl_->rk.get();
  const std::string name(group);
  const std::string what = absl::StrCat("committed offsets of group ", name);
  TRIBUTARY_ASSIGN_OR_RETURN(
      AdminPtr<rd_kafka_AdminOptions_t> options,
      NewAdminOptions(rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS, timeout_ms));
  // No partitions: every partition the group has an offset for.
  AdminPtr<rd_kafka_ListConsumerGroupOffsets_t> request(
      rd_kafka_ListConsumerGroupOffsets_new(name.c_str(), nullptr));
  rd_kafka_ListConsumerGroupOffsets_t* requests[] = {request.get()};
  internal::KafkaQueue queue(rd_kafka_queue_new(rk));
  rd_kafka_ListConsumerGroupOffsets(rk, requests, 1, options.get(), queue.get());
  TRIBUTARY_ASSIGN_OR_RETURN(AdminPtr<rd_kafka_event_t> event,
                             AwaitAdminResult(queue.get(), timeout_ms, what));
  const rd_kafka_ListConsumerGroupOffsets_result_t* result =
      rd_kafka_event_ListConsumerGroupOffsets_result(event.get());
  if (result == nullptr) return absl::InternalError(absl::StrCat(what, ": unexpected answer"));
  size_t count = 0;
  const rd_kafka_group_result_t** groups =
      rd_kafka_ListConsumerGroupOffsets_result_groups(result, &count);
  TRIBUTARY_ASSIGN_OR_RETURN(const rd_kafka_group_result_t* one,
                             OneGroupResult(groups, count, what));
  TRIBUTARY_RETURN_IF_ERROR(GroupResultStatus(one, what));
  std::vector<TopicPartitionOffset> offsets;
  const rd_kafka_topic_partition_list_t* partitions = rd_kafka_group_result_partitions(one);
  for (int i = 0; partitions != nullptr && i < partitions->cnt; ++i) {
    const rd_kafka_topic_partition_t& p = partitions->elems[i];
    if (p.offset < 0) continue;  // listed without a committed offset
    offsets.push_back({p.topic, Partition{p.partition}, Offset{p.offset}});
  }
  std::sort(offsets.begin(), offsets.end());
  return offsets;
}

absl::Status KafkaAdmin::AlterGroupOffsets(std::string_view group,
                                           absl::Span<const TopicPartitionOffset> offsets,
                                           int timeout_ms) {
  if (offsets.empty()) return absl::OkStatus();
  rd_kafka_t* rk = impl_->rk.get();
  const std::string name(group);
  const std::string what = absl::StrCat("commit offsets of group ", name);
  TRIBUTARY_ASSIGN_OR_RETURN(
      AdminPtr<rd_kafka_AdminOptions_t> options,
      NewAdminOptions(rk, RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS, timeout_ms));
  internal::PartitionList list = ToPartitionList(offsets);
  AdminPtr<rd_kafka_AlterConsumerGroupOffsets_t> request(
      rd_kafka_AlterConsumerGroupOffsets_new(name.c_str(), list.get()));
  rd_kafka_AlterConsumerGroupOffsets_t* requests[] = {request.get()};
  internal::KafkaQueue queue(rd_kafka_queue_new(rk));
  rd_kafka_AlterConsumerGroupOffsets(rk, requests, 1, options.get(), queue.get());
  TRIBUTARY_ASSIGN_OR_RETURN(AdminPtr<rd_kafka_event_t> event,
                             AwaitAdminResult(queue.get(), timeout_ms, what));
  const rd_kafka_AlterConsumerGroupOffsets_result_t* result =
      rd_kafka_event_AlterConsumerGroupOffsets_result(event.get());
  if (result == nullptr) return absl::InternalError(absl::StrCat(what, ": unexpected answer"));
  size_t count = 0;
  const rd_kafka_group_result_t** groups =
      rd_kafka_AlterConsumerGroupOffsets_result_groups(result, &count);
  TRIBUTARY_ASSIGN_OR_RETURN(const rd_kafka_group_result_t* one,
                             OneGroupResult(groups, count, what));
  return GroupResultStatus(one, what);
}

absl::Status KafkaAdmin::DeleteGroupOffsets(std::string_view group,
                                            absl::Span<const TopicPartitionOffset> committed,
                                            int timeout_ms) {
  if (committed.empty()) return absl::OkStatus();
  rd_kafka_t* rk = impl_->rk.get();
  const std::string name(group);
  const std::string what = absl::StrCat("delete committed offsets of group ", name);
  TRIBUTARY_ASSIGN_OR_RETURN(
      AdminPtr<rd_kafka_AdminOptions_t> options,
      NewAdminOptions(rk, RD_KAFKA_ADMIN_OP_DELETECONSUMERGROUPOFFSETS, timeout_ms));
  internal::PartitionList list = ToPartitionList(committed);
  AdminPtr<rd_kafka_DeleteConsumerGroupOffsets_t> request(
      rd_kafka_DeleteConsumerGroupOffsets_new(name.c_str(), list.get()));
  rd_kafka_DeleteConsumerGroupOffsets_t* requests[] = {request.get()};
  internal::KafkaQueue queue(rd_kafka_queue_new(rk));
  rd_kafka_DeleteConsumerGroupOffsets(rk, requests, 1, options.get(), queue.get());
  TRIBUTARY_ASSIGN_OR_RETURN(AdminPtr<rd_kafka_event_t> event,
                             AwaitAdminResult(queue.get(), timeout_ms, what));
  const rd_kafka_DeleteConsumerGroupOffsets_result_t* result =
      rd_kafka_event_DeleteConsumerGroupOffsets_result(event.get());
  if (result == nullptr) return absl::InternalError(absl::StrCat(what, ": unexpected answer"));
  size_t count = 0;
  const rd_kafka_group_result_t** groups =
      rd_kafka_DeleteConsumerGroupOffsets_result_groups(result, &count);
  TRIBUTARY_ASSIGN_OR_RETURN(const rd_kafka_group_result_t* one,
                             OneGroupResult(groups, count, what));
  return GroupResultStatus(one, what);
}

}  // namespace tributary
