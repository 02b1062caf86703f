// Topology: the blueprint of a stream-processing application, a DAG of
// source, processor and sink nodes plus the state stores they use. It holds
// factories, not processors: every task builds its own processors from it.
// Build it on one thread, then hand it to KafkaStreams or TopologyTestDriver;
// after that it is only read.
//
// Errors made while building (an unknown parent, a duplicate name, ...) are
// collected; the first one is returned by Build(). Builder methods chain.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/processor.h"
#include "state/key_value_store.h"

namespace tributary {

enum class StoreType { kRocksDb, kInMemory };

struct StoreSpec {
  std::string name;
  StoreType type = StoreType::kRocksDb;
  // When true every write also goes to the compacted changelog topic
  // "<application.id>-<name>-changelog" and the store is restored from it.
  bool logging = true;
  // Its share of the stream thread's record cache (cache.max.bytes), relative
  // to the other stores of the thread's tasks: the cache is split by these
  // weights. 0: not cached (a store read and written in large scans).
  double cache_weight = 1.0;
};

// Chooses the output partition for a record, given the partition count.
// Returning nullopt leaves the choice to the default partitioner (murmur2 of
// the key, as Kafka's Java clients do).
using StreamPartitioner =
    std::function<std::optional<int32_t>(const Record& record, int32_t partitions)>;

// Chooses the topic a dynamic sink writes a record to (Kafka Streams'
// TopicNameExtractor). An error status is the record's processing error.
using TopicNameExtractor = std::function<absl::StatusOr<std::string>(const Record& record)>;

// An interactive query (KafkaStreams::QueryLocal, the query endpoint): a
// read-only look-up of one key in the state of the task that owns the key.
struct QuerySpec {
  // Served as GET /<name>/<id>: letters, digits, '-' and '_'.
  std::string name;
  // The store the answer comes from: the key's task is the partition of this
  // store's source topic the key maps to (as the writer of that topic
  // partitioned it), in the store's sub-topology.
  std::string store;
  // The id of a request (the path's last segment) as a key of the store;
  // InvalidArgument with the reason when it is not a valid key.
  std::function<absl::StatusOr<std::string>(std::string_view id)> key;
  // The answer for `key` from the task's stores (`stores` gives each by
  // name, as its processors see it, or nullptr); nullopt: no such entry.
  // Runs on the task's stream thread between two records.
  // REQUIRES: reads only; `stores`' stores live for the call only.
  std::function<absl::StatusOr<std::optional<std::string>>(
      const std::function<KeyValueStore*(std::string_view store)>& stores, std::string_view key)>
      run;
};

class Topology {
 public:
  enum class NodeKind { kSource, kProcessor, kSink };

  struct Node {
    NodeKind kind;
    std::string name;
    std::vector<std::string> parents;
    std::vector<std::string> children;  // filled in as children are added
    std::vector<std::string> topics;    // source: topics read; sink: one topic
    ProcessorFactory factory;           // processors only
    std::vector<std::string> stores;    // stores this processor may use
    StreamPartitioner partitioner;      // sinks only; may be empty
    TopicNameExtractor topic_extractor; // dynamic sinks only (topics empty)
  };

  // A connected part of the DAG (nodes linked by edges or a shared store).
  // Sub-topologies only meet through topics, e.g. repartition topics.
  struct Subtopology {
    int id = 0;
    std::vector<std::string> nodes;         // in insertion order
    std::vector<std::string> source_topics; // sorted
    std::vector<std::string> sink_topics;   // sorted
    std::vector<std::string> stores;        // sorted
  };

  Topology() = default;
  Topology(Topology&&) = default;
  Topology& operator=(Topology&&) = default;

  Topology& AddSource(std::string name, std::vector<std::string> topics);
  Topology& AddProcessor(std::string name, ProcessorFactory factory,
                         std::vector<std::string> parents);
  // Connects the store to the named processors (which must exist).
  Topology& AddStateStore(StoreSpec spec, std::vector<std::string> processors);
  Topology& ConnectProcessorAndStore(std::string_view processor,
                                     std::string_view store);
  Topology& AddSink(std::string name, std::string topic,
                    std::vector<std::string> parents,
                    StreamPartitioner partitioner = nullptr);
  // A sink whose topic is chosen per record by `extractor`. The topics must
  // exist (or be auto-created by the cluster); they are not internal topics.
  Topology& AddDynamicSink(std::string name, TopicNameExtractor extractor,
                           std::vector<std::string> parents);
  // Declares `topic` as an internal repartition topic of this application:
  // the runtime names it "<application.id>-<topic>" and creates it with
  // `partitions` partitions (0: as many as the upstream source topics).
  // Sources and sinks refer to it by the short name given here.
  // With `partitions_like` set (and `partitions` 0) it gets as many
  // partitions as that topic (a source topic of the application).
  Topology& AddRepartitionTopic(std::string topic, int32_t partitions = 0,
                                std::string partitions_like = "");

  // Requires source topic `topic` to have exactly `partitions` partitions;
  // KafkaStreams::Start refuses to run otherwise, quoting `reason`.
  Topology& RequirePartitions(std::string topic, int32_t partitions, std::string reason);
  struct PartitionRequirement {
    int32_t partitions = 0;
    std::string reason;
  };
  const std::map<std::string, PartitionRequirement>& partition_requirements() const {
    return partition_requirements_;
  }

  // Registers an interactive query over a store of this topology (the store
  // must exist when Build runs).
  Topology& AddQuery(QuerySpec query);
  const std::map<std::string, QuerySpec, std::less<>>& queries() const { return queries_; }
  const QuerySpec* query(std::string_view name) const;
  // The partition of the sub-topology of `query`'s store that owns `key`,
  // of `partitions`: what the sink writing the store's source topic chose for
  // a record with that key (its partitioner, else murmur2 of the key), or
  // murmur2 for a topic the application does not write. REQUIRES: built.
  int32_t QueryPartition(const QuerySpec& query, std::string_view key, int32_t partitions) const;
  // The sub-topology holding `store`, or nullptr. REQUIRES: built.
  const Subtopology* SubtopologyOfStore(std::string_view store) const;

  // Validates the DAG (every processor reachable from a source, no cycles,
  // each sink with a parent) and computes sub-topologies. Idempotent.
  absl::Status Build();

  // REQUIRES: Build() returned OK.
  const std::vector<Subtopology>& subtopologies() const { return subtopologies_; }
  const Node* node(std::string_view name) const;
  const StoreSpec* store(std::string_view name) const;
  const std::map<std::string, int32_t>& repartition_topics() const {
    return repartition_topics_;
  }
  // Repartition topics sized like another topic: name -> that topic.
  const std::map<std::string, std::string>& repartition_partitions_like() const {
    return repartition_like_;
  }
  const std::vector<std::string>& node_order() const { return order_; }

  // Text like Kafka Streams' TopologyDescription:
  //   Topologies:
  //      Sub-topology: 0
  //       Source: KSTREAM-SOURCE-0000000000 (topics: [input])
  //         --> KSTREAM-MAPVALUES-0000000001
  //       ...
  std::string Describe() const;

 private:
  Node* MutableNode(std::string_view name);
  void Fail(std::string message);

  std::map<std::string, Node, std::less<>> nodes_;
  std::vector<std::string> order_;
  std::map<std::string, StoreSpec, std::less<>> stores_;
  std::map<std::string, int32_t> repartition_topics_;
  std::map<std::string, std::string> repartition_like_;
  std::map<std::string, PartitionRequirement> partition_requirements_;
  std::vector<Subtopology> subtopologies_;
  std::map<std::string, QuerySpec, std::less<>> queries_;
  absl::Status error_;
  bool built_ = false;
};

}  // namespace tributary
