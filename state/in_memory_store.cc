#include "state/in_memory_store.h"

#include <utility>

#include "state/internal/key_range.h"

namespace tributary {
namespace {

using Map = std::map<std::string, std::string, std::less<>>;

// Walks [from, end) where `end` is nullopt for "no upper bound". It keeps a
// copy of the current entry and re-seeks past it on Next(), so writes to the
// map between calls (even erasing the current key) are harmless.
// REQUIRES: `map` outlives the iterator.
class InMemoryIterator final : public KeyValueIterator {
 public:
  InMemoryIterator(const Map& map, std::string_view from,
                   std::optional<std::string> end)
      : map_(map), end_(std::move(end)) {
    Load(map_.lower_bound(from));
  }

  bool Valid() const override { return valid_; }
  void Next() override { Load(map_.upper_bound(key_)); }
  std::string_view key() const override { return key_; }
  std::string_view value() const override { return value_; }
  absl::Status status() const override { return absl::OkStatus(); }

 private:
  void Load(Map::const_iterator it) {
    valid_ = it != map_.end() && (!end_.has_value() || it->first < *end_);
    if (valid_) {
      key_ = it->first;
      value_ = it->second;
    }
  }

  const Map& map_;
  const std::optional<std::string> end_;
  bool valid_ = false;
  std::string key_;
  std::string value_;
};

}  // namespace

std::unique_ptr<KeyValueStore> InMemoryStore::Create(std::string name) {
  return std::unique_ptr<KeyValueStore>(new InMemoryStore(std::move(name)));
}

InMemoryStore::InMemoryStore(std::string name) : name_(std::move(name)) {}

absl::StatusOr<std::optional<std::string>> InMemoryStore::Get(
    std::string_view key) {
  auto it = map_.find(key);
  if (it == map_.end()) return std::nullopt;
  return it->second;
}

absl::Status InMemoryStore::Put(std::string_view key, std::string_view value) {
  PutEntry(key, value);
  return absl::OkStatus();
}

absl::Status InMemoryStore::Delete(std::string_view key) {
  if (auto it = map_.find(key); it != map_.end()) map_.erase(it);
  return absl::OkStatus();
}

absl::Status InMemoryStore::Write(const WriteBatch& batch) {
  // Nothing below fails short of std::bad_alloc, which ends the program, so
  // applying entry by entry is atomic for every observer.
  for (const WriteBatch::Entry& entry : batch.entries()) {
    if (entry.value.has_value()) {
      PutEntry(entry.key, *entry.value);
    } else {
      map_.erase(entry.key);
    }
  }
  return absl::OkStatus();
}

std::unique_ptr<KeyValueIterator> InMemoryStore::Range(std::string_view from,
                                                       std::string_view to) {
  std::optional<std::string> end;
  if (!to.empty()) end.emplace(to);
  return std::make_unique<InMemoryIterator>(map_, from, std::move(end));
}

std::unique_ptr<KeyValueIterator> InMemoryStore::PrefixScan(
    std::string_view prefix) {
  return std::make_unique<InMemoryIterator>(map_, prefix,
                                            internal::PrefixUpperBound(prefix));
}

absl::StatusOr<uint64_t> InMemoryStore::ApproximateCount() {
  return map_.size();
}

absl::Status InMemoryStore::Flush() { return absl::OkStatus(); }

void InMemoryStore::PutEntry(std::string_view key, std::string_view value) {
  auto it = map_.lower_bound(key);
  if (it != map_.end() && it->first == key) {
    it->second.assign(value);
  } else {
    map_.emplace_hint(it, std::string(key), std::string(value));
  }
}

}  // namespace tributary
