#include "engine/topology.h"

#include <algorithm>
#include <cstddef>
#include <numeric>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/ascii.h"
#include "base/absl_compat.h"
#include "engine/internal/record_collector.h"

namespace tributary {
namespace {

const char* KindName(Topology::NodeKind kind) {
  switch (kind) {
    case Topology::NodeKind::kSource:
      return "source";
    case Topology::NodeKind::kProcessor:
      return "processor";
    case Topology::NodeKind::kSink:
      return "sink";
  }
  return "node";
}

// Union-find over node indices, for the connected components that make up
// sub-topologies.
class DisjointSets {
 public:
  explicit DisjointSets(size_t n) : parent_(n) {
    std::iota(parent_.begin(), parent_.end(), size_t{0});
  }
  size_t Find(size_t x) {
    while (parent_[x] != x) {
      parent_[x] = parent_[parent_[x]];
      x = parent_[x];
    }
    return x;
  }
  void Union(size_t a, size_t b) {
    a = Find(a);
    b = Find(b);
    // The smaller index stays the root, so a component's root is its first
    // node in insertion order.
    if (a < b) {
      parent_[b] = a;
    } else {
      parent_[a] = b;
    }
  }

 private:
  std::vector<size_t> parent_;
};

using NodeMap = std::map<std::string, Topology::Node, std::less<>>;

// Connected components of the node graph, where parent/child links and
// stores shared by two processors are the edges. Numbered in the order of
// their first node's insertion.
std::vector<Topology::Subtopology> ComputeSubtopologies(
    const NodeMap& nodes, const std::vector<std::string>& order) {
  std::map<std::string_view, size_t> index;
  for (size_t i = 0; i < order.size(); ++i) index[order[i]] = i;

  DisjointSets sets(order.size());
  std::map<std::string_view, size_t> first_user_of_store;
  for (size_t i = 0; i < order.size(); ++i) {
    const Topology::Node& node = nodes.find(order[i])->second;
    for (const std::string& parent : node.parents) {
      sets.Union(i, index.at(parent));
    }
    for (const std::string& store : node.stores) {
      auto [it, inserted] = first_user_of_store.emplace(store, i);
      if (!inserted) sets.Union(i, it->second);
    }
  }

  std::vector<Topology::Subtopology> result;
  std::map<size_t, size_t> root_to_subtopology;
  for (size_t i = 0; i < order.size(); ++i) {
    const size_t root = sets.Find(i);
    auto [it, inserted] = root_to_subtopology.emplace(root, result.size());
    if (inserted) {
      result.emplace_back();
      result.back().id = static_cast<int>(result.size() - 1);
    }
    Topology::Subtopology& sub = result[it->second];
    const Topology::Node& node = nodes.find(order[i])->second;
    sub.nodes.push_back(node.name);
    switch (node.kind) {
      case Topology::NodeKind::kSource:
        sub.source_topics.insert(sub.source_topics.end(), node.topics.begin(),
                                 node.topics.end());
        break;
      case Topology::NodeKind::kSink:
        sub.sink_topics.insert(sub.sink_topics.end(), node.topics.begin(),
                               node.topics.end());
        break;
      case Topology::NodeKind::kProcessor:
        sub.stores.insert(sub.stores.end(), node.stores.begin(),
                          node.stores.end());
        break;
    }
  }
  for (Topology::Subtopology& sub : result) {
    for (std::vector<std::string>* names :
         {&sub.source_topics, &sub.sink_topics, &sub.stores}) {
      std::sort(names->begin(), names->end());
      names->erase(std::unique(names->begin(), names->end()), names->end());
    }
  }
  return result;
}

// Kafka Streams orders the nodes of a description (and the names after
// "-->" and "<--") by the size of the sub-tree below them, largest first,
// then by name; for a chain that is data-flow order. The size counts a node
// once per path that reaches it, as Kafka Streams' updateSize does.
class DescribeOrder {
 public:
  explicit DescribeOrder(const NodeMap& nodes) : nodes_(nodes) {}

  bool operator()(const std::string& a, const std::string& b) {
    const size_t size_a = Size(a);
    const size_t size_b = Size(b);
    if (size_a != size_b) return size_a > size_b;
    return a < b;
  }

  std::vector<std::string> Sorted(std::vector<std::string> names) {
    std::sort(names.begin(), names.end(),
              [this](const std::string& a, const std::string& b) {
                return (*this)(a, b);
              });
    return names;
  }

 private:
  size_t Size(const std::string& name) {
    if (auto it = sizes_.find(name); it != sizes_.end()) return it->second;
    size_t size = 1;
    for (const std::string& child : nodes_.find(name)->second.children) {
      size += Size(child);
    }
    sizes_.emplace(name, size);
    return size;
  }

  const NodeMap& nodes_;
  std::map<std::string, size_t> sizes_;
};

// Adds `child` to the children of each of `parents`, which exist.
void LinkChild(NodeMap& nodes, const std::string& child,
               const std::vector<std::string>& parents) {
  for (const std::string& parent : parents) {
    auto it = nodes.find(parent);
    if (it == nodes.end()) continue;
    std::vector<std::string>& children = it->second.children;
    if (std::find(children.begin(), children.end(), child) == children.end()) {
      children.push_back(child);
    }
  }
}

std::string NodeNames(const std::vector<std::string>& names) {
  return names.empty() ? "none" : absl::StrJoin(names, ", ");
}

}  // namespace

void Topology::Fail(std::string message) {
  if (error_.ok()) {
    error_ = absl::InvalidArgumentError(absl::StrCat("Topology: ", message));
  }
}

Topology::Node* Topology::MutableNode(std::string_view name) {
  auto it = nodes_.find(name);
  return it == nodes_.end() ? nullptr : &it->second;
}

const Topology::Node* Topology::node(std::string_view name) const {
  auto it = nodes_.find(name);
  return it == nodes_.end() ? nullptr : &it->second;
}

const StoreSpec* Topology::store(std::string_view name) const {
  auto it = stores_.find(name);
  return it == stores_.end() ? nullptr : &it->second;
}

Topology& Topology::AddSource(std::string name,
                              std::vector<std::string> topics) {
  built_ = false;
  if (name.empty()) {
    Fail("a source needs a name");
    return *this;
  }
  if (nodes_.contains(name)) {
    Fail(absl::StrCat("duplicate node name \"", name, "\""));
    return *this;
  }
  if (topics.empty()) {
    Fail(absl::StrCat("source \"", name, "\" has an empty topic list"));
    return *this;
  }
  for (const std::string& topic : topics) {
    if (topic.empty()) {
      Fail(absl::StrCat("source \"", name, "\" names an empty topic"));
      return *this;
    }
    for (const std::string& other : order_) {
      const Node& node = nodes_.find(other)->second;
      if (node.kind == NodeKind::kSource &&
          std::find(node.topics.begin(), node.topics.end(), topic) !=
              node.topics.end()) {
        Fail(absl::StrCat("topic \"", topic, "\" is read by two sources: \"",
                          other, "\" and \"", name, "\""));
        return *this;
      }
    }
  }
  std::sort(topics.begin(), topics.end());
  if (std::adjacent_find(topics.begin(), topics.end()) != topics.end()) {
    Fail(absl::StrCat("source \"", name, "\" lists a topic twice"));
    return *this;
  }
  Node node;
  node.kind = NodeKind::kSource;
  node.name = name;
  node.topics = std::move(topics);
  order_.push_back(name);
  nodes_.emplace(std::move(name), std::move(node));
  return *this;
}

Topology& Topology::AddProcessor(std::string name, ProcessorFactory factory,
                                 std::vector<std::string> parents) {
  built_ = false;
  if (name.empty()) {
    Fail("a processor needs a name");
    return *this;
  }
  if (nodes_.contains(name)) {
    Fail(absl::StrCat("duplicate node name \"", name, "\""));
    return *this;
  }
  if (!factory) {
    Fail(absl::StrCat("processor \"", name, "\" has no factory"));
    return *this;
  }
  if (parents.empty()) {
    Fail(absl::StrCat("processor \"", name, "\" has no parent"));
    return *this;
  }
  for (const std::string& parent : parents) {
    const Node* p = node(parent);
    if (p == nullptr) {
      Fail(absl::StrCat("processor \"", name, "\" names unknown parent \"",
                        parent, "\""));
      return *this;
    }
    if (p->kind == NodeKind::kSink) {
      Fail(absl::StrCat("processor \"", name, "\" names sink \"", parent,
                        "\" as parent; a sink has no children"));
      return *this;
    }
  }
  LinkChild(nodes_, name, parents);
  Node node;
  node.kind = NodeKind::kProcessor;
  node.name = name;
  node.parents = std::move(parents);
  node.factory = std::move(factory);
  order_.push_back(name);
  nodes_.emplace(std::move(name), std::move(node));
  return *this;
}

Topology& Topology::AddStateStore(StoreSpec spec,
                                  std::vector<std::string> processors) {
  built_ = false;
  if (spec.name.empty()) {
    Fail("a state store needs a name");
    return *this;
  }
  if (stores_.contains(spec.name)) {
    Fail(absl::StrCat("duplicate state store \"", spec.name, "\""));
    return *this;
  }
  const std::string name = spec.name;
  stores_.emplace(name, std::move(spec));
  for (const std::string& processor : processors) {
    ConnectProcessorAndStore(processor, name);
  }
  return *this;
}

Topology& Topology::ConnectProcessorAndStore(std::string_view processor,
                                             std::string_view store) {
  built_ = false;
  if (!stores_.contains(store)) {
    Fail(absl::StrCat("unknown state store \"", Sv(store),
                      "\" (connecting it to \"", Sv(processor), "\")"));
    return *this;
  }
  Node* node = MutableNode(processor);
  if (node == nullptr) {
    Fail(absl::StrCat("unknown processor \"", Sv(processor),
                      "\" (connecting state store \"", Sv(store), "\")"));
    return *this;
  }
  if (node->kind != NodeKind::kProcessor) {
    Fail(absl::StrCat("state store \"", Sv(store),
                      "\" can only be connected to a "
                      "processor, and \"",
                      Sv(processor), "\" is a ", KindName(node->kind)));
    return *this;
  }
  if (std::find(node->stores.begin(), node->stores.end(), store) ==
      node->stores.end()) {
    node->stores.emplace_back(store);
  }
  return *this;
}

Topology& Topology::AddDynamicSink(std::string name, TopicNameExtractor extractor,
                                   std::vector<std::string> parents) {
  if (!extractor) {
    Fail(absl::StrCat("dynamic sink \"", name, "\" has no topic name extractor"));
    return *this;
  }
  // Validate as a sink with a placeholder topic, then make it dynamic.
  AddSink(name, "<dynamic>", std::move(parents));
  auto it = nodes_.find(name);
  if (it != nodes_.end() && it->second.kind == NodeKind::kSink &&
      !it->second.topic_extractor) {
    it->second.topics.clear();
    it->second.topic_extractor = std::move(extractor);
  }
  return *this;
}

Topology& Topology::AddSink(std::string name, std::string topic,
                            std::vector<std::string> parents,
                            StreamPartitioner partitioner) {
  built_ = false;
  if (name.empty()) {
    Fail("a sink needs a name");
    return *this;
  }
  if (nodes_.contains(name)) {
    Fail(absl::StrCat("duplicate node name \"", name, "\""));
    return *this;
  }
  if (topic.empty()) {
    Fail(absl::StrCat("sink \"", name, "\" has an empty topic"));
    return *this;
  }
  if (parents.empty()) {
    Fail(absl::StrCat("sink \"", name, "\" has no parent"));
    return *this;
  }
  for (const std::string& parent : parents) {
    const Node* p = node(parent);
    if (p == nullptr) {
      Fail(absl::StrCat("sink \"", name, "\" names unknown parent \"", parent,
                        "\""));
      return *this;
    }
    if (p->kind == NodeKind::kSink) {
      Fail(absl::StrCat("sink \"", name, "\" names sink \"", parent,
                        "\" as parent; a sink has no children"));
      return *this;
    }
  }
  LinkChild(nodes_, name, parents);
  Node node;
  node.kind = NodeKind::kSink;
  node.name = name;
  node.parents = std::move(parents);
  node.topics = {std::move(topic)};
  node.partitioner = std::move(partitioner);
  order_.push_back(name);
  nodes_.emplace(std::move(name), std::move(node));
  return *this;
}

Topology& Topology::RequirePartitions(std::string topic, int32_t partitions,
                                      std::string reason) {
  partition_requirements_[std::move(topic)] = {partitions, std::move(reason)};
  return *this;
}

Topology& Topology::AddRepartitionTopic(std::string topic, int32_t partitions,
                                        std::string partitions_like) {
  built_ = false;
  if (topic.empty()) {
    Fail("a repartition topic needs a name");
    return *this;
  }
  if (partitions < 0) {
    Fail(absl::StrCat("repartition topic \"", topic,
                      "\" has a negative partition count (", partitions, ")"));
    return *this;
  }
  if (partitions > 0 && !partitions_like.empty()) {
    Fail(absl::StrCat("repartition topic \"", topic, "\" has both ", partitions,
                      " partitions and partitions like \"", partitions_like,
                      "\"; give one"));
    return *this;
  }
  auto [it, inserted] = repartition_topics_.emplace(topic, partitions);
  if (!inserted && it->second != partitions) {
    Fail(absl::StrCat("repartition topic \"", topic, "\" declared with ",
                      it->second, " and with ", partitions, " partitions"));
    return *this;
  }
  auto like = repartition_like_.find(topic);
  const std::string previous_like =
      like == repartition_like_.end() ? "" : like->second;
  if (!inserted && previous_like != partitions_like) {
    Fail(absl::StrCat("repartition topic \"", topic,
                      "\" declared with partitions like \"", previous_like,
                      "\" and like \"", partitions_like, "\""));
    return *this;
  }
  if (!partitions_like.empty()) {
    repartition_like_[topic] = std::move(partitions_like);
  }
  return *this;
}

absl::Status Topology::Build() {
  if (!error_.ok()) return error_;
  if (built_) return absl::OkStatus();
  subtopologies_.clear();

  if (order_.empty()) {
    return absl::InvalidArgumentError("Topology: no nodes; add a source first");
  }

  // Kahn's algorithm from the sources: every node must be reached (no
  // orphan reads from nowhere) and every edge consumed (no cycle). Builder
  // methods only accept existing parents, so neither should happen; this
  // guards the invariant the runtime relies on.
  std::map<std::string_view, size_t> pending_parents;
  std::vector<std::string_view> ready;
  for (const std::string& name : order_) {
    const Node& node = nodes_.find(name)->second;
    pending_parents[name] = node.parents.size();
    if (node.kind == NodeKind::kSource) ready.push_back(name);
  }
  size_t visited = 0;
  while (!ready.empty()) {
    std::string_view name = ready.back();
    ready.pop_back();
    ++visited;
    for (const std::string& child : nodes_.find(name)->second.children) {
      if (--pending_parents[child] == 0) ready.push_back(child);
    }
  }
  if (visited != order_.size()) {
    for (const std::string& name : order_) {
      if (pending_parents[name] != 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "Topology: node \"", name,
            "\" is not reachable from a source or lies on a cycle"));
      }
    }
  }

  for (const auto& [topic, partitions] : repartition_topics_) {
    bool written = false;
    bool read = false;
    for (const auto& [name, node] : nodes_) {
      if (std::find(node.topics.begin(), node.topics.end(), topic) ==
          node.topics.end()) {
        continue;
      }
      if (node.kind == NodeKind::kSink) written = true;
      if (node.kind == NodeKind::kSource) read = true;
    }
    if (!written || !read) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Topology: repartition topic \"", topic, "\" is declared but ",
          written ? "no source reads it" : "no sink writes it"));
    }
  }

  for (const auto& [topic, like] : repartition_like_) {
    const bool read =
        std::any_of(nodes_.begin(), nodes_.end(), [&](const auto& entry) {
          const Node& node = entry.second;
          return node.kind == NodeKind::kSource &&
                 std::find(node.topics.begin(), node.topics.end(), like) !=
                     node.topics.end();
        });
    if (!read) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Topology: repartition topic \"", topic, "\" is sized like topic \"",
          like, "\", which no source reads"));
    }
  }

  for (const auto& [name, query] : queries_) {
    if (!stores_.contains(query.store)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Topology: query \"", name, "\" reads unknown state store \"", query.store, "\""));
    }
  }

  subtopologies_ = ComputeSubtopologies(nodes_, order_);
  built_ = true;
  return absl::OkStatus();
}

Topology& Topology::AddQuery(QuerySpec query) {
  built_ = false;
  const bool valid_name =
      !query.name.empty() && std::all_of(query.name.begin(), query.name.end(), [](char c) {
        return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
      });
  if (!valid_name) {
    Fail(absl::StrCat("query name \"", query.name,
                      "\" must be non-empty letters, digits, '-' and '_'"));
    return *this;
  }
  if (!query.key || !query.run) {
    Fail(absl::StrCat("query \"", query.name, "\" needs a key parser and a function"));
    return *this;
  }
  if (queries_.contains(query.name)) {
    Fail(absl::StrCat("duplicate query \"", query.name, "\""));
    return *this;
  }
  std::string name = query.name;
  queries_.emplace(std::move(name), std::move(query));
  return *this;
}

const QuerySpec* Topology::query(std::string_view name) const {
  auto it = queries_.find(name);
  return it == queries_.end() ? nullptr : &it->second;
}

const Topology::Subtopology* Topology::SubtopologyOfStore(std::string_view store) const {
  for (const Subtopology& sub : subtopologies_) {
    if (std::find(sub.stores.begin(), sub.stores.end(), store) != sub.stores.end()) return &sub;
  }
  return nullptr;
}

int32_t Topology::QueryPartition(const QuerySpec& query, std::string_view key,
                                 int32_t partitions) const {
  const Subtopology* sub = SubtopologyOfStore(query.store);
  if (sub != nullptr && partitions > 0) {
    // Co-partitioned source topics share the partitioning: the first one
    // an application sink writes decides.
    Record record;
    record.key = key;
    for (const std::string& topic : sub->source_topics) {
      for (const std::string& name : order_) {
        const Node& node = nodes_.find(name)->second;
        if (node.kind != NodeKind::kSink || node.topics.empty() || node.topics.front() != topic) {
          continue;
        }
        if (node.partitioner) {
          if (std::optional<int32_t> chosen = node.partitioner(record, partitions)) {
            return *chosen;
          }
        }
        return internal::DefaultPartition(key, partitions);
      }
    }
  }
  return internal::DefaultPartition(key, std::max(partitions, 1));
}

std::string Topology::Describe() const {
  std::string out = "Topologies:\n ";
  DescribeOrder by_size(nodes_);
  for (const Subtopology& sub : ComputeSubtopologies(nodes_, order_)) {
    // Kafka Streams writes " " after "Topologies:\n" and "  " before each
    // sub-topology, so the first one is indented by three spaces.
    absl::StrAppend(&out, "  Sub-topology: ", sub.id, "\n");
    for (const std::string& name : by_size.Sorted(sub.nodes)) {
      const Node& node = nodes_.find(name)->second;
      switch (node.kind) {
        case NodeKind::kSource:
          absl::StrAppend(&out, "    Source: ", name, " (topics: [",
                          absl::StrJoin(node.topics, ", "), "])\n      --> ",
                          NodeNames(by_size.Sorted(node.children)), "\n");
          break;
        case NodeKind::kProcessor: {
          std::vector<std::string> stores = node.stores;
          std::sort(stores.begin(), stores.end());
          absl::StrAppend(&out, "    Processor: ", name, " (stores: [",
                          absl::StrJoin(stores, ", "), "])\n      --> ",
                          NodeNames(by_size.Sorted(node.children)),
                          "\n      <-- ",
                          NodeNames(by_size.Sorted(node.parents)), "\n");
          break;
        }
        case NodeKind::kSink:
          absl::StrAppend(&out, "    Sink: ", name,
                          " (topic: ",
                          node.topics.empty() ? "<dynamic>" : node.topics.front(),
                          ")\n      <-- ",
                          NodeNames(by_size.Sorted(node.parents)), "\n");
          break;
      }
    }
    out += "\n";
  }
  return out;
}

}  // namespace tributary
