// AssembledRoots: AggregateJoin's bounded in-memory copy of the children of
// recently built roots, so that a version is built from what the slice
// changed instead of a scan of all the root's children in the store.
// Neither logged nor persisted: it starts empty with its processor.
// Thread-safety: one thread at a time (the task's), no internal locking.
//
// An entry is exact or absent: it holds a root's children rows as the
// <name>-children store holds them, keyed by the store key without the
// root's prefix (<table byte><sortable child key>), so in the store's byte
// order. The caller keeps it so: every write to the store's rows of a cached
// root is applied here (Apply) or ends the entry (Erase, Clear).
// Bounded by bytes (keys, rows and a per-row estimate of the tree's
// overhead); least recently used entries go first; a root larger than the
// whole budget is not kept. A budget of 0 keeps nothing.
#pragma once

#include <cstddef>
#include <list>
#include <string>
#include <string_view>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "state/key_value_store.h"

namespace tributary::internal {

class AssembledRoots {
 public:
  // <table byte><sortable child key> -> child row; std::string orders bytes
  // as unsigned, as the stores do.
  using Children = absl::btree_map<std::string, std::string>;

  explicit AssembledRoots(size_t max_bytes) : max_bytes_(max_bytes) {}
  AssembledRoots(const AssembledRoots&) = delete;
  AssembledRoots& operator=(const AssembledRoots&) = delete;

  bool enabled() const { return max_bytes_ > 0; }
  size_t bytes() const { return bytes_; }

  // The root's children, or nullptr when it is not cached; marks it used.
  // Lifetime: valid until the next call of a non-const member.
  const Children* Find(std::string_view root);
  // Caches `children` (what the store holds for `root` now), replacing any
  // entry, when it fits the budget; evicts least recently used ones for it.
  void Insert(std::string_view root, Children children);
  // Applies `writes` (puts and deletes of store keys that all begin with
  // `prefix`, the root's: see AggregateJoin) to the root's entry, if cached.
  void Apply(std::string_view root, std::string_view prefix, const WriteBatch& writes);
  void Erase(std::string_view root);
  void Clear();

 private:
  struct Entry {
    Children children;
    size_t bytes = 0;
    std::list<std::string>::iterator used;  // in used_
  };
  static size_t RowBytes(std::string_view suffix, std::string_view row);
  // Evicts least recently used entries until the budget holds.
  void Evict();
  void EraseEntry(absl::flat_hash_map<std::string, Entry>::iterator it);

  const size_t max_bytes_;
  size_t bytes_ = 0;
  absl::flat_hash_map<std::string, Entry> entries_;
  std::list<std::string> used_;  // root keys, most recently used first
};

}  // namespace tributary::internal
