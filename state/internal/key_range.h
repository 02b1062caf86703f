// Byte-range helpers shared by the store implementations. Internal to state/.
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace tributary::internal {

// Returns the smallest key greater than every key that starts with `prefix`
// (in bytewise order), or nullopt when there is none, i.e. when `prefix` is
// empty or consists only of 0xFF bytes: then every key >= prefix starts with
// it, and a scan needs no upper bound.
inline std::optional<std::string> PrefixUpperBound(std::string_view prefix) {
  std::string bound(prefix);
  while (!bound.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(bound.back());
    if (last != 0xFF) {
      ++last;
      return bound;
    }
    bound.pop_back();
  }
  return std::nullopt;
}

}  // namespace tributary::internal
