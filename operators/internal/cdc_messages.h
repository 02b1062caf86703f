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
// snapshot rows waiting for transaction `id` (kind 'I'), or change events of
// transaction `id` that were bad input and went to the dead-letter topic
// (kind 'P', poisoned: they count, but the transaction cannot be whole).
struct Run {
  // Whether runs of `kind` name a transaction (else a snapshot LSN).
  static bool HasId(char kind) { return kind == 'C' || kind == 'I' || kind == 'P'; }

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
    kBegin = 'B',  // a transaction's BEGIN marker (tx_id only)
    kEnd = 'E',    // a transaction's END marker
    // A table router's report (one per commit): the runs its partitions
    // delivered since the last one, in order; then, with caught_up_ms >= 0,
    // its word that it had processed everything in its input partition
    // written before caught_up_ms (wall clock), proven by asking the cluster
    // for the partition's end offset at that time.
    kReport = 'N',
  };
  Kind kind = Kind::kReport;
  // kReport:
  // 0: root, 1..: children in spec order; kTransactionTopic: the
  // transaction-topic router's word that it read its partition to the end
  // (caught_up_ms only, no runs).
  static constexpr uint8_t kTransactionTopic = 0xff;
  uint8_t table = 0;
  int32_t source_partition = 0;  // the router task's partition of the table topic
  int64_t caught_up_ms = -1;
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

// Everything one unit (a released transaction, a snapshot, a row) does to
// one root, as an aggregate task applies it (in memory only).
struct RootSlice {
  std::string_view tx_id;
  int64_t position = -1;  // END offset; -1 for standalone units
  bool partial = false;
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

// A record for every aggregate partition (a table-wide RowChange, a batch of
// Decisions) has the key kBroadcastKeyPrefix followed by the partition
// number (decimal). No root key (raw JSON) begins with it.
inline constexpr char kBroadcastKeyPrefix = '\0';

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
  // re-delivery); 'L': what a transaction released partial holds came late:
  // to the dead-letter topic.
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
