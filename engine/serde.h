// Serde<T>: how the DSL turns a typed key or value into bytes and back,
// like Kafka's Serde. Serdes::String(), Int64(), ... are the built-in ones;
// a user type needs a Serde written as two lambdas.
//   Serde<int64_t> longs = Serdes::Int64();
//   std::string bytes;
//   longs.serialize(42, bytes);                          // 8 bytes, big-endian
//   absl::StatusOr<int64_t> back = longs.deserialize(bytes);
// Serdes deal with bytes that exist: a null key or value (a tombstone) never
// reaches one; the DSL decides what a null becomes (see streams_builder.h).
// Thread-safety: the built-in serdes are stateless and may be called from any
// thread at once; a user serde must be too, since every stream thread calls
// it.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "absl/status/statusor.h"

namespace tributary {

class JsonDocument;  // engine/json_document.h

template <typename T>
struct Serde {
  // Names the byte format ("Int64", "String", ...). Two serdes with the same
  // non-empty name must produce the same bytes; the DSL uses this to skip
  // re-encoding when an operator is given the serde the stream already has.
  // Leave it empty for a one-off serde.
  std::string name{};
  // Replaces the contents of `out` with the bytes of `value`.
  std::function<void(const T& value, std::string& out)> serialize{};
  // Parses bytes made by `serialize`. An error says what was wrong with them,
  // e.g. "Int64 serde: expected 8 bytes, got 3".
  std::function<absl::StatusOr<T>(std::string_view bytes)> deserialize{};

  bool valid() const { return serialize != nullptr && deserialize != nullptr; }
};

// Tells std::optional<U> (a type that can hold a null) from other types.
template <typename T>
struct IsOptional : std::false_type {};
template <typename U>
struct IsOptional<std::optional<U>> : std::true_type {};

class Serdes {
 public:
  // UTF-8 text, stored as is (no validation, no transformation).
  static Serde<std::string> String();
  // Arbitrary bytes, stored as is. The same bytes as String(); a separate
  // name only to say what the data is.
  static Serde<std::string> Bytes();
  // 8 bytes, big-endian two's complement, as Kafka's LongSerializer.
  static Serde<int64_t> Int64();
  // 4 bytes, big-endian two's complement, as Kafka's IntegerSerializer.
  static Serde<int32_t> Int32();
  // 8 bytes, the IEEE 754 bits big-endian, as Kafka's DoubleSerializer.
  static Serde<double> Double();
  // JSON text; deserialize validates the whole text with simdjson.
  static Serde<JsonDocument> Json();

  // For a stream whose keys or values may be null: the DSL maps a null to
  // nullopt and nullopt to a null, and uses `inner` for present values.
  template <typename T>
  static Serde<std::optional<T>> Optional(Serde<T> inner) {
    Serde<std::optional<T>> serde;
    serde.name = inner.name.empty() ? "" : "Optional<" + inner.name + ">";
    serde.serialize = [serialize = inner.serialize](
                          const std::optional<T>& value, std::string& out) {
      // The DSL writes a null for nullopt and never calls this with it.
      if (value.has_value()) {
        serialize(*value, out);
      } else {
        out.clear();
      }
    };
    serde.deserialize =
        [deserialize = std::move(inner.deserialize)](
            std::string_view bytes) -> absl::StatusOr<std::optional<T>> {
      absl::StatusOr<T> value = deserialize(bytes);
      if (!value.ok()) return value.status();
      return std::optional<T>(*std::move(value));
    };
    return serde;
  }

  // The serde the DSL uses for T when none is given: String() for
  // std::string, Int64() for int64_t, Int32() for int32_t, Double() for
  // double, Json() for JsonDocument, Optional(Default<U>()) for
  // std::optional<U>. For any other type an invalid (empty) Serde: the
  // operator then needs an explicit one, or Build() fails naming the node.
  template <typename T>
  static Serde<T> Default() {
    if constexpr (std::is_same_v<T, std::string>) {
      return String();
    } else if constexpr (std::is_same_v<T, int64_t>) {
      return Int64();
    } else if constexpr (std::is_same_v<T, int32_t>) {
      return Int32();
    } else if constexpr (std::is_same_v<T, double>) {
      return Double();
    } else if constexpr (std::is_same_v<T, JsonDocument>) {
      return Json();
    } else if constexpr (IsOptional<T>::value) {
      using U = typename T::value_type;
      Serde<U> inner = Default<U>();
      if (!inner.valid()) return Serde<T>{};
      return Optional(std::move(inner));
    } else {
      return Serde<T>{};
    }
  }
};

}  // namespace tributary
