// The metrics endpoint's parts without a broker: the Prometheus exposition
// of a registry (exact text, label escaping) and KafkaStats' reading of
// librdkafka's statistics JSON.
#include "engine/internal/prometheus.h"

#include <gtest/gtest.h>

#include <string>

#include "engine/internal/kafka_stats.h"
#include "engine/metrics.h"

namespace tributary::internal {
namespace {

TEST(PrometheusTest, ExactTextOfCounterGaugeAndLatency) {
  Metrics metrics;
  metrics.GetCounter("process-total", {{"thread", "a\"b\\c\nd"}})->Add(5);
  metrics.GetCounter("odd.name", {{"bad-key", "v"}})->Add(1);
  metrics.GetGauge("cdc-transactions-pending", {{"task", "0_1"}, {"operator", "agg"}})->Set(-3);
  LatencyRecorder* latency = metrics.GetLatency("commit-latency", {{"thread", "t0"}});
  // Below 16 ns the recorder's buckets are exact.
  latency->Record(absl::Nanoseconds(2));
  latency->Record(absl::Nanoseconds(8));

  EXPECT_EQ(PrometheusText(metrics.Snapshot()),
            "# HELP tributary_cdc_transactions_pending Tributary metric "
            "'cdc-transactions-pending' (see README, Metrics and health).\n"
            "# TYPE tributary_cdc_transactions_pending gauge\n"
            "tributary_cdc_transactions_pending{operator=\"agg\",task=\"0_1\"} -3\n"
            "# HELP tributary_commit_latency_seconds Time of one commit.\n"
            "# TYPE tributary_commit_latency_seconds summary\n"
            "tributary_commit_latency_seconds{thread=\"t0\",quantile=\"0.5\"} 2e-09\n"
            "tributary_commit_latency_seconds{thread=\"t0\",quantile=\"0.99\"} 8e-09\n"
            "tributary_commit_latency_seconds_sum{thread=\"t0\"} 1e-08\n"
            "tributary_commit_latency_seconds_count{thread=\"t0\"} 2\n"
            "# HELP tributary_commit_latency_max_seconds Largest value of "
            "tributary_commit_latency_seconds since the start.\n"
            "# TYPE tributary_commit_latency_max_seconds gauge\n"
            "tributary_commit_latency_max_seconds{thread=\"t0\"} 8e-09\n"
            "# HELP tributary_odd_name_total Tributary metric 'odd.name' (see README, Metrics "
            "and health).\n"
            "# TYPE tributary_odd_name_total counter\n"
            "tributary_odd_name_total{bad_key=\"v\"} 1\n"
            "# HELP tributary_process_total Records processed by the stream thread.\n"
            "# TYPE tributary_process_total counter\n"
            "tributary_process_total{thread=\"a\\\"b\\\\c\\nd\"} 5\n");
}

TEST(PrometheusTest, MetricsWithoutTagsOrRecordsHaveNoBraces) {
  Metrics metrics;
  metrics.GetCounter("commit-total");
  metrics.GetLatency("process-batch-latency");
  EXPECT_EQ(PrometheusText(metrics.Snapshot()),
            "# HELP tributary_commit_total Commits of the stream thread (Kafka transactions "
            "under exactly_once_v2).\n"
            "# TYPE tributary_commit_total counter\n"
            "tributary_commit_total 0\n"
            "# HELP tributary_process_batch_latency_seconds Time to process one polled batch "
            "of records (batches with at least one record).\n"
            "# TYPE tributary_process_batch_latency_seconds summary\n"
            "tributary_process_batch_latency_seconds{quantile=\"0.5\"} 0\n"
            "tributary_process_batch_latency_seconds{quantile=\"0.99\"} 0\n"
            "tributary_process_batch_latency_seconds_sum 0\n"
            "tributary_process_batch_latency_seconds_count 0\n"
            "# HELP tributary_process_batch_latency_max_seconds Largest value of "
            "tributary_process_batch_latency_seconds since the start.\n"
            "# TYPE tributary_process_batch_latency_max_seconds gauge\n"
            "tributary_process_batch_latency_max_seconds 0\n");
}

TEST(PrometheusTest, EscapesLabelValues) {
  EXPECT_EQ(EscapeLabelValue("plain"), "plain");
  EXPECT_EQ(EscapeLabelValue("a\\b"), "a\\\\b");
  EXPECT_EQ(EscapeLabelValue("say \"hi\""), "say \\\"hi\\\"");
  EXPECT_EQ(EscapeLabelValue("two\nlines"), "two\\nlines");
}

// A consumer's statistics, cut to what KafkaStats reads (librdkafka 2.0's
// field order): an assigned partition caught up, one behind, one not
// assigned, and librdkafka's internal partition -1.
constexpr char kConsumerStats[] = R"({
  "name": "app-StreamThread-0-consumer#consumer-1", "type": "consumer", "msg_cnt": 0,
  "brokers": {"127.0.0.1:19092/1": {"toppars": {"in-0": {"topic": "in", "partition": 0}}}},
  "topics": {
    "in": {"topic": "in", "age": 10, "partitions": {
      "0": {"partition": 0, "fetch_state": "active", "app_offset": 10,
            "committed_offset": 7, "hi_offset": 10, "ls_offset": 10, "consumer_lag": 3},
      "1": {"partition": 1, "fetch_state": "active", "app_offset": -1001,
            "committed_offset": 4, "hi_offset": 9, "ls_offset": 9, "consumer_lag": 5},
      "2": {"partition": 2, "fetch_state": "none", "app_offset": -1001,
            "committed_offset": -1001, "hi_offset": 9, "ls_offset": 9, "consumer_lag": -1},
      "-1": {"partition": -1, "fetch_state": "none", "app_offset": -1001,
             "committed_offset": -1001, "hi_offset": -1001, "ls_offset": -1001,
             "consumer_lag": -1}}}},
  "cgrp": {"state": "up"}
})";

TEST(KafkaStatsTest, ReadsLagOfFetchedPartitionsAndProducerQueue) {
  KafkaStats stats;
  ASSERT_TRUE(stats.OnConsumerStats("t0", kConsumerStats).ok());
  ASSERT_TRUE(
      stats.OnProducerStats("t0", R"({"name": "p", "msg_cnt": 12, "msg_size": 3400})").ok());
  EXPECT_EQ(PrometheusText(stats.Samples()),
            "# HELP tributary_consumer_lag Records of the input partition not consumed yet: "
            "its end (last stable offset) minus the group consumer's position (librdkafka "
            "statistics).\n"
            "# TYPE tributary_consumer_lag gauge\n"
            "tributary_consumer_lag{partition=\"0\",thread=\"t0\",topic=\"in\"} 0\n"
            "tributary_consumer_lag{partition=\"1\",thread=\"t0\",topic=\"in\"} 5\n"
            "# HELP tributary_producer_queue_bytes Bytes of the messages in the thread's "
            "producer queues (librdkafka msg_size).\n"
            "# TYPE tributary_producer_queue_bytes gauge\n"
            "tributary_producer_queue_bytes{thread=\"t0\"} 3400\n"
            "# HELP tributary_producer_queue_messages Messages in the thread's producer "
            "queues, not yet acknowledged (librdkafka msg_cnt).\n"
            "# TYPE tributary_producer_queue_messages gauge\n"
            "tributary_producer_queue_messages{thread=\"t0\"} 12\n");
}

TEST(KafkaStatsTest, ReadsRecordsAndBytesReceivedAndSent) {
  KafkaStats stats;
  ASSERT_TRUE(stats.OnConsumerStats(
      "t0", R"({"topics": {}, "rx": 9, "rx_bytes": 900, "rxmsgs": 120, "rxmsg_bytes": 45000})")
                  .ok());
  ASSERT_TRUE(stats.OnProducerStats("t0", R"({"msg_cnt": 0, "msg_size": 0, "txmsgs": 80,
                                              "txmsg_bytes": 31000, "rxmsgs": 0})")
                  .ok());
  const std::string text = PrometheusText(stats.Samples());
  EXPECT_NE(text.find("# TYPE tributary_records_consumed_total counter\n"
                      "tributary_records_consumed_total{thread=\"t0\"} 120\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("tributary_bytes_consumed_total{thread=\"t0\"} 45000\n"),
            std::string::npos) << text;
  EXPECT_NE(text.find("tributary_records_produced_total{thread=\"t0\"} 80\n"),
            std::string::npos) << text;
  EXPECT_NE(text.find("tributary_bytes_produced_total{thread=\"t0\"} 31000\n"),
            std::string::npos) << text;
  EXPECT_FALSE(stats.OnProducerStats("t0", R"({"msg_cnt": 0, "msg_size": 0, "txmsgs": "x"})")
                   .ok());
}

TEST(KafkaStatsTest, ANewReportReplacesTheThreadsFiguresAndABadOneKeepsThem) {
  KafkaStats stats;
  ASSERT_TRUE(stats.OnConsumerStats("t0", kConsumerStats).ok());
  EXPECT_FALSE(stats.OnConsumerStats("t0", "{\"topics\": [").ok());
  EXPECT_EQ(stats.Samples().size(), 2u);
  // Revoked: nothing fetched any more.
  ASSERT_TRUE(stats.OnConsumerStats("t0", R"({"topics": {}})").ok());
  EXPECT_TRUE(stats.Samples().empty());
}

}  // namespace
}  // namespace tributary::internal
