// AggregateJoin: the third CDC operator, one task per partition of the
// by-root repartition topic. Applies a released transaction's RootSlice to
// the root-row and child-row stores as one unit and emits the root's
// aggregate once: key = the root key as JSON text, value =
//   {<root columns>, "<array field>":[<child rows sorted by child key>], ...,
//    "source_tx":{"id":"<tx>","position":N}, "version":N}
// or a tombstone when the root was deleted. Children whose root has not
// arrived are kept; the aggregate appears when the root does. Slices at or
// before the root's last applied position are dropped (re-delivery guard).
//
// State: <name>-roots    r<root key> -> root row;  v<root key> -> version+position
//        <name>-children <root key>\0<table><sortable child key> -> child row
#pragma once

#include <string>

#include "engine/processor.h"
#include "operators/internal/cdc_messages.h"
#include "operators/transaction_aggregate.h"

namespace tributary::internal {

class AggregateJoin : public Processor {
 public:
  explicit AggregateJoin(const TransactionAggregateSpec& spec) : spec_(spec) {}

  absl::Status Init(ProcessorContext& context) override;
  absl::Status Process(const Record& record) override;

  static std::string RootsStore(const TransactionAggregateSpec& spec) {
    return spec.name + "-roots";
  }
  static std::string ChildrenStore(const TransactionAggregateSpec& spec) {
    return spec.name + "-children";
  }

 private:
  absl::Status BuildAggregate(std::string_view root_key, std::string_view root_row,
                              const RootSlice& slice, int64_t version);

  const TransactionAggregateSpec& spec_;
  ProcessorContext* context_ = nullptr;
  KeyValueStore* roots_ = nullptr;
  KeyValueStore* children_ = nullptr;
  Counter* emitted_ = nullptr;
  Counter* stale_ = nullptr;
  std::string out_;  // scratch for the aggregate JSON
};

}  // namespace tributary::internal
