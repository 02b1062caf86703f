// Bad input and large transactions through order-aggregator on the real
// broker (label kafka): transactions of the test's own making, where the
// generator's traffic cannot say what a correct engine must do with them.
//   - a bad event inside a two-table transaction: the transaction goes out
//     at once without it, marked partial; the bad event is in the
//     dead-letter topic with its transaction id; the next transaction whole;
//   - an END that counts an event that never comes: once every partition has
//     moved past it, out partial, its END dead-lettered; the event, when it
//     comes after all, dead-lettered too, never applied;
//   - a version over aggregate.max.bytes: a reference in its place;
//   - a transaction of 3,000 lines released in pieces (release.piece.changes
//     500): every order once, whole.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/operators/pg_events.h"
#include "tests/support/child_app.h"
#include "tests/support/kafka_fixture.h"

namespace tributary::testing {
namespace {

using namespace std::chrono_literals;

constexpr char kOrderAggregator[] = ORDER_AGGREGATOR_PATH;
constexpr auto kTimeout = 90s;

class BadInputKafkaTest : public KafkaTest {
 protected:
  void SetUp() override {
    KafkaTest::SetUp();
    if (HasFatalFailure()) return;
    absl::StatusOr<ScratchDir> dir = ScratchDir::Create("bad_input_kafka_test", "badin");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ = *std::move(dir);
    child_.name = "order-aggregator";
    child_.state_dir = dir_.path() + "/state";
    child_.config_path = dir_.path() + "/order-aggregator.properties";
    absl::StatusOr<OrderAggregatorTopics> topics = OrderAggregatorTopics::Create(
        UniqueName("badin"), child_, "aggregate.max.bytes=20000\nrelease.piece.changes=500\n");
    ASSERT_TRUE(topics.ok()) << topics.status();
    topics_ = *std::move(topics);
  }

  void TearDown() override {
    child_.process.reset();  // SIGKILLs a run still going
    dir_.Finish(HasFailure(), "order-aggregator's config, state and logs");
  }

  void Produce(const std::string& topic, const std::string& key, const std::string& value) {
    ASSERT_STATUS_OK(ProduceRecords(topic, {{key, value}}));
  }
  static std::string Key(int id) { return absl::StrCat(R"({"id":)", id, "}"); }

  // Reads `topic` until `done` holds for what was read, or fails.
  std::vector<ConsumedRecord> ReadUntil(
      const std::string& topic,
      const std::function<bool(const std::vector<ConsumedRecord>&)>& done,
      const std::string& what) {
    absl::StatusOr<std::unique_ptr<TopicReader>> reader = TopicReader::Open(topic, 1);
    EXPECT_TRUE(reader.ok()) << reader.status();
    if (!reader.ok()) return {};
    const auto deadline = std::chrono::steady_clock::now() + kTimeout;
    while (std::chrono::steady_clock::now() < deadline) {
      EXPECT_TRUE((*reader)->Poll(100ms).ok());
      if (done((*reader)->records())) return (*reader)->records();
      if (child_.Died()) break;
    }
    ADD_FAILURE() << "no " << what << " on " << topic << " within " << kTimeout.count()
                  << " s (" << (*reader)->size() << " records)\n" << child_.LogTails();
    return (*reader)->records();
  }

  // The versions of `root` (its key) among `records`.
  static std::vector<std::string> VersionsOf(const std::vector<ConsumedRecord>& records,
                                             const std::string& root) {
    std::vector<std::string> versions;
    for (const ConsumedRecord& r : records) {
      if (r.key == root) versions.push_back(r.value.value_or("<tombstone>"));
    }
    return versions;
  }

  ScratchDir dir_;
  ChildApp child_;
  PgEvents pg_;
  OrderAggregatorTopics topics_;
};

TEST_F(BadInputKafkaTest, BadEventsShortEndsLargeVersionsAndHugeReleases) {
  // T100: order 1 with line 11 and a bad line 12 (an op Debezium never writes).
  Produce(topics_.orders, Key(1), pg_.Order('c', 1, "PLACED", 100));
  Produce(topics_.lines, Key(11), pg_.Line('c', 11, 1, "a", 100));
  std::string bad = pg_.Line('c', 12, 1, "b", 100);
  bad.replace(bad.find(R"("op":"c")"), 8, R"("op":"x")");
  Produce(topics_.lines, Key(12), bad);
  Produce(topics_.tx, "100", pg_.End(100, 1, 2));
  // T101: line 13 of order 1, whole.
  pg_.NewTransaction();
  Produce(topics_.lines, Key(13), pg_.Line('c', 13, 1, "c", 101));
  Produce(topics_.tx, "101", pg_.End(101, 0, 1));
  // T102: order 2, whose END counts a line that never comes.
  pg_.NewTransaction();
  Produce(topics_.orders, Key(2), pg_.Order('c', 2, "PLACED", 102));
  const std::string late_line = pg_.Line('c', 21, 2, "d", 102);
  Produce(topics_.tx, "102", pg_.End(102, 1, 1));
  // T103: order 3 and a line: both partitions move past T102.
  pg_.NewTransaction();
  Produce(topics_.orders, Key(3), pg_.Order('c', 3, "PLACED", 103));
  Produce(topics_.lines, Key(31), pg_.Line('c', 31, 3, "e", 103));
  Produce(topics_.tx, "103", pg_.End(103, 1, 1));
  // T104: order 4 with 400 lines (~40 kB, over aggregate.max.bytes).
  pg_.NewTransaction();
  Produce(topics_.orders, Key(4), pg_.Order('c', 4, "PLACED", 104));
  std::vector<std::pair<std::string, std::string>> many;
  for (int line = 0; line < 400; ++line) {
    many.emplace_back(Key(4000 + line), pg_.Line('c', 4000 + line, 4, "f", 104));
  }
  ASSERT_STATUS_OK(ProduceRecords(topics_.lines, many));
  Produce(topics_.tx, "104", pg_.End(104, 1, 400));
  // T105: 30 orders of 99 lines (3,000 changes): released in pieces of 500.
  pg_.NewTransaction();
  std::vector<std::pair<std::string, std::string>> big_orders, big_lines;
  for (int order = 100; order < 130; ++order) {
    big_orders.emplace_back(Key(order), pg_.Order('c', order, "BULK", 105));
    for (int line = 0; line < 99; ++line) {
      const int id = order * 1000 + line;
      big_lines.emplace_back(Key(id), pg_.Line('c', id, order, "g", 105));
    }
  }
  ASSERT_STATUS_OK(ProduceRecords(topics_.orders, big_orders));
  ASSERT_STATUS_OK(ProduceRecords(topics_.lines, big_lines));
  Produce(topics_.tx, "105", pg_.End(105, 30, 2970));

  ASSERT_STATUS_OK(child_.Start(dir_.path(), {kOrderAggregator, "--config", child_.config_path}));
  const std::vector<ConsumedRecord> out = ReadUntil(
      topics_.output, [](const auto& records) { return records.size() >= 35; }, "35 versions");
  ASSERT_EQ(out.size(), 35u);

  const std::vector<std::string> one = VersionsOf(out, "1");
  ASSERT_EQ(one.size(), 2u);
  EXPECT_TRUE(absl::StrContains(one[0], R"("partial":true)")) << one[0];
  EXPECT_TRUE(absl::StrContains(one[0], R"("id":11)")) << one[0];
  EXPECT_FALSE(absl::StrContains(one[0], R"("id":12)")) << one[0];
  EXPECT_FALSE(absl::StrContains(one[1], "partial")) << one[1];
  EXPECT_TRUE(absl::StrContains(one[1], R"("id":13)")) << one[1];
  const std::vector<std::string> two = VersionsOf(out, "2");
  ASSERT_EQ(two.size(), 1u);
  EXPECT_TRUE(absl::StrContains(two[0], R"("partial":true)")) << two[0];
  EXPECT_TRUE(absl::StrContains(two[0], R"("lines":[])")) << two[0];
  ASSERT_EQ(VersionsOf(out, "3").size(), 1u);
  const std::vector<std::string> four = VersionsOf(out, "4");
  ASSERT_EQ(four.size(), 1u);
  EXPECT_TRUE(absl::StrContains(four[0], R"("oversize":{"bytes":)")) << four[0];
  EXPECT_TRUE(absl::StrContains(four[0], R"("version":1)")) << four[0];
  for (int order = 100; order < 130; ++order) {
    const std::vector<std::string> bulk = VersionsOf(out, absl::StrCat(order));
    ASSERT_EQ(bulk.size(), 1u) << "order " << order;
    EXPECT_TRUE(absl::StrContains(bulk[0], absl::StrCat(R"("id":)", order * 1000 + 98, ",")))
        << "order " << order << " lacks its last line";
  }

  // The line T102's END counted comes after all: never applied, dead-lettered.
  Produce(topics_.lines, Key(21), late_line);
  const std::vector<ConsumedRecord> dead = ReadUntil(
      topics_.dead_letters, [](const auto& records) { return records.size() >= 4; },
      "4 dead letters");
  ASSERT_EQ(dead.size(), 4u);
  std::map<std::string, const ConsumedRecord*> by_error;
  for (const ConsumedRecord& d : dead) {
    const std::string error = d.Header("tributary.error").value_or("");
    if (absl::StrContains(error, "unknown op")) by_error["poison"] = &d;
    if (absl::StrContains(error, "never came")) by_error["end"] = &d;
    if (absl::StrContains(error, "aggregate.max.bytes")) by_error["oversize"] = &d;
    if (absl::StrContains(error, "released partial")) by_error["late"] = &d;
  }
  ASSERT_EQ(by_error.size(), 4u) << "one dead letter of each kind";
  EXPECT_EQ(by_error["poison"]->value, bad);
  EXPECT_TRUE(absl::StartsWith(
      by_error["poison"]->Header("tributary.source.transaction").value_or(""), "100:"));
  EXPECT_EQ(by_error["end"]->Header("tributary.source.topic"), topics_.tx);
  EXPECT_TRUE(absl::StrContains(by_error["late"]->value.value_or(""), R"("product":"d")"));
  ASSERT_STATUS_OK(child_.Stop(std::chrono::milliseconds(60000)));
  // Nothing more was committed: the late line changed no version.
  absl::StatusOr<std::vector<ConsumedRecord>> final_out = ReadWholeTopic(topics_.output, 1);
  ASSERT_TRUE(final_out.ok()) << final_out.status();
  EXPECT_EQ(final_out->size(), 35u);
}

}  // namespace
}  // namespace tributary::testing
