// AggregateJoin: the third CDC operator, one task per partition of the
// by-root repartition topic. Holds the row changes the routers send (keyed
// by root, in units: a transaction, an initial snapshot) until the
// assembler's decision to release the unit arrives on the same partition
// (after them: see CdcRouter), then applies the unit root by root, each
// root's changes as one slice, and emits each root's aggregate once:
// key = the root key as JSON text, value =
//   {<root columns>, "<array field>":[<child rows sorted by child key>], ...,
//    "source_tx":{"id":"<tx>","position":N}, "version":N}
// or a tombstone when the root was deleted. Children whose root has not
// arrived are kept; the aggregate appears when the root does. A change
// delivered twice (same unit, position, table, op, key) is held once; a
// change of a unit released already is dropped; a slice at or before the
// root's last applied position is dropped. An initial snapshot's unit emits
// each root it touched once. Memory: one root's changes at a time.
//
// An incremental snapshot row is the row's state at the chunk's close
// watermark: after every transaction committed before, and no transaction
// that changed the row commits inside the chunk's window. So it waits for
// the last transaction its partition delivered before it (the router names
// it) and is applied right after that transaction's release here; when that
// one is released already, at once. It is brought to the table's present
// shape, and a row equal to what the aggregate holds emits nothing. Events
// without a transaction block are applied at once.
//
// A column Debezium sent as its unavailable-value placeholder (an unchanged
// TOASTed value) keeps the value the stored row has; where there is none
// (e.g. a child that moved here from a root of another task), the
// placeholder stays, counted in cdc-unavailable-values-unresolved-total and
// logged. The names of the "source_tx" and "version" fields are
// configurable (spec); a root column of the same name as one of the
// aggregate's own fields fails the slice with an error naming the setting.
//
// Table-wide operations. A table's shape (its columns, each with its
// default: ChangeEvent::shape) changes with ALTER TABLE, of which Debezium
// says nothing but the new schema on the table's next change event; a
// TRUNCATE of several tables is one 't' event per table. The routers send
// both to every aggregate partition, in their unit, at their position: a
// new shape rewrites this task's stored rows of the table (values kept,
// added columns with their defaults, dropped ones gone); a truncate deletes
// them. Either changes aggregates that the transaction's own rows may not
// touch: after the transaction commits, PostgreSQL shows every row in the
// new shape (the ALTER committed before it). So a transaction with a
// table-wide operation is applied in position order around them, its roots
// remembered (held), and then every root it changed, in its own rows or by
// the table-wide operation, gets one version for it (the flush).
//
// State: <name>-roots    r<root key> -> root row;  v<root key> -> version+position;
//                        t<root key> -> held in the open transaction ("d": its
//                        root was deleted there); s<table> -> shape
//        <name>-children <root key>\0<table><sortable child key> -> child row
//        <name>-pending  u<unit>\0<root>\0<position>\0<identity> -> RowChange;
//                        w<unit>\0<position>\0<identity> -> table-wide RowChange;
//                        i<unit>\0<partition><offset><kind><root> -> waiting
//                        incremental row;  R<unit>, P<position>: released units
#pragma once

#include <string>

#include "absl/container/flat_hash_set.h"
#include "engine/processor.h"
#include "operators/internal/cdc_messages.h"
#include "operators/internal/retained_ids.h"
#include "operators/internal/row_merge.h"
#include "operators/transaction_aggregate.h"

namespace tributary::internal {

class AggregateJoin : public Processor {
 public:
  explicit AggregateJoin(const TransactionAggregateSpec& spec);

  absl::Status Init(ProcessorContext& context) override;
  absl::Status Process(const Record& record) override;

  static std::string RootsStore(const TransactionAggregateSpec& spec) {
    return spec.name + "-roots";
  }
  static std::string ChildrenStore(const TransactionAggregateSpec& spec) {
    return spec.name + "-children";
  }
  static std::string PendingStore(const TransactionAggregateSpec& spec) {
    return spec.name + "-pending";
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
  absl::Status OnRowChange(std::string_view root, const RowChange& change,
                           std::string_view raw);
  absl::Status Release(const Decision& decision);
  absl::Status ApplySnapshot(int64_t lsn);
  // Whether `unit` (a transaction) was released here.
  absl::StatusOr<bool> Released(std::string_view unit);
  // Applies the held changes of `unit` whose position is in [from, to)
  // root by root, each as `proto` with that root's changes, and deletes them
  // (into `done`).
  absl::Status ApplyUnit(std::string_view unit, const RootSlice& proto,
                         std::optional<std::string_view> from,
                         std::optional<std::string_view> to, WriteBatch& done);
  // Applies one root's slice and emits its aggregate (see the header).
  absl::Status ApplySlice(std::string_view root, const RootSlice& slice);
  absl::Status ApplyIncremental(std::string_view root, RowChange change);
  absl::Status ApplyTableOp(const RowChange& op, bool hold);
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
  KeyValueStore* pending_ = nullptr;
  RetainedIds released_ids_;
  // Units with changes held here (not released).
  absl::flat_hash_set<std::string> open_units_;
  Counter* emitted_ = nullptr;
  Counter* snapshot_rows_reshaped_ = nullptr;
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
