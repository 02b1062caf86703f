// Transaction-consistent aggregates from Debezium CDC topics: the operators
// and the function that wires them into a Topology.
//
//   table topics ──route──┬─ row images, by root ─────────────────────┐
//                         └─ reports (counts) ─┐                      │
//   transaction topic ─route─ BEGIN/END ───────┴─> <app>-cdc-tx-repartition
//        (1 partition, metadata only) ──assemble── release decisions ─┤
//                                                                      v
//        <app>-cdc-aggregate-repartition (N partitions, by root id)
//        ──aggregate──> output topic (one record per transaction and root)
//
// Route (one task per input partition) decodes each change event once,
// finds its aggregate root (a child's from its parent column or the task's
// child -> root index) and sends the row change straight to the root's
// aggregate partition; at every commit it reports to the assembler how many
// events of which transaction its partition delivered. Assemble (a single
// task, on counts, positions and progress marks only) decides when each
// transaction is complete and releases transactions strictly in commit order
// (END markers' offsets in the transaction topic), broadcasting its
// decisions to every aggregate partition. Aggregate (parallel by root id)
// holds each transaction's row changes until its release arrives, drops
// repeats and re-delivered transactions, then applies the transaction root
// by root and emits each touched root's aggregate once. See docs/design.md.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "engine/topology.h"
#include "operators/debezium.h"

namespace tributary {

// What AddTransactionAggregate's operators emit (tags metric_names::kTaskTag
// and kOperatorTag).
namespace metric_names {
inline constexpr std::string_view kCdcTransactionsReleasedTotal = "cdc-transactions-released-total";
inline constexpr std::string_view kCdcTransactionsReleasedPartialTotal =
    "cdc-transactions-released-partial-total";
// Transactions whose END counts events that never came (every input
// partition moved past them), each also dead-lettered.
inline constexpr std::string_view kCdcTransactionsShortOfEndTotal =
    "cdc-transactions-short-of-end-total";
// Events of a transaction that came after it was released partial (sent to
// the dead-letter topic, never applied).
inline constexpr std::string_view kCdcLateEventsTotal = "cdc-late-events-total";
// Transactions whose END never came, expired (their changes dead-lettered).
inline constexpr std::string_view kCdcTransactionsExpiredTotal =
    "cdc-transactions-expired-total";
// PostgreSQL: transactions without END retired because the source's xids
// moved 2^31 past them (their xid comes again; changes dead-lettered).
inline constexpr std::string_view kCdcTransactionsXidRetiredTotal =
    "cdc-transactions-xid-retired-total";
// Versions over aggregate.max.bytes, emitted as a reference ("oversize").
inline constexpr std::string_view kCdcAggregatesOversizeTotal = "cdc-aggregates-oversize-total";
inline constexpr std::string_view kCdcTransactionsRestartedTotal =
    "cdc-transactions-restarted-total";
inline constexpr std::string_view kCdcTransactionsCompletedByPositionTotal =
    "cdc-transactions-completed-by-position-total";
// Repeats a router dropped, and markers and events of transactions released
// already (counted by the assembler from the routers' reports).
inline constexpr std::string_view kCdcDuplicatesDroppedTotal = "cdc-duplicates-dropped-total";
inline constexpr std::string_view kCdcOrphanChildDeletesTotal = "cdc-orphan-child-deletes-total";
// kCdcTransactionsPending and kCdcOldestPendingAgeMs (gauges) are in
// engine/metrics.h: the status page shows them.
inline constexpr std::string_view kCdcAggregatesEmittedTotal = "cdc-aggregates-emitted-total";
inline constexpr std::string_view kCdcStaleSlicesDroppedTotal = "cdc-stale-slices-dropped-total";
inline constexpr std::string_view kCdcRowsReshapedTotal = "cdc-rows-reshaped-total";
// Released transactions delivered again with more events than released with.
inline constexpr std::string_view kCdcTransactionsIncompleteAtSourceTotal =
    "cdc-transactions-incomplete-at-source-total";
inline constexpr std::string_view kCdcSnapshotRowsReshapedTotal =
    "cdc-snapshot-rows-reshaped-total";
// Aggregate tasks: bytes of held changes (in memory), and bytes spilled to
// the local store.
inline constexpr std::string_view kCdcHeldChangeBytes = "cdc-held-change-bytes";  // gauge
inline constexpr std::string_view kCdcHeldBytesSpilledTotal = "cdc-held-bytes-spilled-total";
inline constexpr std::string_view kCdcUnavailableValuesUnresolvedTotal =
    "cdc-unavailable-values-unresolved-total";
// Aggregate tasks: versions built from the assembled roots in memory, and by
// a scan of the root's children in the store; the bytes assembled.
inline constexpr std::string_view kCdcAggregateBuildsCachedTotal =
    "cdc-aggregate-builds-cached-total";
inline constexpr std::string_view kCdcAggregateBuildsScannedTotal =
    "cdc-aggregate-builds-scanned-total";
inline constexpr std::string_view kCdcAggregateCacheBytes = "cdc-aggregate-cache-bytes";  // gauge
}  // namespace metric_names

struct CdcTable {
  std::string topic;            // e.g. dbserver1.inventory.orderline
  std::string data_collection;  // as END markers name it: inventory.orderline
  std::string key_column = "id";
  // Children only: the column holding the root's key, and the array field of
  // the aggregate the child rows go to.
  std::string parent_column;
  std::string array_field;
};

// What happens to a transaction that stays incomplete (END seen, counts not
// matched) at the head of the commit-order queue for `incomplete_timeout`.
enum class IncompletePolicy {
  kHold,     // keep waiting (later transactions wait too); warn every interval
  kRelease,  // release what was buffered, marked "partial" in source_tx
  kFail,     // stop the task with an error naming the transaction
};

struct TransactionAggregateSpec {
  std::string name = "cdc";  // prefix of node, store and internal topic names
  CdcTable root;
  std::vector<CdcTable> children;
  std::string transaction_topic;
  std::string output_topic;
  TxIdMode tx_id_mode = TxIdMode::kPostgres;
  // kReadable: with schemas on, logical types (decimals, dates, timestamps,
  // json, ...) become readable JSON values; kRaw: row images as sent.
  ValueMode value_mode = ValueMode::kReadable;
  IncompletePolicy incomplete_policy = IncompletePolicy::kHold;
  absl::Duration incomplete_timeout = absl::Minutes(5);
  // What happens, at once, to a transaction known never to be whole: one of
  // its events was bad input (dead-lettered), or its END counts events that
  // never came (every input partition has moved past it; the END then goes
  // to the dead-letter topic too). kRelease (the default): what arrived goes
  // out marked "partial" in source_tx, and later transactions follow: one
  // bad record neither stops the pipeline nor is lost (it is in the
  // dead-letter topic with its transaction id). kHold: it and every later
  // transaction wait (a restart with kRelease lets them go); kFail: stop
  // with an error naming it.
  IncompletePolicy partial_policy = IncompletePolicy::kRelease;
  // How many released transaction ids are remembered to drop re-deliveries.
  int64_t released_retention = 1'000'000;
  // Partitions of the by-root repartition topic; 0: as many as root.topic.
  int32_t aggregate_partitions = 0;
  // Per aggregate task: bytes of row changes held in memory until their
  // transaction's release; beyond it they spill to a local RocksDB store.
  size_t held_memory_bytes = 16u << 20;
  // Per aggregate task: bytes of recently built roots' children kept in
  // memory (least recently used go first), so that the next version of such
  // a root is built from its changes instead of a scan of all its children
  // in the store; 0: every version scans.
  size_t aggregate_cache_bytes = 8u << 20;
  // The largest output record (key + value). A version over it is emitted
  // as a reference in its place: {"<root key column>":key, "<source
  // field>":{...}, "<version field>":n, "oversize":{"bytes":b,"limit":l}},
  // also sent to the dead-letter topic and counted: never a gap in the
  // versions, never a stall. Default: librdkafka's message.max.bytes
  // (1,000,000) less 1 KiB of record overhead; 0: no limit.
  size_t max_aggregate_bytes = 998'976;
  // Per aggregate task: a released transaction is applied in pieces of
  // about this many changes (whole roots), each committed in its own Kafka
  // transaction, so that a huge one never outlasts transaction.timeout.ms;
  // 0: in one piece.
  size_t release_piece_changes = 20'000;

  // Completion when END's counts cannot be trusted (a second BEGIN: the
  // connector restarted inside the transaction). Each table router asks the
  // cluster every `progress_interval` whether it has read its partition to
  // the end; a report taken at least `visibility_grace` after the END was
  // seen proves the partition holds nothing more of the transaction. The
  // grace covers the time between END becoming readable and the last of the
  // transaction's events becoming readable (the connector's producer writes
  // them before END, but partitions are acknowledged independently), plus
  // clock skew between instances.
  absl::Duration progress_interval = absl::Seconds(1);
  // Routers' reports and the assembler's decisions go out at their task's
  // commit; with something to send, a task asks for a commit this often, so
  // that a long commit.interval.ms (at-least-once: 30 s) does not hold them.
  absl::Duration report_interval = absl::Milliseconds(100);
  absl::Duration visibility_grace = absl::Seconds(1);

  // What Debezium writes for a value it did not get (an unchanged TOASTed
  // column under the default replica identity): its
  // `unavailable.value.placeholder`. Such a column keeps its previous value.
  std::string unavailable_placeholder = "__debezium_unavailable_value";

  // The aggregate's own fields, beside the root's columns and the children's
  // array fields. A root column of the same name is an error.
  std::string source_field = "source_tx";
  std::string version_field = "version";

  // The interactive query of the current aggregates (Topology::AddQuery):
  // GET /<query_name>/<root key> on the query endpoint answers the
  // aggregate as its latest version on the output topic shows it; empty: no
  // query.
  std::string query_name = "aggregates";
};

// Adds the route / assemble / aggregate operators for `spec` to `topology`.
absl::Status AddTransactionAggregate(Topology& topology,
                                     const TransactionAggregateSpec& spec);

absl::StatusOr<IncompletePolicy> ParseIncompletePolicy(std::string_view text);

}  // namespace tributary
