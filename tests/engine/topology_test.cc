#include "engine/topology.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/internal/record_collector.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tributary {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class NoopProcessor : public Processor {
 public:
  absl::Status Process(const Record&) override { return absl::OkStatus(); }
};

ProcessorFactory Noop() {
  return [] { return std::make_unique<NoopProcessor>(); };
}

// Expects Build() to fail with InvalidArgument mentioning `text`.
void ExpectBuildError(Topology& topology, const std::string& text) {
  absl::Status status = topology.Build();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(text));
}

TEST(TopologyErrorsTest, DuplicateNodeName) {
  Topology t;
  t.AddSource("a", {"in"}).AddProcessor("a", Noop(), {"a"});
  ExpectBuildError(t, "duplicate node name \"a\"");
}

TEST(TopologyErrorsTest, UnknownParent) {
  Topology t;
  t.AddSource("src", {"in"}).AddProcessor("p", Noop(), {"nope"});
  ExpectBuildError(t, "processor \"p\" names unknown parent \"nope\"");
}

TEST(TopologyErrorsTest, SinkWithUnknownParent) {
  Topology t;
  t.AddSource("src", {"in"}).AddSink("out", "topic", {"nope"});
  ExpectBuildError(t, "sink \"out\" names unknown parent \"nope\"");
}

TEST(TopologyErrorsTest, UnknownStore) {
  Topology t;
  t.AddSource("src", {"in"}).AddProcessor("p", Noop(), {"src"});
  t.ConnectProcessorAndStore("p", "missing");
  ExpectBuildError(t, "unknown state store \"missing\"");
}

TEST(TopologyErrorsTest, UnknownProcessorForStore) {
  Topology t;
  t.AddSource("src", {"in"});
  t.AddStateStore(StoreSpec{.name = "s"}, {"ghost"});
  ExpectBuildError(
      t, "unknown processor \"ghost\" (connecting state store \"s\")");
}

TEST(TopologyErrorsTest, StoreOnASource) {
  Topology t;
  t.AddSource("src", {"in"});
  t.AddStateStore(StoreSpec{.name = "s"}, {"src"});
  ExpectBuildError(t, "\"src\" is a source");
}

TEST(TopologyErrorsTest, DuplicateStore) {
  Topology t;
  t.AddSource("src", {"in"});
  t.AddStateStore(StoreSpec{.name = "s"}, {})
      .AddStateStore(StoreSpec{.name = "s"}, {});
  ExpectBuildError(t, "duplicate state store \"s\"");
}

TEST(TopologyErrorsTest, SinkWithoutParent) {
  Topology t;
  t.AddSource("src", {"in"}).AddSink("out", "topic", {});
  ExpectBuildError(t, "sink \"out\" has no parent");
}

TEST(TopologyErrorsTest, ProcessorWithoutParent) {
  Topology t;
  t.AddSource("src", {"in"}).AddProcessor("p", Noop(), {});
  ExpectBuildError(t, "processor \"p\" has no parent");
}

TEST(TopologyErrorsTest, EmptyTopicList) {
  Topology t;
  t.AddSource("src", {});
  ExpectBuildError(t, "source \"src\" has an empty topic list");
}

TEST(TopologyErrorsTest, TopicReadByTwoSources) {
  Topology t;
  t.AddSource("a", {"x", "shared"}).AddSource("b", {"shared"});
  ExpectBuildError(t,
                   "topic \"shared\" is read by two sources: \"a\" and \"b\"");
}

TEST(TopologyErrorsTest, SinkAsParent) {
  Topology t;
  t.AddSource("src", {"in"})
      .AddSink("out", "topic", {"src"})
      .AddProcessor("p", Noop(), {"out"});
  ExpectBuildError(t, "a sink has no children");
}

TEST(TopologyErrorsTest, RepartitionTopicWithoutReader) {
  Topology t;
  t.AddSource("src", {"in"})
      .AddSink("to-rep", "rep", {"src"})
      .AddRepartitionTopic("rep");
  ExpectBuildError(
      t, "repartition topic \"rep\" is declared but no source reads it");
}

TEST(TopologyErrorsTest, EmptyTopology) {
  Topology t;
  ExpectBuildError(t, "no nodes");
}

TEST(TopologyErrorsTest, FirstErrorWins) {
  Topology t;
  t.AddSource("src", {})
      .AddProcessor("p", Noop(), {"nope"})
      .AddSink("s", "t", {});
  ExpectBuildError(t, "source \"src\" has an empty topic list");
  // Still the same error on a second call.
  ExpectBuildError(t, "source \"src\" has an empty topic list");
}

TEST(TopologyTest, BuildFillsChildrenAndIsIdempotent) {
  Topology t;
  t.AddSource("src", {"in"})
      .AddProcessor("a", Noop(), {"src"})
      .AddProcessor("b", Noop(), {"src"})
      .AddProcessor("join", Noop(), {"a", "b"})
      .AddSink("out", "output", {"join"});
  ASSERT_TRUE(t.Build().ok());
  ASSERT_TRUE(t.Build().ok());
  EXPECT_THAT(t.node("src")->children, ElementsAre("a", "b"));
  EXPECT_THAT(t.node("a")->children, ElementsAre("join"));
  EXPECT_THAT(t.node("join")->parents, ElementsAre("a", "b"));
  EXPECT_THAT(t.node("out")->children, IsEmpty());
  EXPECT_THAT(t.node_order(), ElementsAre("src", "a", "b", "join", "out"));
  EXPECT_EQ(t.node("nope"), nullptr);
  ASSERT_EQ(t.subtopologies().size(), 1u);
}

TEST(TopologyTest, IndependentChainsAreSeparateSubtopologies) {
  Topology t;
  t.AddSource("src-1", {"in-b", "in-a"})
      .AddSource("src-2", {"in-c"})
      .AddProcessor("p-1", Noop(), {"src-1"})
      .AddProcessor("p-2", Noop(), {"src-2"})
      .AddSink("sink-1", "out-1", {"p-1"})
      .AddSink("sink-2", "out-2", {"p-2"})
      .AddStateStore(StoreSpec{.name = "store-1"}, {"p-1"});
  ASSERT_TRUE(t.Build().ok());
  ASSERT_EQ(t.subtopologies().size(), 2u);
  const Topology::Subtopology& first = t.subtopologies()[0];
  EXPECT_EQ(first.id, 0);
  EXPECT_THAT(first.nodes, ElementsAre("src-1", "p-1", "sink-1"));
  EXPECT_THAT(first.source_topics, ElementsAre("in-a", "in-b"));
  EXPECT_THAT(first.sink_topics, ElementsAre("out-1"));
  EXPECT_THAT(first.stores, ElementsAre("store-1"));
  const Topology::Subtopology& second = t.subtopologies()[1];
  EXPECT_EQ(second.id, 1);
  EXPECT_THAT(second.nodes, ElementsAre("src-2", "p-2", "sink-2"));
  EXPECT_THAT(second.source_topics, ElementsAre("in-c"));
  EXPECT_THAT(second.stores, IsEmpty());
}

TEST(TopologyTest, SharedStoreJoinsTwoChains) {
  Topology t;
  t.AddSource("src-1", {"in-1"})
      .AddSource("src-2", {"in-2"})
      .AddProcessor("p-1", Noop(), {"src-1"})
      .AddProcessor("p-2", Noop(), {"src-2"})
      .AddStateStore(StoreSpec{.name = "shared", .type = StoreType::kInMemory},
                     {"p-1"})
      .ConnectProcessorAndStore("p-2", "shared");
  ASSERT_TRUE(t.Build().ok());
  ASSERT_EQ(t.subtopologies().size(), 1u);
  const Topology::Subtopology& sub = t.subtopologies()[0];
  EXPECT_THAT(sub.nodes, ElementsAre("src-1", "src-2", "p-1", "p-2"));
  EXPECT_THAT(sub.source_topics, ElementsAre("in-1", "in-2"));
  EXPECT_THAT(sub.stores, ElementsAre("shared"));
  ASSERT_NE(t.store("shared"), nullptr);
  EXPECT_EQ(t.store("shared")->type, StoreType::kInMemory);
  EXPECT_TRUE(t.store("shared")->logging);
}

TEST(TopologyTest, AddingAfterBuildRecomputes) {
  Topology t;
  t.AddSource("src-1", {"in-1"});
  ASSERT_TRUE(t.Build().ok());
  EXPECT_EQ(t.subtopologies().size(), 1u);
  t.AddSource("src-2", {"in-2"});
  ASSERT_TRUE(t.Build().ok());
  EXPECT_EQ(t.subtopologies().size(), 2u);
}

// Two sub-topologies meeting through a repartition topic.
Topology TwoSubtopologies() {
  Topology t;
  t.AddSource("src", {"in"})
      .AddProcessor("proc-a", Noop(), {"src"})
      .AddStateStore(StoreSpec{.name = "store-a"}, {"proc-a"})
      .AddSink("sink-rep", "rep", {"proc-a"})
      .AddRepartitionTopic("rep", 4)
      .AddSource("src-rep", {"rep"})
      .AddProcessor("proc-b", Noop(), {"src-rep"})
      .AddProcessor("proc-c", Noop(), {"src-rep"})
      .AddSink("out-sink", "out", {"proc-b"});
  return t;
}

TEST(TopologyTest, RepartitionTopicCutsSubtopologies) {
  Topology t = TwoSubtopologies();
  ASSERT_TRUE(t.Build().ok());
  ASSERT_EQ(t.subtopologies().size(), 2u);
  EXPECT_THAT(t.subtopologies()[0].sink_topics, ElementsAre("rep"));
  EXPECT_THAT(t.subtopologies()[1].source_topics, ElementsAre("rep"));
  EXPECT_EQ(t.repartition_topics().at("rep"), 4);
}

TEST(TopologyTest, RepartitionTopicRedeclaredWithOtherCount) {
  Topology t = TwoSubtopologies();
  t.AddRepartitionTopic("rep", 4);  // the same again is fine
  t.AddRepartitionTopic("rep", 8);
  ExpectBuildError(
      t, "repartition topic \"rep\" declared with 4 and with 8 partitions");
}

TEST(TopologyTest, RepartitionTopicSizedLikeASourceTopic) {
  Topology t = TwoSubtopologies();
  t.AddSink("sink-rep-2", "rep-2", {"proc-a"})
      .AddRepartitionTopic("rep-2", 0, "in")
      .AddSource("src-rep-2", {"rep-2"});
  ASSERT_TRUE(t.Build().ok());
  EXPECT_EQ(t.repartition_partitions_like(),
            (std::map<std::string, std::string>{{"rep-2", "in"}}));
}

TEST(TopologyErrorsTest, RepartitionTopicSizedLikeAnUnreadTopic) {
  Topology t = TwoSubtopologies();
  t.AddSink("sink-rep-2", "rep-2", {"proc-a"})
      .AddRepartitionTopic("rep-2", 0, "elsewhere")
      .AddSource("src-rep-2", {"rep-2"});
  ExpectBuildError(
      t, "\"rep-2\" is sized like topic \"elsewhere\", which no source reads");
}

TEST(TopologyErrorsTest, RepartitionTopicWithCountAndLike) {
  Topology t = TwoSubtopologies();
  t.AddRepartitionTopic("rep-2", 3, "in");
  ExpectBuildError(t, "has both 3 partitions and partitions like \"in\"");
}

TEST(TopologyTest, DescribeMatchesKafkaStreams) {
  Topology t = TwoSubtopologies();
  ASSERT_TRUE(t.Build().ok());
  // Nodes (and the names after -->) are ordered by sub-tree size, then name,
  // as Kafka Streams' TopologyDescription does.
  EXPECT_EQ(t.Describe(),
            "Topologies:\n"
            "   Sub-topology: 0\n"
            "    Source: src (topics: [in])\n"
            "      --> proc-a\n"
            "    Processor: proc-a (stores: [store-a])\n"
            "      --> sink-rep\n"
            "      <-- src\n"
            "    Sink: sink-rep (topic: rep)\n"
            "      <-- proc-a\n"
            "\n"
            "  Sub-topology: 1\n"
            "    Source: src-rep (topics: [rep])\n"
            "      --> proc-b, proc-c\n"
            "    Processor: proc-b (stores: [])\n"
            "      --> out-sink\n"
            "      <-- src-rep\n"
            "    Sink: out-sink (topic: out)\n"
            "      <-- proc-b\n"
            "    Processor: proc-c (stores: [])\n"
            "      --> none\n"
            "      <-- src-rep\n"
            "\n");
}

// Interactive queries: a key's partition is the one the writer of the
// store's source topic chose: its sink's partitioner, else murmur2 (as
// Kafka's producers); a topic the application does not write: murmur2.
QuerySpec EchoQuery(std::string name, std::string store) {
  QuerySpec query;
  query.name = std::move(name);
  query.store = std::move(store);
  query.key = [](std::string_view id) -> absl::StatusOr<std::string> { return std::string(id); };
  query.run = [](const std::function<KeyValueStore*(std::string_view)>&,
                 std::string_view key) -> absl::StatusOr<std::optional<std::string>> {
    return std::string(key);
  };
  return query;
}

TEST(TopologyTest, QueryPartitionFollowsTheWriterOfTheStoresSource) {
  Topology t;
  t.AddRepartitionTopic("by-key", 4);
  t.AddSource("in", {"input"})
      .AddProcessor("route", Noop(), {"in"})
      .AddStateStore({"input-store"}, {"route"})
      .AddSink("to-repartition", "by-key", {"route"},
               [](const Record& record, int32_t partitions) -> std::optional<int32_t> {
                 if (record.key && *record.key == "special") return partitions - 1;
                 return std::nullopt;
               });
  t.AddSource("again", {"by-key"})
      .AddProcessor("count", Noop(), {"again"})
      .AddStateStore({"counts"}, {"count"});
  t.AddQuery(EchoQuery("counts", "counts")).AddQuery(EchoQuery("raw", "input-store"));
  ASSERT_TRUE(t.Build().ok());
  ASSERT_NE(t.query("counts"), nullptr);
  EXPECT_EQ(t.query("nope"), nullptr);
  EXPECT_EQ(t.SubtopologyOfStore("counts")->source_topics, std::vector<std::string>{"by-key"});
  EXPECT_EQ(t.QueryPartition(*t.query("counts"), "special", 4), 3) << "the sink's partitioner";
  for (std::string_view key : {"1001", "a", "\"x\""}) {
    SCOPED_TRACE(key);
    EXPECT_EQ(t.QueryPartition(*t.query("counts"), key, 4),
              internal::DefaultPartition(key, 4));
    EXPECT_EQ(t.QueryPartition(*t.query("raw"), key, 3), internal::DefaultPartition(key, 3));
  }
  // murmur2 of Kafka's Java client: "1001" and "a" land where it puts them.
  EXPECT_EQ(internal::DefaultPartition("a", 4), 0);
}

TEST(TopologyErrorsTest, QueryOfUnknownStoreOrWithBadName) {
  Topology t;
  t.AddSource("src", {"in"}).AddProcessor("p", Noop(), {"src"});
  t.AddQuery(EchoQuery("q", "missing"));
  ExpectBuildError(t, "query \"q\" reads unknown state store \"missing\"");
  Topology u;
  u.AddSource("src", {"in"}).AddProcessor("p", Noop(), {"src"});
  u.AddQuery(EchoQuery("a/b", "s"));
  ExpectBuildError(u, "query name \"a/b\"");
  Topology v;
  v.AddSource("src", {"in"}).AddProcessor("p", Noop(), {"src"}).AddStateStore({"s"}, {"p"});
  v.AddQuery(EchoQuery("q", "s")).AddQuery(EchoQuery("q", "s"));
  ExpectBuildError(v, "duplicate query \"q\"");
}

}  // namespace
}  // namespace tributary
