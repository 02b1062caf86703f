#include "state/caching_store.h"

#include <algorithm>
#include <cassert>
#include <utility>

#include "base/status_macros.h"
#include "state/internal/key_range.h"

namespace tributary {

// Merges the cache's entries in [from, end) with the inner store's iterator.
// The cache side is live (a std::map iterator, re-sought past the last key
// returned whenever an entry left the map) until the store asks it to detach
// before a flush; then it walks a copy of the rest of its range.
// REQUIRES: the store outlives the iterator.
class CachingStore::Iterator final : public KeyValueIterator {
 public:
  Iterator(CachingStore* store, std::unique_ptr<KeyValueIterator> inner,
           std::string_view from, std::optional<std::string> end)
      : store_(store),
        inner_(std::move(inner)),
        from_(from),
        end_(std::move(end)),
        cache_it_(store_->map_.lower_bound(from_)),
        epoch_(store_->erase_epoch_) {
    store_->iterators_.push_back(this);
    Settle();
  }

  ~Iterator() override {
    auto& open = store_->iterators_;
    open.erase(std::find(open.begin(), open.end(), this));
  }

  bool Valid() const override { return current_ != Source::kNone; }

  void Next() override {
    assert(Valid());
    if (current_ == Source::kInner) inner_->Next();
    Settle();
  }

  std::string_view key() const override {
    assert(Valid());
    return current_ == Source::kCache ? std::string_view(key_) : inner_->key();
  }

  std::string_view value() const override {
    assert(Valid());
    return current_ == Source::kCache ? std::string_view(value_) : inner_->value();
  }

  absl::Status status() const override { return inner_->status(); }

  // Copies the rest of the cached range, so that the cache may change freely.
  void Detach() {
    if (detached_) return;
    Reseek();
    for (auto it = cache_it_; it != store_->map_.end() && InRange(it->first); ++it) {
      snapshot_.push_back({it->first, it->second.value});
    }
    detached_ = true;
  }

 private:
  enum class Source { kNone, kCache, kInner };
  struct Copy {
    std::string key;
    std::optional<std::string> value;
  };

  bool InRange(std::string_view key) const { return !end_.has_value() || key < *end_; }

  // Live mode: after an erase, find the first cached key past the scan.
  void Reseek() {
    if (detached_ || epoch_ == store_->erase_epoch_) return;
    cache_it_ = started_ ? store_->map_.upper_bound(last_key_)
                         : store_->map_.lower_bound(from_);
    epoch_ = store_->erase_epoch_;
  }

  // The next cached candidate, or false at the end of the cached range.
  bool CacheCandidate(std::string_view* key, const std::optional<std::string>** value) {
    if (detached_) {
      if (snapshot_pos_ >= snapshot_.size()) return false;
      *key = snapshot_[snapshot_pos_].key;
      *value = &snapshot_[snapshot_pos_].value;
      return true;
    }
    Reseek();
    if (cache_it_ == store_->map_.end() || !InRange(cache_it_->first)) return false;
    *key = cache_it_->first;
    *value = &cache_it_->second.value;
    return true;
  }

  // Steps past the candidate; `key` is the candidate's key.
  void ConsumeCache(std::string_view key) {
    last_key_.assign(key);
    started_ = true;
    if (detached_) {
      ++snapshot_pos_;
    } else {
      ++cache_it_;
    }
  }

  // Moves to the first visible entry at or after both cursors.
  void Settle() {
    while (true) {
      const bool has_inner = inner_->Valid();
      if (!has_inner && !inner_->status().ok()) break;
      std::string_view cache_key;
      const std::optional<std::string>* cache_value = nullptr;
      const bool has_cache = CacheCandidate(&cache_key, &cache_value);
      if (!has_cache && !has_inner) break;
      int order = -1;
      if (has_cache && has_inner) order = cache_key.compare(inner_->key());
      if (!has_cache || order > 0) {
        current_ = Source::kInner;
        last_key_.assign(inner_->key());
        started_ = true;
        return;
      }
      if (order == 0) inner_->Next();  // the cache shadows the inner entry
      if (cache_value->has_value()) {
        key_.assign(cache_key);
        value_.assign(**cache_value);
        ConsumeCache(cache_key);
        current_ = Source::kCache;
        return;
      }
      ConsumeCache(cache_key);  // a cached deletion: hidden
    }
    current_ = Source::kNone;
  }

  CachingStore* const store_;
  const std::unique_ptr<KeyValueIterator> inner_;
  const std::string from_;
  const std::optional<std::string> end_;

  // Live cache cursor: valid while epoch_ matches the store's.
  CachingStore::Map::const_iterator cache_it_;
  uint64_t epoch_;
  // Detached cache cursor.
  bool detached_ = false;
  std::vector<Copy> snapshot_;
  size_t snapshot_pos_ = 0;

  // The greatest key consumed from either side (valid when started_).
  bool started_ = false;
  std::string last_key_;

  Source current_ = Source::kNone;
  std::string key_;    // current_ == kCache
  std::string value_;  // current_ == kCache
};

std::unique_ptr<CachingStore> CachingStore::Create(std::unique_ptr<KeyValueStore> inner,
                                                   size_t max_bytes) {
  return std::unique_ptr<CachingStore>(new CachingStore(std::move(inner), max_bytes));
}

CachingStore::CachingStore(std::unique_ptr<KeyValueStore> inner, size_t max_bytes)
    : inner_(std::move(inner)), max_bytes_(max_bytes) {
  assert(inner_ != nullptr);
}

CachingStore::~CachingStore() {
  // Iterators must not outlive their store (KeyValueIterator's contract).
  assert(iterators_.empty());
}

size_t CachingStore::EntryBytes(const Map::value_type& entry) {
  // The map node (entry plus tree links), the LRU list node, a dirty_ slot,
  // and allocator headers of the node, the list node, key and value.
  constexpr size_t kOverhead = sizeof(Map::value_type) + 4 * sizeof(void*) +
                               2 * sizeof(void*) + sizeof(std::string_view) +
                               sizeof(Map::iterator) + 4 * 16;
  return entry.first.size() + (entry.second.value ? entry.second.value->size() : 0) +
         kOverhead;
}

CachingStore::Map::iterator CachingStore::Slot(std::string_view key, bool* inserted) {
  auto it = map_.lower_bound(key);
  *inserted = it == map_.end() || it->first != key;
  if (*inserted) return map_.emplace_hint(it, std::string(key), Entry{});
  bytes_ -= EntryBytes(*it);
  return it;
}

void CachingStore::MarkDirty(Map::iterator it) {
  Entry& entry = it->second;
  if (entry.dirty) return;
  if (entry.in_lru) {
    lru_.erase(entry.lru);
    entry.in_lru = false;
  }
  entry.dirty = true;
  ++dirty_count_;
  if (!entry.in_dirty_list) {
    entry.in_dirty_list = true;
    entry.dirty_index = dirty_.size();
    dirty_.push_back(it);
  }
}

void CachingStore::MarkClean(Map::iterator it) {
  Entry& entry = it->second;
  if (entry.dirty) {
    entry.dirty = false;
    --dirty_count_;
  }
  if (!entry.in_lru) {
    entry.lru = lru_.insert(lru_.end(), std::string_view(it->first));
    entry.in_lru = true;
  }
}

void CachingStore::PutEntry(std::string_view key, std::string_view value) {
  bool inserted = false;
  Map::iterator it = Slot(key, &inserted);
  Entry& entry = it->second;
  if (entry.value.has_value()) {
    entry.value->assign(value);
  } else {
    entry.value.emplace(value);
  }
  MarkDirty(it);
  bytes_ += EntryBytes(*it);
}

void CachingStore::DeleteEntry(std::string_view key) {
  bool inserted = false;
  Map::iterator it = Slot(key, &inserted);
  Entry& entry = it->second;
  entry.value.reset();
  if (inserted) entry.base = Base::kAssumedPresent;
  if (entry.base == Base::kAbsent) {
    MarkClean(it);  // nothing below to delete: an absence again
  } else {
    MarkDirty(it);
  }
  bytes_ += EntryBytes(*it);
}

absl::StatusOr<std::optional<std::string>> CachingStore::Get(std::string_view key) {
  auto it = map_.find(key);
  if (it != map_.end()) {
    ++stats_.hits;
    Entry& entry = it->second;
    if (entry.in_lru) lru_.splice(lru_.end(), lru_, entry.lru);
    return entry.value;
  }
  ++stats_.misses;
  TRIBUTARY_ASSIGN_OR_RETURN(std::optional<std::string> value, inner_->Get(key));
  it = map_.emplace_hint(it, std::string(key), Entry{});
  it->second.value = value;
  it->second.base = value.has_value() ? Base::kPresent : Base::kAbsent;
  MarkClean(it);
  bytes_ += EntryBytes(*it);
  // Reads never flush: only clean entries (possibly this one) make room.
  EvictClean();
  return value;
}

absl::Status CachingStore::Put(std::string_view key, std::string_view value) {
  PutEntry(key, value);
  return EnforceBudget();
}

absl::Status CachingStore::Delete(std::string_view key) {
  DeleteEntry(key);
  return EnforceBudget();
}

absl::Status CachingStore::Write(const WriteBatch& batch) {
  for (const WriteBatch::Entry& entry : batch.entries()) {
    if (entry.value.has_value()) {
      PutEntry(entry.key, *entry.value);
    } else {
      DeleteEntry(entry.key);
    }
  }
  return EnforceBudget();
}

std::unique_ptr<KeyValueIterator> CachingStore::Range(std::string_view from,
                                                      std::string_view to) {
  std::optional<std::string> end;
  if (!to.empty()) end.emplace(to);
  return std::make_unique<Iterator>(this, inner_->Range(from, to), from, std::move(end));
}

std::unique_ptr<KeyValueIterator> CachingStore::PrefixScan(std::string_view prefix) {
  return std::make_unique<Iterator>(this, inner_->PrefixScan(prefix), prefix,
                                    internal::PrefixUpperBound(prefix));
}

absl::StatusOr<uint64_t> CachingStore::ApproximateCount() {
  TRIBUTARY_ASSIGN_OR_RETURN(uint64_t count, inner_->ApproximateCount());
  int64_t delta = 0;
  for (Map::iterator it : dirty_) {
    if (it == map_.end() || !it->second.dirty) continue;
    const Entry& entry = it->second;
    bool before = entry.base == Base::kPresent;
    if (entry.base == Base::kUnknown || entry.base == Base::kAssumedPresent) {
      TRIBUTARY_ASSIGN_OR_RETURN(std::optional<std::string> inner, inner_->Get(it->first));
      before = inner.has_value();
    }
    delta += static_cast<int64_t>(entry.value.has_value()) - static_cast<int64_t>(before);
  }
  if (delta < 0 && static_cast<uint64_t>(-delta) > count) return 0;
  return static_cast<uint64_t>(static_cast<int64_t>(count) + delta);
}

absl::Status CachingStore::Flush() {
  TRIBUTARY_RETURN_IF_ERROR(FlushCache());
  return inner_->Flush();
}

absl::Status CachingStore::FlushCache() {
  if (dirty_count_ > 0) {
    DetachIterators();
    WriteBatch batch;
    for (Map::iterator it : dirty_) {
      if (it == map_.end() || !it->second.dirty) continue;
      Entry& entry = it->second;
      if (entry.value.has_value()) {
        batch.Put(it->first, *entry.value);
        continue;
      }
      if (entry.base == Base::kUnknown) {
        // Put and deleted since the last flush, with no read to tell whether
        // the inner store had the key: deleting an absent key would only add
        // a changelog record.
        TRIBUTARY_ASSIGN_OR_RETURN(std::optional<std::string> inner,
                                   inner_->Get(it->first));
        entry.base = inner.has_value() ? Base::kPresent : Base::kAbsent;
      }
      if (entry.base != Base::kAbsent) batch.Delete(it->first);
    }
    if (!batch.empty()) {
      TRIBUTARY_RETURN_IF_ERROR(inner_->Write(batch));
      ++stats_.flushes;
    }
  }
  for (Map::iterator it : dirty_) {
    if (it == map_.end()) continue;
    Entry& entry = it->second;
    entry.in_dirty_list = false;
    if (!entry.dirty) continue;
    entry.base = entry.value.has_value() ? Base::kPresent : Base::kAbsent;
    MarkClean(it);
  }
  dirty_.clear();
  assert(dirty_count_ == 0);
  return absl::OkStatus();
}

absl::Status CachingStore::EnforceBudget() {
  if (bytes_ <= max_bytes_) return absl::OkStatus();
  EvictClean();
  if (bytes_ <= max_bytes_) return absl::OkStatus();
  ++stats_.early_flushes;
  TRIBUTARY_RETURN_IF_ERROR(FlushCache());
  EvictClean();
  return absl::OkStatus();
}

void CachingStore::EvictClean() {
  while (bytes_ > max_bytes_ && !lru_.empty()) {
    auto it = map_.find(lru_.front());
    assert(it != map_.end() && it->second.in_lru && !it->second.dirty);
    bytes_ -= EntryBytes(*it);
    lru_.pop_front();
    // A clean entry may still sit in dirty_ (deleted back to an absence).
    if (it->second.in_dirty_list) dirty_[it->second.dirty_index] = map_.end();
    map_.erase(it);
    ++erase_epoch_;
    ++stats_.evictions;
  }
}

void CachingStore::DetachIterators() {
  for (Iterator* iterator : iterators_) iterator->Detach();
}

}  // namespace tributary
