// Helpers shared by the state-store tests: draining iterators, and a fake
// changelog writer that records what a store logs. Test thread only.
#pragma once

#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "state/changelog.h"
#include "state/key_value_store.h"

namespace tributary::store_test {

using Entries = std::vector<std::pair<std::string, std::string>>;

// Drains `it`, failing the test if it ends with an error.
inline Entries Drain(std::unique_ptr<KeyValueIterator> it) {
  Entries entries;
  for (; it->Valid(); it->Next()) {
    entries.emplace_back(std::string(it->key()), std::string(it->value()));
  }
  EXPECT_TRUE(it->status().ok()) << it->status();
  return entries;
}

inline std::vector<std::string> Keys(std::unique_ptr<KeyValueIterator> it) {
  std::vector<std::string> keys;
  for (const auto& [key, value] : Drain(std::move(it))) keys.push_back(key);
  return keys;
}

// One appended changelog entry; no value is a delete.
struct Change {
  std::string key;
  std::optional<std::string> value;
  bool operator==(const Change&) const = default;
};

inline Change PutChange(std::string key, std::string value) {
  return {std::move(key), std::move(value)};
}
inline Change DeleteChange(std::string key) {
  return {std::move(key), std::nullopt};
}

inline void PrintTo(const Change& change, std::ostream* os) {
  *os << change.key << "=" << change.value.value_or("<deleted>");
}

// Records every append; can be told to fail.
class FakeChangelogWriter final : public ChangelogWriter {
 public:
  absl::Status Append(std::string_view key,
                      std::optional<std::string_view> value) override {
    if (!fail_with_.ok()) return fail_with_;
    changes_.push_back({std::string(key),
                        value.has_value() ? std::optional<std::string>(*value)
                                          : std::nullopt});
    return absl::OkStatus();
  }

  const std::vector<Change>& changes() const { return changes_; }
  // The changes so far, forgetting them.
  std::vector<Change> Take() { return std::exchange(changes_, {}); }
  void FailWith(absl::Status status) { fail_with_ = std::move(status); }

 private:
  std::vector<Change> changes_;
  absl::Status fail_with_;
};

}  // namespace tributary::store_test
