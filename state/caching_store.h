// CachingStore: a record cache in front of a KeyValueStore (Kafka Streams'
// CachingKeyValueStore). Writes stay in an ordered in-memory cache until
// FlushCache() writes the dirty ones to the inner store in one WriteBatch, so
// a key written several times between two flushes reaches the inner store
// (and a change-logging store's changelog) once, and a key put and deleted
// again between two flushes not at all. Reads see the cache first.
// Thread-safety: as KeyValueStore (one thread at a time, no internal locking).
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "state/key_value_store.h"

namespace tributary {

// Made by CachingStore::Create.
//
// Budget: the cache holds dirty entries (a value or a deletion not yet in the
// inner store) and clean ones (what the inner store holds, kept for reads,
// evicted least recently used first). An entry costs its key and value bytes
// plus a fixed overhead estimate. When a write takes the cache over
// `max_bytes`, clean entries are evicted; when dirty entries alone exceed it,
// the cache is flushed early (under exactly-once the changelog records of an
// early flush belong to the open transaction like any other write).
//
// Lifetime: dirty entries are dropped, not written, when the store is
// destroyed; call FlushCache() (or Flush()) first to keep them. The inner
// store must not be written except through this store while it caches
// (restoring into it before any write is fine).
class CachingStore final : public KeyValueStore {
 public:
  struct Stats {
    uint64_t hits = 0;       // Get answered by the cache
    uint64_t misses = 0;     // Get that read the inner store
    uint64_t flushes = 0;    // FlushCache calls that wrote something
    uint64_t early_flushes = 0;  // of which forced by the budget
    uint64_t evictions = 0;  // clean entries dropped for room
  };

  // REQUIRES: inner != nullptr. A `max_bytes` of 0 is allowed and flushes on
  // every write (the engine does not wrap stores at all then).
  static std::unique_ptr<CachingStore> Create(std::unique_ptr<KeyValueStore> inner,
                                              size_t max_bytes);

  ~CachingStore() override;
  CachingStore(const CachingStore&) = delete;
  CachingStore& operator=(const CachingStore&) = delete;

  // The inner store's name.
  const std::string& name() const override { return inner_->name(); }

  // A miss reads the inner store and caches the answer (a value or its
  // absence) as a clean entry.
  absl::StatusOr<std::optional<std::string>> Get(std::string_view key) override;
  // Writes go to the cache. An error means an early flush failed: the write
  // itself is in the cache, but the inner store may be ahead of or behind it,
  // so the task must fail (as for ChangeLoggingStore).
  absl::Status Put(std::string_view key, std::string_view value) override;
  absl::Status Delete(std::string_view key) override;
  // Applied to the cache entry by entry, in order; budget checked once after.
  absl::Status Write(const WriteBatch& batch) override;
  // Merges the cached entries of the range with the inner store's iterator,
  // in byte order: a cached value wins over the inner store's for the same
  // key, a cached deletion hides the inner key.
  // Iterator semantics: the cache side is read live (an entry is copied when
  // the iterator steps onto it, and the position survives evictions by
  // re-seeking past the last key returned), so writes during a scan are safe
  // and may or may not be visible, as KeyValueIterator allows; keys are always
  // returned in strictly ascending order. Before a flush (early or explicit)
  // the open iterators copy the rest of their cached range, so a flush during
  // a scan never hides or resurrects keys. The inner iterator keeps its own
  // semantics (RocksDB: snapshot at creation).
  std::unique_ptr<KeyValueIterator> Range(std::string_view from,
                                          std::string_view to) override;
  std::unique_ptr<KeyValueIterator> PrefixScan(
      std::string_view prefix) override;
  // The inner store's count corrected by the dirty entries (each dirty entry
  // whose previous state is not known costs one inner Get).
  absl::StatusOr<uint64_t> ApproximateCount() override;
  // FlushCache(), then the inner store's Flush().
  absl::Status Flush() override;

  // Writes every dirty entry to the inner store in one WriteBatch (nothing
  // when none is dirty); they stay cached as clean entries. A deletion of a
  // key the inner store does not hold is not written (a key put and deleted
  // between two flushes leaves no trace below). Idempotent. On error the
  // entries stay dirty.
  absl::Status FlushCache();

  // Bytes charged to the budget (dirty and clean entries).
  size_t cached_bytes() const { return bytes_; }
  size_t dirty_entries() const { return dirty_count_; }
  size_t max_bytes() const { return max_bytes_; }
  const Stats& stats() const { return stats_; }
  // The wrapped store. Reading it directly skips the cache's dirty entries.
  KeyValueStore& inner() { return *inner_; }

 private:
  class Iterator;
  friend class Iterator;

  // What the inner store holds for a cached key, as far as the cache knows.
  enum class Base : uint8_t {
    kUnknown,         // written here before any read: check before deleting
    kAssumedPresent,  // a blind delete: written as a deletion without a check
    kPresent,
    kAbsent,
  };
  struct Entry {
    std::optional<std::string> value;  // nullopt: deleted / absent
    // Dirty entries are in dirty_; clean ones in lru_.
    bool dirty = false;
    bool in_lru = false;
    bool in_dirty_list = false;
    size_t dirty_index = 0;  // in dirty_, when in_dirty_list
    Base base = Base::kUnknown;
    std::list<std::string_view>::iterator lru;  // valid when in_lru
  };
  // std::less<> compares bytewise (as unsigned char), like RocksDB.
  using Map = std::map<std::string, Entry, std::less<>>;

  CachingStore(std::unique_ptr<KeyValueStore> inner, size_t max_bytes);

  static size_t EntryBytes(const Map::value_type& entry);
  // Finds or inserts `key` (a new entry is neither dirty nor in the LRU and
  // has Base::kUnknown), uncharging an existing entry's bytes (the caller
  // charges them again after the change). Sets *inserted.
  Map::iterator Slot(std::string_view key, bool* inserted);
  void MarkDirty(Map::iterator it);
  void MarkClean(Map::iterator it);
  void PutEntry(std::string_view key, std::string_view value);
  void DeleteEntry(std::string_view key);
  // Evicts clean entries, then flushes early if dirty ones alone are over
  // budget.
  absl::Status EnforceBudget();
  void EvictClean();
  void DetachIterators();

  std::unique_ptr<KeyValueStore> inner_;
  const size_t max_bytes_;
  Map map_;
  // Clean entries, least recently used first; views of map_'s keys.
  std::list<std::string_view> lru_;
  // Entries made dirty since the last flush (some may be clean again, and
  // evicted ones are map_.end()).
  std::vector<Map::iterator> dirty_;
  size_t dirty_count_ = 0;
  size_t bytes_ = 0;
  // Bumped whenever an entry leaves map_, so live iterators re-seek.
  uint64_t erase_epoch_ = 0;
  std::vector<Iterator*> iterators_;
  Stats stats_;
};

}  // namespace tributary
