// Helpers for tests against a real Kafka broker; see kafka_fixture.h.
#include "tests/support/kafka_fixture.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"

namespace tributary::testing {
namespace {

using Clock = std::chrono::steady_clock;

struct NewTopicDeleter {
  void operator()(rd_kafka_NewTopic_t* t) const { rd_kafka_NewTopic_destroy(t); }
};
struct AdminOptionsDeleter {
  void operator()(rd_kafka_AdminOptions_t* o) const {
    rd_kafka_AdminOptions_destroy(o);
  }
};
struct QueueDeleter {
  void operator()(rd_kafka_queue_t* q) const { rd_kafka_queue_destroy(q); }
};
struct EventDeleter {
  void operator()(rd_kafka_event_t* e) const { rd_kafka_event_destroy(e); }
};
struct TopicDeleter {
  void operator()(rd_kafka_topic_t* t) const { rd_kafka_topic_destroy(t); }
};
struct MetadataDeleter {
  void operator()(const rd_kafka_metadata_t* m) const {
    rd_kafka_metadata_destroy(m);
  }
};

using NewTopicPtr = std::unique_ptr<rd_kafka_NewTopic_t, NewTopicDeleter>;
using AdminOptionsPtr =
    std::unique_ptr<rd_kafka_AdminOptions_t, AdminOptionsDeleter>;
using QueuePtr = std::unique_ptr<rd_kafka_queue_t, QueueDeleter>;
using EventPtr = std::unique_ptr<rd_kafka_event_t, EventDeleter>;
using TopicPtr = std::unique_ptr<rd_kafka_topic_t, TopicDeleter>;
using MetadataPtr = std::unique_ptr<const rd_kafka_metadata_t, MetadataDeleter>;

std::chrono::milliseconds Left(Clock::time_point deadline) {
  return std::max(std::chrono::milliseconds(0),
                  std::chrono::duration_cast<std::chrono::milliseconds>(
                      deadline - Clock::now()));
}

// OK when the broker's metadata shows `topic` with `partitions` partitions,
// each with a leader.
absl::Status TopicReady(rd_kafka_t* rk, const std::string& topic,
                        int partitions, int timeout_ms) {
  TopicPtr rkt(rd_kafka_topic_new(rk, topic.c_str(), nullptr));
  if (rkt == nullptr) {
    return ToStatus(rd_kafka_last_error(), "rd_kafka_topic_new " + topic);
  }
  const rd_kafka_metadata_t* raw = nullptr;
  rd_kafka_resp_err_t err =
      rd_kafka_metadata(rk, /*all_topics=*/0, rkt.get(), &raw, timeout_ms);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return ToStatus(err, "metadata for " + topic);
  }
  MetadataPtr md(raw);
  if (md->topic_cnt != 1) {
    return absl::UnavailableError(absl::StrCat("no metadata for ", topic));
  }
  const rd_kafka_metadata_topic_t& t = md->topics[0];
  if (t.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return ToStatus(t.err, "metadata for " + topic);
  }
  if (t.partition_cnt != partitions) {
    return absl::UnavailableError(absl::StrCat(
        topic, " has ", t.partition_cnt, " partitions, want ", partitions));
  }
  for (int i = 0; i < t.partition_cnt; ++i) {
    if (t.partitions[i].err != RD_KAFKA_RESP_ERR_NO_ERROR ||
        t.partitions[i].leader < 0) {
      return absl::UnavailableError(
          absl::StrCat(topic, " partition ", i, " has no leader yet"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

void KafkaDeleter::operator()(rd_kafka_t* rk) const {
  if (rk == nullptr) return;
  if (rd_kafka_type(rk) == RD_KAFKA_CONSUMER) rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
}

std::string BootstrapServers() {
  const char* env = std::getenv("TRIBUTARY_BOOTSTRAP");
  return env != nullptr && *env != '\0' ? env : "127.0.0.1:19092";
}

std::string UniqueName(std::string_view base) {
  static std::atomic<int> counter{0};
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  return absl::StrCat(std::string(base), "-", getpid(), "-", ms, "-",
                      counter.fetch_add(1));
}

absl::Status ToStatus(rd_kafka_resp_err_t err, std::string_view context) {
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(std::string(context), ": ",
                                          rd_kafka_err2name(err), ": ",
                                          rd_kafka_err2str(err)));
}

absl::Status ToStatus(rd_kafka_error_t* error, std::string_view context) {
  if (error == nullptr) return absl::OkStatus();
  absl::Status status = absl::InternalError(absl::StrCat(
      std::string(context), ": ", rd_kafka_error_name(error), ": ",
      rd_kafka_error_string(error),
      rd_kafka_error_txn_requires_abort(error) ? " (txn requires abort)" : "",
      rd_kafka_error_is_fatal(error) ? " (fatal)" : ""));
  rd_kafka_error_destroy(error);
  return status;
}

absl::StatusOr<KafkaPtr> MakeClient(rd_kafka_type_t type, ConfigList config) {
  ConfPtr conf(rd_kafka_conf_new());
  char errstr[512];
  auto set = [&](const std::string& key,
                 const std::string& value) -> absl::Status {
    if (rd_kafka_conf_set(conf.get(), key.c_str(), value.c_str(), errstr,
                          sizeof(errstr)) != RD_KAFKA_CONF_OK) {
      return absl::InvalidArgumentError(
          absl::StrCat("config ", key, "=", value, ": ", errstr));
    }
    return absl::OkStatus();
  };
  if (absl::Status s = set("bootstrap.servers", BootstrapServers()); !s.ok()) {
    return s;
  }
  for (const auto& [key, value] : config) {
    if (absl::Status s = set(std::string(key), std::string(value)); !s.ok()) {
      return s;
    }
  }
  // rd_kafka_new takes the configuration only when it succeeds.
  rd_kafka_t* rk = rd_kafka_new(type, conf.get(), errstr, sizeof(errstr));
  if (rk == nullptr) {
    return absl::InternalError(absl::StrCat("rd_kafka_new: ", errstr));
  }
  conf.release();
  KafkaPtr client(rk);
  // Route a consumer's events to rd_kafka_consumer_poll (needs a group.id;
  // without one there is nothing to route).
  if (type == RD_KAFKA_CONSUMER) rd_kafka_poll_set_consumer(rk);
  return client;
}

absl::Status CheckBrokerReachable(int timeout_ms) {
  absl::StatusOr<KafkaPtr> rk = MakeClient(RD_KAFKA_PRODUCER, {});
  if (!rk.ok()) return rk.status();
  const rd_kafka_metadata_t* raw = nullptr;
  rd_kafka_resp_err_t err =
      rd_kafka_metadata(rk->get(), /*all_topics=*/0, nullptr, &raw, timeout_ms);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return ToStatus(err, "metadata request to " + BootstrapServers());
  }
  MetadataPtr md(raw);
  if (md->broker_cnt < 1) {
    return absl::UnavailableError("metadata lists no brokers");
  }
  return absl::OkStatus();
}

absl::Status CreateTopic(std::string_view topic, int partitions,
                         int timeout_ms) {
  const std::string name(topic);
  const Clock::time_point deadline =
      Clock::now() + std::chrono::milliseconds(timeout_ms);
  absl::StatusOr<KafkaPtr> admin = MakeClient(RD_KAFKA_PRODUCER, {});
  if (!admin.ok()) return admin.status();
  rd_kafka_t* rk = admin->get();

  char errstr[512];
  NewTopicPtr new_topic(rd_kafka_NewTopic_new(
      name.c_str(), partitions, /*replication_factor=*/1, errstr,
      sizeof(errstr)));
  if (new_topic == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("NewTopic ", name, ": ", errstr));
  }
  AdminOptionsPtr options(
      rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS));
  if (rd_kafka_AdminOptions_set_request_timeout(options.get(), timeout_ms,
                                                errstr, sizeof(errstr)) ||
      rd_kafka_AdminOptions_set_operation_timeout(options.get(), timeout_ms,
                                                  errstr, sizeof(errstr))) {
    return absl::InvalidArgumentError(absl::StrCat("AdminOptions: ", errstr));
  }
  QueuePtr queue(rd_kafka_queue_new(rk));
  rd_kafka_NewTopic_t* topics[] = {new_topic.get()};
  rd_kafka_CreateTopics(rk, topics, 1, options.get(), queue.get());

  EventPtr event(rd_kafka_queue_poll(queue.get(), timeout_ms + 5000));
  if (event == nullptr) {
    return absl::DeadlineExceededError(absl::StrCat(
        "CreateTopics ", name, ": no answer in ", timeout_ms, " ms"));
  }
  if (rd_kafka_event_error(event.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::InternalError(absl::StrCat(
        "CreateTopics ", name, ": ", rd_kafka_event_error_string(event.get())));
  }
  const rd_kafka_CreateTopics_result_t* result =
      rd_kafka_event_CreateTopics_result(event.get());
  if (result == nullptr) {
    return absl::InternalError(absl::StrCat(
        "CreateTopics ", name, ": unexpected event ",
        rd_kafka_event_name(event.get())));
  }
  size_t count = 0;
  const rd_kafka_topic_result_t** results =
      rd_kafka_CreateTopics_result_topics(result, &count);
  for (size_t i = 0; i < count; ++i) {
    rd_kafka_resp_err_t err = rd_kafka_topic_result_error(results[i]);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR &&
        err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
      const char* message = rd_kafka_topic_result_error_string(results[i]);
      return absl::InternalError(absl::StrCat(
          "CreateTopics ", name, ": ", rd_kafka_err2name(err), ": ",
          message != nullptr ? message : rd_kafka_err2str(err)));
    }
  }

  // Wait (bounded) until the broker serves every partition.
  absl::Status ready;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - Clock::now())
                          .count();
    ready = TopicReady(rk, name, partitions,
                       static_cast<int>(std::max<int64_t>(left, 1000)));
    if (ready.ok() || Clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return ready;
}

void KafkaTest::SetUp() {
  static const absl::Status* const reachable =
      new absl::Status(CheckBrokerReachable());
  ASSERT_TRUE(reachable->ok())
      << "No Kafka broker answers at " << BootstrapServers() << " ("
      << reachable->ToString() << ").\nStart one with `scripts/kafka start` "
      << "(and set TRIBUTARY_BOOTSTRAP if it is not at 127.0.0.1:19092); "
      << "tests labelled `kafka` need a running broker.";
}

absl::Status ProduceRecords(
    std::string_view topic,
    const std::vector<std::pair<std::string, std::string>>& records,
    int timeout_ms, ConfigList config) {
  // Delivery reports count acknowledged records and remember the first
  // failure; they are served by rd_kafka_poll / rd_kafka_flush below.
  struct Deliveries {
    size_t acked = 0;
    rd_kafka_resp_err_t first_error = RD_KAFKA_RESP_ERR_NO_ERROR;
  } deliveries;
  ConfPtr conf(rd_kafka_conf_new());
  char errstr[512];
  const std::pair<const char*, std::string> settings[] = {
      {"bootstrap.servers", BootstrapServers()},
      {"enable.idempotence", "true"},
      {"partitioner", "murmur2_random"},
      {"linger.ms", "5"}};
  for (const auto& [key, value] : settings) {
    if (rd_kafka_conf_set(conf.get(), key, value.c_str(), errstr,
                          sizeof(errstr)) != RD_KAFKA_CONF_OK) {
      return absl::InvalidArgumentError(
          absl::StrCat("config ", key, ": ", errstr));
    }
  }
  for (const auto& [key, value] : config) {
    if (rd_kafka_conf_set(conf.get(), std::string(key).c_str(),
                          std::string(value).c_str(), errstr,
                          sizeof(errstr)) != RD_KAFKA_CONF_OK) {
      return absl::InvalidArgumentError(
          absl::StrCat("config ", std::string(key), ": ", errstr));
    }
  }
  rd_kafka_conf_set_opaque(conf.get(), &deliveries);
  rd_kafka_conf_set_dr_msg_cb(
      conf.get(), [](rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
        auto* d = static_cast<Deliveries*>(opaque);
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
          ++d->acked;
        } else if (d->first_error == RD_KAFKA_RESP_ERR_NO_ERROR) {
          d->first_error = m->err;
        }
      });
  KafkaPtr producer(
      rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), errstr, sizeof(errstr)));
  if (producer == nullptr) {
    return absl::InternalError(absl::StrCat("rd_kafka_new: ", errstr));
  }
  conf.release();
  rd_kafka_t* rk = producer.get();
  const std::string name(topic);
  const Clock::time_point deadline =
      Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (const auto& [key, value] : records) {
    while (true) {
      rd_kafka_resp_err_t err = rd_kafka_producev(
          rk, RD_KAFKA_V_TOPIC(name.c_str()),
          RD_KAFKA_V_KEY(key.data(), key.size()),
          RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || Clock::now() >= deadline) {
        return ToStatus(err, "produce to " + name);
      }
      rd_kafka_poll(rk, 10);
    }
  }
  const auto left = Left(deadline).count();
  absl::Status flushed =
      ToStatus(rd_kafka_flush(rk, static_cast<int>(std::max<int64_t>(left, 1))),
               "flush to " + name);
  if (!flushed.ok()) return flushed;
  if (deliveries.first_error != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return ToStatus(deliveries.first_error, "delivery to " + name);
  }
  if (deliveries.acked != records.size()) {
    return absl::InternalError(absl::StrCat("produce to ", name, ": ",
                                            deliveries.acked, " of ",
                                            records.size(), " acknowledged"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<TopicReader>> TopicReader::Open(
    std::string_view topic, int partitions, bool read_committed) {
  // A group.id is needed to consume with assign(); it is never joined.
  const std::string group = UniqueName("reader");
  absl::StatusOr<KafkaPtr> consumer =
      MakeClient(RD_KAFKA_CONSUMER,
                 {{"group.id", group},
                  {"enable.auto.commit", "false"},
                  {"enable.partition.eof", "true"},
                  {"isolation.level",
                   read_committed ? "read_committed" : "read_uncommitted"}});
  if (!consumer.ok()) return consumer.status();
  const std::string name(topic);
  PartitionListPtr list(rd_kafka_topic_partition_list_new(partitions));
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(list.get(), name.c_str(), p)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
  }
  absl::Status assigned =
      ToStatus(rd_kafka_assign(consumer->get(), list.get()), "assign " + name);
  if (!assigned.ok()) return assigned;
  return std::unique_ptr<TopicReader>(
      new TopicReader(*std::move(consumer), partitions));
}

absl::Status TopicReader::Poll(std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  int wait_ms = static_cast<int>(timeout.count());
  while (true) {
    MessagePtr m(rd_kafka_consumer_poll(consumer_.get(), wait_ms));
    if (m == nullptr) return absl::OkStatus();
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      at_end_.insert(m->partition);
    } else if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return absl::InternalError(
          absl::StrCat("consume: ", rd_kafka_message_errstr(m.get())));
    } else {
      at_end_.erase(m->partition);
      ConsumedRecord record;
      record.partition = m->partition;
      record.offset = m->offset;
      if (m->key != nullptr) {
        record.key.emplace(static_cast<const char*>(m->key), m->key_len);
      }
      if (m->payload != nullptr) {
        record.value.emplace(static_cast<const char*>(m->payload), m->len);
      }
      rd_kafka_headers_t* headers = nullptr;
      if (rd_kafka_message_headers(m.get(), &headers) ==
              RD_KAFKA_RESP_ERR_NO_ERROR &&
          headers != nullptr) {
        const char* name = nullptr;
        const void* value = nullptr;
        size_t size = 0;
        for (size_t i = 0; rd_kafka_header_get_all(headers, i, &name, &value,
                                                   &size) ==
                           RD_KAFKA_RESP_ERR_NO_ERROR;
             ++i) {
          std::optional<std::string> text;
          if (value != nullptr) {
            text.emplace(static_cast<const char*>(value), size);
          }
          record.headers.emplace_back(name, std::move(text));
        }
      }
      records_.push_back(std::move(record));
    }
    // Drain what is already there without waiting, up to the deadline.
    wait_ms = 0;
    if (Clock::now() >= deadline) return absl::OkStatus();
  }
}

std::optional<std::string> ConsumedRecord::Header(
    std::string_view name) const {
  for (const auto& [header_key, header_value] : headers) {
    if (header_key == name) return header_value;
  }
  return std::nullopt;
}

absl::Status TopicReader::ReadUntilCount(size_t count,
                                         std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (records_.size() < count) {
    if (Clock::now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("read ", records_.size(), " of ", count, " records in ",
                       timeout.count(), " ms"));
    }
    absl::Status polled = Poll(std::min<std::chrono::milliseconds>(
        Left(deadline), std::chrono::milliseconds(100)));
    if (!polled.ok()) return polled;
  }
  return absl::OkStatus();
}

absl::Status TopicReader::ReadToEnd(std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (static_cast<int>(at_end_.size()) < partitions_) {
    if (Clock::now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("only ", at_end_.size(), " of ", partitions_,
                       " partitions reached their end in ", timeout.count(),
                       " ms (", records_.size(), " records read)"));
    }
    absl::Status polled = Poll(std::min<std::chrono::milliseconds>(
        Left(deadline), std::chrono::milliseconds(100)));
    if (!polled.ok()) return polled;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ConsumedRecord>> ReadWholeTopic(
    std::string_view topic, int partitions, bool read_committed,
    std::chrono::milliseconds timeout) {
  absl::StatusOr<std::unique_ptr<TopicReader>> reader =
      TopicReader::Open(topic, partitions, read_committed);
  if (!reader.ok()) return reader.status();
  absl::Status read = (*reader)->ReadToEnd(timeout);
  if (!read.ok()) return read;
  return (*reader)->records();
}

absl::StatusOr<GroupDescription> DescribeGroup(std::string_view group,
                                               int timeout_ms) {
  absl::StatusOr<KafkaPtr> admin = MakeClient(RD_KAFKA_PRODUCER, {});
  if (!admin.ok()) return admin.status();
  rd_kafka_t* rk = admin->get();
  char errstr[512];
  AdminOptionsPtr options(
      rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS));
  if (rd_kafka_AdminOptions_set_request_timeout(options.get(), timeout_ms,
                                                errstr, sizeof(errstr))) {
    return absl::InvalidArgumentError(absl::StrCat("AdminOptions: ", errstr));
  }
  const std::string name(group);
  const char* groups[] = {name.c_str()};
  QueuePtr queue(rd_kafka_queue_new(rk));
  rd_kafka_DescribeConsumerGroups(rk, groups, 1, options.get(), queue.get());
  EventPtr event(rd_kafka_queue_poll(queue.get(), timeout_ms + 5000));
  if (event == nullptr) {
    return absl::DeadlineExceededError(
        absl::StrCat("DescribeConsumerGroups ", name, ": no answer"));
  }
  if (rd_kafka_event_error(event.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::InternalError(
        absl::StrCat("DescribeConsumerGroups ", name, ": ",
                     rd_kafka_event_error_string(event.get())));
  }
  const rd_kafka_DescribeConsumerGroups_result_t* result =
      rd_kafka_event_DescribeConsumerGroups_result(event.get());
  size_t count = 0;
  const rd_kafka_ConsumerGroupDescription_t** descriptions =
      result == nullptr
          ? nullptr
          : rd_kafka_DescribeConsumerGroups_result_groups(result, &count);
  if (count != 1) {
    return absl::InternalError(
        absl::StrCat("DescribeConsumerGroups ", name, ": ", count, " results"));
  }
  const rd_kafka_ConsumerGroupDescription_t* d = descriptions[0];
  if (const rd_kafka_error_t* error =
          rd_kafka_ConsumerGroupDescription_error(d)) {
    return absl::InternalError(absl::StrCat(
        "DescribeConsumerGroups ", name, ": ", rd_kafka_error_string(error)));
  }
  GroupDescription description;
  description.state = rd_kafka_ConsumerGroupDescription_state(d);
  const size_t members = rd_kafka_ConsumerGroupDescription_member_count(d);
  for (size_t i = 0; i < members; ++i) {
    const rd_kafka_MemberDescription_t* m =
        rd_kafka_ConsumerGroupDescription_member(d, i);
    GroupMember member;
    member.client_id = rd_kafka_MemberDescription_client_id(m);
    member.member_id = rd_kafka_MemberDescription_consumer_id(m);
    const rd_kafka_MemberAssignment_t* assignment =
        rd_kafka_MemberDescription_assignment(m);
    const rd_kafka_topic_partition_list_t* partitions =
        assignment == nullptr
            ? nullptr
            : rd_kafka_MemberAssignment_partitions(assignment);
    for (int j = 0; partitions != nullptr && j < partitions->cnt; ++j) {
      member.assignment.emplace_back(partitions->elems[j].topic,
                                     partitions->elems[j].partition);
    }
    description.members.push_back(std::move(member));
  }
  return description;
}

absl::StatusOr<std::vector<int64_t>> CommittedOffsets(std::string_view group,
                                                      std::string_view topic,
                                                      int partitions,
                                                      int timeout_ms) {
  const std::string group_id(group);
  absl::StatusOr<KafkaPtr> consumer =
      MakeClient(RD_KAFKA_CONSUMER,
                 {{"group.id", group_id}, {"enable.auto.commit", "false"}});
  if (!consumer.ok()) return consumer.status();
  const std::string name(topic);
  PartitionListPtr list(rd_kafka_topic_partition_list_new(partitions));
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(list.get(), name.c_str(), p);
  }
  const rd_kafka_resp_err_t err =
      rd_kafka_committed(consumer->get(), list.get(), timeout_ms);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return ToStatus(err, absl::StrCat("committed offsets of ", group_id,
                                      " on ", name));
  }
  std::vector<int64_t> offsets(partitions, RD_KAFKA_OFFSET_INVALID);
  for (int i = 0; i < list->cnt; ++i) {
    const rd_kafka_topic_partition_t& p = list->elems[i];
    if (p.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return ToStatus(p.err, absl::StrCat("committed offset of ", group_id,
                                          " on ", name, "[", p.partition, "]"));
    }
    offsets[p.partition] = p.offset;
  }
  return offsets;
}

absl::StatusOr<std::map<std::string, int>> TopicPartitionCounts(
    int timeout_ms) {
  absl::StatusOr<KafkaPtr> rk = MakeClient(RD_KAFKA_PRODUCER, {});
  if (!rk.ok()) return rk.status();
  const rd_kafka_metadata_t* raw = nullptr;
  rd_kafka_resp_err_t err =
      rd_kafka_metadata(rk->get(), /*all_topics=*/1, nullptr, &raw, timeout_ms);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return ToStatus(err, "metadata");
  MetadataPtr md(raw);
  std::map<std::string, int> topics;
  for (int i = 0; i < md->topic_cnt; ++i) {
    topics[md->topics[i].topic] = md->topics[i].partition_cnt;
  }
  return topics;
}

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(
    const std::vector<std::string>& argv, const std::string& log_path) {
  if (argv.empty()) return absl::InvalidArgumentError("ChildProcess: no argv");
  std::vector<char*> args;
  for (const std::string& arg : argv)
    args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null",
                                   O_RDONLY, 0);
  pid_t pid = -1;
  const int err =
      posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0) {
    return absl::InternalError(
        absl::StrCat("posix_spawn ", argv[0], ": ", std::strerror(err)));
  }
  return std::unique_ptr<ChildProcess>(new ChildProcess(pid, log_path));
}

ChildProcess::~ChildProcess() {
  if (Running()) {
    kill(pid_, SIGKILL);
    (void)Wait(std::chrono::seconds(30));
  }
}

bool ChildProcess::Running() {
  if (wait_status_) return false;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    wait_status_ = status;
    return false;
  }
  return r == 0;
}

absl::Status ChildProcess::Signal(int signo) {
  if (!Running()) {
    return absl::FailedPreconditionError(
        absl::StrCat("child ", pid_, " is no longer running"));
  }
  if (kill(pid_, signo) != 0) {
    return absl::InternalError(
        absl::StrCat("kill(", pid_, ", ", signo, "): ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> ChildProcess::Wait(std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  // waitpid has no timeout: poll the child's state until the deadline.
  while (Running()) {
    if (Clock::now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "child ", pid_, " still runs after ", timeout.count(), " ms"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!wait_status_) {
    return absl::InternalError(absl::StrCat("child ", pid_, " was lost"));
  }
  return *wait_status_;
}

std::string DescribeWaitStatus(int wait_status) {
  if (WIFEXITED(wait_status)) {
    return absl::StrCat("exited with ", WEXITSTATUS(wait_status));
  }
  if (WIFSIGNALED(wait_status)) {
    return absl::StrCat("killed by signal ", WTERMSIG(wait_status));
  }
  return absl::StrCat("wait status ", wait_status);
}

std::string ReadTextFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string TailOfFile(const std::string& path, int lines) {
  std::ifstream in(path);
  std::deque<std::string> tail;
  std::string line;
  while (std::getline(in, line)) {
    tail.push_back(std::move(line));
    if (static_cast<int>(tail.size()) > lines) tail.pop_front();
  }
  std::string text;
  for (const std::string& l : tail) absl::StrAppend(&text, l, "\n");
  return text;
}

absl::StatusOr<std::string> MakeTempDir(std::string_view base) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern =
      absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/",
                   std::string(base), "-XXXXXX");
  if (mkdtemp(pattern.data()) == nullptr) {
    return absl::InternalError(
        absl::StrCat("mkdtemp ", pattern, ": ", std::strerror(errno)));
  }
  return pattern;
}

}  // namespace tributary::testing
