// Helpers for tests against a real Kafka broker (CTest label `kafka`).
//
// The broker is the one `scripts/kafka start` runs; its address comes from
// the environment variable TRIBUTARY_BOOTSTRAP (default 127.0.0.1:19092).
// Tests derive from KafkaTest, which FAILS (never skips) when the broker does
// not answer, with a message telling to run `scripts/kafka start`.
//
// Every test makes its own topics, group ids and transactional ids with
// UniqueName/UniqueTopic, so reruns against the same broker never collide.
// Clients use librdkafka's C API; the RAII types below own its handles.
#pragma once

#include <librdkafka/rdkafka.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"

// Fails the test and returns from the current (void) function unless `expr`,
// an absl::Status, is ok.
#define ASSERT_STATUS_OK(expr)            \
  do {                                    \
    const absl::Status status_ = (expr);  \
    ASSERT_TRUE(status_.ok()) << status_; \
  } while (0)

namespace tributary::testing {

// unique_ptr deleters for librdkafka's C handles.
struct KafkaDeleter {
  // A consumer is closed (leaving its group) before it is destroyed.
  void operator()(rd_kafka_t* rk) const;
};
struct ConfDeleter {
  void operator()(rd_kafka_conf_t* conf) const { rd_kafka_conf_destroy(conf); }
};
struct MessageDeleter {
  void operator()(rd_kafka_message_t* m) const { rd_kafka_message_destroy(m); }
};
struct PartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const {
    rd_kafka_topic_partition_list_destroy(l);
  }
};
struct GroupMetadataDeleter {
  void operator()(rd_kafka_consumer_group_metadata_t* m) const {
    rd_kafka_consumer_group_metadata_destroy(m);
  }
};

using KafkaPtr = std::unique_ptr<rd_kafka_t, KafkaDeleter>;
using ConfPtr = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;
using MessagePtr = std::unique_ptr<rd_kafka_message_t, MessageDeleter>;
using PartitionListPtr =
    std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter>;
using GroupMetadataPtr =
    std::unique_ptr<rd_kafka_consumer_group_metadata_t, GroupMetadataDeleter>;

using ConfigList =
    std::initializer_list<std::pair<std::string_view, std::string_view>>;

// host:port list of the test broker: $TRIBUTARY_BOOTSTRAP or 127.0.0.1:19092.
std::string BootstrapServers();

// `base` + pid + wall-clock milliseconds + a per-process counter: a name no
// earlier run (or other test in this run) has used. Valid as a topic name,
// group.id and transactional.id.
std::string UniqueName(std::string_view base);
inline std::string UniqueTopic(std::string_view base) {
  return UniqueName(base);
}

// Status from a librdkafka error code (OK for RD_KAFKA_RESP_ERR_NO_ERROR).
absl::Status ToStatus(rd_kafka_resp_err_t err, std::string_view context);
// Status from an rd_kafka_error_t, which it destroys; OK for nullptr.
absl::Status ToStatus(rd_kafka_error_t* error, std::string_view context);

// A producer or consumer with bootstrap.servers set to BootstrapServers()
// and then `config` applied on top.
absl::StatusOr<KafkaPtr> MakeClient(rd_kafka_type_t type, ConfigList config);

// Answers once a metadata request to the broker succeeds within `timeout_ms`.
absl::Status CheckBrokerReachable(int timeout_ms = 5000);

// Creates `topic` with `partitions` partitions, replication factor 1, through
// the Admin API (an existing topic is fine), then waits until the broker's
// metadata shows every partition with a leader. Bounded by `timeout_ms`.
absl::Status CreateTopic(std::string_view topic, int partitions,
                         int timeout_ms = 30000);

// Base fixture for real-broker tests: fails every test of the suite with a
// hint to run `scripts/kafka start` when the broker cannot be reached (the
// probe runs once per process).
class KafkaTest : public ::testing::Test {
 protected:
  void SetUp() override;
};

// --- Producing and reading records ---

// Produces `records` (key, value) to `topic` with an idempotent producer
// that partitions keys by murmur2 (as Kafka's Java client does), and waits
// until every record is acknowledged. Bounded by `timeout_ms`. `config` is
// applied on top (e.g. message.max.bytes for records over 1 MB).
absl::Status ProduceRecords(
    std::string_view topic,
    const std::vector<std::pair<std::string, std::string>>& records,
    int timeout_ms = 30000, ConfigList config = {});

struct ConsumedRecord {
  int32_t partition = 0;
  int64_t offset = 0;
  std::optional<std::string> key;    // nullopt for a null key
  std::optional<std::string> value;  // nullopt for a tombstone
  // The record's headers in order (name, value; nullopt for a null value).
  std::vector<std::pair<std::string, std::optional<std::string>>> headers;

  // The value of the first header named `name`; nullopt when there is none
  // or its value is null.
  std::optional<std::string> Header(std::string_view name) const;
};

// Reads every partition of one topic from the beginning, without a consumer
// group, accumulating what it reads. Under read_committed it sees only
// committed transactional records and its end of a partition is the last
// stable offset. Single-threaded.
class TopicReader {
 public:
  static absl::StatusOr<std::unique_ptr<TopicReader>> Open(
      std::string_view topic, int partitions, bool read_committed = true);

  // Reads what arrives within `timeout` (at least one poll).
  absl::Status Poll(std::chrono::milliseconds timeout);
  // Reads until size() >= `count`; DeadlineExceeded (saying how many were
  // read) when `timeout` passes first.
  absl::Status ReadUntilCount(size_t count, std::chrono::milliseconds timeout);
  // Reads until every partition has reported its end. Exact for a fresh
  // reader of a topic no one writes to any more; on a reused reader an end
  // seen earlier counts until a newer record of that partition arrives.
  absl::Status ReadToEnd(std::chrono::milliseconds timeout);

  size_t size() const { return records_.size(); }
  // In the order read: per partition, offset order.
  const std::vector<ConsumedRecord>& records() const { return records_; }

 private:
  TopicReader(KafkaPtr consumer, int partitions)
      : consumer_(std::move(consumer)), partitions_(partitions) {}

  KafkaPtr consumer_;
  int partitions_;
  std::set<int32_t> at_end_;
  std::vector<ConsumedRecord> records_;
};

// A fresh TopicReader's ReadToEnd: the whole topic as it is now.
absl::StatusOr<std::vector<ConsumedRecord>> ReadWholeTopic(
    std::string_view topic, int partitions, bool read_committed = true,
    std::chrono::milliseconds timeout = std::chrono::seconds(60));

// --- Consumer groups ---

struct GroupMember {
  std::string client_id;
  std::string member_id;
  std::vector<std::pair<std::string, int32_t>> assignment;  // topic, partition
};
struct GroupDescription {
  rd_kafka_consumer_group_state_t state = RD_KAFKA_CONSUMER_GROUP_STATE_UNKNOWN;
  std::vector<GroupMember> members;
};

// The group's state and its members' assignments, through the Admin API.
absl::StatusOr<GroupDescription> DescribeGroup(std::string_view group,
                                               int timeout_ms = 10000);

// The offsets `group` has committed for partitions 0..partitions-1 of
// `topic`, in partition order (RD_KAFKA_OFFSET_INVALID where none), as a
// consumer that never joins the group reads them (rd_kafka_committed).
absl::StatusOr<std::vector<int64_t>> CommittedOffsets(std::string_view group,
                                                      std::string_view topic,
                                                      int partitions,
                                                      int timeout_ms = 10000);

// Every topic in the broker's metadata: name -> partition count.
absl::StatusOr<std::map<std::string, int>> TopicPartitionCounts(
    int timeout_ms = 10000);

// --- Child processes ---

// A program run as a child process (posix_spawn) with stdout and stderr
// appended to a log file. The destructor SIGKILLs and reaps a child that is
// still running. Single-threaded.
class ChildProcess {
 public:
  // argv[0] is the program's path.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(
      const std::vector<std::string>& argv, const std::string& log_path);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }
  // False once the child has exited (reaping it).
  bool Running();
  absl::Status Signal(int signo);
  // Waits until the child exits; its wait status (see DescribeWaitStatus).
  // DeadlineExceeded when it still runs after `timeout`.
  absl::StatusOr<int> Wait(std::chrono::milliseconds timeout);
  // The wait status once the child has been reaped.
  std::optional<int> wait_status() const { return wait_status_; }

 private:
  ChildProcess(pid_t pid, std::string log_path)
      : pid_(pid), log_path_(std::move(log_path)) {}

  pid_t pid_;
  std::string log_path_;
  std::optional<int> wait_status_;
};

// "exited with 0", "killed by signal 9", ...
std::string DescribeWaitStatus(int wait_status);
// The file's content ("" when it cannot be read).
std::string ReadTextFile(const std::string& path);
// The last `lines` lines of a file.
std::string TailOfFile(const std::string& path, int lines = 40);
// A new empty directory under $TMPDIR (or /tmp) named after `base`.
absl::StatusOr<std::string> MakeTempDir(std::string_view base);

}  // namespace tributary::testing
