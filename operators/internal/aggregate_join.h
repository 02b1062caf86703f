// AggregateJoin: the third CDC operator, one task per partition of the
// by-root repartition topic. Applies a released transaction's RootSlice to
// the root-row and child-row stores as one unit and emits the root's
// aggregate once: key = the root key as JSON text, value =
//   {<root columns>, "<array field>":[<child rows sorted by child key>], ...,
//    "source_tx":{"id":"<tx>","position":N}, "version":N}
// or a tombstone when the root was deleted. Children whose root has not
// arrived are kept; the aggregate appears when the root does. Slices at or
// before the root's last applied position are dropped (re-delivery guard).
// Slices of an initial snapshot are applied without emitting; the
// snapshot's flush slice (one per root it touched) emits each root once. A
// slice of an incremental snapshot row emits only when it changes something.
// A column Debezium sent as its unavailable-value placeholder (an unchanged
// TOASTed value) keeps the value the stored row has; where there is none
// (e.g. a child that moved here from a root of another task), the
// placeholder stays, counted in cdc-unavailable-values-unresolved-total and
// logged. The names of the "source_tx" and "version" fields are
// configurable (spec); a root column of the same name as one of the
// aggregate's own fields fails the slice with an error naming the setting.
//
// Table-wide operations come as broadcast slices (see TxAssembler): a new
// shape of a table rewrites this task's stored rows of it (values kept,
// added columns with their defaults, dropped ones gone); a truncate deletes
// its rows. Slices marked `hold` are applied and their roots remembered, as
// are the roots whose rows a table-wide operation of a held transaction
// changed; the transaction's flush then emits each remembered root once.
//
// State: <name>-roots    r<root key> -> root row;  v<root key> -> version+position;
//                        t<root key> -> held in the open transaction ("d": its
//                        root was deleted there); s<table> -> shape;
//                        b -> END position of the last flush
//        <name>-children <root key>\0<table><sortable child key> -> child row
#pragma once

#include <string>

#include "engine/processor.h"
#include "operators/internal/cdc_messages.h"
#include "operators/internal/row_merge.h"
#include "operators/transaction_aggregate.h"

namespace tributary::internal {

class AggregateJoin : public Processor {
 public:
  explicit AggregateJoin(const TransactionAggregateSpec& spec)
      : spec_(spec), unavailable_(spec.unavailable_placeholder) {}

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
  // `row` with placeholders replaced from `previous`, into `merged` (which
  // is then what to store); or `row` itself when it holds none.
  absl::StatusOr<std::string_view> FillUnavailable(std::string_view what,
                                                   std::string_view key, std::string_view row,
                                                   std::optional<std::string_view> previous,
                                                   std::string& merged);
  // An error when the root row has a column named as one of the aggregate's
  // own fields.
  absl::Status CheckNoClash(std::string_view root_key, std::string_view root_row);
  // The root's version and the position last applied to it, from its
  // v<root> key ({0, -1} when it has none).
  absl::StatusOr<std::pair<int64_t, int64_t>> ReadVersion(const std::string& version_key);
  absl::Status ProcessBroadcast(const RootSlice& slice);
  // `touch`: remember the roots whose rows changed, for the flush.
  absl::Status ApplyShape(uint8_t table, std::string_view shape, bool touch);
  // Remembers `roots` (not yet remembered) for the open transaction's flush.
  absl::Status Touch(const std::vector<std::string>& roots);
  absl::Status Truncate(uint8_t table);
  absl::Status Flush(const RootSlice& slice);
  std::string_view TableName(uint8_t table) const;

  const TransactionAggregateSpec& spec_;
  ProcessorContext* context_ = nullptr;
  KeyValueStore* roots_ = nullptr;
  KeyValueStore* children_ = nullptr;
  Counter* emitted_ = nullptr;
  Counter* stale_ = nullptr;
  Counter* unresolved_ = nullptr;
  Counter* reshaped_ = nullptr;
  UnavailableValues unavailable_;
  RowFields clash_fields_;
  RowFields row_fields_;  // ApplyShape
  std::vector<std::string> own_fields_;  // array fields, source, version
  std::string out_;  // scratch for the aggregate JSON
};

}  // namespace tributary::internal
