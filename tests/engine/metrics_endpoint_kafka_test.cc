// The metrics endpoint against the real broker (label kafka): a KafkaStreams
// with metrics.port=0 answers /health, /ready and /metrics over HTTP on
// 127.0.0.1, with figures that follow the input (records processed, consumer
// lag back to 0 once caught up); a second instance on the same port fails
// Start naming host:port.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "engine/kafka_streams.h"
#include "engine/streams_builder.h"
#include "engine/streams_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "tests/support/kafka_fixture.h"

namespace tributary::testing {
namespace {

using namespace std::chrono_literals;

constexpr char kHost[] = "127.0.0.1";

std::vector<std::pair<std::string, std::string>> Records(int from, int count) {
  std::vector<std::pair<std::string, std::string>> records;
  for (int i = from; i < from + count; ++i) {
    records.emplace_back(absl::StrCat("k", i % 7), absl::StrCat("v", i));
  }
  return records;
}

struct Answer {
  int status = 0;  // 0: no answer
  std::string body;
};

Answer Get(int port, const std::string& path) {
  httplib::Client client(kHost, port);
  client.set_connection_timeout(2);
  client.set_read_timeout(5);
  httplib::Result result = client.Get(path.c_str());
  if (!result) return {};
  return {result->status, result->body};
}

// Series (name with labels) -> value, from Prometheus text.
std::map<std::string, double> Series(const std::string& text) {
  std::map<std::string, double> series;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line.front() == '#') continue;
    const size_t space = line.rfind(' ');
    double value = 0;
    if (space == std::string_view::npos ||
        !absl::SimpleAtod(line.substr(space + 1), &value)) {
      ADD_FAILURE() << "not a sample line: " << line;
      continue;
    }
    series[std::string(line.substr(0, space))] = value;
  }
  return series;
}

// Sum of the series named `name` (any labels), nullopt when there is none.
std::optional<double> Sum(const std::map<std::string, double>& series, const std::string& name) {
  std::optional<double> sum;
  for (const auto& [key, value] : series) {
    if (key == name || key.starts_with(name + "{")) sum = sum.value_or(0) + value;
  }
  return sum;
}

// The consumer_lag series of `topic`'s partitions.
std::map<std::string, double> Lag(const std::map<std::string, double>& series,
                                  const std::string& topic) {
  std::map<std::string, double> lag;
  for (const auto& [key, value] : series) {
    if (key.starts_with("tributary_consumer_lag{") &&
        key.find(absl::StrCat("topic=\"", topic, "\"")) != std::string::npos) {
      lag[key] = value;
    }
  }
  return lag;
}

// Polls `condition` every 50 ms until it holds or `timeout` passes.
template <typename Condition>
bool WaitFor(Condition condition, std::chrono::milliseconds timeout = 30s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(50ms);
  }
  return true;
}

// State directories made by OpenCounter, removed at exit.
std::vector<std::string> temp_dirs;
struct RemoveTempDirs {
  ~RemoveTempDirs() {
    for (const std::string& dir : temp_dirs) std::filesystem::remove_all(dir);
  }
} remove_temp_dirs;

absl::StatusOr<std::unique_ptr<KafkaStreams>> OpenCounter(const std::string& input,
                                                          const std::string& output,
                                                          const std::string& application_id,
                                                          int metrics_port,
                                                          absl::Duration per_record = {}) {
  StreamsBuilder builder;
  builder.Stream<std::string, std::string>({input})
      .MapValues<std::string>([per_record](const std::string& value) {
        absl::SleepFor(per_record);  // a slow workload, so that a backlog shows
        return value;
      })
      .GroupByKey()
      .Count({.store_name = "counts"})
      .ToStream()
      .To(output);
  absl::StatusOr<Topology> topology = builder.Build();
  if (!topology.ok()) return topology.status();
  absl::StatusOr<std::string> dir = MakeTempDir("metrics_endpoint_kafka_test");
  if (!dir.ok()) return dir.status();
  absl::StatusOr<StreamsConfig> config = StreamsConfig::FromMap({
      {"application.id", application_id},
      {"bootstrap.servers", BootstrapServers()},
      {"state.dir", *dir},
      {"consumer.session.timeout.ms", "6000"},
      // Small batches: the consumer is polled (and its statistics served)
      // between them.
      {"max.poll.records", "10"},
      {"metrics.port", absl::StrCat(metrics_port)},
      {"metrics.host", kHost},
  });
  if (!config.ok()) return config.status();
  temp_dirs.push_back(*dir);
  return KafkaStreams::Open(*std::move(topology), *std::move(config));
}

class MetricsEndpointKafkaTest : public KafkaTest {};

TEST_F(MetricsEndpointKafkaTest, ServesHealthReadinessAndFiguresThatFollowTheInput) {
  const std::string input = UniqueTopic("metrics-in");
  const std::string output = UniqueTopic("metrics-out");
  ASSERT_STATUS_OK(CreateTopic(input, 2));
  ASSERT_STATUS_OK(CreateTopic(output, 2));
  ASSERT_STATUS_OK(ProduceRecords(input, Records(0, 150)));

  // 10 ms a record: 1.5 s of backlog, over at least one statistics interval.
  absl::StatusOr<std::unique_ptr<KafkaStreams>> streams = OpenCounter(
      input, output, UniqueName("metrics-endpoint"), /*metrics_port=*/0, absl::Milliseconds(10));
  ASSERT_TRUE(streams.ok()) << streams.status();
  EXPECT_EQ((*streams)->metrics_port(), -1) << "no endpoint before Start";
  ASSERT_STATUS_OK((*streams)->Start());
  const int port = (*streams)->metrics_port();
  ASSERT_GT(port, 0);

  Answer health = Get(port, "/health");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, "ok\n");
  Answer ready = Get(port, "/ready");
  if (ready.status != 200) {  // the group is still forming, or restoring
    EXPECT_EQ(ready.status, 503);
    EXPECT_THAT(ready.body, ::testing::AnyOf(::testing::HasSubstr("no assignment yet"),
                                             ::testing::HasSubstr("restoring tasks"),
                                             ::testing::HasSubstr("starting")));
  }
  ASSERT_TRUE(WaitFor([&] { return Get(port, "/ready").status == 200; }))
      << Get(port, "/ready").body;
  EXPECT_EQ(Get(port, "/ready").body, "ok\n");

  // The backlog shows as lag, then every record is processed and both
  // partitions' lag is 0.
  double max_lag = 0;
  ASSERT_TRUE(WaitFor([&] {
    for (const auto& [key, value] : Lag(Series(Get(port, "/metrics").body), input)) {
      max_lag = std::max(max_lag, value);
    }
    return max_lag > 0;
  })) << Get(port, "/metrics").body;
  EXPECT_LE(max_lag, 150);
  std::map<std::string, double> series;
  auto caught_up_at = [&](double processed) {
    Answer metrics = Get(port, "/metrics");
    if (metrics.status != 200) return false;
    series = Series(metrics.body);
    std::map<std::string, double> lag = Lag(series, input);
    if (Sum(series, "tributary_process_total") != processed || lag.size() != 2) return false;
    for (const auto& [key, value] : lag) {
      if (value != 0) return false;
    }
    return true;
  };
  ASSERT_TRUE(WaitFor([&] { return caught_up_at(150); })) << Get(port, "/metrics").body;
  EXPECT_GT(Sum(series, "tributary_commit_total").value_or(0), 0);
  EXPECT_GT(Sum(series, "tributary_commit_latency_seconds_count").value_or(0), 0);
  // One store per task; its SST files may not be flushed yet (0 bytes).
  EXPECT_TRUE(series.count("tributary_state_store_sst_bytes{store=\"counts\",task=\"0_0\"}"));
  EXPECT_TRUE(series.count("tributary_state_store_sst_bytes{store=\"counts\",task=\"0_1\"}"));

  // More input: the total grows by as much, the lag comes back to 0.
  ASSERT_STATUS_OK(ProduceRecords(input, Records(150, 30)));
  ASSERT_TRUE(WaitFor([&] { return caught_up_at(180); })) << Get(port, "/metrics").body;
  // The producer's statistics come every second; all sent is acknowledged.
  ASSERT_TRUE(WaitFor([&] {
    return Sum(Series(Get(port, "/metrics").body), "tributary_producer_queue_messages") == 0;
  })) << Get(port, "/metrics").body;
  const Answer metrics = Get(port, "/metrics");
  EXPECT_NE(metrics.body.find("# TYPE tributary_process_total counter\n"), std::string::npos);
  EXPECT_NE(metrics.body.find("# TYPE tributary_commit_latency_seconds summary\n"),
            std::string::npos);
  EXPECT_EQ(Get(port, "/nothing").status, 404);

  ASSERT_STATUS_OK((*streams)->Close());
  EXPECT_EQ(Get(port, "/health").status, 0) << "the endpoint stops with the instance";
}

TEST_F(MetricsEndpointKafkaTest, APortInUseFailsStartNamingHostAndPort) {
  const std::string input = UniqueTopic("metrics-in");
  const std::string output = UniqueTopic("metrics-out");
  ASSERT_STATUS_OK(CreateTopic(input, 1));
  ASSERT_STATUS_OK(CreateTopic(output, 1));
  absl::StatusOr<std::unique_ptr<KafkaStreams>> first =
      OpenCounter(input, output, UniqueName("metrics-first"), 0);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_STATUS_OK((*first)->Start());
  const int port = (*first)->metrics_port();
  ASSERT_GT(port, 0);

  absl::StatusOr<std::unique_ptr<KafkaStreams>> second =
      OpenCounter(input, output, UniqueName("metrics-second"), port);
  ASSERT_TRUE(second.ok()) << second.status();
  absl::Status status = (*second)->Start();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(std::string(status.message()),
              ::testing::HasSubstr(absl::StrCat("127.0.0.1:", port)));
  EXPECT_EQ(Get(port, "/health").status, 200) << "the first instance still serves";
  ASSERT_STATUS_OK((*first)->Close());
}

}  // namespace
}  // namespace tributary::testing
