// ProcessorContext::QuerySourceProgress and PartitionCount against a real
// broker (label kafka): a probe processor asks from a wall-clock punctuator
// where its task stands in its input partition. Every answer must keep the
// contract the CDC assembler's completion proof rests on: each record that
// was readable at `as_of` is below `end`; caught_up() means the task has
// processed up to `end`.
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/kafka_streams.h"
#include "engine/processor.h"
#include "engine/streams_config.h"
#include "engine/topology.h"
#include "gtest/gtest.h"
#include "tests/support/kafka_fixture.h"

namespace tributary::testing {
namespace {

using namespace std::chrono_literals;

struct Report {
  int32_t partition = 0;
  SourceProgress progress;
};

// What the probes saw, shared with the test thread.
struct Reports {
  std::mutex mu;
  std::vector<Report> all;
  std::vector<int32_t> partition_counts;
};

class Probe : public Processor {
 public:
  Probe(std::string topic, Reports* reports) : topic_(std::move(topic)), reports_(reports) {}

  absl::Status Init(ProcessorContext& context) override {
    context_ = &context;
    absl::StatusOr<int32_t> partitions = context.PartitionCount(topic_);
    if (!partitions.ok()) return partitions.status();
    {
      std::lock_guard<std::mutex> lock(reports_->mu);
      reports_->partition_counts.push_back(*partitions);
    }
    context.Schedule(absl::Milliseconds(100), PunctuationType::kWallClockTime,
                     [this](TimestampMs) { return Ask(); });
    return absl::OkStatus();
  }
  absl::Status Process(const Record&) override { return absl::OkStatus(); }

 private:
  absl::Status Ask() {
    absl::StatusOr<SourceProgress> progress = context_->QuerySourceProgress(topic_);
    if (!progress.ok()) return absl::OkStatus();  // asked again next time
    std::lock_guard<std::mutex> lock(reports_->mu);
    reports_->all.push_back({context_->task_id().partition, *progress});
    return absl::OkStatus();
  }

  std::string topic_;
  Reports* reports_;
  ProcessorContext* context_ = nullptr;
};

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

std::vector<std::pair<std::string, std::string>> Records(int from, int count) {
  std::vector<std::pair<std::string, std::string>> records;
  for (int i = from; i < from + count; ++i) records.emplace_back(absl::StrCat("k", i), "v");
  return records;
}

class SourceProgressKafkaTest : public KafkaTest {};

TEST_F(SourceProgressKafkaTest, EndOffsetsAndPositionsKeepTheirContract) {
  const std::string topic = UniqueTopic("source-progress");
  ASSERT_STATUS_OK(CreateTopic(topic, 2));
  const int64_t start_ms = NowMs();
  ASSERT_STATUS_OK(ProduceRecords(topic, Records(0, 50)));
  const int64_t first_acked_ms = NowMs();

  Reports reports;
  Topology topology;
  topology.AddSource("source", {topic})
      .AddProcessor("probe", [&] { return std::make_unique<Probe>(topic, &reports); },
                    {"source"});
  absl::StatusOr<std::string> dir = MakeTempDir("source_progress_kafka_test");
  ASSERT_TRUE(dir.ok()) << dir.status();
  absl::StatusOr<StreamsConfig> config = StreamsConfig::FromMap({
      {"application.id", UniqueName("source-progress")},
      {"bootstrap.servers", BootstrapServers()},
      {"state.dir", *dir},
      {"processing.guarantee", "exactly_once_v2"},
      {"consumer.session.timeout.ms", "6000"},
  });
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<std::unique_ptr<KafkaStreams>> streams =
      KafkaStreams::Open(std::move(topology), *std::move(config));
  ASSERT_TRUE(streams.ok()) << streams.status();
  ASSERT_STATUS_OK((*streams)->Start());

  // The newest report of each partition, once both are caught up at `total`.
  auto caught_up_at = [&](int64_t total) {
    std::lock_guard<std::mutex> lock(reports.mu);
    std::map<int32_t, SourceProgress> newest;
    for (const Report& r : reports.all) newest[r.partition] = r.progress;
    int64_t sum = 0;
    for (const auto& [partition, progress] : newest) {
      if (!progress.caught_up()) return false;
      sum += progress.end.value;
    }
    return newest.size() == 2 && sum == total;
  };
  auto wait_for = [&](int64_t total) {
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (!caught_up_at(total) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(50ms);
    }
    return caught_up_at(total);
  };
  ASSERT_TRUE(wait_for(50)) << "both partitions caught up at 50 records";
  ASSERT_STATUS_OK(ProduceRecords(topic, Records(50, 25)));
  const int64_t second_acked_ms = NowMs();
  ASSERT_TRUE(wait_for(75)) << "both partitions caught up at 75 records";
  ASSERT_STATUS_OK((*streams)->Close());

  // The partitions' final ends, from an independent client.
  absl::StatusOr<KafkaPtr> client = MakeClient(RD_KAFKA_PRODUCER, {});
  ASSERT_TRUE(client.ok()) << client.status();
  std::map<int32_t, int64_t> final_end;
  for (int32_t p = 0; p < 2; ++p) {
    int64_t low = 0, high = 0;
    ASSERT_EQ(rd_kafka_query_watermark_offsets(client->get(), topic.c_str(), p, &low, &high,
                                               10000),
              RD_KAFKA_RESP_ERR_NO_ERROR);
    final_end[p] = high;
  }
  ASSERT_EQ(final_end[0] + final_end[1], 75);

  std::lock_guard<std::mutex> lock(reports.mu);
  // One task per partition (a rebalance may have made them more than once).
  ASSERT_GE(reports.partition_counts.size(), 2u);
  for (int32_t count : reports.partition_counts) EXPECT_EQ(count, 2);
  size_t after_second = 0;
  for (const Report& r : reports.all) {
    const SourceProgress& p = r.progress;
    EXPECT_GE(p.as_of.value, start_ms);
    EXPECT_LE(p.end.value, final_end[r.partition]);
    // Everything acknowledged before as_of is below end.
    if (p.as_of.value > second_acked_ms) {  // asked after the acknowledgement
      ++after_second;
      EXPECT_EQ(p.end.value, final_end[r.partition]) << "as_of " << p.as_of.value;
    }
    if (p.as_of.value > first_acked_ms) {
      EXPECT_GT(p.end.value, 0);
    }
  }
  EXPECT_GT(after_second, 0u);
}

}  // namespace
}  // namespace tributary::testing
