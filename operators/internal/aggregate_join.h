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
// State: <name>-roots    r<root key> -> root row;  v<root key> -> version +
//                        position + source object of the last emitted version;
//                        t<root key> -> held in the open transaction ("d": its
//                        root was deleted there); s<table> -> shape
//        <name>-children <root key>\0<table><sortable child key> -> child row
//                        o -> offset of the last record processed as of the
//                        last commit
//        assembled roots (in memory only, spec.aggregate_cache_bytes; see
//        AssembledRoots): root -> its children rows as the children store
//        holds them; each slice's child writes are applied to it, so a
//        cached root's version is built without reading the store; any
//        other write of children rows (a new shape, a truncate) drops the
//        roots it touches. It starts empty with the processor, so nothing
//        of it outlives a restart (stores are restored before Init).
//        held changes (in memory; spilled to <name>-pending, a local RocksDB
//        store without changelog, past spec.held_memory_bytes):
//                        u<unit>\0<root>\0<position>\0<identity> -> RowChange;
//                        w<unit>\0<position>\0<identity> -> table-wide RowChange;
//                        i<unit>\0<partition><offset><kind><root> -> waiting
//                        incremental row
// Held changes need no changelog: the task commits its input offset no
// further than its first held change (ProcessorContext::HoldCommittedOffset),
// so after a restart it reads them again; records it had processed before
// the last commit (at or below "o") only hold their changes again, and
// decisions among them drop the changes they had applied.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "engine/processor.h"
#include "operators/internal/assembled_roots.h"
#include "operators/internal/cdc_messages.h"
#include "operators/internal/row_merge.h"
#include "operators/transaction_aggregate.h"

namespace tributary::internal {

class AggregateJoin : public Processor {
 public:
  explicit AggregateJoin(const TransactionAggregateSpec& spec);

  absl::Status Init(ProcessorContext& context) override;
  absl::Status Process(const Record& record) override;
  // Keeps the committed input offset at the first held change and notes how
  // far the task has processed.
  absl::Status PrepareCommit() override;

  static std::string RootsStore(const TransactionAggregateSpec& spec) {
    return spec.name + "-roots";
  }
  static std::string ChildrenStore(const TransactionAggregateSpec& spec) {
    return spec.name + "-children";
  }
  static std::string PendingStore(const TransactionAggregateSpec& spec) {
    return spec.name + "-pending";
  }

  // Interactive queries (spec.query_name). The aggregate of `root_key` as
  // its latest version on the output topic shows it, built from the task's
  // `roots` and `children` stores with the code that builds versions (a
  // reference when over spec.max_aggregate_bytes); nullopt when there is
  // none (never emitted, or its latest version is a tombstone). Unavailable
  // while a transaction with a table-wide operation holds the root.
  // REQUIRES: called between two records of the task (on its thread).
  static absl::StatusOr<std::optional<std::string>> Query(const TransactionAggregateSpec& spec,
                                                          KeyValueStore& roots,
                                                          KeyValueStore& children,
                                                          std::string_view root_key);
  // A request's id as a root key: an integer as Debezium writes one, or a
  // JSON string literal; InvalidArgument otherwise.
  static absl::StatusOr<std::string> QueryKey(std::string_view id);

 private:
  // Emits, for a version over spec.max_aggregate_bytes (`bytes`), a
  // reference in its place, and dead-letters it.
  absl::Status ForwardOversize(std::string_view root_key, std::string_view source,
                               std::string_view tx_id, int64_t version, size_t bytes);
  // Emits version `version` of the root: its row, its children's arrays and
  // the own fields with `source` (the source object, see SourceObject).
  absl::Status BuildAggregate(std::string_view root_key, std::string_view root_row,
                              std::string_view source, std::string_view tx_id, int64_t version);
  // `row` with placeholders replaced from `previous`, into `merged` (which
  // is then what to store); or `row` itself when it holds none.
  absl::StatusOr<std::string_view> FillUnavailable(std::string_view what,
                                                   std::string_view key, std::string_view row,
                                                   std::optional<std::string_view> previous,
                                                   std::string& merged);
  // An error when the root row has a column named as one of the aggregate's
  // own fields.
  absl::Status CheckNoClash(std::string_view root_key, std::string_view root_row);
  // What v<root> holds: the root's version, the position last applied to it
  // and the source object of its last emitted version ({0, -1, ""} when it
  // has none; source "" when written before versions kept it).
  struct StoredVersion {
    int64_t version = 0;
    int64_t position = -1;
    std::string source;
  };
  static absl::StatusOr<StoredVersion> ReadVersion(KeyValueStore& roots,
                                                   const std::string& version_key);
  // `again`: the record was processed before the last commit (see Process).
  absl::Status OnRowChange(std::string_view root, const RowChange& change,
                           std::string_view raw, int64_t offset, bool again);
  absl::Status Decide(const Decision& decision, bool again);
  // A release cut into pieces (see Process): where the one under way
  // stopped, as kept in the roots store under kReleaseProgressKey.
  struct ReleaseProgress {
    int64_t offset = -1;  // of the decisions record
    int64_t index = 0;    // of the decision in it
    std::string root;     // the last root applied
  };
  // Applies a released transaction. With `piece`, only the roots after
  // piece->root, and (for a unit without table-wide operations) it stops at
  // a root boundary once spec.release_piece_changes changes were applied and
  // the context accepts the record as unfinished: then `finished` is false
  // and piece->root the last root applied.
  absl::Status Release(const Decision& decision, ReleaseProgress* piece = nullptr,
                       bool* finished = nullptr);
  absl::Status PersistReleaseProgress();
  absl::Status ApplySnapshot(int64_t lsn);
  // Applies the incremental snapshot rows waiting for `unit_id`.
  absl::Status ApplyWaiting(const std::string& unit_id);
  // Holds `raw` under `key` for `unit_id` (`kind`: k*Held), read at `offset`.
  absl::Status Hold(std::string_view unit_id, int kind, const std::string& key,
                    std::string_view raw, int64_t offset);
  // Moves every change held in memory to the spill store.
  absl::Status Spill();
  // Deletes what `unit_id` holds of `kinds` (applied or not) and forgets it.
  absl::Status Forget(const std::string& unit_id, int kinds);
  // Where `unit_id`'s held changes of `kind` (k*Held) are; nullptr when it
  // holds none.
  KeyValueStore* HeldStore(const std::string& unit_id, int kind);
  // Sends the changes `unit_id` holds to the dead-letter topic (they came
  // after it was released partial).
  absl::Status DeadLetterHeld(const std::string& unit_id);
  // Deletes every key under `prefix` (a unit's prefix, ending in '\0').
  absl::Status DeleteHeld(KeyValueStore& store, const std::string& prefix);
  // Applies the held changes of `unit` in `store` whose position is in
  // [from, to) root by root, each as `proto` with that root's changes (Forget
  // deletes them afterwards).
  // With `piece` (no from/to): from the root after piece->root on, stopping
  // as Release says.
  absl::Status ApplyUnit(KeyValueStore& store, std::string_view unit, const RootSlice& proto,
                         std::optional<std::string_view> from,
                         std::optional<std::string_view> to,
                         ReleaseProgress* piece = nullptr, bool* finished = nullptr);
  // Applies one root's slice and emits its aggregate (see the header).
  absl::Status ApplySlice(std::string_view root, const RootSlice& slice);
  absl::Status ApplyIncremental(std::string_view root, RowChange change);
  absl::Status ApplyTableOp(const RowChange& op, bool hold);
  // The table-wide operations `unit_id` holds in `store`, in position order
  // (their keys sort so), as (position, RowChange).
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> TakeTableOps(
      KeyValueStore& store, std::string_view unit_id);
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
  // Held changes: in memory, or, once more than spec.held_memory_bytes are,
  // in the spill store (<name>-pending: local RocksDB without changelog).
  // Neither survives a restart: the input is read again from the first
  // held change (PrepareCommit).
  std::unique_ptr<KeyValueStore> held_;
  KeyValueStore* spill_ = nullptr;
  static constexpr int kChangesHeld = 1;   // u keys
  static constexpr int kTableOpsHeld = 2;  // w keys
  static constexpr int kWaitingHeld = 4;   // i keys
  static constexpr int kAllHeld = 7;
  struct HeldUnit {
    int kinds = 0;            // k*Held
    bool spilled = false;     // its changes are in spill_
    int64_t first_offset = -1;
    size_t bytes = 0;         // in memory
  };
  absl::flat_hash_map<std::string, HeldUnit> units_;
  size_t held_bytes_ = 0;
  // Records at or below this offset were processed before the last commit.
  int64_t processed_through_ = -1;
  int64_t processed_through_written_ = -1;
  // The release under way in pieces, if any (persisted).
  std::optional<ReleaseProgress> release_progress_;
  bool release_progress_dirty_ = false;
  int64_t last_offset_ = -1;
  Counter* spilled_ = nullptr;
  Gauge* held_gauge_ = nullptr;
  Counter* emitted_ = nullptr;
  Counter* oversize_ = nullptr;
  Counter* snapshot_rows_reshaped_ = nullptr;
  Counter* stale_ = nullptr;
  Counter* unresolved_ = nullptr;
  Counter* reshaped_ = nullptr;
  Counter* built_cached_ = nullptr;
  Counter* built_scanned_ = nullptr;
  Gauge* assembled_gauge_ = nullptr;
  AssembledRoots assembled_;
  AssembledRoots::Children scanned_;  // BuildAggregate: a scan, to be cached
  UnavailableValues unavailable_;
  RowFields clash_fields_;
  RowFields row_fields_;  // ApplyShape
  std::vector<std::string> own_fields_;  // array fields, source, version
  std::string out_;  // scratch for the aggregate JSON
};

}  // namespace tributary::internal
