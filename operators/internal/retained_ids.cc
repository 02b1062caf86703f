#include "operators/internal/retained_ids.h"

#include <algorithm>

#include "base/status_macros.h"
#include "operators/internal/codec.h"

namespace tributary::internal {

std::string RetainedIds::IdKey(std::string_view id) const {
  std::string key(1, id_prefix_);
  key.append(id);
  return key;
}

std::string RetainedIds::OrderKey(int64_t order) const {
  std::string key(1, order_prefix_);
  PutOrderedInt64(key, order);
  return key;
}

absl::Status RetainedIds::Load(KeyValueStore& store) {
  size_ = 0;
  oldest_ = 0;
  max_order_ = -1;
  auto it = store.PrefixScan(std::string(1, order_prefix_));
  for (; it->Valid(); it->Next()) {
    const int64_t order = GetOrderedInt64(it->key().substr(1));
    if (size_ == 0) oldest_ = order;
    max_order_ = order;
    ++size_;
  }
  return it->status();
}

absl::StatusOr<std::optional<std::string>> RetainedIds::Get(KeyValueStore& store,
                                                            std::string_view id) const {
  return store.Get(IdKey(id));
}

void RetainedIds::Add(WriteBatch& batch, std::string_view id, int64_t order,
                      std::string_view value) {
  batch.Put(IdKey(id), value);
  batch.Put(OrderKey(order), id);
  oldest_ = size_ == 0 ? order : std::min(oldest_, order);
  max_order_ = std::max(max_order_, order);
  ++size_;
}

absl::Status RetainedIds::Prune(KeyValueStore& store) {
  if (size_ <= retention_) return absl::OkStatus();
  WriteBatch prune;
  {
    // Start at the oldest live key, not the prefix, so that the deletes of
    // earlier prunes are not walked again.
    auto it = store.Range(OrderKey(oldest_), std::string(1, static_cast<char>(order_prefix_ + 1)));
    for (; it->Valid() && size_ > retention_; it->Next()) {
      prune.Delete(it->key());
      prune.Delete(IdKey(it->value()));
      oldest_ = GetOrderedInt64(it->key().substr(1)) + 1;
      --size_;
    }
    TRIBUTARY_RETURN_IF_ERROR(it->status());
  }
  return store.Write(prune);
}

}  // namespace tributary::internal
