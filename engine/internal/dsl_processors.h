// The processors behind the StreamsBuilder DSL: each wraps one user lambda
// (or a store update) in a Processor that reads a record's bytes with the
// stream's serdes, calls the lambda, and forwards bytes made with the output
// serdes. Made by the DSL through MakeFactory; not for direct use.
// Thread-safety: as Processor (one task thread at a time); a Config is copied
// into every processor, so the lambdas in it must not share mutable state.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"
#include "engine/processor.h"
#include "engine/record.h"
#include "engine/serde.h"
#include "state/key_value_store.h"

namespace tributary::internal {

// A ProcessorFactory making P from a copy of `config`.
template <typename P>
ProcessorFactory MakeFactory(typename P::Config config) {
  return [config = std::move(config)]() -> std::unique_ptr<Processor> {
    return std::make_unique<P>(config);
  };
}

// The typed key or value of a record part (`what` is "key" or "value").
// A null becomes nullopt for std::optional<U>, otherwise T{}: the DSL's rule
// for nulls (see streams_builder.h).
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
      return absl::InvalidArgumentError(
          absl::StrCat(Sv(node), ": the record's ", Sv(what),
                       " is null and its type has no default value; declare it "
                       "std::optional"));
    }
  }
  absl::StatusOr<T> value = serde.deserialize(*bytes);
  if (!value.ok()) {
    return absl::Status(
        value.status().code(),
        absl::StrCat(Sv(node), ": cannot deserialize the record's ", Sv(what),
                     ": ", value.status().message()));
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

// Keeps the context and forwards copies of the input with new key and value
// bytes; the timestamp, headers and origin stay those of the input.
class DslProcessor : public Processor {
 public:
  explicit DslProcessor(std::string name) : name_(std::move(name)) {}

  absl::Status Init(ProcessorContext& context) override {
    context_ = &context;
    return absl::OkStatus();
  }

 protected:
  absl::Status ForwardWith(const Record& input,
                           std::optional<std::string_view> key,
                           std::optional<std::string_view> value) {
    Record output = input;
    output.key = key;
    output.value = value;
    return context_->Forward(output);
  }

  const std::string name_;
  ProcessorContext* context_ = nullptr;
  std::string key_buffer_;
  std::string value_buffer_;
};

// Map: (K, V) -> (K2, V2).
template <typename K, typename V, typename K2, typename V2>
class MapProcessor final : public DslProcessor {
 public:
  struct Config {
    std::string name;
    Serde<K> key_in;
    Serde<V> value_in;
    Serde<K2> key_out;
    Serde<V2> value_out;
    std::function<std::pair<K2, V2>(const K&, const V&)> fn;
  };
  explicit MapProcessor(Config config)
      : DslProcessor(config.name), config_(std::move(config)) {}

  absl::Status Process(const Record& record) override {
    absl::StatusOr<std::pair<K, V>> in =
        DecodeKeyValue(config_.key_in, config_.value_in, record, name_);
    if (!in.ok()) return in.status();
    const auto& [key, value] = *in;
    const std::pair<K2, V2> out = config_.fn(key, value);
    return ForwardWith(record, Encode(config_.key_out, out.first, key_buffer_),
                       Encode(config_.value_out, out.second, value_buffer_));
  }

 private:
  const Config config_;
};

// FlatMap: (K, V) -> any number of (K2, V2), forwarded in order.
template <typename K, typename V, typename K2, typename V2>
class FlatMapProcessor final : public DslProcessor {
 public:
  struct Config {
    std::string name;
    Serde<K> key_in;
    Serde<V> value_in;
    Serde<K2> key_out;
    Serde<V2> value_out;
    std::function<std::vector<std::pair<K2, V2>>(const K&, const V&)> fn;
  };
  explicit FlatMapProcessor(Config config)
      : DslProcessor(config.name), config_(std::move(config)) {}

  absl::Status Process(const Record& record) override {
    absl::StatusOr<std::pair<K, V>> in =
        DecodeKeyValue(config_.key_in, config_.value_in, record, name_);
    if (!in.ok()) return in.status();
    const auto& [key, value] = *in;
    for (const std::pair<K2, V2>& out : config_.fn(key, value)) {
      absl::Status status =
          ForwardWith(record, Encode(config_.key_out, out.first, key_buffer_),
                      Encode(config_.value_out, out.second, value_buffer_));
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }

 private:
  const Config config_;
};

// MapValues: V -> V2; the key bytes pass through untouched.
template <typename V, typename V2>
class MapValuesProcessor final : public DslProcessor {
 public:
  struct Config {
    std::string name;
    Serde<V> value_in;
    Serde<V2> value_out;
    std::function<V2(const V&)> fn;
  };
  explicit MapValuesProcessor(Config config)
      : DslProcessor(config.name), config_(std::move(config)) {}

  absl::Status Process(const Record& record) override {
    absl::StatusOr<V> value =
        Decode(config_.value_in, record.value, name_, "value");
    if (!value.ok()) return value.status();
    return ForwardWith(
        record, record.key,
        Encode(config_.value_out, config_.fn(*value), value_buffer_));
  }

 private:
  const Config config_;
};

// FlatMapValues: V -> any number of V2, each forwarded with the input key.
template <typename V, typename V2>
class FlatMapValuesProcessor final : public DslProcessor {
 public:
  struct Config {
    std::string name;
    Serde<V> value_in;
    Serde<V2> value_out;
    std::function<std::vector<V2>(const V&)> fn;
  };
  explicit FlatMapValuesProcessor(Config config)
      : DslProcessor(config.name), config_(std::move(config)) {}

  absl::Status Process(const Record& record) override {
    absl::StatusOr<V> value =
        Decode(config_.value_in, record.value, name_, "value");
    if (!value.ok()) return value.status();
    for (const V2& out : config_.fn(*value)) {
      absl::Status status = ForwardWith(
          record, record.key, Encode(config_.value_out, out, value_buffer_));
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }

 private:
  const Config config_;
};

// SelectKey: (K, V) -> K2; the value bytes pass through untouched.
template <typename K, typename V, typename K2>
class SelectKeyProcessor final : public DslProcessor {
 public:
  struct Config {
    std::string name;
    Serde<K> key_in;
    Serde<V> value_in;
    Serde<K2> key_out;
    std::function<K2(const K&, const V&)> fn;
  };
  explicit SelectKeyProcessor(Config config)
      : DslProcessor(config.name), config_(std::move(config)) {}

  absl::Status Process(const Record& record) override {
    absl::StatusOr<std::pair<K, V>> in =
        DecodeKeyValue(config_.key_in, config_.value_in, record, name_);
    if (!in.ok()) return in.status();
    const auto& [key, value] = *in;
    return ForwardWith(
        record, Encode(config_.key_out, config_.fn(key, value), key_buffer_),
        record.value);
  }

 private:
  const Config config_;
};

// Filter and FilterNot: forwards the record unchanged when the predicate
// returns `keep_when`.
template <typename K, typename V>
class FilterProcessor final : public DslProcessor {
 public:
  struct Config {
    std::string name;
    Serde<K> key_in;
    Serde<V> value_in;
    std::function<bool(const K&, const V&)> predicate;
    bool keep_when = true;
  };
  explicit FilterProcessor(Config config)
      : DslProcessor(config.name), config_(std::move(config)) {}

  absl::Status Process(const Record& record) override {
    absl::StatusOr<std::pair<K, V>> in =
        DecodeKeyValue(config_.key_in, config_.value_in, record, name_);
    if (!in.ok()) return in.status();
    const auto& [key, value] = *in;
    if (config_.predicate(key, value) != config_.keep_when)
      return absl::OkStatus();
    return context_->Forward(record);
  }

 private:
  const Config config_;
};

// Peek: calls the action, forwards the record unchanged.
template <typename K, typename V>
class PeekProcessor final : public DslProcessor {
 public:
  struct Config {
    std::string name;
    Serde<K> key_in;
    Serde<V> value_in;
    std::function<void(const K&, const V&)> action;
  };
  explicit PeekProcessor(Config config)
      : DslProcessor(config.name), config_(std::move(config)) {}

  absl::Status Process(const Record& record) override {
    absl::StatusOr<std::pair<K, V>> in =
        DecodeKeyValue(config_.key_in, config_.value_in, record, name_);
    if (!in.ok()) return in.status();
    const auto& [key, value] = *in;
    config_.action(key, value);
    return context_->Forward(record);
  }

 private:
  const Config config_;
};

// KTable::ToStream: forwards every record unchanged.
class PassThroughProcessor final : public DslProcessor {
 public:
  struct Config {
    std::string name;
  };
  explicit PassThroughProcessor(Config config)
      : DslProcessor(std::move(config.name)) {}

  absl::Status Process(const Record& record) override {
    return context_->Forward(record);
  }
};

// Looks up the store named `store` for processor `node` in Init.
inline absl::StatusOr<KeyValueStore*> ConnectedStore(ProcessorContext& context,
                                                     std::string_view node,
                                                     std::string_view store) {
  KeyValueStore* result = context.GetStateStore(store);
  if (result == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat(Sv(node), ": state store \"", Sv(store),
                     "\" is not connected to this processor"));
  }
  return result;
}

// KStream::ToTable: the latest value per key. A record with a value is put
// in the store, a tombstone deletes the key; both are forwarded. Records with
// a null key are skipped (a table has no row for them). The store holds the
// key and value bytes as they come.
class ToTableProcessor final : public DslProcessor {
 public:
  struct Config {
    std::string name;
    std::string store;
  };
  explicit ToTableProcessor(Config config)
      : DslProcessor(config.name), store_name_(std::move(config.store)) {}

  absl::Status Init(ProcessorContext& context) override {
    absl::Status status = DslProcessor::Init(context);
    if (!status.ok()) return status;
    absl::StatusOr<KeyValueStore*> store =
        ConnectedStore(context, name_, store_name_);
    if (!store.ok()) return store.status();
    store_ = *store;
    return absl::OkStatus();
  }

  absl::Status Process(const Record& record) override {
    if (!record.key.has_value()) return absl::OkStatus();
    absl::Status status = record.value.has_value()
                              ? store_->Put(*record.key, *record.value)
                              : store_->Delete(*record.key);
    if (!status.ok()) return status;
    return context_->Forward(record);
  }

 private:
  const std::string store_name_;
  KeyValueStore* store_ = nullptr;
};

// Count, Reduce and Aggregate: folds each record into the aggregate kept
// per key in the store (under the record's key bytes, the value as made by
// the aggregate serde), then forwards the key with the new aggregate. As in
// Kafka Streams, records with a null key or a null value are skipped. An
// aggregate that is an empty std::optional deletes the key and forwards a
// tombstone.
template <typename K, typename V, typename VA>
class AggregateProcessor final : public DslProcessor {
 public:
  // `current` is nullopt when the key has no aggregate yet.
  using Step = std::function<VA(const K& key, const V& value,
                                std::optional<VA> current)>;
  struct Config {
    std::string name;
    std::string store;
    Serde<K> key_in;
    Serde<V> value_in;
    Serde<VA> aggregate;
    Step step;
  };
  explicit AggregateProcessor(Config config)
      : DslProcessor(config.name), config_(std::move(config)) {}

  absl::Status Init(ProcessorContext& context) override {
    absl::Status status = DslProcessor::Init(context);
    if (!status.ok()) return status;
    absl::StatusOr<KeyValueStore*> store =
        ConnectedStore(context, name_, config_.store);
    if (!store.ok()) return store.status();
    store_ = *store;
    return absl::OkStatus();
  }

  absl::Status Process(const Record& record) override {
    if (!record.key.has_value() || !record.value.has_value())
      return absl::OkStatus();
    absl::StatusOr<K> key = Decode(config_.key_in, record.key, name_, "key");
    if (!key.ok()) return key.status();
    absl::StatusOr<V> value =
        Decode(config_.value_in, record.value, name_, "value");
    if (!value.ok()) return value.status();

    absl::StatusOr<std::optional<std::string>> stored =
        store_->Get(*record.key);
    if (!stored.ok()) return stored.status();
    std::optional<VA> current;
    if (stored->has_value()) {
      absl::StatusOr<VA> decoded = config_.aggregate.deserialize(**stored);
      if (!decoded.ok()) {
        return absl::Status(
            decoded.status().code(),
            absl::StrCat(name_,
                         ": cannot deserialize the aggregate in store \"",
                         config_.store, "\": ", decoded.status().message()));
      }
      current = *std::move(decoded);
    }

    const VA next = config_.step(*key, *value, std::move(current));
    const std::optional<std::string_view> bytes =
        Encode(config_.aggregate, next, value_buffer_);
    absl::Status status = bytes.has_value() ? store_->Put(*record.key, *bytes)
                                            : store_->Delete(*record.key);
    if (!status.ok()) return status;
    return ForwardWith(record, record.key, bytes);
  }

 private:
  const Config config_;
  KeyValueStore* store_ = nullptr;
};

}  // namespace tributary::internal
