// CdcRouter: the first CDC operator, one task per input partition. The
// transaction-topic router forwards BEGIN/END markers to the assembler. A
// table router decodes each change event once and sends:
//   - its row image, as RowChanges keyed by aggregate root, straight to the
//     aggregate topic (a child's root comes from its parent column, or, for a
//     delete or a move, from this task's child -> root index: the table topic
//     is keyed by the child's key, so every event of one child comes to this
//     task, in order); a table-wide operation (TRUNCATE, a new table shape)
//     to every aggregate partition;
//   - to the assembler, at every commit, one report of what the partition
//     delivered (RoutedEvent::kReport: per unit, in order, how many events),
//     plus the proof that it was read to its end when it was.
// Under exactly-once both go out in one Kafka transaction, so a report is
// never read before the rows it counts; under at-least-once the stream
// thread has the rows acknowledged before PrepareCommit.
//
// State (<name>-route-<table>, changelogged): x<child key> -> root key;
// L -> the last transaction (match id) seen here (an incremental snapshot
// row waits for it). In memory: the report being built, the shape sent last.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "engine/processor.h"
#include "operators/debezium.h"
#include "operators/internal/cdc_messages.h"
#include "operators/transaction_aggregate.h"

namespace tributary::internal {

class CdcRouter : public Processor {
 public:
  // `table`: index into [root, children...]; -1 routes the transaction topic.
  CdcRouter(const TransactionAggregateSpec& spec, int table);

  absl::Status Init(ProcessorContext& context) override;
  absl::Status Process(const Record& record) override;
  absl::Status PrepareCommit() override;

  // The table router's store.
  static std::string StateStore(const TransactionAggregateSpec& spec, int table) {
    return spec.name + "-route-" + std::to_string(table);
  }
  // Its children: the sinks to the assembler and to the aggregate topic.
  static std::string ReportSink(const TransactionAggregateSpec& spec, int table) {
    return spec.name + "-route-" + std::to_string(table) + "-sink";
  }
  static std::string RowSink(const TransactionAggregateSpec& spec, int table) {
    return spec.name + "-route-" + std::to_string(table) + "-rows";
  }

 private:
  absl::Status RouteMarker(const Record& record);
  absl::Status RouteChange(const Record& record);
  // `error`, marked bad input, for the change event in `record`; when its
  // transaction is known (`transaction`, or found in the value's transaction
  // block), the event is counted for it as poisoned (a 'P' run).
  absl::Status Poisoned(const Record& record, absl::Status error,
                        const std::optional<TransactionRef>& transaction);
  // Notes the proof that the partition was read to its end (sent with the
  // next report).
  absl::Status ReportProgress(TimestampMs now);
  // Counts one event of `kind`/`id` (or snapshot `lsn`) read from
  // `partition` into the report.
  void Count(char kind, std::string_view id, int64_t lsn, int32_t partition);
  absl::Status NoteLastTransaction(std::string_view match_id);
  // Whether the event (op, key) of transaction `tx` at `position` of
  // `partition` is a repeat (see latest_); notes it when not.
  bool Repeat(int32_t partition, std::string_view tx, char op, std::string_view key);
  // Sends `change` keyed by `root`, or to every partition when `root` is
  // nullopt.
  absl::Status Send(std::optional<std::string_view> root, const RowChange& change);
  // Child routers: forgets this partition's index of the table (TRUNCATE).
  absl::Status ForgetChildren();

  const TransactionAggregateSpec& spec_;
  const int table_;
  std::vector<std::string> fields_;  // key column (+ parent column)
  DebeziumDecoder decoder_;
  ProcessorContext* context_ = nullptr;
  KeyValueStore* state_ = nullptr;  // table routers
  std::string position_;  // scratch
  std::string encoded_;
  std::string index_key_;
  std::string last_tx_;
  bool last_tx_dirty_ = false;
  RoutedEvent report_;     // kind kReport, being built
  bool report_due_ = false;
  uint64_t sent_shape_ = 0;  // hash of the shape last broadcast
  // Per source partition: the transaction it delivered last, the largest
  // source position among those events and the events (op, key) at it. A
  // transaction's events come in log order, so an event of it at a smaller
  // position, or at that one again, is a repeat (a restarted connector sends
  // events again): dropped, so that counts stay exact.
  struct Latest {
    std::string tx;
    std::string position;
    std::vector<std::string> at_position;
  };
  absl::flat_hash_map<int32_t, Latest> latest_;
  std::string identity_;  // scratch
  Counter* orphans_ = nullptr;
  Counter* repeats_ = nullptr;
};

// Zero-pads every all-digit ':'-separated part of a source position to 20
// digits so that byte order equals log order (PostgreSQL LSNs, MySQL pos).
void SortablePosition(std::string_view position, std::string& out);

}  // namespace tributary::internal
