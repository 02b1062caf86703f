// RetainedIds: a bounded set of ids kept in a store, for dropping what was
// already handled (released transactions, routed outbox events). Two key
// families under the caller's prefixes:
//   <id prefix><id>                    -> the caller's value
//   <order prefix><ordered int64 order> -> id   (for bounded retention)
// Only the `retention` ids with the highest orders are kept; older ones are
// forgotten. Thread-safety: single-threaded, as the task that owns the store.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "state/key_value_store.h"

namespace tributary::internal {

class RetainedIds {
 public:
  // The prefixes may share a store with other keys of other prefixes.
  RetainedIds(char id_prefix, char order_prefix, int64_t retention)
      : id_prefix_(id_prefix), order_prefix_(order_prefix), retention_(retention) {}

  // Rebuilds the count and bounds from `store` (at task Init).
  absl::Status Load(KeyValueStore& store);

  // The value stored with `id`, nullopt when the set does not hold it.
  absl::StatusOr<std::optional<std::string>> Get(KeyValueStore& store, std::string_view id) const;

  // Adds `id` with `order` and `value` to `batch`, which the caller writes.
  void Add(WriteBatch& batch, std::string_view id, int64_t order, std::string_view value);

  // Once the batch of Add is written: forgets the lowest orders beyond the
  // retention, in one write.
  absl::Status Prune(KeyValueStore& store);

  int64_t size() const { return size_; }
  // The highest order held or ever added since Load; -1 when none.
  int64_t max_order() const { return max_order_; }

 private:
  std::string IdKey(std::string_view id) const;
  std::string OrderKey(int64_t order) const;

  const char id_prefix_;
  const char order_prefix_;
  const int64_t retention_;
  int64_t size_ = 0;
  int64_t oldest_ = 0;  // lowest order held (meaningful when size_ > 0)
  int64_t max_order_ = -1;
};

}  // namespace tributary::internal
