#include "engine/streams_builder.h"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_split.h"
#include "engine/json_document.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "state/in_memory_store.h"

namespace tributary {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Captures what a processor forwards; hands out in-memory stores by name.
class FakeContext : public ProcessorContext {
 public:
  const std::string& application_id() const override { return app_id_; }
  TaskId task_id() const override { return {}; }
  TimestampMs stream_time() const override { return {}; }
  TimestampMs wall_clock_time() const override { return {}; }
  absl::Status Forward(const Record& record) override {
    forwarded.push_back(OwnedRecord::CopyOf(record));
    return absl::OkStatus();
  }
  absl::Status Forward(const Record& record, std::string_view) override {
    return Forward(record);
  }
  KeyValueStore* GetStateStore(std::string_view name) override {
    auto it = stores.find(std::string(name));
    return it == stores.end() ? nullptr : it->second.get();
  }
  std::shared_ptr<Cancellable> Schedule(absl::Duration, PunctuationType,
                                        Punctuator) override {
    return nullptr;
  }
  void RequestCommit() override {}
  absl::StatusOr<int32_t> PartitionCount(std::string_view) override { return 1; }
  absl::StatusOr<SourceProgress> QuerySourceProgress(std::string_view) override {
    return absl::UnimplementedError("no sources here");
  }
  Metrics& metrics() override { return metrics_; }

  void AddStore(const std::string& name) {
    stores[name] = InMemoryStore::Create(name);
  }

  std::vector<OwnedRecord> forwarded;
  std::map<std::string, std::unique_ptr<KeyValueStore>> stores;

 private:
  std::string app_id_ = "test-app";
  Metrics metrics_;
};

Record MakeRecord(std::optional<std::string_view> key,
                  std::optional<std::string_view> value) {
  Record record;
  record.key = key;
  record.value = value;
  record.timestamp = TimestampMs{1000};
  record.topic = "in";
  return record;
}

std::string Int64Bytes(int64_t v) {
  std::string out;
  Serdes::Int64().serialize(v, out);
  return out;
}

// The processor of node `name`, initialized with `context`.
std::unique_ptr<Processor> MakeProcessor(const Topology& topology,
                                         const std::string& name,
                                         FakeContext& context) {
  const Topology::Node* node = topology.node(name);
  EXPECT_NE(node, nullptr) << name;
  if (node == nullptr) return nullptr;
  std::unique_ptr<Processor> processor = node->factory();
  absl::Status status = processor->Init(context);
  EXPECT_TRUE(status.ok()) << status;
  return processor;
}

std::vector<std::string> Split(const std::string& line) {
  return absl::StrSplit(line, ' ', absl::SkipEmpty());
}

TEST(StreamsBuilderTest, GeneratesKafkaStreamsNodeNames) {
  StreamsBuilder builder;
  builder
      .Stream<std::string, std::string>(
          {"in"}, Consumed{Serdes::String(), Serdes::String()})
      .Filter(
          [](const std::string&, const std::string& v) { return !v.empty(); })
      .MapValues<int64_t>(
          [](const std::string& v) { return static_cast<int64_t>(v.size()); })
      .Peek([](const std::string&, const int64_t&) {}, Named{"my-peek"})
      .To("out", Produced{Serdes::String(), Serdes::Int64()});
  absl::StatusOr<Topology> topology = builder.Build();
  ASSERT_TRUE(topology.ok()) << topology.status();
  EXPECT_THAT(
      topology->node_order(),
      ElementsAre("KSTREAM-SOURCE-0000000000", "KSTREAM-FILTER-0000000001",
                  "KSTREAM-MAPVALUES-0000000002", "my-peek",
                  "KSTREAM-SINK-0000000003"));
  ASSERT_EQ(topology->subtopologies().size(), 1u);
  EXPECT_THAT(topology->subtopologies()[0].sink_topics, ElementsAre("out"));
  EXPECT_THAT(topology->repartition_topics(), IsEmpty());
}

TEST(StreamsBuilderTest, RepartitionCutsTheSubtopology) {
  StreamsBuilder builder;
  builder.Stream<std::string, std::string>({"in"})
      .Repartition({.name = "by-user", .partitions = 4})
      .MapValues<std::string>([](const std::string& v) { return v + "!"; })
      .To("out");
  absl::StatusOr<Topology> topology = builder.Build();
  ASSERT_TRUE(topology.ok()) << topology.status();
  EXPECT_THAT(
      topology->node_order(),
      ElementsAre("KSTREAM-SOURCE-0000000000", "by-user-repartition-sink",
                  "by-user-repartition-source", "KSTREAM-MAPVALUES-0000000001",
                  "KSTREAM-SINK-0000000002"));
  EXPECT_EQ(topology->repartition_topics(),
            (std::map<std::string, int32_t>{{"by-user-repartition", 4}}));
  ASSERT_EQ(topology->subtopologies().size(), 2u);
  EXPECT_THAT(
      topology->subtopologies()[0].nodes,
      ElementsAre("KSTREAM-SOURCE-0000000000", "by-user-repartition-sink"));
  EXPECT_THAT(topology->subtopologies()[0].sink_topics,
              ElementsAre("by-user-repartition"));
  EXPECT_THAT(topology->subtopologies()[1].source_topics,
              ElementsAre("by-user-repartition"));
}

TEST(StreamsBuilderTest, UnnamedRepartitionUsesGeneratedNames) {
  StreamsBuilder builder;
  builder.Stream<std::string, std::string>({"in"}).Repartition().To("out");
  absl::StatusOr<Topology> topology = builder.Build();
  ASSERT_TRUE(topology.ok()) << topology.status();
  EXPECT_THAT(
      topology->node_order(),
      ElementsAre("KSTREAM-SOURCE-0000000000", "KSTREAM-SINK-0000000002",
                  "KSTREAM-SOURCE-0000000003", "KSTREAM-SINK-0000000004"));
  EXPECT_EQ(topology->repartition_topics().count(
                "KSTREAM-REPARTITION-0000000001-repartition"),
            1u);
}

TEST(StreamsBuilderTest, GroupByKeyAfterSelectKeyRepartitionsAutomatically) {
  StreamsBuilder builder;
  builder.Stream<std::string, std::string>({"in"})
      .SelectKey<std::string>(
          [](const std::string&, const std::string& v) { return v; })
      .GroupByKey()
      .Count({.store_name = "counts"});
  absl::StatusOr<Topology> topology = builder.Build();
  ASSERT_TRUE(topology.ok()) << topology.status();
  EXPECT_THAT(
      topology->node_order(),
      ElementsAre("KSTREAM-SOURCE-0000000000", "KSTREAM-KEY-SELECT-0000000001",
                  "counts-repartition-sink", "counts-repartition-source",
                  "KSTREAM-AGGREGATE-0000000002"));
  EXPECT_EQ(topology->repartition_topics(),
            (std::map<std::string, int32_t>{{"counts-repartition", 0}}));
  ASSERT_EQ(topology->subtopologies().size(), 2u);
  EXPECT_THAT(topology->subtopologies()[1].stores, ElementsAre("counts"));
  const StoreSpec* store = topology->store("counts");
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->type, StoreType::kRocksDb);
  EXPECT_TRUE(store->logging);
  EXPECT_THAT(topology->node("KSTREAM-AGGREGATE-0000000002")->stores,
              ElementsAre("counts"));
}

TEST(StreamsBuilderTest, GroupByKeyWithoutKeyChangeDoesNotRepartition) {
  StreamsBuilder builder;
  builder.Stream<std::string, std::string>({"in"})
      .MapValues<std::string>([](const std::string& v) { return v; })
      .Filter([](const std::string&, const std::string&) { return true; })
      .GroupByKey()
      .Reduce([](const std::string& a, const std::string& b) { return a + b; },
              {.store_name = "joined",
               .store_type = StoreType::kInMemory,
               .logging_enabled = false});
  absl::StatusOr<Topology> topology = builder.Build();
  ASSERT_TRUE(topology.ok()) << topology.status();
  EXPECT_EQ(topology->subtopologies().size(), 1u);
  EXPECT_THAT(topology->repartition_topics(), IsEmpty());
  EXPECT_EQ(topology->store("joined")->type, StoreType::kInMemory);
  EXPECT_FALSE(topology->store("joined")->logging);
  EXPECT_NE(topology->node("KSTREAM-REDUCE-0000000003"), nullptr);
}

TEST(StreamsBuilderTest, GeneratedStoreNamesAndRepartitionTopic) {
  StreamsBuilder builder;
  builder.Stream<std::string, std::string>({"in"})
      .Map<std::string, int64_t>(
          [](const std::string& k, const std::string& v) {
            return std::pair(k + v, int64_t{1});
          })
      .GroupByKey()
      .Aggregate<int64_t>([] { return int64_t{0}; },
                          [](const std::string&, const int64_t& v,
                             const int64_t& agg) { return agg + v; });
  absl::StatusOr<Topology> topology = builder.Build();
  ASSERT_TRUE(topology.ok()) << topology.status();
  EXPECT_THAT(
      topology->node_order(),
      ElementsAre("KSTREAM-SOURCE-0000000000", "KSTREAM-MAP-0000000001",
                  "KSTREAM-SINK-0000000004", "KSTREAM-SOURCE-0000000005",
                  "KSTREAM-AGGREGATE-0000000003"));
  EXPECT_NE(topology->store("KSTREAM-AGGREGATE-STATE-STORE-0000000002"),
            nullptr);
  EXPECT_EQ(topology->repartition_topics().count(
                "KSTREAM-AGGREGATE-STATE-STORE-0000000002-repartition"),
            1u);
}

TEST(StreamsBuilderTest, ToTableAndProcessConnectStores) {
  StreamsBuilder builder;
  builder.AddStateStore(StoreSpec{.name = "custom"});
  KTable<std::string, std::string> table =
      builder.Stream<std::string, std::string>({"in"}).ToTable(
          {.store_name = "latest"});
  EXPECT_EQ(table.queryable_store_name(), "latest");
  table.ToStream()
      .Process([] { return std::unique_ptr<Processor>(); }, {"custom"},
               Named{"proc"})
      .To("out");
  absl::StatusOr<Topology> topology = builder.Build();
  ASSERT_TRUE(topology.ok()) << topology.status();
  EXPECT_THAT(
      topology->node_order(),
      ElementsAre("KSTREAM-SOURCE-0000000000", "KSTREAM-TOTABLE-0000000001",
                  "KTABLE-TOSTREAM-0000000002", "proc",
                  "KSTREAM-SINK-0000000003"));
  EXPECT_THAT(topology->node("KSTREAM-TOTABLE-0000000001")->stores,
              ElementsAre("latest"));
  EXPECT_THAT(topology->node("proc")->stores, ElementsAre("custom"));
  EXPECT_TRUE(topology->store("latest")->logging);
}

TEST(StreamsBuilderTest, ProcessWithUnknownStoreFails) {
  StreamsBuilder builder;
  builder.Stream<std::string, std::string>({"in"}).Process(
      [] { return std::unique_ptr<Processor>(); }, {"missing"});
  absl::StatusOr<Topology> topology = builder.Build();
  EXPECT_THAT(std::string(topology.status().message()),
              HasSubstr("unknown state store \"missing\""));
}

struct Point {
  int x = 0;
};

TEST(StreamsBuilderTest, TypeWithoutSerdeIsAnError) {
  StreamsBuilder builder;
  builder.Stream<std::string, std::string>({"in"}).MapValues<Point>(
      [](const std::string&) { return Point{}; });
  absl::StatusOr<Topology> topology = builder.Build();
  EXPECT_EQ(topology.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      std::string(topology.status().message()),
      HasSubstr("KSTREAM-MAPVALUES-0000000001: no serde for the value"));
}

Serde<Point> PointSerde() {
  Serde<Point> serde;
  serde.name = "Point";
  serde.serialize = [](const Point& p, std::string& out) {
    out = std::to_string(p.x);
  };
  serde.deserialize = [](std::string_view bytes) -> absl::StatusOr<Point> {
    return Point{std::stoi(std::string(bytes))};
  };
  return serde;
}

TEST(StreamsBuilderTest, UnchangedTypeKeepsTheStreamsSerde) {
  StreamsBuilder builder;
  KStream<std::string, Point> points =
      builder.Stream<std::string, Point>({"in"}, {.value_serde = PointSerde()})
          .MapValues<Point>([](const Point& p) { return Point{p.x + 1}; })
          .Process([] { return std::unique_ptr<Processor>(); });
  EXPECT_EQ(points.value_serde().name, "Point");
  points.To("out", {.value_serde = PointSerde()});
  absl::StatusOr<Topology> topology = builder.Build();
  ASSERT_TRUE(topology.ok()) << topology.status();

  FakeContext ctx;
  auto map = MakeProcessor(*topology, "KSTREAM-MAPVALUES-0000000001", ctx);
  ASSERT_TRUE(map->Process(MakeRecord("k", "41")).ok());
  ASSERT_EQ(ctx.forwarded.size(), 1u);
  EXPECT_EQ(ctx.forwarded[0].value, "42");
}

TEST(StreamsBuilderTest, MismatchedProducedSerdeIsAnError) {
  StreamsBuilder builder;
  builder.Stream<std::string, std::string>({"in"}).To(
      "out", Produced{Serdes::String(), Serdes::Bytes()});
  absl::StatusOr<Topology> topology = builder.Build();
  EXPECT_THAT(
      std::string(topology.status().message()),
      HasSubstr("the Produced value serde given (\"Bytes\") differs from the "
                "stream's (\"String\")"));
}

TEST(StreamsBuilderTest, BuildTwiceFails) {
  StreamsBuilder builder;
  builder.Stream<std::string, std::string>({"in"}).To("out");
  ASSERT_TRUE(builder.Build().ok());
  EXPECT_EQ(builder.Build().status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(StreamsBuilderTest, DescribesWordCount) {
  StreamsBuilder builder;
  builder.Stream<std::string, std::string>({"text"})
      .FlatMapValues<std::string>(Split)
      .GroupBy<std::string>(
          [](const std::string&, const std::string& word) { return word; })
      .Count({.store_name = "counts"})
      .ToStream()
      .To("word-counts", Produced{Serdes::String(), Serdes::Int64()});
  absl::StatusOr<Topology> topology = builder.Build();
  ASSERT_TRUE(topology.ok()) << topology.status();
  EXPECT_EQ(
      topology->Describe(),
      "Topologies:\n"
      "   Sub-topology: 0\n"
      "    Source: KSTREAM-SOURCE-0000000000 (topics: [text])\n"
      "      --> KSTREAM-FLATMAPVALUES-0000000001\n"
      "    Processor: KSTREAM-FLATMAPVALUES-0000000001 (stores: [])\n"
      "      --> KSTREAM-KEY-SELECT-0000000002\n"
      "      <-- KSTREAM-SOURCE-0000000000\n"
      "    Processor: KSTREAM-KEY-SELECT-0000000002 (stores: [])\n"
      "      --> counts-repartition-sink\n"
      "      <-- KSTREAM-FLATMAPVALUES-0000000001\n"
      "    Sink: counts-repartition-sink (topic: counts-repartition)\n"
      "      <-- KSTREAM-KEY-SELECT-0000000002\n"
      "\n"
      "  Sub-topology: 1\n"
      "    Source: counts-repartition-source (topics: [counts-repartition])\n"
      "      --> KSTREAM-AGGREGATE-0000000003\n"
      "    Processor: KSTREAM-AGGREGATE-0000000003 (stores: [counts])\n"
      "      --> KTABLE-TOSTREAM-0000000004\n"
      "      <-- counts-repartition-source\n"
      "    Processor: KTABLE-TOSTREAM-0000000004 (stores: [])\n"
      "      --> KSTREAM-SINK-0000000005\n"
      "      <-- KSTREAM-AGGREGATE-0000000003\n"
      "    Sink: KSTREAM-SINK-0000000005 (topic: word-counts)\n"
      "      <-- KTABLE-TOSTREAM-0000000004\n"
      "\n");
}

// ---------------------------------------------------------------------------
// The DSL processors, driven one record at a time.

TEST(DslProcessorsTest, StatelessOperators) {
  StreamsBuilder builder;
  builder.Stream<std::string, std::string>({"in"})
      .FlatMapValues<std::string>(Split)
      .Filter(
          [](const std::string&, const std::string& w) { return w != "skip"; })
      .Map<std::string, int64_t>(
          [](const std::string& k, const std::string& w) {
            return std::pair(k + ":" + w, static_cast<int64_t>(w.size()));
          })
      .SelectKey<std::string>(
          [](const std::string& k, const int64_t&) { return "<" + k + ">"; })
      .To("out");
  absl::StatusOr<Topology> topology = builder.Build();
  ASSERT_TRUE(topology.ok()) << topology.status();

  FakeContext flat_ctx;
  auto flat =
      MakeProcessor(*topology, "KSTREAM-FLATMAPVALUES-0000000001", flat_ctx);
  Record line = MakeRecord("k", "a skip bb");
  line.headers.push_back({"h", "v"});
  ASSERT_TRUE(flat->Process(line).ok());
  ASSERT_EQ(flat_ctx.forwarded.size(), 3u);
  EXPECT_EQ(flat_ctx.forwarded[2].key, "k");
  EXPECT_EQ(flat_ctx.forwarded[2].value, "bb");
  EXPECT_EQ(flat_ctx.forwarded[2].timestamp, TimestampMs{1000});
  EXPECT_EQ(flat_ctx.forwarded[2].topic, "in");
  ASSERT_EQ(flat_ctx.forwarded[2].headers.size(), 1u);
  EXPECT_EQ(flat_ctx.forwarded[2].headers[0].key, "h");

  FakeContext filter_ctx;
  auto filter =
      MakeProcessor(*topology, "KSTREAM-FILTER-0000000002", filter_ctx);
  for (const OwnedRecord& r : flat_ctx.forwarded)
    ASSERT_TRUE(filter->Process(r.View()).ok());
  ASSERT_EQ(filter_ctx.forwarded.size(), 2u);
  EXPECT_EQ(filter_ctx.forwarded[0].value, "a");
  EXPECT_EQ(filter_ctx.forwarded[1].value, "bb");

  FakeContext map_ctx;
  auto map = MakeProcessor(*topology, "KSTREAM-MAP-0000000003", map_ctx);
  ASSERT_TRUE(map->Process(filter_ctx.forwarded[1].View()).ok());
  ASSERT_EQ(map_ctx.forwarded.size(), 1u);
  EXPECT_EQ(map_ctx.forwarded[0].key, "k:bb");
  EXPECT_EQ(map_ctx.forwarded[0].value, Int64Bytes(2));

  FakeContext select_ctx;
  auto select =
      MakeProcessor(*topology, "KSTREAM-KEY-SELECT-0000000004", select_ctx);
  ASSERT_TRUE(select->Process(map_ctx.forwarded[0].View()).ok());
  ASSERT_EQ(select_ctx.forwarded.size(), 1u);
  EXPECT_EQ(select_ctx.forwarded[0].key, "<k:bb>");
  EXPECT_EQ(select_ctx.forwarded[0].value, Int64Bytes(2));

  // A value the stream's serde cannot read is an error naming the node.
  absl::Status bad = select->Process(MakeRecord("k", "abc"));
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.message(),
            "KSTREAM-KEY-SELECT-0000000004: cannot deserialize the record's "
            "value: Int64 "
            "serde: expected 8 bytes, got 3");
}

TEST(DslProcessorsTest, NullsBecomeDefaultsOrNullopt) {
  StreamsBuilder builder;
  auto stream = builder.Stream<std::string, std::string>({"in"});
  stream.MapValues<std::string>(
      [](const std::string& v) { return "[" + v + "]"; });
  builder
      .Stream<std::string, std::optional<std::string>>(
          {"in-2"},
          Consumed{Serdes::String(), Serdes::Optional(Serdes::String())})
      .MapValues<std::optional<std::string>>(
          [](const std::optional<std::string>& v)
              -> std::optional<std::string> {
            if (!v.has_value()) return "was null";
            return std::nullopt;
          });
  absl::StatusOr<Topology> topology = builder.Build();
  ASSERT_TRUE(topology.ok()) << topology.status();

  FakeContext ctx;
  auto plain = MakeProcessor(*topology, "KSTREAM-MAPVALUES-0000000001", ctx);
  ASSERT_TRUE(plain->Process(MakeRecord(std::nullopt, std::nullopt)).ok());
  ASSERT_EQ(ctx.forwarded.size(), 1u);
  EXPECT_FALSE(ctx.forwarded[0].key.has_value());  // key bytes pass through
  EXPECT_EQ(ctx.forwarded[0].value, "[]");

  FakeContext opt_ctx;
  auto optional =
      MakeProcessor(*topology, "KSTREAM-MAPVALUES-0000000003", opt_ctx);
  ASSERT_TRUE(optional->Process(MakeRecord("k", std::nullopt)).ok());
  ASSERT_TRUE(optional->Process(MakeRecord("k", "x")).ok());
  ASSERT_EQ(opt_ctx.forwarded.size(), 2u);
  EXPECT_EQ(opt_ctx.forwarded[0].value, "was null");
  EXPECT_FALSE(opt_ctx.forwarded[1].value.has_value());
}

TEST(DslProcessorsTest, CountKeepsAndForwardsTheCount) {
  StreamsBuilder builder;
  builder.Stream<std::string, std::string>({"in"}).GroupByKey().Count(
      {.store_name = "c"});
  absl::StatusOr<Topology> topology = builder.Build();
  ASSERT_TRUE(topology.ok()) << topology.status();

  FakeContext ctx;
  ctx.AddStore("c");
  auto count = MakeProcessor(*topology, "KSTREAM-AGGREGATE-0000000001", ctx);
  ASSERT_TRUE(count->Process(MakeRecord("a", "x")).ok());
  ASSERT_TRUE(count->Process(MakeRecord("b", "x")).ok());
  ASSERT_TRUE(count->Process(MakeRecord("a", "y")).ok());
  // Skipped, as Kafka Streams does: null value, null key.
  ASSERT_TRUE(count->Process(MakeRecord("a", std::nullopt)).ok());
  ASSERT_TRUE(count->Process(MakeRecord(std::nullopt, "z")).ok());

  ASSERT_EQ(ctx.forwarded.size(), 3u);
  EXPECT_EQ(ctx.forwarded[0].key, "a");
  EXPECT_EQ(ctx.forwarded[0].value, Int64Bytes(1));
  EXPECT_EQ(ctx.forwarded[2].key, "a");
  EXPECT_EQ(ctx.forwarded[2].value, Int64Bytes(2));
  absl::StatusOr<std::optional<std::string>> stored = ctx.stores["c"]->Get("a");
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(*stored, Int64Bytes(2));
}

TEST(DslProcessorsTest, CountWithoutItsStoreFailsInInit) {
  StreamsBuilder builder;
  builder.Stream<std::string, std::string>({"in"}).GroupByKey().Count(
      {.store_name = "c"});
  absl::StatusOr<Topology> topology = builder.Build();
  ASSERT_TRUE(topology.ok()) << topology.status();
  FakeContext ctx;
  std::unique_ptr<Processor> count =
      topology->node("KSTREAM-AGGREGATE-0000000001")->factory();
  absl::Status status = count->Init(ctx);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("state store \"c\""));
}

TEST(DslProcessorsTest, ReduceAndAggregate) {
  StreamsBuilder builder;
  auto grouped = builder.Stream<std::string, std::string>({"in"}).GroupByKey();
  grouped.Reduce(
      [](const std::string& a, const std::string& b) { return a + "," + b; },
      {.store_name = "r"});
  grouped.Aggregate<JsonDocument>(
      [] { return *JsonDocument::Parse("[]"); },
      [](const std::string&, const std::string& v, const JsonDocument& agg) {
        std::string text(agg.text());
        text.insert(text.size() - 1,
                    (text.size() > 2 ? ",\"" : "\"") + v + "\"");
        return *JsonDocument::Parse(text);
      },
      {.store_name = "a"});
  absl::StatusOr<Topology> topology = builder.Build();
  ASSERT_TRUE(topology.ok()) << topology.status();

  FakeContext ctx;
  ctx.AddStore("r");
  ctx.AddStore("a");
  auto reduce = MakeProcessor(*topology, "KSTREAM-REDUCE-0000000001", ctx);
  auto aggregate =
      MakeProcessor(*topology, "KSTREAM-AGGREGATE-0000000002", ctx);
  for (const char* v : {"x", "y", "z"}) {
    ASSERT_TRUE(reduce->Process(MakeRecord("k", v)).ok());
    ASSERT_TRUE(aggregate->Process(MakeRecord("k", v)).ok());
  }
  ASSERT_EQ(ctx.forwarded.size(), 6u);
  EXPECT_EQ(ctx.forwarded[4].value, "x,y,z");
  EXPECT_EQ(ctx.forwarded[5].value, R"(["x","y","z"])");
  EXPECT_EQ(*ctx.stores["a"]->Get("k"), R"(["x","y","z"])");

  // A corrupt aggregate in the store is reported, not overwritten.
  ASSERT_TRUE(ctx.stores["a"]->Put("k", "{oops").ok());
  absl::Status status = aggregate->Process(MakeRecord("k", "w"));
  EXPECT_THAT(
      std::string(status.message()),
      HasSubstr(
          "KSTREAM-AGGREGATE-0000000002: cannot deserialize the aggregate in "
          "store \"a\": Json serde: invalid JSON"));
}

TEST(DslProcessorsTest, ToTablePutsAndDeletes) {
  StreamsBuilder builder;
  builder.Stream<std::string, std::string>({"in"}).ToTable({.store_name = "t"});
  absl::StatusOr<Topology> topology = builder.Build();
  ASSERT_TRUE(topology.ok()) << topology.status();
  FakeContext ctx;
  ctx.AddStore("t");
  auto table = MakeProcessor(*topology, "KSTREAM-TOTABLE-0000000001", ctx);
  ASSERT_TRUE(table->Process(MakeRecord("k", "v1")).ok());
  ASSERT_TRUE(table->Process(MakeRecord("k", "v2")).ok());
  EXPECT_EQ(*ctx.stores["t"]->Get("k"), "v2");
  ASSERT_TRUE(table->Process(MakeRecord("k", std::nullopt)).ok());
  EXPECT_FALSE(ctx.stores["t"]->Get("k")->has_value());
  ASSERT_EQ(ctx.forwarded.size(), 3u);
  EXPECT_FALSE(ctx.forwarded[2].value.has_value());
}

}  // namespace
}  // namespace tributary
