// Real-broker tests (label `kafka`, broker from `scripts/kafka start`): prove
// that Debian's librdkafka 2.0.2 works with the project's Kafka broker for
// what the engine's exactly-once mode needs:
//   - a transactional producer whose aborted batches a read_committed
//     consumer never sees, while it sees every committed record in order;
//   - a consumer group whose offsets are committed inside the producer's
//     transaction (rd_kafka_send_offsets_to_transaction).
#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/support/kafka_fixture.h"

namespace tributary::testing {
namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kConsumeTimeout = std::chrono::seconds(60);
constexpr int kTxnTimeoutMs = 30000;

struct Record {
  int32_t partition;
  int64_t offset;
  std::string value;
};

// Polls `consumer` until it has delivered `expected` records or
// kConsumeTimeout has passed; returns what it got. Consumer errors fail the
// test.
std::vector<Record> Consume(rd_kafka_t* consumer, size_t expected) {
  std::vector<Record> records;
  const Clock::time_point deadline = Clock::now() + kConsumeTimeout;
  while (records.size() < expected && Clock::now() < deadline) {
    MessagePtr m(rd_kafka_consumer_poll(consumer, 200));
    if (m == nullptr) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) continue;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      ADD_FAILURE() << "consumer error: " << rd_kafka_message_errstr(m.get());
      continue;
    }
    records.push_back({m->partition, m->offset,
                       std::string(static_cast<const char*>(m->payload),
                                   m->len)});
  }
  return records;
}

absl::Status Subscribe(rd_kafka_t* consumer, const std::string& topic) {
  PartitionListPtr topics(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(topics.get(), topic.c_str(),
                                    RD_KAFKA_PARTITION_UA);
  return ToStatus(rd_kafka_subscribe(consumer, topics.get()),
                  "subscribe " + topic);
}

absl::StatusOr<KafkaPtr> GroupConsumer(const std::string& topic,
                                       const char* isolation_level) {
  const std::string group = UniqueName("group");
  absl::StatusOr<KafkaPtr> consumer =
      MakeClient(RD_KAFKA_CONSUMER, {{"group.id", group},
                                     {"auto.offset.reset", "earliest"},
                                     {"enable.auto.commit", "false"},
                                     {"isolation.level", isolation_level}});
  if (!consumer.ok()) return consumer;
  if (absl::Status s = Subscribe(consumer->get(), topic); !s.ok()) return s;
  return consumer;
}

absl::Status Produce(rd_kafka_t* producer, const std::string& topic,
                     int32_t partition, const std::string& value) {
  return ToStatus(
      rd_kafka_producev(producer, RD_KAFKA_V_TOPIC(topic.c_str()),
                        RD_KAFKA_V_PARTITION(partition),
                        RD_KAFKA_V_VALUE(const_cast<char*>(value.data()),
                                         value.size()),
                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                        RD_KAFKA_V_END),
      "produce to " + topic);
}

// High watermark (log end offset) of topic/partition.
absl::StatusOr<int64_t> HighWatermark(rd_kafka_t* rk, const std::string& topic,
                                      int32_t partition) {
  int64_t low = 0;
  int64_t high = 0;
  rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
      rk, topic.c_str(), partition, &low, &high, 10000);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return ToStatus(err, "watermarks of " + topic);
  }
  return high;
}

// --- Commit and abort, read with read_committed ---------------------------

class KafkaTransactionsTest : public KafkaTest,
                              public ::testing::WithParamInterface<int> {};

TEST_P(KafkaTransactionsTest, ReadCommittedSeesExactlyTheCommittedBatches) {
  const int partitions = GetParam();
  const std::string topic = UniqueTopic("txn");
  ASSERT_STATUS_OK(CreateTopic(topic, partitions));

  absl::StatusOr<KafkaPtr> producer = MakeClient(
      RD_KAFKA_PRODUCER, {{"transactional.id", UniqueName("txn-producer")},
                          {"linger.ms", "5"}});
  ASSERT_TRUE(producer.ok()) << producer.status();
  rd_kafka_t* p = producer->get();
  ASSERT_STATUS_OK(ToStatus(rd_kafka_init_transactions(p, kTxnTimeoutMs),
                            "init_transactions"));

  struct Batch {
    int records;
    bool commit;
  };
  const Batch batches[] = {
      {50, true}, {30, false}, {50, true}, {20, false}, {40, true}};
  // Every record carries its batch and a global sequence number; record `seq`
  // goes to partition seq % partitions.
  std::vector<std::vector<int>> expected(partitions);
  size_t committed_count = 0;
  size_t total_count = 0;
  int seq = 0;
  for (int b = 0; b < static_cast<int>(std::size(batches)); ++b) {
    ASSERT_STATUS_OK(
        ToStatus(rd_kafka_begin_transaction(p), "begin_transaction"));
    for (int i = 0; i < batches[b].records; ++i, ++seq) {
      const int32_t partition = seq % partitions;
      ASSERT_STATUS_OK(Produce(p, topic, partition,
                               absl::StrCat("b=", b, " s=", seq)));
      if (batches[b].commit) expected[partition].push_back(seq);
    }
    total_count += batches[b].records;
    if (batches[b].commit) {
      committed_count += batches[b].records;
      ASSERT_STATUS_OK(ToStatus(rd_kafka_commit_transaction(p, kTxnTimeoutMs),
                                "commit_transaction"));
    } else {
      // Flush first so the aborted records really are in the log.
      ASSERT_EQ(rd_kafka_flush(p, kTxnTimeoutMs), RD_KAFKA_RESP_ERR_NO_ERROR);
      ASSERT_STATUS_OK(ToStatus(rd_kafka_abort_transaction(p, kTxnTimeoutMs),
                                "abort_transaction"));
    }
  }

  // read_committed: every committed record, in order per partition, and not
  // one aborted record.
  absl::StatusOr<KafkaPtr> committed_reader =
      GroupConsumer(topic, "read_committed");
  ASSERT_TRUE(committed_reader.ok()) << committed_reader.status();
  const std::vector<Record> records =
      Consume(committed_reader->get(), committed_count);
  ASSERT_EQ(records.size(), committed_count)
      << "read_committed consumer got too few records within "
      << kConsumeTimeout.count() << " s";
  std::vector<std::vector<int>> seen(partitions);
  for (const Record& r : records) {
    int batch = -1;
    int s = -1;
    ASSERT_EQ(std::sscanf(r.value.c_str(), "b=%d s=%d", &batch, &s), 2)
        << r.value;
    ASSERT_GE(batch, 0);
    ASSERT_LT(batch, static_cast<int>(std::size(batches)));
    EXPECT_TRUE(batches[batch].commit) << "saw aborted record " << r.value;
    EXPECT_EQ(r.partition, s % partitions) << r.value;
    ASSERT_GE(r.partition, 0);
    ASSERT_LT(r.partition, partitions);
    seen[r.partition].push_back(s);
  }
  for (int partition = 0; partition < partitions; ++partition) {
    EXPECT_EQ(seen[partition], expected[partition])
        << "partition " << partition;
  }

  // read_uncommitted sees the aborted records too: they did reach the log,
  // so read_committed above really filtered them.
  absl::StatusOr<KafkaPtr> any_reader =
      GroupConsumer(topic, "read_uncommitted");
  ASSERT_TRUE(any_reader.ok()) << any_reader.status();
  EXPECT_EQ(Consume(any_reader->get(), total_count).size(), total_count);
}

INSTANTIATE_TEST_SUITE_P(Partitions, KafkaTransactionsTest,
                         ::testing::Values(1, 3),
                         [](const ::testing::TestParamInfo<int>& param) {
                           return absl::StrCat(param.param, "Partitions");
                         });

// --- Consumed offsets committed inside the transaction ---------------------

class KafkaSendOffsetsTest : public KafkaTest {};

TEST_F(KafkaSendOffsetsTest, CommitsGroupOffsetsWithTheTransaction) {
  constexpr int kPartitions = 2;
  constexpr int kRecords = 120;
  const std::string input = UniqueTopic("sot-in");
  const std::string output = UniqueTopic("sot-out");
  ASSERT_STATUS_OK(CreateTopic(input, kPartitions));
  ASSERT_STATUS_OK(CreateTopic(output, kPartitions));

  // Seed the input with a plain idempotent producer.
  {
    absl::StatusOr<KafkaPtr> seeder =
        MakeClient(RD_KAFKA_PRODUCER, {{"enable.idempotence", "true"}});
    ASSERT_TRUE(seeder.ok()) << seeder.status();
    for (int n = 0; n < kRecords; ++n) {
      ASSERT_STATUS_OK(Produce(seeder->get(), input, n % kPartitions,
                               absl::StrCat("in-", n)));
    }
    ASSERT_EQ(rd_kafka_flush(seeder->get(), kTxnTimeoutMs),
              RD_KAFKA_RESP_ERR_NO_ERROR);
  }

  // Consume-transform-produce: one transaction holds the output records and
  // the group's input offsets.
  const std::string group = UniqueName("sot-group");
  absl::StatusOr<KafkaPtr> consumer =
      MakeClient(RD_KAFKA_CONSUMER, {{"group.id", group},
                                     {"auto.offset.reset", "earliest"},
                                     {"enable.auto.commit", "false"},
                                     {"isolation.level", "read_committed"}});
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  rd_kafka_t* c = consumer->get();
  ASSERT_STATUS_OK(Subscribe(c, input));

  absl::StatusOr<KafkaPtr> producer = MakeClient(
      RD_KAFKA_PRODUCER, {{"transactional.id", UniqueName("sot-producer")}});
  ASSERT_TRUE(producer.ok()) << producer.status();
  rd_kafka_t* p = producer->get();
  ASSERT_STATUS_OK(ToStatus(rd_kafka_init_transactions(p, kTxnTimeoutMs),
                            "init_transactions"));
  ASSERT_STATUS_OK(ToStatus(rd_kafka_begin_transaction(p), "begin_transaction"));

  const std::vector<Record> consumed = Consume(c, kRecords);
  ASSERT_EQ(consumed.size(), static_cast<size_t>(kRecords));
  std::map<int32_t, int64_t> next_offset;  // partition -> last offset + 1
  std::set<std::string> expected_output;
  for (const Record& r : consumed) {
    const std::string value = "out-" + r.value;
    ASSERT_STATUS_OK(Produce(p, output, r.partition, value));
    expected_output.insert(value);
    next_offset[r.partition] = r.offset + 1;
  }
  ASSERT_EQ(next_offset.size(), static_cast<size_t>(kPartitions));

  PartitionListPtr offsets(rd_kafka_topic_partition_list_new(kPartitions));
  for (const auto& [partition, offset] : next_offset) {
    rd_kafka_topic_partition_list_add(offsets.get(), input.c_str(), partition)
        ->offset = offset;
  }
  GroupMetadataPtr group_metadata(rd_kafka_consumer_group_metadata(c));
  ASSERT_NE(group_metadata, nullptr);
  ASSERT_STATUS_OK(ToStatus(
      rd_kafka_send_offsets_to_transaction(p, offsets.get(),
                                           group_metadata.get(), kTxnTimeoutMs),
      "send_offsets_to_transaction"));
  ASSERT_STATUS_OK(ToStatus(rd_kafka_commit_transaction(p, kTxnTimeoutMs),
                            "commit_transaction"));

  // The group's committed offsets are the consumed end offsets, which are
  // the input's log end offsets.
  PartitionListPtr committed(rd_kafka_topic_partition_list_new(kPartitions));
  for (int32_t partition = 0; partition < kPartitions; ++partition) {
    rd_kafka_topic_partition_list_add(committed.get(), input.c_str(),
                                      partition);
  }
  ASSERT_STATUS_OK(
      ToStatus(rd_kafka_committed(c, committed.get(), 10000), "committed"));
  for (int i = 0; i < committed->cnt; ++i) {
    const rd_kafka_topic_partition_t& tp = committed->elems[i];
    EXPECT_EQ(tp.err, RD_KAFKA_RESP_ERR_NO_ERROR) << rd_kafka_err2str(tp.err);
    EXPECT_EQ(tp.offset, next_offset[tp.partition])
        << "partition " << tp.partition;
    absl::StatusOr<int64_t> end = HighWatermark(c, input, tp.partition);
    ASSERT_TRUE(end.ok()) << end.status();
    EXPECT_EQ(tp.offset, *end) << "partition " << tp.partition;
  }

  // The output is visible to read_committed.
  absl::StatusOr<KafkaPtr> reader = GroupConsumer(output, "read_committed");
  ASSERT_TRUE(reader.ok()) << reader.status();
  const std::vector<Record> out = Consume(reader->get(), kRecords);
  ASSERT_EQ(out.size(), static_cast<size_t>(kRecords));
  std::set<std::string> got;
  for (const Record& r : out) got.insert(r.value);
  EXPECT_EQ(got, expected_output);
}

}  // namespace
}  // namespace tributary::testing
