#include "operators/internal/assembled_roots.h"

#include <cassert>
#include <utility>

#include "base/absl_compat.h"

namespace tributary::internal {
namespace {

// Estimates of what the containers add: a tree slot and a string header per
// row; the hash slot, list node and key copy per entry.
constexpr size_t kRowOverhead = 64;
constexpr size_t kEntryOverhead = 128;

}  // namespace

size_t AssembledRoots::RowBytes(std::string_view suffix, std::string_view row) {
  return suffix.size() + row.size() + kRowOverhead;
}

const AssembledRoots::Children* AssembledRoots::Find(std::string_view root) {
  auto it = entries_.find(Sv(root));
  if (it == entries_.end()) return nullptr;
  used_.splice(used_.begin(), used_, it->second.used);
  return &it->second.children;
}

void AssembledRoots::Insert(std::string_view root, Children children) {
  Erase(root);
  size_t bytes = 2 * root.size() + kEntryOverhead;
  for (const auto& [suffix, row] : children) bytes += RowBytes(suffix, row);
  if (bytes > max_bytes_) return;
  used_.emplace_front(root);
  Entry& entry = entries_.try_emplace(used_.front()).first->second;
  entry.children = std::move(children);
  entry.bytes = bytes;
  entry.used = used_.begin();
  bytes_ += bytes;
  Evict();
}

void AssembledRoots::Apply(std::string_view root, std::string_view prefix,
                           const WriteBatch& writes) {
  auto it = entries_.find(Sv(root));
  if (it == entries_.end()) return;
  Entry& entry = it->second;
  const size_t before = entry.bytes;
  for (const WriteBatch::Entry& write : writes.entries()) {
    assert(std::string_view(write.key).substr(0, prefix.size()) == prefix);
    const std::string_view suffix = std::string_view(write.key).substr(prefix.size());
    auto child = entry.children.find(Sv(suffix));
    if (child != entry.children.end()) {
      entry.bytes -= RowBytes(child->first, child->second);
      if (!write.value) {
        entry.children.erase(child);
        continue;
      }
      child->second = *write.value;
    } else {
      if (!write.value) continue;
      child = entry.children.emplace(std::string(suffix), *write.value).first;
    }
    entry.bytes += RowBytes(child->first, child->second);
  }
  bytes_ = bytes_ - before + entry.bytes;
  if (entry.bytes > max_bytes_) {
    EraseEntry(it);
    return;
  }
  used_.splice(used_.begin(), used_, entry.used);
  Evict();
}

void AssembledRoots::Erase(std::string_view root) {
  auto it = entries_.find(Sv(root));
  if (it != entries_.end()) EraseEntry(it);
}

void AssembledRoots::Clear() {
  entries_.clear();
  used_.clear();
  bytes_ = 0;
}

void AssembledRoots::Evict() {
  // The most recently used entry fits alone (Insert, Apply): it stays.
  while (bytes_ > max_bytes_ && !used_.empty()) {
    auto it = entries_.find(used_.back());
    assert(it != entries_.end());
    EraseEntry(it);
  }
}

void AssembledRoots::EraseEntry(absl::flat_hash_map<std::string, Entry>::iterator it) {
  bytes_ -= it->second.bytes;
  used_.erase(it->second.used);
  entries_.erase(it);
}

}  // namespace tributary::internal
