// TypedStore: a typed view of a byte-oriented KeyValueStore, converting keys
// and values with two serde structs (see serdes.h for the shape). Serdes sit
// only in this outermost wrapper; the stores below work on bytes.
//   TypedStore<Int64Serde, StringSerde> positions(store);
//   TRIBUTARY_RETURN_IF_ERROR(positions.Put(42, "x"));
// Thread-safety: as the underlying store (one thread at a time).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "state/key_value_store.h"
#include "state/serdes.h"

namespace tributary {

// The T of a serde whose Deserialize returns absl::StatusOr<T>.
template <typename Serde>
using SerdeValueType = typename std::remove_cvref_t<
    decltype(std::declval<const Serde&>().Deserialize(
        std::string_view()))>::value_type;

// KeySerde / ValueSerde: std::string Serialize(const T&) const and
// absl::StatusOr<T> Deserialize(std::string_view) const.
// Lifetime: observes `store`, which must outlive the TypedStore.
template <typename KeySerde, typename ValueSerde>
class TypedStore {
 public:
  using Key = SerdeValueType<KeySerde>;
  using Value = SerdeValueType<ValueSerde>;

  explicit TypedStore(KeyValueStore& store, KeySerde key_serde = {},
                      ValueSerde value_serde = {})
      : store_(store),
        key_serde_(std::move(key_serde)),
        value_serde_(std::move(value_serde)) {}

  // nullopt when absent; a value that fails to deserialize is an error.
  absl::StatusOr<std::optional<Value>> Get(const Key& key) {
    absl::StatusOr<std::optional<std::string>> bytes =
        store_.Get(key_serde_.Serialize(key));
    if (!bytes.ok()) return bytes.status();
    if (!bytes->has_value()) return std::nullopt;
    absl::StatusOr<Value> value = value_serde_.Deserialize(**bytes);
    if (!value.ok()) return value.status();
    return std::optional<Value>(std::move(*value));
  }

  absl::Status Put(const Key& key, const Value& value) {
    return store_.Put(key_serde_.Serialize(key), value_serde_.Serialize(value));
  }

  absl::Status Delete(const Key& key) {
    return store_.Delete(key_serde_.Serialize(key));
  }

  // Add a typed put or delete to `batch`, for KeyValueStore::Write.
  void Put(WriteBatch& batch, const Key& key, const Value& value) const {
    batch.Put(key_serde_.Serialize(key), value_serde_.Serialize(value));
  }
  void Delete(WriteBatch& batch, const Key& key) const {
    batch.Delete(key_serde_.Serialize(key));
  }

  // For scans: iterate store() and decode with the serdes.
  KeyValueStore& store() { return store_; }
  const KeySerde& key_serde() const { return key_serde_; }
  const ValueSerde& value_serde() const { return value_serde_; }

 private:
  KeyValueStore& store_;
  KeySerde key_serde_;
  ValueSerde value_serde_;
};

}  // namespace tributary
