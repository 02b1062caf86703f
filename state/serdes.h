// Serdes for TypedStore: small structs with
//   std::string Serialize(const T&) const;
//   absl::StatusOr<T> Deserialize(std::string_view) const;
// These two cover the stores' own needs; the engine's Serde is richer.
// Thread-safety: stateless, safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace tributary {

// The bytes themselves.
struct StringSerde {
  std::string Serialize(const std::string& value) const { return value; }
  absl::StatusOr<std::string> Deserialize(std::string_view bytes) const {
    return std::string(bytes);
  }
};

// Fixed 8 bytes, big-endian two's complement. Byte order equals numeric order
// for non-negative values only: negative values sort after every non-negative
// one. Use non-negative keys (offsets, positions, counters) when a Range or
// PrefixScan must follow numeric order.
struct Int64Serde {
  std::string Serialize(int64_t value) const {
    const auto bits = static_cast<uint64_t>(value);
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; ++i) {
      bytes[i] = static_cast<char>(bits >> (56 - 8 * i));
    }
    return bytes;
  }
  absl::StatusOr<int64_t> Deserialize(std::string_view bytes) const {
    if (bytes.size() != 8) {
      return absl::InvalidArgumentError(
          absl::StrCat("Int64Serde: expected 8 bytes, got ", bytes.size()));
    }
    uint64_t bits = 0;
    for (char byte : bytes)
      bits = (bits << 8) | static_cast<unsigned char>(byte);
    return static_cast<int64_t>(bits);
  }
};

}  // namespace tributary
