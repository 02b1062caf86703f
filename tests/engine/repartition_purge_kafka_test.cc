// Repartition purge against the real broker (label kafka): after a commit the
// stream thread deletes the records of its repartition partitions below their
// committed offsets (repartition.purge.interval.ms), so their low watermarks
// move up to the committed offsets; a restart then goes on from the committed
// offsets, the counts exactly once.
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/kafka_clients.h"
#include "engine/kafka_streams.h"
#include "engine/streams_builder.h"
#include "engine/streams_config.h"
#include "gtest/gtest.h"
#include "tests/support/kafka_fixture.h"

namespace tributary::testing {
namespace {

using namespace std::chrono_literals;

constexpr int kPartitions = 2;
constexpr int kGroups = 5;

// Values "v<i>"; the application counts them by group "g<i % kGroups>",
// which repartitions.
std::vector<std::pair<std::string, std::string>> Records(int from, int count) {
  std::vector<std::pair<std::string, std::string>> records;
  for (int i = from; i < from + count; ++i) {
    records.emplace_back(absl::StrCat("k", i % 7), absl::StrCat("v", i));
  }
  return records;
}

template <typename Condition>
bool WaitFor(Condition condition, std::chrono::milliseconds timeout = 30s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(50ms);
  }
  return true;
}

absl::StatusOr<std::unique_ptr<KafkaStreams>> OpenGroupCounter(const std::string& input,
                                                               const std::string& output,
                                                               const std::string& application_id,
                                                               const std::string& state_dir) {
  StreamsBuilder builder;
  builder.Stream<std::string, std::string>({input})
      .GroupBy<std::string>([](const std::string&, const std::string& value) {
        int64_t i = 0;
        (void)absl::SimpleAtoi(value.substr(1), &i);
        return absl::StrCat("g", i % kGroups);
      })
      .Count({.store_name = "counts"})
      .ToStream()
      .MapValues<std::string>([](const int64_t& count) { return absl::StrCat(count); })
      .To(output);
  absl::StatusOr<Topology> topology = builder.Build();
  if (!topology.ok()) return topology.status();
  absl::StatusOr<StreamsConfig> config = StreamsConfig::FromMap({
      {"application.id", application_id},
      {"bootstrap.servers", BootstrapServers()},
      {"state.dir", state_dir},
      {"consumer.session.timeout.ms", "6000"},
      {"cache.max.bytes", "0"},  // one output per record
      {"repartition.purge.interval.ms", "0"},
  });
  if (!config.ok()) return config.status();
  return KafkaStreams::Open(*std::move(topology), *std::move(config));
}

// The last count of each group in `output`.
std::map<std::string, std::string> LastCounts(const std::vector<ConsumedRecord>& records) {
  std::map<std::string, std::string> last;
  for (const ConsumedRecord& r : records) last[r.key.value_or("")] = r.value.value_or("");
  return last;
}

int64_t CounterSum(const Metrics& metrics, std::string_view name) {
  int64_t sum = 0;
  for (const MetricSample& m : metrics.Snapshot()) {
    if (m.name == name) sum += m.value;
  }
  return sum;
}

class RepartitionPurgeKafkaTest : public KafkaTest {};

TEST_F(RepartitionPurgeKafkaTest, LowWatermarksReachTheCommittedOffsetsAndARestartGoesOn) {
  const std::string input = UniqueTopic("purge-in");
  const std::string output = UniqueTopic("purge-out");
  const std::string application_id = UniqueName("purge");
  ASSERT_STATUS_OK(CreateTopic(input, kPartitions));
  ASSERT_STATUS_OK(CreateTopic(output, kPartitions));
  absl::StatusOr<std::string> dir = MakeTempDir("repartition_purge_kafka_test");
  ASSERT_TRUE(dir.ok()) << dir.status();
  constexpr int kFirst = 300;
  ASSERT_STATUS_OK(ProduceRecords(input, Records(0, kFirst)));

  absl::StatusOr<std::unique_ptr<KafkaStreams>> streams =
      OpenGroupCounter(input, output, application_id, *dir);
  ASSERT_TRUE(streams.ok()) << streams.status();
  ASSERT_STATUS_OK((*streams)->Start());
  absl::StatusOr<std::unique_ptr<TopicReader>> reader = TopicReader::Open(output, kPartitions);
  ASSERT_TRUE(reader.ok()) << reader.status();
  ASSERT_STATUS_OK((*reader)->ReadUntilCount(kFirst, 60s));

  // The repartition topic: the one internal topic of the application that
  // ends in -repartition.
  absl::StatusOr<std::map<std::string, int>> topics = TopicPartitionCounts();
  ASSERT_TRUE(topics.ok()) << topics.status();
  std::string repartition;
  for (const auto& [name, count] : *topics) {
    if (absl::StartsWith(name, application_id) && absl::EndsWith(name, "-repartition")) {
      repartition = name;
    }
  }
  ASSERT_FALSE(repartition.empty());
  absl::StatusOr<std::unique_ptr<KafkaAdmin>> admin =
      KafkaAdmin::Open({{"bootstrap.servers", BootstrapServers()}});
  ASSERT_TRUE(admin.ok()) << admin.status();

  // Every record went through the repartition topic; once all are
  // committed, each partition's low watermark is its committed offset.
  std::vector<int64_t> committed, low;
  auto purged_to_committed = [&] {
    absl::StatusOr<std::vector<int64_t>> offsets =
        CommittedOffsets(application_id, repartition, kPartitions);
    if (!offsets.ok()) return false;
    committed = *offsets;
    low.clear();
    for (int p = 0; p < kPartitions; ++p) {
      absl::StatusOr<KafkaAdmin::Watermarks> marks =
          (*admin)->QueryWatermarks(repartition, Partition{p}, 5000);
      if (!marks.ok()) return false;
      low.push_back(marks->low.value);
      // Some records went to each partition: nothing purged would be low 0.
      if (committed[p] <= 0 || low[p] != committed[p]) return false;
    }
    return true;
  };
  ASSERT_TRUE(WaitFor(purged_to_committed))
      << "committed " << ::testing::PrintToString(committed) << ", low watermarks "
      << ::testing::PrintToString(low);
  // The thread takes the answers at its next loop.
  EXPECT_TRUE(WaitFor(
      [&] { return CounterSum((*streams)->metrics(), "repartition-purge-total") > 0; }));
  EXPECT_EQ(CounterSum((*streams)->metrics(), "repartition-purge-errors-total"), 0);
  ASSERT_STATUS_OK((*streams)->Close());

  // A restart (new state directory: the counts restore from the changelog)
  // reads the repartition partitions from their committed offsets, which
  // were never purged past.
  constexpr int kSecond = 100;
  ASSERT_STATUS_OK(ProduceRecords(input, Records(kFirst, kSecond)));
  absl::StatusOr<std::string> dir2 = MakeTempDir("repartition_purge_kafka_test");
  ASSERT_TRUE(dir2.ok()) << dir2.status();
  streams = OpenGroupCounter(input, output, application_id, *dir2);
  ASSERT_TRUE(streams.ok()) << streams.status();
  ASSERT_STATUS_OK((*streams)->Start());
  ASSERT_STATUS_OK((*reader)->ReadUntilCount(kFirst + kSecond, 60s));
  ASSERT_STATUS_OK((*reader)->Poll(500ms));  // nothing more may come
  EXPECT_EQ((*reader)->size(), static_cast<size_t>(kFirst + kSecond));
  std::map<std::string, std::string> expected;
  for (int g = 0; g < kGroups; ++g) {
    expected[absl::StrCat("g", g)] = absl::StrCat((kFirst + kSecond) / kGroups);
  }
  EXPECT_EQ(LastCounts((*reader)->records()), expected);
  ASSERT_STATUS_OK((*streams)->Close());
  std::filesystem::remove_all(*dir);
  std::filesystem::remove_all(*dir2);
}

}  // namespace
}  // namespace tributary::testing
