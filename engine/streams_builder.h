// StreamsBuilder: the typed DSL over Topology, as in Kafka Streams. Word count:
//
//   StreamsBuilder builder;
//   builder.Stream<std::string, std::string>({"text"})
//       .FlatMapValues<std::string>([](const std::string& line) {
//         return std::vector<std::string>(absl::StrSplit(line, ' '));
//       })
//       .GroupBy<std::string>([](const std::string&, const std::string& word) {
//         return word;
//       })
//       .Count({.store_name = "counts"})
//       .ToStream()
//       .To("word-counts");
//   absl::StatusOr<Topology> topology = builder.Build();
//
// Every operator adds a node to the Topology, named like Kafka Streams'
// ("KSTREAM-MAPVALUES-0000000001") unless a Named is given. Nodes pass
// records as bytes: each one decodes its input with the stream's serdes and
// encodes its output with the serdes of the stream it returns. An output
// serde not given is the input's when the type is unchanged, else
// Serdes::Default<T>(); a type without one needs an explicit serde.
// Serdes given to Consumed/Grouped/Repartitioned/Produced that differ from
// the stream's (by Serde::name) are an error: give them to the operator that
// makes the stream instead.
//
// Nulls: a null key or value reaches a lambda as nullopt when its type is
// std::optional<U> (use Serdes::Optional), otherwise as T{} (so "" for
// std::string). An empty std::optional output is written as a null.
// Aggregations skip records with a null key or value; ToTable treats a null
// value as a delete.
//
// Repartitioning: Map, SelectKey, FlatMap, GroupBy and Process may change
// keys; a later GroupByKey/Count/... or ToTable first writes the stream to an
// internal topic "<prefix>-repartition" and reads it back (Topology::
// AddRepartitionTopic), which starts a new sub-topology. The prefix is the
// Grouped name, else the store name. Repartition() does it explicitly.
//
// Stores made by the DSL are StoreSpec{name, RocksDB, logging on} unless
// Materialized says otherwise; names are generated when not given
// ("KSTREAM-AGGREGATE-STATE-STORE-0000000002").
//
// Thread-safety: build on one thread. KStream, KGroupedStream and KTable are
// small handles pointing at their StreamsBuilder, which must outlive them;
// lambdas are copied into every task's processors and may run on several
// stream threads at once, so they must not share mutable state.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"
#include "engine/processor.h"
#include "engine/serde.h"
#include "engine/topology.h"

namespace tributary {

// What the operators' templates below hand to the engine: each operator is a
// typed step (decode with the stream's serdes, call the lambda, encode with
// the output serdes) run by one of a few untyped processors, which live in
// engine/internal/dsl_processors.cc. Not for direct use.
namespace internal {

// The typed key or value of a record part (`what` is "key" or "value").
// A null becomes nullopt for std::optional<U>, otherwise T{}: the DSL's rule
// for nulls (see the file comment).
template <typename T>
absl::StatusOr<T> Decode(const Serde<T>& serde,
                         std::optional<std::string_view> bytes,
                         std::string_view node, std::string_view what) {
  if (!bytes.has_value()) {
    if constexpr (IsOptional<T>::value) {
      return T(std::nullopt);
    } else if constexpr (std::is_default_constructible_v<T>) {
      return T{};
    } else {
      return MarkBadInput(absl::InvalidArgumentError(
          absl::StrCat(Sv(node), ": the record's ", Sv(what),
                       " is null and its type has no default value; declare it "
                       "std::optional")));
    }
  }
  absl::StatusOr<T> value = serde.deserialize(*bytes);
  if (!value.ok()) {
    return MarkBadInput(absl::Status(
        value.status().code(),
        absl::StrCat(Sv(node), ": cannot deserialize the record's ", Sv(what),
                     ": ", value.status().message())));
  }
  return value;
}

// The bytes of `value`, written into `buffer`; nullopt (a null) for an empty
// std::optional. Valid until `buffer` changes.
template <typename T>
std::optional<std::string_view> Encode(const Serde<T>& serde, const T& value,
                                       std::string& buffer) {
  if constexpr (IsOptional<T>::value) {
    if (!value.has_value()) return std::nullopt;
  }
  serde.serialize(value, buffer);
  return std::string_view(buffer);
}

// Both parts of a record, or the first decoding error.
template <typename K, typename V>
absl::StatusOr<std::pair<K, V>> DecodeKeyValue(const Serde<K>& key_serde,
                                               const Serde<V>& value_serde,
                                               const Record& record,
                                               std::string_view node) {
  absl::StatusOr<K> key = Decode(key_serde, record.key, node, "key");
  if (!key.ok()) return key.status();
  absl::StatusOr<V> value = Decode(value_serde, record.value, node, "value");
  if (!value.ok()) return value.status();
  return std::pair<K, V>(*std::move(key), *std::move(value));
}

// Where a step's output goes: the processor's context and its encode
// buffers (reused from record to record).
class DslOutput {
 public:
  explicit DslOutput(ProcessorContext& context) : context_(&context) {}

  // Forwards `record` unchanged.
  absl::Status Forward(const Record& record) { return context_->Forward(record); }
  // Forwards a copy of `input` with new key and value bytes; the timestamp,
  // headers and origin stay those of the input.
  absl::Status ForwardWith(const Record& input,
                           std::optional<std::string_view> key,
                           std::optional<std::string_view> value) {
    Record output = input;
    output.key = key;
    output.value = value;
    return context_->Forward(output);
  }

  std::string key_buffer;
  std::string value_buffer;

 private:
  ProcessorContext* context_;
};

// Filter, Peek, Map, MapValues, FlatMap, FlatMapValues, SelectKey: the step
// forwards what it makes of each record through `out`.
using RecordStep = std::function<absl::Status(const Record& record, DslOutput& out)>;
ProcessorFactory StatelessProcessorFactory(RecordStep step);

// Count, Reduce and Aggregate: the step decodes the record, calls
// `load_current` for the stored aggregate's bytes (nullopt: none yet), folds
// the record in and returns the new aggregate encoded into `buffer` (nullopt:
// delete the key). The processor stores it under the record's key bytes and
// forwards the key with it; records with a null key or value are skipped.
using LoadAggregate = absl::FunctionRef<absl::StatusOr<std::optional<std::string>>()>;
using AggregateStep = std::function<absl::StatusOr<std::optional<std::string_view>>(
    const Record& record, LoadAggregate load_current, std::string& buffer)>;
ProcessorFactory AggregateProcessorFactory(std::string name, std::string store,
                                           AggregateStep step);

// KStream::ToTable: puts a record with a value in the store, deletes the key
// on a tombstone, forwards both; skips records with a null key.
ProcessorFactory ToTableProcessorFactory(std::string name, std::string store);
// KTable::ToStream: forwards every record unchanged.
ProcessorFactory PassThroughProcessorFactory();

}  // namespace internal

template <typename K, typename V>
class KStream;
template <typename K, typename V>
class KGroupedStream;
template <typename K, typename V>
class KTable;

// Overrides an operator's generated node name.
struct Named {
  std::string name{};
};

// How Stream() reads its topics. Empty serdes: Serdes::Default<T>().
template <typename K, typename V>
struct Consumed {
  Serde<K> key_serde{};
  Serde<V> value_serde{};
  std::string name{};  // the source node's name; empty: generated
};

// How To() writes a topic. Serdes, if given, must match the stream's.
template <typename K, typename V>
struct Produced {
  Serde<K> key_serde{};
  Serde<V> value_serde{};
  StreamPartitioner partitioner{};  // empty: murmur2 of the key bytes
};

// GroupByKey/GroupBy. Serdes, if given, must match the stream's. The name,
// if given, prefixes the repartition topic ("<name>-repartition").
template <typename K, typename V>
struct Grouped {
  Serde<K> key_serde{};
  Serde<V> value_serde{};
  std::string name{};
};

// Repartition(): the topic is "<name>-repartition" (name generated when
// empty) with `partitions` partitions (0: as many as the input topics).
template <typename K, typename V>
struct Repartitioned {
  std::string name{};
  int32_t partitions = 0;
  Serde<K> key_serde{};  // if given, must match the stream's
  Serde<V> value_serde{};
  StreamPartitioner partitioner{};
};

// The store behind a KTable. value_serde: for Count/Aggregate/Reduce the
// format of the aggregate (empty: Serdes::Default<V>(), or the stream's for
// Reduce); for ToTable it must match the stream's.
template <typename V>
struct Materialized {
  std::string store_name{};  // empty: generated
  Serde<V> value_serde{};
  StoreType store_type = StoreType::kRocksDb;
  bool logging_enabled =
      true;  // changelog topic "<application.id>-<store>-changelog"
};

class StreamsBuilder {
 public:
  StreamsBuilder() = default;
  // KStream and friends point at the builder.
  StreamsBuilder(const StreamsBuilder&) = delete;
  StreamsBuilder& operator=(const StreamsBuilder&) = delete;

  // A stream of the records of `topics`.
  template <typename K, typename V>
  KStream<K, V> Stream(std::vector<std::string> topics,
                       Consumed<K, V> consumed = {});

  // Declares a store for Process(); see KStream::Process.
  StreamsBuilder& AddStateStore(StoreSpec spec);

  // The first error made while building, else the Topology (after
  // Topology::Build()). Call once: the topology moves out of the builder.
  absl::StatusOr<Topology> Build();

 private:
  template <typename K, typename V>
  friend class KStream;
  template <typename K, typename V>
  friend class KGroupedStream;
  template <typename K, typename V>
  friend class KTable;

  // "<prefix><10-digit index>", the index shared by all generated names.
  std::string NewName(std::string_view prefix);
  // "<prefix>STATE-STORE-<10-digit index>".
  std::string NewStoreName(std::string_view prefix);
  // `named` when given, else a new name with `prefix`.
  std::string NameOr(const Named& named, std::string_view prefix);
  void Fail(std::string message);

  // Writes the output of node `parent` to the internal topic
  // "<prefix>-repartition" and reads it back; returns the new source's name.
  std::string AddRepartition(const std::string& parent,
                             const std::string& prefix, int32_t partitions,
                             StreamPartitioner partitioner);

  // `serde`, or Serdes::Default<T>() when it is empty; records an error
  // naming `node` and `what` when neither is valid.
  template <typename T>
  Serde<T> ResolveSerde(Serde<T> serde, std::string_view node,
                        std::string_view what);
  // For an operator's output: `serde`, else `current` (the input's serde)
  // when T is its type, else Serdes::Default<T>().
  template <typename T, typename C>
  Serde<T> ResolveSerde(Serde<T> serde, const Serde<C>& current,
                        std::string_view node, std::string_view what);
  // Records an error unless `given` is empty or has the name of `actual`.
  template <typename T>
  void CheckSameSerde(const Serde<T>& given, const Serde<T>& actual,
                      std::string_view node, std::string_view what);

  Topology topology_;
  int index_ = 0;
  absl::Status error_;
  bool built_ = false;
};

// A record stream: every record is an independent event.
template <typename K, typename V>
class KStream {
 public:
  // The node whose output this stream is.
  const std::string& node_name() const { return node_; }
  const Serde<K>& key_serde() const { return key_serde_; }
  const Serde<V>& value_serde() const { return value_serde_; }

  KStream Filter(std::function<bool(const K&, const V&)> predicate,
                 Named named = {}) const;
  KStream FilterNot(std::function<bool(const K&, const V&)> predicate,
                    Named named = {}) const;
  KStream Peek(std::function<void(const K&, const V&)> action,
               Named named = {}) const;

  template <typename K2, typename V2>
  KStream<K2, V2> Map(std::function<std::pair<K2, V2>(const K&, const V&)> fn,
                      Named named = {}, Serde<K2> key_serde = {},
                      Serde<V2> value_serde = {}) const;
  template <typename V2>
  KStream<K, V2> MapValues(std::function<V2(const V&)> fn, Named named = {},
                           Serde<V2> value_serde = {}) const;
  template <typename K2, typename V2>
  KStream<K2, V2> FlatMap(
      std::function<std::vector<std::pair<K2, V2>>(const K&, const V&)> fn,
      Named named = {}, Serde<K2> key_serde = {},
      Serde<V2> value_serde = {}) const;
  template <typename V2>
  KStream<K, V2> FlatMapValues(std::function<std::vector<V2>(const V&)> fn,
                               Named named = {},
                               Serde<V2> value_serde = {}) const;
  template <typename K2>
  KStream<K2, V> SelectKey(std::function<K2(const K&, const V&)> fn,
                           Named named = {}, Serde<K2> key_serde = {}) const;

  // Writes to and reads back from an internal topic; see the file comment.
  KStream Repartition(Repartitioned<K, V> repartitioned = {}) const;

  KGroupedStream<K, V> GroupByKey(Grouped<K, V> grouped = {}) const;
  // SelectKey(selector) then GroupByKey: always repartitions.
  template <typename K2>
  KGroupedStream<K2, V> GroupBy(std::function<K2(const K&, const V&)> selector,
                                Grouped<K2, V> grouped = {}) const;

  // The latest value per key, kept in a store.
  KTable<K, V> ToTable(Materialized<V> materialized = {},
                       Named named = {}) const;

  void To(std::string topic, Produced<K, V> produced = {}) const;

  // Adds a low-level processor made by `factory`, connected to `stores`
  // (declared with StreamsBuilder::AddStateStore). It receives this stream's
  // bytes; the serdes say the format of what it forwards.
  template <typename K2 = K, typename V2 = V>
  KStream<K2, V2> Process(ProcessorFactory factory,
                          std::vector<std::string> stores = {},
                          Named named = {}, Serde<K2> key_serde = {},
                          Serde<V2> value_serde = {}) const;

 private:
  friend class StreamsBuilder;
  template <typename K2, typename V2>
  friend class KStream;
  template <typename K2, typename V2>
  friend class KGroupedStream;
  template <typename K2, typename V2>
  friend class KTable;

  KStream(StreamsBuilder* builder, std::string node, Serde<K> key_serde,
          Serde<V> value_serde, bool repartition_required)
      : builder_(builder),
        node_(std::move(node)),
        key_serde_(std::move(key_serde)),
        value_serde_(std::move(value_serde)),
        repartition_required_(repartition_required) {}

  // Adds processor `name` made by `factory` below this stream's node.
  void AddChild(const std::string& name, ProcessorFactory factory) const;
  // This stream, first repartitioned when its keys may have changed; the
  // prefix is used for the topic name.
  std::string RepartitionedNode(const std::string& prefix) const;
  // Filter (keep_when true) and FilterNot (false).
  KStream AddFilter(std::function<bool(const K&, const V&)> predicate,
                    Named named, bool keep_when) const;

  StreamsBuilder* builder_;
  std::string node_;
  Serde<K> key_serde_;
  Serde<V> value_serde_;
  // True after an operation that may change keys: grouping or making a table
  // must repartition first.
  bool repartition_required_;
};

// A stream grouped by key, waiting for an aggregation.
template <typename K, typename V>
class KGroupedStream {
 public:
  // Records per key. Default store value serde: Int64.
  KTable<K, int64_t> Count(Materialized<int64_t> materialized = {},
                           Named named = {}) const;
  // Combines the values of a key; the first value is the start.
  KTable<K, V> Reduce(
      std::function<V(const V& aggregate, const V& value)> reducer,
      Materialized<V> materialized = {}, Named named = {}) const;
  // Folds the values of a key into an aggregate that starts as initializer().
  template <typename VA>
  KTable<K, VA> Aggregate(
      std::function<VA()> initializer,
      std::function<VA(const K& key, const V& value, const VA& aggregate)>
          aggregator,
      Materialized<VA> materialized = {}, Named named = {}) const;

 private:
  template <typename K2, typename V2>
  friend class KStream;

  KGroupedStream(KStream<K, V> stream, std::string repartition_name)
      : stream_(std::move(stream)),
        repartition_name_(std::move(repartition_name)) {}

  // Folds one record into the key's aggregate; `current` is nullopt when the
  // key has none yet.
  template <typename VA>
  using AggregateFn =
      std::function<VA(const K& key, const V& value, std::optional<VA> current)>;

  template <typename VA>
  KTable<K, VA> DoAggregate(
      std::string_view prefix,
      AggregateFn<VA> step,
      Materialized<VA> materialized, Serde<VA> default_serde,
      const Named& named) const;

  KStream<K, V> stream_;
  std::string repartition_name_;
};

// A changelog stream: the latest value per key, kept in a state store.
template <typename K, typename V>
class KTable {
 public:
  const std::string& node_name() const { return node_; }
  // The store holding the table (key bytes -> value bytes).
  const std::string& queryable_store_name() const { return store_; }
  const Serde<K>& key_serde() const { return key_serde_; }
  const Serde<V>& value_serde() const { return value_serde_; }

  // Every update of the table as a record.
  KStream<K, V> ToStream(Named named = {}) const;

 private:
  template <typename K2, typename V2>
  friend class KStream;
  template <typename K2, typename V2>
  friend class KGroupedStream;

  KTable(StreamsBuilder* builder, std::string node, std::string store,
         Serde<K> key_serde, Serde<V> value_serde)
      : builder_(builder),
        node_(std::move(node)),
        store_(std::move(store)),
        key_serde_(std::move(key_serde)),
        value_serde_(std::move(value_serde)) {}

  StreamsBuilder* builder_;
  std::string node_;
  std::string store_;
  Serde<K> key_serde_;
  Serde<V> value_serde_;
};

// ---------------------------------------------------------------------------
// Implementation.

template <typename T>
Serde<T> StreamsBuilder::ResolveSerde(Serde<T> serde, std::string_view node,
                                      std::string_view what) {
  if (serde.valid()) return serde;
  serde = Serdes::Default<T>();
  if (!serde.valid()) {
    Fail(absl::StrCat(Sv(node), ": no serde for the ", Sv(what),
                      " (its type has no default serde; pass one)"));
  }
  return serde;
}

template <typename T, typename C>
Serde<T> StreamsBuilder::ResolveSerde(Serde<T> serde, const Serde<C>& current,
                                      std::string_view node,
                                      std::string_view what) {
  if constexpr (std::is_same_v<T, C>) {
    if (!serde.valid()) return current;
  }
  return ResolveSerde(std::move(serde), node, what);
}

template <typename T>
void StreamsBuilder::CheckSameSerde(const Serde<T>& given,
                                    const Serde<T>& actual,
                                    std::string_view node,
                                    std::string_view what) {
  if (!given.valid()) return;
  if (given.name.empty() || given.name != actual.name) {
    Fail(absl::StrCat(Sv(node), ": the ", Sv(what), " serde given (\"",
                      given.name, "\") differs from the stream's (\"",
                      actual.name,
                      "\"); give it to the operator that makes the stream"));
  }
}

template <typename K, typename V>
KStream<K, V> StreamsBuilder::Stream(std::vector<std::string> topics,
                                     Consumed<K, V> consumed) {
  std::string name = consumed.name.empty() ? NewName("KSTREAM-SOURCE-")
                                           : std::move(consumed.name);
  Serde<K> key_serde = ResolveSerde(std::move(consumed.key_serde), name, "key");
  Serde<V> value_serde =
      ResolveSerde(std::move(consumed.value_serde), name, "value");
  topology_.AddSource(name, std::move(topics));
  return KStream<K, V>(this, std::move(name), std::move(key_serde),
                       std::move(value_serde),
                       /*repartition_required=*/false);
}

template <typename K, typename V>
void KStream<K, V>::AddChild(const std::string& name,
                             ProcessorFactory factory) const {
  builder_->topology_.AddProcessor(name, std::move(factory), {node_});
}

template <typename K, typename V>
std::string KStream<K, V>::RepartitionedNode(const std::string& prefix) const {
  if (!repartition_required_) return node_;
  return builder_->AddRepartition(node_, prefix, /*partitions=*/0, nullptr);
}

template <typename K, typename V>
KStream<K, V> KStream<K, V>::Filter(
    std::function<bool(const K&, const V&)> predicate, Named named) const {
  return AddFilter(std::move(predicate), std::move(named), /*keep_when=*/true);
}

template <typename K, typename V>
KStream<K, V> KStream<K, V>::FilterNot(
    std::function<bool(const K&, const V&)> predicate, Named named) const {
  return AddFilter(std::move(predicate), std::move(named), /*keep_when=*/false);
}

template <typename K, typename V>
KStream<K, V> KStream<K, V>::AddFilter(
    std::function<bool(const K&, const V&)> predicate, Named named,
    bool keep_when) const {
  std::string name = builder_->NameOr(named, "KSTREAM-FILTER-");
  AddChild(name, internal::StatelessProcessorFactory(
                     [name, key_in = key_serde_, value_in = value_serde_,
                      predicate = std::move(predicate), keep_when](
                         const Record& record, internal::DslOutput& out) -> absl::Status {
                       absl::StatusOr<std::pair<K, V>> in =
                           internal::DecodeKeyValue(key_in, value_in, record, name);
                       if (!in.ok()) return in.status();
                       const auto& [key, value] = *in;
                       if (predicate(key, value) != keep_when) return absl::OkStatus();
                       return out.Forward(record);
                     }));
  return KStream(builder_, std::move(name), key_serde_, value_serde_,
                 repartition_required_);
}

template <typename K, typename V>
KStream<K, V> KStream<K, V>::Peek(
    std::function<void(const K&, const V&)> action, Named named) const {
  std::string name = builder_->NameOr(named, "KSTREAM-PEEK-");
  AddChild(name, internal::StatelessProcessorFactory(
                     [name, key_in = key_serde_, value_in = value_serde_,
                      action = std::move(action)](const Record& record,
                                                  internal::DslOutput& out) -> absl::Status {
                       absl::StatusOr<std::pair<K, V>> in =
                           internal::DecodeKeyValue(key_in, value_in, record, name);
                       if (!in.ok()) return in.status();
                       const auto& [key, value] = *in;
                       action(key, value);
                       return out.Forward(record);
                     }));
  return KStream(builder_, std::move(name), key_serde_, value_serde_,
                 repartition_required_);
}

template <typename K, typename V>
template <typename K2, typename V2>
KStream<K2, V2> KStream<K, V>::Map(
    std::function<std::pair<K2, V2>(const K&, const V&)> fn, Named named,
    Serde<K2> key_serde, Serde<V2> value_serde) const {
  std::string name = builder_->NameOr(named, "KSTREAM-MAP-");
  key_serde =
      builder_->ResolveSerde(std::move(key_serde), key_serde_, name, "key");
  value_serde = builder_->ResolveSerde(std::move(value_serde), value_serde_,
                                       name, "value");
  AddChild(name, internal::StatelessProcessorFactory(
                     [name, key_in = key_serde_, value_in = value_serde_,
                      key_out = key_serde, value_out = value_serde,
                      fn = std::move(fn)](const Record& record,
                                          internal::DslOutput& out) -> absl::Status {
                       absl::StatusOr<std::pair<K, V>> in =
                           internal::DecodeKeyValue(key_in, value_in, record, name);
                       if (!in.ok()) return in.status();
                       const auto& [key, value] = *in;
                       const std::pair<K2, V2> made = fn(key, value);
                       return out.ForwardWith(
                           record, internal::Encode(key_out, made.first, out.key_buffer),
                           internal::Encode(value_out, made.second, out.value_buffer));
                     }));
  return KStream<K2, V2>(builder_, std::move(name), std::move(key_serde),
                         std::move(value_serde), /*repartition_required=*/true);
}

template <typename K, typename V>
template <typename V2>
KStream<K, V2> KStream<K, V>::MapValues(std::function<V2(const V&)> fn,
                                        Named named,
                                        Serde<V2> value_serde) const {
  std::string name = builder_->NameOr(named, "KSTREAM-MAPVALUES-");
  value_serde = builder_->ResolveSerde(std::move(value_serde), value_serde_,
                                       name, "value");
  AddChild(name, internal::StatelessProcessorFactory(
                     [name, value_in = value_serde_, value_out = value_serde,
                      fn = std::move(fn)](const Record& record,
                                          internal::DslOutput& out) -> absl::Status {
                       absl::StatusOr<V> value =
                           internal::Decode(value_in, record.value, name, "value");
                       if (!value.ok()) return value.status();
                       return out.ForwardWith(
                           record, record.key,
                           internal::Encode(value_out, fn(*value), out.value_buffer));
                     }));
  return KStream<K, V2>(builder_, std::move(name), key_serde_,
                        std::move(value_serde), repartition_required_);
}

template <typename K, typename V>
template <typename K2, typename V2>
KStream<K2, V2> KStream<K, V>::FlatMap(
    std::function<std::vector<std::pair<K2, V2>>(const K&, const V&)> fn,
    Named named, Serde<K2> key_serde, Serde<V2> value_serde) const {
  std::string name = builder_->NameOr(named, "KSTREAM-FLATMAP-");
  key_serde =
      builder_->ResolveSerde(std::move(key_serde), key_serde_, name, "key");
  value_serde = builder_->ResolveSerde(std::move(value_serde), value_serde_,
                                       name, "value");
  AddChild(name, internal::StatelessProcessorFactory(
                     [name, key_in = key_serde_, value_in = value_serde_,
                      key_out = key_serde, value_out = value_serde,
                      fn = std::move(fn)](const Record& record,
                                          internal::DslOutput& out) -> absl::Status {
                       absl::StatusOr<std::pair<K, V>> in =
                           internal::DecodeKeyValue(key_in, value_in, record, name);
                       if (!in.ok()) return in.status();
                       const auto& [key, value] = *in;
                       for (const std::pair<K2, V2>& made : fn(key, value)) {
                         absl::Status status = out.ForwardWith(
                             record, internal::Encode(key_out, made.first, out.key_buffer),
                             internal::Encode(value_out, made.second, out.value_buffer));
                         if (!status.ok()) return status;
                       }
                       return absl::OkStatus();
                     }));
  return KStream<K2, V2>(builder_, std::move(name), std::move(key_serde),
                         std::move(value_serde), /*repartition_required=*/true);
}

template <typename K, typename V>
template <typename V2>
KStream<K, V2> KStream<K, V>::FlatMapValues(
    std::function<std::vector<V2>(const V&)> fn, Named named,
    Serde<V2> value_serde) const {
  std::string name = builder_->NameOr(named, "KSTREAM-FLATMAPVALUES-");
  value_serde = builder_->ResolveSerde(std::move(value_serde), value_serde_,
                                       name, "value");
  AddChild(name, internal::StatelessProcessorFactory(
                     [name, value_in = value_serde_, value_out = value_serde,
                      fn = std::move(fn)](const Record& record,
                                          internal::DslOutput& out) -> absl::Status {
                       absl::StatusOr<V> value =
                           internal::Decode(value_in, record.value, name, "value");
                       if (!value.ok()) return value.status();
                       for (const V2& made : fn(*value)) {
                         absl::Status status = out.ForwardWith(
                             record, record.key,
                             internal::Encode(value_out, made, out.value_buffer));
                         if (!status.ok()) return status;
                       }
                       return absl::OkStatus();
                     }));
  return KStream<K, V2>(builder_, std::move(name), key_serde_,
                        std::move(value_serde), repartition_required_);
}

template <typename K, typename V>
template <typename K2>
KStream<K2, V> KStream<K, V>::SelectKey(
    std::function<K2(const K&, const V&)> fn, Named named,
    Serde<K2> key_serde) const {
  std::string name = builder_->NameOr(named, "KSTREAM-KEY-SELECT-");
  key_serde =
      builder_->ResolveSerde(std::move(key_serde), key_serde_, name, "key");
  AddChild(name, internal::StatelessProcessorFactory(
                     [name, key_in = key_serde_, value_in = value_serde_,
                      key_out = key_serde, fn = std::move(fn)](
                         const Record& record, internal::DslOutput& out) -> absl::Status {
                       absl::StatusOr<std::pair<K, V>> in =
                           internal::DecodeKeyValue(key_in, value_in, record, name);
                       if (!in.ok()) return in.status();
                       const auto& [key, value] = *in;
                       return out.ForwardWith(
                           record, internal::Encode(key_out, fn(key, value), out.key_buffer),
                           record.value);
                     }));
  return KStream<K2, V>(builder_, std::move(name), std::move(key_serde),
                        value_serde_,
                        /*repartition_required=*/true);
}

template <typename K, typename V>
KStream<K, V> KStream<K, V>::Repartition(
    Repartitioned<K, V> repartitioned) const {
  std::string base = repartitioned.name.empty()
                         ? builder_->NewName("KSTREAM-REPARTITION-")
                         : std::move(repartitioned.name);
  builder_->CheckSameSerde(repartitioned.key_serde, key_serde_, base, "key");
  builder_->CheckSameSerde(repartitioned.value_serde, value_serde_, base,
                           "value");
  std::string source =
      builder_->AddRepartition(node_, base, repartitioned.partitions,
                               std::move(repartitioned.partitioner));
  return KStream(builder_, std::move(source), key_serde_, value_serde_,
                 /*repartition_required=*/false);
}

template <typename K, typename V>
KGroupedStream<K, V> KStream<K, V>::GroupByKey(Grouped<K, V> grouped) const {
  builder_->CheckSameSerde(grouped.key_serde, key_serde_, node_, "Grouped key");
  builder_->CheckSameSerde(grouped.value_serde, value_serde_, node_,
                           "Grouped value");
  return KGroupedStream<K, V>(*this, std::move(grouped.name));
}

template <typename K, typename V>
template <typename K2>
KGroupedStream<K2, V> KStream<K, V>::GroupBy(
    std::function<K2(const K&, const V&)> selector,
    Grouped<K2, V> grouped) const {
  // The key serde goes to SelectKey, which makes the keys.
  Serde<K2> key_serde = std::move(grouped.key_serde);
  grouped.key_serde = {};
  return SelectKey<K2>(std::move(selector), Named{}, std::move(key_serde))
      .GroupByKey(std::move(grouped));
}

template <typename K, typename V>
KTable<K, V> KStream<K, V>::ToTable(Materialized<V> materialized,
                                    Named named) const {
  std::string store = materialized.store_name.empty()
                          ? builder_->NewStoreName("KSTREAM-TOTABLE-")
                          : std::move(materialized.store_name);
  std::string name = builder_->NameOr(named, "KSTREAM-TOTABLE-");
  builder_->CheckSameSerde(materialized.value_serde, value_serde_, name,
                           "Materialized value");
  const std::string parent = RepartitionedNode(store);
  builder_->topology_.AddProcessor(
      name,
      internal::ToTableProcessorFactory(name, store),
      {parent});
  builder_->topology_.AddStateStore(
      StoreSpec{store, materialized.store_type, materialized.logging_enabled},
      {name});
  return KTable<K, V>(builder_, std::move(name), std::move(store), key_serde_,
                      value_serde_);
}

template <typename K, typename V>
void KStream<K, V>::To(std::string topic, Produced<K, V> produced) const {
  std::string name = builder_->NewName("KSTREAM-SINK-");
  builder_->CheckSameSerde(produced.key_serde, key_serde_, name,
                           "Produced key");
  builder_->CheckSameSerde(produced.value_serde, value_serde_, name,
                           "Produced value");
  builder_->topology_.AddSink(std::move(name), std::move(topic), {node_},
                              std::move(produced.partitioner));
}

template <typename K, typename V>
template <typename K2, typename V2>
KStream<K2, V2> KStream<K, V>::Process(ProcessorFactory factory,
                                       std::vector<std::string> stores,
                                       Named named, Serde<K2> key_serde,
                                       Serde<V2> value_serde) const {
  std::string name = builder_->NameOr(named, "KSTREAM-PROCESSOR-");
  key_serde =
      builder_->ResolveSerde(std::move(key_serde), key_serde_, name, "key");
  value_serde = builder_->ResolveSerde(std::move(value_serde), value_serde_,
                                       name, "value");
  AddChild(name, std::move(factory));
  for (const std::string& store : stores) {
    builder_->topology_.ConnectProcessorAndStore(name, store);
  }
  return KStream<K2, V2>(builder_, std::move(name), std::move(key_serde),
                         std::move(value_serde), /*repartition_required=*/true);
}

template <typename K, typename V>
template <typename VA>
KTable<K, VA> KGroupedStream<K, V>::DoAggregate(
    std::string_view prefix,
    AggregateFn<VA> step,
    Materialized<VA> materialized, Serde<VA> default_serde,
    const Named& named) const {
  StreamsBuilder& builder = *stream_.builder_;
  // Store name first, then node name: the order of Kafka Streams' indices.
  std::string store = materialized.store_name.empty()
                          ? builder.NewStoreName(prefix)
                          : std::move(materialized.store_name);
  std::string name = builder.NameOr(named, prefix);
  Serde<VA> aggregate_serde = materialized.value_serde.valid()
                                  ? std::move(materialized.value_serde)
                                  : std::move(default_serde);
  aggregate_serde =
      builder.ResolveSerde(std::move(aggregate_serde), name, "aggregate");
  const std::string parent = stream_.RepartitionedNode(
      repartition_name_.empty() ? store : repartition_name_);

  builder.topology_.AddProcessor(
      name,
      internal::AggregateProcessorFactory(
          name, store,
          [name, store, key_in = stream_.key_serde_, value_in = stream_.value_serde_,
           aggregate = aggregate_serde, step = std::move(step)](
              const Record& record, internal::LoadAggregate load_current,
              std::string& buffer) -> absl::StatusOr<std::optional<std::string_view>> {
            absl::StatusOr<K> key = internal::Decode(key_in, record.key, name, "key");
            if (!key.ok()) return key.status();
            absl::StatusOr<V> value = internal::Decode(value_in, record.value, name, "value");
            if (!value.ok()) return value.status();
            absl::StatusOr<std::optional<std::string>> stored = load_current();
            if (!stored.ok()) return stored.status();
            std::optional<VA> current;
            if (stored->has_value()) {
              absl::StatusOr<VA> decoded = aggregate.deserialize(**stored);
              if (!decoded.ok()) {
                return absl::Status(
                    decoded.status().code(),
                    absl::StrCat(name, ": cannot deserialize the aggregate in store \"", store,
                                 "\": ", decoded.status().message()));
              }
              current = *std::move(decoded);
            }
            const VA next = step(*key, *value, std::move(current));
            return internal::Encode(aggregate, next, buffer);
          }),
      {parent});
  builder.topology_.AddStateStore(
      StoreSpec{store, materialized.store_type, materialized.logging_enabled},
      {name});
  return KTable<K, VA>(&builder, std::move(name), std::move(store),
                       stream_.key_serde_, std::move(aggregate_serde));
}

template <typename K, typename V>
KTable<K, int64_t> KGroupedStream<K, V>::Count(
    Materialized<int64_t> materialized, Named named) const {
  return DoAggregate<int64_t>(
      "KSTREAM-AGGREGATE-",
      [](const K&, const V&, std::optional<int64_t> current) -> int64_t {
        return current.value_or(0) + 1;
      },
      std::move(materialized), Serdes::Int64(), named);
}

template <typename K, typename V>
KTable<K, V> KGroupedStream<K, V>::Reduce(
    std::function<V(const V& aggregate, const V& value)> reducer,
    Materialized<V> materialized, Named named) const {
  return DoAggregate<V>(
      "KSTREAM-REDUCE-",
      [reducer = std::move(reducer)](const K&, const V& value,
                                     std::optional<V> current) -> V {
        return current.has_value() ? reducer(*current, value) : value;
      },
      std::move(materialized), stream_.value_serde_, named);
}

template <typename K, typename V>
template <typename VA>
KTable<K, VA> KGroupedStream<K, V>::Aggregate(
    std::function<VA()> initializer,
    std::function<VA(const K& key, const V& value, const VA& aggregate)>
        aggregator,
    Materialized<VA> materialized, Named named) const {
  return DoAggregate<VA>(
      "KSTREAM-AGGREGATE-",
      [initializer = std::move(initializer),
       aggregator = std::move(aggregator)](const K& key, const V& value,
                                           std::optional<VA> current) -> VA {
        return aggregator(key, value,
                          current.has_value() ? *current : initializer());
      },
      std::move(materialized), Serdes::Default<VA>(), named);
}

template <typename K, typename V>
KStream<K, V> KTable<K, V>::ToStream(Named named) const {
  std::string name = builder_->NameOr(named, "KTABLE-TOSTREAM-");
  builder_->topology_.AddProcessor(
      name,
      internal::PassThroughProcessorFactory(),
      {node_});
  return KStream<K, V>(builder_, std::move(name), key_serde_, value_serde_,
                       /*repartition_required=*/false);
}

}  // namespace tributary
