#include "engine/metrics.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tributary {
namespace {

using ::testing::HasSubstr;

// A reported value is within 1/32 of the exact one (bucket midpoint).
constexpr double kBucketPrecision = 1.0 / 32;

void ExpectWithinBucket(absl::Duration actual, absl::Duration expected) {
  const double a = absl::ToDoubleNanoseconds(actual);
  const double e = absl::ToDoubleNanoseconds(expected);
  EXPECT_NEAR(a, e, e * kBucketPrecision) << actual << " vs " << expected;
}

TEST(MetricsTest, CountersFromSeveralThreads) {
  Metrics metrics;
  constexpr int kThreads = 8;
  constexpr int kAdds = 100000;
  std::vector<std::thread> threads;
  std::vector<Counter*> seen(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&metrics, &seen, t] {
      Counter* counter = metrics.GetCounter(metric_names::kProcessTotal,
                                            {{"thread-id", "t0"}});
      seen[t] = counter;
      for (int i = 0; i < kAdds; ++i) counter->Add();
      metrics.GetCounter(metric_names::kCommitTotal)->Add(2);
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (Counter* counter : seen) EXPECT_EQ(counter, seen[0]);
  EXPECT_EQ(seen[0]->value(), int64_t{kThreads} * kAdds);
  EXPECT_EQ(metrics.GetCounter("commit-total")->value(), 2 * kThreads);
  // Different tags are a different counter.
  EXPECT_EQ(metrics.GetCounter("process-total", {{"thread-id", "t1"}})->value(),
            0);
}

TEST(MetricsTest, Gauge) {
  Metrics metrics;
  Gauge* gauge = metrics.GetGauge("assigned-tasks");
  gauge->Set(5);
  gauge->Add(-2);
  EXPECT_EQ(metrics.GetGauge("assigned-tasks")->value(), 3);
}

TEST(MetricsTest, LatencyPercentilesOnUniformDistribution) {
  Metrics metrics;
  LatencyRecorder* latency = metrics.GetLatency(metric_names::kCommitLatency);
  // 1..1000 microseconds, in scrambled order.
  for (int i = 0; i < 1000; ++i)
    latency->Record(absl::Microseconds((i * 389) % 1000 + 1));
  LatencySummary summary = latency->Summary();
  EXPECT_EQ(summary.count, 1000);
  EXPECT_EQ(summary.mean, absl::Nanoseconds(500500));
  EXPECT_EQ(summary.max, absl::Microseconds(1000));
  ExpectWithinBucket(summary.p50, absl::Microseconds(500));
  ExpectWithinBucket(summary.p99, absl::Microseconds(990));
  ExpectWithinBucket(latency->Percentile(0.9), absl::Microseconds(900));
  ExpectWithinBucket(latency->Percentile(0.0), absl::Microseconds(1));
  EXPECT_EQ(latency->Percentile(1.0), absl::Microseconds(1000));
}

TEST(MetricsTest, LatencyEdgeCases) {
  LatencyRecorder empty;
  LatencySummary summary = empty.Summary();
  EXPECT_EQ(summary.count, 0);
  EXPECT_EQ(summary.p99, absl::ZeroDuration());

  LatencyRecorder small;  // below 16 ns buckets are exact
  for (int i = 0; i < 10; ++i) small.Record(absl::Nanoseconds(5));
  small.Record(absl::Nanoseconds(-3));  // counts as zero
  EXPECT_EQ(small.Percentile(0.5), absl::Nanoseconds(5));
  EXPECT_EQ(small.Percentile(0.01), absl::ZeroDuration());

  LatencyRecorder single;  // a percentile never exceeds the maximum
  single.Record(absl::Nanoseconds(1000));
  EXPECT_LE(single.Percentile(0.99), absl::Nanoseconds(1000));
  ExpectWithinBucket(single.Percentile(0.99), absl::Nanoseconds(1000));

  LatencyRecorder huge;  // clamped to a day
  huge.Record(absl::Hours(24 * 365));
  huge.Record(absl::InfiniteDuration());
  EXPECT_EQ(huge.Summary().count, 2);
  EXPECT_EQ(huge.Summary().max, absl::Hours(24));
  EXPECT_EQ(huge.Summary().mean, absl::Hours(24));
  ExpectWithinBucket(huge.Percentile(0.5), absl::Hours(24));
}

TEST(MetricsTest, LatencyReadWhileWriting) {
  LatencyRecorder latency;
  std::atomic<bool> done{false};
  std::thread reader([&] {
    while (!done.load()) {
      LatencySummary summary = latency.Summary();
      EXPECT_LE(summary.p50, absl::Microseconds(100));
    }
  });
  for (int i = 0; i < 200000; ++i)
    latency.Record(absl::Microseconds(i % 100 + 1));
  done = true;
  reader.join();
  EXPECT_EQ(latency.Summary().count, 200000);
}

TEST(MetricsTest, SnapshotIsSortedByNameThenTags) {
  Metrics metrics;
  metrics.GetCounter("process-total", {{"thread-id", "t1"}})->Add(1);
  metrics.GetLatency("commit-latency", {{"thread-id", "t0"}})
      ->Record(absl::Milliseconds(2));
  metrics
      .GetCounter("process-total", {{"thread-id", "t0"}, {"task-id", "0_1"}})
      ->Add(2);
  metrics.GetCounter("process-total", {{"thread-id", "t0"}})->Add(3);
  metrics.GetGauge("alive-stream-threads")->Set(2);

  std::vector<MetricSample> samples = metrics.Snapshot();
  ASSERT_EQ(samples.size(), 5u);
  EXPECT_EQ(samples[0].name, "alive-stream-threads");
  EXPECT_EQ(samples[0].kind, MetricKind::kGauge);
  EXPECT_EQ(samples[0].value, 2);
  EXPECT_EQ(samples[1].name, "commit-latency");
  EXPECT_EQ(samples[1].kind, MetricKind::kLatency);
  EXPECT_EQ(samples[1].latency.count, 1);
  EXPECT_EQ(samples[2].name, "process-total");
  EXPECT_EQ(samples[2].tags,
            (MetricTags{{"task-id", "0_1"}, {"thread-id", "t0"}}));
  EXPECT_EQ(samples[2].value, 2);
  EXPECT_EQ(samples[3].tags, (MetricTags{{"thread-id", "t0"}}));
  EXPECT_EQ(samples[3].value, 3);
  EXPECT_EQ(samples[4].tags, (MetricTags{{"thread-id", "t1"}}));
  EXPECT_EQ(samples[4].value, 1);
}

TEST(MetricsTest, ToStringAndToJson) {
  Metrics metrics;
  metrics
      .GetCounter("process-total", {{"task-id", "0_1"}, {"thread-id", "t0"}})
      ->Add(42);
  metrics.GetLatency("commit-latency")->Record(absl::Milliseconds(2));
  metrics.GetGauge("odd\"name")->Set(-1);

  std::string text = metrics.ToString();
  EXPECT_THAT(text, HasSubstr("process-total{task-id=0_1,thread-id=t0} 42\n"));
  EXPECT_THAT(text, HasSubstr("commit-latency{} count=1 mean=2ms"));
  EXPECT_THAT(text, HasSubstr("max=2ms"));

  std::string json = metrics.ToJson();
  EXPECT_EQ(json.front(), '[');
  EXPECT_EQ(json.back(), ']');
  EXPECT_THAT(
      json,
      HasSubstr(
          R"({"name":"process-total","tags":{"task-id":"0_1","thread-id":"t0"},)"
          R"("type":"counter","value":42})"));
  EXPECT_THAT(json,
              HasSubstr(R"("type":"latency","count":1,"mean_ns":2000000)"));
  EXPECT_THAT(json, HasSubstr(R"("max_ns":2000000)"));
  EXPECT_THAT(
      json,
      HasSubstr(R"({"name":"odd\"name","tags":{},"type":"gauge","value":-1})"));
  EXPECT_EQ(Metrics().ToJson(), "[]");
}

}  // namespace
}  // namespace tributary
