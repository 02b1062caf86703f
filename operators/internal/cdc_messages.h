// The records the CDC operators pass to each other through repartition
// topics, and their binary encoding (see codec.h). Internal to operators/.
// Lifetime: decoded views point into the encoded bytes they came from.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace tributary::internal {

// What a table router saw of one unit in a partition, in partition order:
// `events` change events of transaction `id` (kind 'C'), or rows of the
// initial snapshot at LSN `lsn` (kind 'i'; 'T' when they include the last
// row of its table, 'L' when they include its very last row), or incremental
// snapshot rows waiting for transaction `id` (kind 'I').
struct Run {
  char kind = 'C';
  int32_t partition = 0;  // of the table topic
  std::string id;    // 'C': match id
  int64_t lsn = -1;  // snapshot kinds
  int64_t events = 0;
};

// Route -> assemble (one partition): transaction markers from the
// transaction-topic router; from each table router, at every commit, a
// report of what its partition delivered (metadata only: the row images go
// to the aggregate topic, see RowChange).
struct RoutedEvent {
  enum class Kind : char {
    kChange = 'C',      // a change event inside a source transaction
    kStandalone = 'S',  // a change event that is a unit of its own (snapshot)
    kBegin = 'B',       // a transaction's BEGIN marker (tx_id only)
    kEnd = 'E',         // a transaction's END marker
    // A table router's word that it had processed everything in its input
    // partition written before `caught_up_ms` (wall clock), proven by asking
    // the cluster for the partition's end offset at that time.
    kProgress = 'P',
    // A table router's report (one per commit): the runs its partition
    // delivered since the last one, in order, then (caught_up_ms >= 0) a
    // kProgress proof.
    kReport = 'N',
  };
  Kind kind = Kind::kChange;
  // kChange / kStandalone / kProgress:
  uint8_t table = 0;             // 0: root, 1..: children in spec order
  int32_t source_partition = 0;  // partition of the table topic
  // kStandalone: part of an initial snapshot ('i'; 'T' for the last row of
  // its table, 'L' for its last row), or not (0: an incremental snapshot or an event without a
  // transaction block).
  char snapshot = 0;
  // kChange / kStandalone:
  char op = 'c';              // Debezium op
  std::string_view position;  // sortable source position
  std::string_view key;       // the row's key column, raw JSON
  std::optional<std::string_view> parent;  // children: parent column of 'after'
  std::optional<std::string_view> row;     // 'after' image; nullopt on delete
  // The table's shape (ChangeEvent::shape): on every kStandalone event, and
  // on a router's first kChange and whenever the shape changes; nullopt on
  // the others.
  std::optional<std::string_view> shape;
  // kProgress / kReport:
  int64_t caught_up_ms = -1;
  // kReport:
  std::vector<Run> runs;
  // kBegin / kEnd:
  std::string_view tx_id;  // the marker's full id, as written
  int64_t end_position = -1;  // offset of the END in the transaction topic
  std::vector<std::pair<std::string_view, int64_t>> counts;  // data collection -> n
  int64_t ts_ms = 0;
};

std::string EncodeRoutedEvent(const RoutedEvent& event);
absl::StatusOr<RoutedEvent> DecodeRoutedEvent(std::string_view bytes);

// One operation on one root's aggregate.
struct SliceOp {
  enum class Kind : char {
    kRootUpsert = 'R',
    kRootDelete = 'D',
    kChildUpsert = 'c',
    kChildDelete = 'd',
    // Table-wide, in broadcast slices only:
    kShape = 'S',     // `table` has columns `row` (a shape) from here on
    kTruncate = 'T',  // every row of `table` is gone
  };
  Kind kind = Kind::kRootUpsert;
  uint8_t table = 0;
  std::string_view key;  // child key (children), raw JSON
  std::string_view row;  // upserts: the row; kShape: the shape
};

// Assemble -> aggregate, keyed by root key: everything one released
// transaction does to one root.
struct RootSlice {
  std::string_view tx_id;
  int64_t position = -1;  // END offset; -1 for standalone units
  bool partial = false;
  // Part of an initial snapshot: apply, but emit nothing yet.
  bool snapshot_hold = false;
  // The initial snapshot is complete: emit the root's aggregate (no ops).
  bool snapshot_flush = false;
  // A row of an incremental snapshot: emit only if it changes the aggregate.
  bool incremental = false;
  // Part of a transaction with table-wide operations (a TRUNCATE): apply and
  // remember the root, but emit nothing until the transaction's flush.
  bool hold = false;
  // Broadcast slices only: emit every root the held slices and truncates of
  // this transaction touched, once each.
  bool flush = false;
  std::vector<SliceOp> ops;
};

// Assemble -> every aggregate partition: a broadcast slice's record key is
// kBroadcastKeyPrefix followed by the partition number (decimal). No root
// key (raw JSON) begins with it.
inline constexpr char kBroadcastKeyPrefix = '\0';

std::string EncodeRootSlice(const RootSlice& slice);
absl::StatusOr<RootSlice> DecodeRootSlice(std::string_view bytes);

// Route -> aggregate, keyed by root key (or kBroadcastKeyPrefix + partition
// for a table-wide operation, sent to every partition): one operation of one
// change event on one root, in the unit it belongs to.
struct RowChange {
  enum class Unit : char {
    kTransaction = 'T',  // unit_id: the match id; applied at its release
    kSnapshot = 'S',     // unit_id: the snapshot's id; applied with it
    kStandalone = 'A',   // an event without transaction: applied at once
    kIncremental = 'I',  // an incremental snapshot row; unit_id: the
                         // transaction it waits for ("" none)
  };
  Unit unit = Unit::kTransaction;
  std::string_view unit_id;
  std::string_view position;  // sortable source position
  char op = 'c';              // Debezium op
  SliceOp change;             // kShape: change.row is the shape
  // kIncremental: the row's table shape, when known.
  std::optional<std::string_view> shape;
  // kIncremental: where the row was read, keeping waiting rows apart.
  int32_t source_partition = 0;
  int64_t source_offset = 0;
};

// Assemble -> every aggregate partition (key kBroadcastKeyPrefix +
// partition), at every commit: the units released since, in commit order.
struct Decision {
  // 'R': release transaction; 'S': apply snapshot; 'W': apply the
  // incremental snapshot rows waiting for a transaction released before
  // they came; 'D': drop what a transaction released already holds (a
  // re-delivery).
  char kind = 'R';
  std::string match_id;    // 'R', 'W', 'D'
  int64_t position = -1;   // 'R': END offset
  bool partial = false;    // 'R'
  int64_t lsn = -1;        // 'S'
};

// The first byte of a record on the aggregate topic tells which it is.
inline constexpr char kRowChangeTag = 'X';
inline constexpr char kDecisionsTag = 'Y';

std::string EncodeRowChange(const RowChange& change);
absl::StatusOr<RowChange> DecodeRowChange(std::string_view bytes);
std::string EncodeDecisions(const std::vector<Decision>& decisions);
absl::StatusOr<std::vector<Decision>> DecodeDecisions(std::string_view bytes);

// Where an initial snapshot's rows wait (a unit id; sorts before every xid).
std::string SnapshotUnitId(int64_t lsn);

// A sortable encoding of a raw JSON key: integers by numeric value, anything
// else by its text after all integers.
std::string SortableKey(std::string_view raw_json);

}  // namespace tributary::internal
