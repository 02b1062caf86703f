// Runs low-level topologies through TopologyTestDriver: forwarding, stores and
// their changelogs, punctuations on stream and wall-clock time, repartition
// topics, and the processing error policies.
#include "tests/support/topology_test_driver.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/internal/task.h"

namespace tributary::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

std::vector<std::pair<std::string, std::string>> KeyValues(
    const std::vector<OwnedRecord>& records) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const OwnedRecord& r : records) {
    out.emplace_back(r.key.value_or("<null>"), r.value.value_or("<null>"));
  }
  return out;
}

// Counts records per key in store "counts" and forwards "<count>".
class CountProcessor : public Processor {
 public:
  absl::Status Init(ProcessorContext& context) override {
    context_ = &context;
    store_ = context.GetStateStore("counts");
    return store_ == nullptr ? absl::InternalError("no store") : absl::OkStatus();
  }
  absl::Status Process(const Record& record) override {
    TRIBUTARY_ASSIGN_OR_RETURN(std::optional<std::string> old, store_->Get(*record.key));
    int64_t count = 0;
    if (old) (void)absl::SimpleAtoi(*old, &count);
    std::string next = absl::StrCat(count + 1);
    TRIBUTARY_RETURN_IF_ERROR(store_->Put(*record.key, next));
    Record out = record;
    out.value = next;
    return context_->Forward(out);
  }

 private:
  ProcessorContext* context_ = nullptr;
  KeyValueStore* store_ = nullptr;
};

Topology CountTopology() {
  Topology topology;
  topology.AddSource("source", {"in"})
      .AddProcessor("count", [] { return std::make_unique<CountProcessor>(); }, {"source"})
      .AddStateStore({"counts", StoreType::kRocksDb, true}, {"count"})
      .AddSink("sink", "out", {"count"});
  return topology;
}

TEST(TopologyTestDriverTest, CountsPerKeyAndLogsEveryStoreWrite) {
  auto driver = TopologyTestDriver::Create(CountTopology());
  ASSERT_TRUE(driver.ok()) << driver.status();
  for (const char* key : {"a", "b", "a", "a"}) {
    ASSERT_TRUE((*driver)->PipeInput("in", key, "x").ok());
  }
  EXPECT_THAT(KeyValues((*driver)->ReadOutput("out")),
              ElementsAre(Pair("a", "1"), Pair("b", "1"), Pair("a", "2"), Pair("a", "3")));
  EXPECT_TRUE((*driver)->ReadOutput("out").empty()) << "ReadOutput drains";
  EXPECT_THAT(KeyValues((*driver)->ReadOutput("test-app-counts-changelog")),
              ElementsAre(Pair("a", "1"), Pair("b", "1"), Pair("a", "2"), Pair("a", "3")));
  auto stored = (*driver)->GetStore("counts")->Get("a");
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->value_or(""), "3");
}

TEST(TopologyTestDriverTest, UnknownInputTopicIsAnError) {
  auto driver = TopologyTestDriver::Create(CountTopology());
  ASSERT_TRUE(driver.ok());
  absl::Status status = (*driver)->PipeInput("nope", "a", "x");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("nope"));
}

// Re-keys each record by its value and sends it through a repartition topic.
class RekeyProcessor : public Processor {
 public:
  absl::Status Init(ProcessorContext& context) override {
    context_ = &context;
    return absl::OkStatus();
  }
  absl::Status Process(const Record& record) override {
    Record out = record;
    out.key = record.value;
    return context_->Forward(out);
  }

 private:
  ProcessorContext* context_ = nullptr;
};

TEST(TopologyTestDriverTest, RepartitionTopicFeedsTheDownstreamTask) {
  Topology topology;
  topology.AddRepartitionTopic("rekey-repartition")
      .AddSource("source", {"in"})
      .AddProcessor("rekey", [] { return std::make_unique<RekeyProcessor>(); }, {"source"})
      .AddSink("to-repartition", "rekey-repartition", {"rekey"})
      .AddSource("from-repartition", {"rekey-repartition"})
      .AddProcessor("count", [] { return std::make_unique<CountProcessor>(); },
                    {"from-repartition"})
      .AddStateStore({"counts", StoreType::kInMemory, false}, {"count"})
      .AddSink("sink", "out", {"count"});
  auto driver = TopologyTestDriver::Create(std::move(topology));
  ASSERT_TRUE(driver.ok()) << driver.status();
  ASSERT_TRUE((*driver)->PipeInput("in", "1", "red").ok());
  ASSERT_TRUE((*driver)->PipeInput("in", "2", "red").ok());
  ASSERT_TRUE((*driver)->PipeInput("in", "3", "blue").ok());
  EXPECT_THAT(KeyValues((*driver)->ReadOutput("out")),
              ElementsAre(Pair("red", "1"), Pair("red", "2"), Pair("blue", "1")));
  EXPECT_EQ((*driver)->ReadOutput("test-app-rekey-repartition").size(), 3u);
  EXPECT_TRUE((*driver)->ReadOutput("test-app-counts-changelog").empty())
      << "logging disabled for this store";
}

// Emits "tick@<time>" from punctuations of the given type.
class TickProcessor : public Processor {
 public:
  explicit TickProcessor(PunctuationType type) : type_(type) {}
  absl::Status Init(ProcessorContext& context) override {
    context_ = &context;
    context.Schedule(absl::Milliseconds(100), type_, [this](TimestampMs time) {
      std::string value = absl::StrCat("tick@", time.value);
      Record out;
      out.key = "tick";
      out.value = value;
      out.timestamp = time;
      return context_->Forward(out);
    });
    return absl::OkStatus();
  }
  absl::Status Process(const Record&) override { return absl::OkStatus(); }

 private:
  PunctuationType type_;
  ProcessorContext* context_ = nullptr;
};

Topology TickTopology(PunctuationType type) {
  Topology topology;
  topology.AddSource("source", {"in"})
      .AddProcessor("tick", [type] { return std::make_unique<TickProcessor>(type); },
                    {"source"})
      .AddSink("sink", "out", {"tick"});
  return topology;
}

TEST(TopologyTestDriverTest, StreamTimePunctuationFollowsRecordTimestamps) {
  auto driver = TopologyTestDriver::Create(TickTopology(PunctuationType::kStreamTime));
  ASSERT_TRUE(driver.ok());
  ASSERT_TRUE((*driver)->PipeInput("in", "k", "v", TimestampMs{1000}).ok());
  ASSERT_TRUE((*driver)->PipeInput("in", "k", "v", TimestampMs{1050}).ok());
  EXPECT_TRUE((*driver)->ReadOutput("out").empty());
  ASSERT_TRUE((*driver)->PipeInput("in", "k", "v", TimestampMs{1100}).ok());
  // An older record does not move stream time backwards.
  ASSERT_TRUE((*driver)->PipeInput("in", "k", "v", TimestampMs{900}).ok());
  ASSERT_TRUE((*driver)->AdvanceWallClockTime(absl::Seconds(10)).ok());
  EXPECT_THAT(KeyValues((*driver)->ReadOutput("out")), ElementsAre(Pair("tick", "tick@1100")));
}

TEST(TopologyTestDriverTest, WallClockPunctuationFollowsTheFakeClock) {
  TopologyTestDriver::Options options;
  options.start_wall_clock = TimestampMs{5000};
  auto driver =
      TopologyTestDriver::Create(TickTopology(PunctuationType::kWallClockTime), options);
  ASSERT_TRUE(driver.ok());
  ASSERT_TRUE((*driver)->AdvanceWallClockTime(absl::Milliseconds(99)).ok());
  EXPECT_TRUE((*driver)->ReadOutput("out").empty());
  ASSERT_TRUE((*driver)->AdvanceWallClockTime(absl::Milliseconds(1)).ok());
  // A jump over several intervals fires once, not once per missed interval.
  ASSERT_TRUE((*driver)->AdvanceWallClockTime(absl::Milliseconds(350)).ok());
  EXPECT_THAT(KeyValues((*driver)->ReadOutput("out")),
              ElementsAre(Pair("tick", "tick@5100"), Pair("tick", "tick@5450")));
}

// Fails on values "bad"; forwards the others.
class PickyProcessor : public Processor {
 public:
  absl::Status Init(ProcessorContext& context) override {
    context_ = &context;
    return absl::OkStatus();
  }
  absl::Status Process(const Record& record) override {
    if (record.value == "bad") return MarkBadInput(absl::InvalidArgumentError("value is bad"));
    if (record.value == "broken") return absl::InternalError("the store is broken");
    return context_->Forward(record);
  }

 private:
  ProcessorContext* context_ = nullptr;
};

Topology PickyTopology() {
  Topology topology;
  topology.AddSource("source", {"in"})
      .AddProcessor("picky", [] { return std::make_unique<PickyProcessor>(); }, {"source"})
      .AddSink("sink", "out", {"picky"});
  return topology;
}

TEST(TopologyTestDriverTest, ContinuePolicySendsFailedRecordsToTheDeadLetterTopic) {
  TopologyTestDriver::Options options;
  options.error_policy = ErrorPolicy::kContinue;
  options.dead_letter_topic = "dlq";
  auto driver = TopologyTestDriver::Create(PickyTopology(), options);
  ASSERT_TRUE(driver.ok());
  ASSERT_TRUE((*driver)->PipeInput("in", "1", "good").ok());
  ASSERT_TRUE((*driver)->PipeInput("in", "2", "bad").ok());
  ASSERT_TRUE((*driver)->PipeInput("in", "3", "good").ok());
  EXPECT_THAT(KeyValues((*driver)->ReadOutput("out")),
              ElementsAre(Pair("1", "good"), Pair("3", "good")));
  std::vector<OwnedRecord> dead = (*driver)->ReadOutput("dlq");
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].key, "2");
  EXPECT_EQ(dead[0].value, "bad");
  std::map<std::string, std::string> headers;
  for (const auto& h : dead[0].headers) headers[h.key] = h.value.value_or("");
  EXPECT_EQ(headers[internal::kDlqTopicHeader], "in");
  EXPECT_EQ(headers[internal::kDlqPartitionHeader], "0");
  EXPECT_EQ(headers[internal::kDlqOffsetHeader], "1");
  EXPECT_THAT(headers[internal::kDlqErrorHeader], ::testing::HasSubstr("value is bad"));
}

// Only bad input is dead-lettered: any other error (a store, the producer)
// stops the task even under continue, and names the record.
TEST(TopologyTestDriverTest, ContinuePolicyStopsOnAnErrorThatIsNotBadInput) {
  TopologyTestDriver::Options options;
  options.error_policy = ErrorPolicy::kContinue;
  options.dead_letter_topic = "dlq";
  auto driver = TopologyTestDriver::Create(PickyTopology(), options);
  ASSERT_TRUE(driver.ok());
  ASSERT_TRUE((*driver)->PipeInput("in", "1", "good").ok());
  absl::Status status = (*driver)->PipeInput("in", "2", "broken");
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("in[0]@1"));
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("not bad input"));
  EXPECT_TRUE((*driver)->ReadOutput("dlq").empty());
}

TEST(TopologyTestDriverTest, FailPolicyStopsWithAnErrorNamingTheRecord) {
  auto driver = TopologyTestDriver::Create(PickyTopology());
  ASSERT_TRUE(driver.ok());
  ASSERT_TRUE((*driver)->PipeInput("in", "1", "good").ok());
  absl::Status status = (*driver)->PipeInput("in", "2", "bad");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("in[0]@1"));
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("value is bad"));
}

// Forwards to a named child only.
class RouterProcessor : public Processor {
 public:
  absl::Status Init(ProcessorContext& context) override {
    context_ = &context;
    return absl::OkStatus();
  }
  absl::Status Process(const Record& record) override {
    return context_->Forward(record, *record.value == "even" ? "even-sink" : "odd-sink");
  }

 private:
  ProcessorContext* context_ = nullptr;
};

TEST(TopologyTestDriverTest, ForwardToANamedChild) {
  Topology topology;
  topology.AddSource("source", {"in"})
      .AddProcessor("router", [] { return std::make_unique<RouterProcessor>(); }, {"source"})
      .AddSink("even-sink", "evens", {"router"})
      .AddSink("odd-sink", "odds", {"router"});
  auto driver = TopologyTestDriver::Create(std::move(topology));
  ASSERT_TRUE(driver.ok());
  ASSERT_TRUE((*driver)->PipeInput("in", "1", "odd").ok());
  ASSERT_TRUE((*driver)->PipeInput("in", "2", "even").ok());
  EXPECT_THAT(KeyValues((*driver)->ReadOutput("evens")), ElementsAre(Pair("2", "even")));
  EXPECT_THAT(KeyValues((*driver)->ReadOutput("odds")), ElementsAre(Pair("1", "odd")));
}

}  // namespace
}  // namespace tributary::testing
