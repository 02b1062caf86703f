// TxAssembler: the second CDC operator, run as ONE task, on metadata only.
// Table routers report, at every commit, how many events of which
// transaction (or snapshot) each input partition delivered, in partition
// order; the transaction router forwards BEGIN/END markers, which it queues
// by their position in the transaction topic (the commit order). It decides
// when each transaction is complete and releases transactions strictly in
// that order: a release is a Decision broadcast to every aggregate partition
// (batched, one record per partition per commit), whose task holds the
// transaction's row images (sent there directly by the routers) and applies
// them. See docs/design.md for why the decisions are right (G1-G3).
//
// Counting. A report counts every event a router decoded, repeats
// included (a connector restart delivers events again); the aggregate tasks
// drop repeats by event identity (transaction, source position, table, op,
// row key: two distinct events of one transaction never share all five).
//
// Completion. Fast path: END has arrived, exactly one BEGIN was seen before
// it, and the events counted per table equal END's counts. When a
// second BEGIN was seen before the END (the connector restarted inside the
// transaction: END then counts only what was written after the restart; a
// BEGIN after the END is the whole transaction delivered again and changes
// nothing) or more events are counted than END counts (repeats), counts
// prove nothing; the transaction is complete once every
// partition of every consumed table has moved past it: the partition has
// delivered an event of a transaction that commits later (each partition
// holds a transaction's events before those of any later one), or its router
// has reported reading the partition to its end at least
// spec.visibility_grace after the END was seen (RoutedEvent::kProgress).
//
// State (changelogged, so a restarted or moved task resumes exactly):
//   <name>-tx-meta     T<match id> -> pending: BEGINs seen, events counted per
//                      table (and how many of them were poisoned), END
//                      (position, LSN, id, counts) once seen;
//                      R<match id> -> pos, events released;  P<pos> -> match id (released);
//                      G<table><partition> -> partition progress;
//                      S<lsn> -> open snapshot
//
// Initial snapshots (op 'r', source.snapshot first/true/last...). A
// snapshot is one consistent read at one position of the source log (with
// PostgreSQL: every row carries the snapshot's LSN); transactions committed
// before it are in it, those committed after it are streamed after it. Its
// rows wait in the aggregate tasks; it is applied as one unit in commit
// order (a Decision 'S'): after
// every queued transaction whose END's LSN is below the snapshot's, before
// every one above it (without LSNs, before every queued transaction). It is
// complete once every partition of every table has moved past it: the
// partition delivered a streaming event after its snapshot rows, or rows of a
// later snapshot, or an event of a transaction committed after it, or its
// router read it to the end at least visibility_grace after the snapshot was
// known to have ended for that table (its last_in_data_collection or last
// record, or a marker of a transaction committed after it: the last record
// may be in a table this topology does not read). Applying it emits one
// version of each root it touched. Several snapshots (a connector re-created
// with snapshot.mode=initial) are kept apart by their LSN.
//
// Incremental snapshot rows, events without a transaction block and
// table-wide operations (TRUNCATE, ALTER TABLE) never reach this task: see
// CdcRouter and AggregateJoin.
//
// The in-memory summary (counts per pending transaction, partition
// progress, snapshot state) is rebuilt from the stores in Init.
#pragma once

#include <map>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "engine/processor.h"
#include "operators/internal/cdc_messages.h"
#include "operators/internal/retained_ids.h"
#include "operators/transaction_aggregate.h"

namespace tributary::internal {

class TxAssembler : public Processor {
 public:
  explicit TxAssembler(const TransactionAggregateSpec& spec);

  absl::Status Init(ProcessorContext& context) override;
  absl::Status Process(const Record& record) override;
  // Broadcasts the decisions taken since the last commit.
  absl::Status PrepareCommit() override;

  static std::string MetaStore(const TransactionAggregateSpec& spec) {
    return spec.name + "-tx-meta";
  }
  // The repartition topic by root key (route, assemble -> aggregate).
  static std::string AggregateTopic(const TransactionAggregateSpec& spec) {
    return spec.name + "-aggregate-repartition";
  }
  // The partitioner of the sinks to the aggregate topic: a broadcast
  // record's partition is in its key (kBroadcastKeyPrefix); nullopt (hash of
  // the key) for every other.
  static std::optional<int32_t> BroadcastPartition(const Record& record, int32_t partitions);

 private:
  struct Pending {
    std::vector<int64_t> buffered;  // events counted per table
    int64_t begins = 0;             // BEGIN markers seen
    bool has_end = false;
    int64_t end_position = -1;
    int64_t end_lsn = -1;           // PostgreSQL: the END id's LSN part
    // Wall clock when END arrived here: end_seen this run (a restart sets
    // it to the restart, as a proof by reading to the end must be newer
    // still); end_arrived as first seen, kept across restarts (the
    // incomplete timeout counts from it).
    TimestampMs end_seen{-1};
    int64_t end_arrived_ms = -1;
    // Wall clock when an event of it was last counted (-1: none yet); kept
    // across restarts. An END that has not come `incomplete_timeout` after
    // it, with the transaction topic read to its end, will not come.
    int64_t last_event_ms = -1;
    std::string tx_id;
    std::vector<int64_t> expected;  // per table, from END
    // Of the events counted, per table, those that were bad input
    // (dead-lettered); empty when none.
    std::vector<int64_t> poisoned;
    int64_t PoisonedTotal() const {
      int64_t n = 0;
      for (int64_t p : poisoned) n += p;
      return n;
    }
    int64_t Poisoned(size_t table) const {
      return table < poisoned.size() ? poisoned[table] : 0;
    }
  };

  // What is known of one input partition (one table topic partition).
  struct PartitionProgress {
    // The largest END position of a transaction one of whose events this
    // partition has delivered: every transaction at or before it that has
    // events here has delivered them all.
    int64_t passed = -1;
    // Wall clock of the last proof that the partition was read to its end.
    int64_t caught_up_ms = -1;
    // The last transaction seen here whose END was not known yet.
    std::string unresolved;
    // Snapshots (by LSN): the latest that delivered rows here, and the
    // latest this partition has moved past.
    int64_t snapshot_rows_lsn = -1;
    int64_t past_snapshot_lsn = -1;
    // The largest END LSN of a transaction one of whose events came here.
    int64_t passed_lsn = -1;
    bool dirty = false;  // changed since last persisted
  };

  // kShort: END's counts are not met and every partition has moved past
  // the transaction: the missing events will not come.
  enum class Completion { kIncomplete, kByCounts, kByPosition, kShort };

  absl::Status Rebuild();
  static std::string EncodePending(const Pending& pending);
  static absl::StatusOr<Pending> DecodePending(std::string_view bytes, size_t tables);
  // Writes `pending` under T<match id>.
  absl::Status PersistPending(std::string_view match_id, const Pending& pending);
  absl::Status OnReport(const RoutedEvent& report);
  // `events` of transaction `match_id` from `table`[`partition`]; sets
  // `ready` when a release may now be possible.
  absl::Status OnRun(uint8_t table, int32_t partition, const std::string& match_id,
                     int64_t events, bool poisoned, bool& ready);
  absl::Status OnBegin(std::string_view match_id);
  absl::Status OnEnd(std::string_view match_id, const RoutedEvent& event);
  void OnProgress(uint8_t table, int32_t partition, int64_t caught_up_ms);
  // The END position of a released transaction, or nullopt; with `events`,
  // how many events it was released with (-1: not known); with `partial`,
  // whether it was released partial.
  absl::StatusOr<std::optional<int64_t>> ReleasedPosition(std::string_view match_id,
                                                          int64_t* events = nullptr,
                                                          bool* partial = nullptr);
  // A released transaction's END delivered again: reports when it counts
  // more events than the transaction was released with.
  absl::Status CheckRedeliveredEnd(const RoutedEvent& end, int64_t position,
                                   int64_t released_events);
  PartitionProgress& ProgressOf(uint8_t table, int32_t partition);
  // Whether `progress.passed` moved forward.
  bool NotePassed(PartitionProgress& progress, int64_t position);
  absl::Status PersistProgress();
  Completion CompletionOf(const Pending& pending) const;
  // Whether a transaction complete by `completion` has every event: no
  // poisoned event took the place of one END counts.
  bool Whole(const Pending& pending, Completion completion) const;
  // Whether some partition is not yet proven past `pending`; with `names`,
  // all such partitions as "topic[p]" (for messages).
  // With `later_events_only`, only an event of a later transaction proves a
  // partition past (not reading it to its end).
  bool PartitionsBehind(const Pending& pending, std::vector<std::string>* names,
                        bool later_events_only = false) const;
  absl::Status ReleaseReady();
  // The head `match_id` is known never to be whole (`completion`): applies
  // spec.partial_policy. Sets `release` when it goes out now (marked partial).
  absl::Status OnPartial(const std::string& match_id, Completion completion, bool& release);
  // The description of `pending`'s counts, "table counted/expected, ...".
  std::string CountsText(const Pending& pending) const;
  absl::Status Release(const std::string& match_id, bool partial);
  // Replaces `match_id`'s pending key by its released id at `position`
  // (with its event count, and whether it went out partial).
  absl::Status RememberReleased(const std::string& match_id, const Pending& pending,
                                int64_t position, bool partial);
  // Sends the decisions taken so far to every aggregate partition.
  absl::Status FlushDecisions();
  // An initial snapshot not yet applied.
  struct Snapshot {
    int64_t lsn = -1;
    int64_t rows = 0;
    std::vector<int64_t> table_end_ms;  // per table: when known to have ended
    TimestampMs since{0};
  };
  absl::Status OnSnapshotRun(uint8_t table, int32_t partition, const Run& run);
  // The marker of a transaction whose END (or BEGIN) LSN is `lsn`: every
  // snapshot below it has ended.
  absl::Status NoteStreamingAt(int64_t lsn);
  // The same for a snapshot.
  bool PartitionsBehindSnapshot(const Snapshot& snapshot,
                                std::vector<std::string>* names) const;
  // Whether some partition neither `moved_past` nor was read to its end at
  // least visibility_grace after `seen_ms(table)` (-1: never).
  bool PartitionsBehind(absl::FunctionRef<int64_t(size_t)> seen_ms,
                        absl::FunctionRef<bool(const PartitionProgress&)> moved_past,
                        std::vector<std::string>* names) const;
  absl::Status PersistSnapshot(const Snapshot& snapshot);
  // Decides that the earliest snapshot is applied now.
  absl::Status ApplySnapshot();
  // The LSN part of a PostgreSQL transaction id; -1 otherwise.
  int64_t IdLsn(std::string_view tx_id) const;
  absl::Status CheckHead(TimestampMs now);
  // Transactions whose END never came (see Pending::last_event_ms): under
  // incomplete_policy kRelease their held changes go to the dead-letter
  // topic (there is no place in commit order to apply them), kHold warns,
  // kFail stops.
  absl::Status ExpireEndless(TimestampMs now);
  // PostgreSQL's 32-bit xids wrap: the xid of a transaction whose END never
  // came is given again 2^32 xids later, and that transaction would merge
  // with what is held of it. A transaction cannot still be open once the
  // source's newest xid is 2^31 past its own (PostgreSQL stops assigning
  // xids before an unfrozen one gets that old), so from then on such a
  // transaction is retired, whatever incomplete.transaction.policy says:
  // its held changes go to the dead-letter topic and nothing of it is
  // remembered (the next transaction of that xid is a new one).
  // `xid_frontier_`: the newest xid of an END seen since Init (modulo 2^32;
  // -1: none yet, nothing is retired).
  void NoteXid(std::string_view match_id);
  bool XidRetired(std::string_view match_id) const;
  absl::Status RetireWrapped(const std::vector<std::string>& match_ids);
  // The transaction-topic partitions' proofs of having been read to the end.
  int64_t TransactionTopicCaughtUpMs() const;
  int TableOf(std::string_view data_collection) const;
  void PublishGauges();

  const TransactionAggregateSpec& spec_;
  ProcessorContext* context_ = nullptr;
  KeyValueStore* meta_ = nullptr;
  size_t tables_ = 0;
  absl::flat_hash_map<std::string, Pending> pending_;
  std::map<int64_t, std::string> queue_;  // END position -> match id
  std::vector<std::vector<PartitionProgress>> progress_;  // [table][partition]
  RetainedIds released_ids_;  // in meta_, ordered by END position
  int64_t max_released_position_ = -1;
  std::map<int64_t, Snapshot> snapshots_;  // by LSN
  std::vector<Decision> decisions_;  // not yet sent
  int64_t head_position_ = -1;
  TimestampMs head_since_{0};
  TimestampMs last_warning_{0};
  std::string warned_partial_;  // the held partial head last warned about
  std::vector<int64_t> tx_topic_caught_up_ms_;  // per transaction-topic partition
  absl::flat_hash_map<std::string, bool> warned_endless_;  // under kHold
  int64_t xid_frontier_ = -1;

  Counter* released_ = nullptr;
  Counter* duplicates_ = nullptr;
  Counter* partial_ = nullptr;
  Counter* restarted_ = nullptr;
  Counter* by_position_ = nullptr;
  Counter* lost_at_source_ = nullptr;
  Counter* short_ = nullptr;
  Counter* late_ = nullptr;
  Counter* expired_ = nullptr;
  Counter* xid_retired_ = nullptr;
  Gauge* pending_gauge_ = nullptr;
  Gauge* oldest_age_gauge_ = nullptr;
};

}  // namespace tributary::internal
