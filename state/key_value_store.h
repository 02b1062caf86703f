// KeyValueStore: the byte-oriented state store interface every task-local store
// implements (RocksDB, in-memory, and the change-logging wrapper around either).
// Thread-safety: a store belongs to one task and is used by one thread at a
// time; implementations need no internal locking for the task's own calls.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tributary {

// A group of puts and deletes applied atomically by KeyValueStore::Write.
// Owns copies of its keys and values.
class WriteBatch {
 public:
  struct Entry {
    std::string key;
    std::optional<std::string> value;  // nullopt: delete
  };

  void Put(std::string_view key, std::string_view value) {
    entries_.push_back({std::string(key), std::string(value)});
  }
  void Delete(std::string_view key) {
    entries_.push_back({std::string(key), std::nullopt});
  }
  void Clear() { entries_.clear(); }
  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  std::vector<Entry> entries_;
};

// Forward iterator over a key range in ascending byte order.
// Lifetime: key() and value() are valid until the next call to Next() or until
// the iterator is destroyed. The iterator must not outlive its store. Writes to
// the store while an iterator is open may or may not be visible to it.
class KeyValueIterator {
 public:
  virtual ~KeyValueIterator() = default;
  virtual bool Valid() const = 0;
  // REQUIRES: Valid().
  virtual void Next() = 0;
  // REQUIRES: Valid().
  virtual std::string_view key() const = 0;
  // REQUIRES: Valid().
  virtual std::string_view value() const = 0;
  // Not OK if iteration stopped because of an error rather than the range end.
  virtual absl::Status status() const = 0;
};

class KeyValueStore {
 public:
  virtual ~KeyValueStore() = default;

  virtual const std::string& name() const = 0;

  // Returns nullopt when the key is absent.
  virtual absl::StatusOr<std::optional<std::string>> Get(std::string_view key) = 0;
  virtual absl::Status Put(std::string_view key, std::string_view value) = 0;
  // Deleting an absent key is OK.
  virtual absl::Status Delete(std::string_view key) = 0;
  // Applies every entry of `batch` atomically, in order.
  virtual absl::Status Write(const WriteBatch& batch) = 0;

  // Keys in [from, to); an empty `to` means "to the end".
  virtual std::unique_ptr<KeyValueIterator> Range(std::string_view from,
                                                  std::string_view to) = 0;
  // Keys starting with `prefix`.
  virtual std::unique_ptr<KeyValueIterator> PrefixScan(std::string_view prefix) = 0;
  std::unique_ptr<KeyValueIterator> All() { return Range({}, {}); }

  // Approximate number of live keys (exact for the in-memory store).
  virtual absl::StatusOr<uint64_t> ApproximateCount() = 0;

  // Makes every acknowledged write durable in local storage (no-op in memory).
  virtual absl::Status Flush() = 0;
};

}  // namespace tributary
