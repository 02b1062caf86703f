#include "operators/internal/tx_assembler.h"

#include <deque>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/absl_compat.h"
#include "base/status_macros.h"
#include "operators/internal/codec.h"
#include "operators/internal/log.h"
#include "operators/internal/tx_assembler_keys.h"

namespace tributary::internal {
namespace {

using tx_keys::MetaKey;
using tx_keys::kPendingPrefix;
using tx_keys::kProgressPrefix;
using tx_keys::kReleasedOrderPrefix;
using tx_keys::kReleasedPrefix;
using tx_keys::kSnapshotPrefix;

constexpr absl::Duration kCheckInterval = absl::Seconds(1);
// Decisions per broadcast record (~30 bytes each); more go out before the
// commit.
constexpr size_t kMaxDecisionsPerRecord = 4096;
// Flags of a pending transaction (EncodePending).
constexpr char kPendingHasEnd = 1;
constexpr char kPendingPoisoned = 2;
constexpr char kPendingArrival = 4;
constexpr char kPendingLastEvent = 8;

std::string ProgressKey(size_t table, size_t partition) {
  std::string key(1, kProgressPrefix);
  key.push_back(static_cast<char>(table));
  PutOrderedInt64(key, static_cast<int64_t>(partition));
  return key;
}

}  // namespace

TxAssembler::TxAssembler(const TransactionAggregateSpec& spec)
    : spec_(spec),
      tables_(1 + spec.children.size()),
      released_ids_(kReleasedPrefix, kReleasedOrderPrefix, spec.released_retention) {}

absl::Status TxAssembler::CheckRedeliveredEnd(const RoutedEvent& end, int64_t position,
                                              int64_t released_events) {
  int64_t counted = 0;
  for (const auto& [collection, count] : end.counts) {
    if (TableOf(collection) >= 0) counted += count;
  }
  if (released_events < 0 || counted <= released_events) return absl::OkStatus();
  // Debezium delivered this transaction again with events its first delivery
  // lacked (its END then counted only what it sent). Seen with Debezium
  // 3.6.1 after a connector restart: a change whose LSN equals its BEGIN's
  // was skipped as already processed. The release is in the past: the
  // aggregates have gone on without those events.
  lost_at_source_->Add(1);
  OperatorsLogger()->error(
      "{}: transaction {} delivered again with {} events of the consumed tables, but it was "
      "released (END at offset {}) with {}: the connector did not send all of its events the "
      "first time (a known Debezium fault on restarts), so the aggregates it touched miss "
      "them until their rows change again; an incremental snapshot of those tables repairs "
      "them",
      spec_.name, end.tx_id, counted, position, released_events);
  return absl::OkStatus();
}

int TxAssembler::TableOf(std::string_view data_collection) const {
  if (data_collection == spec_.root.data_collection) return 0;
  for (size_t i = 0; i < spec_.children.size(); ++i) {
    if (data_collection == spec_.children[i].data_collection) return static_cast<int>(i + 1);
  }
  return -1;
}

absl::Status TxAssembler::Init(ProcessorContext& context) {
  context_ = &context;
  meta_ = context.GetStateStore(MetaStore(spec_));
  if (meta_ == nullptr) {
    return absl::FailedPreconditionError("TxAssembler: its stores are not connected");
  }
  MetricTags tags{{std::string(metric_names::kTaskTag), context.task_id().ToString()},
                  {std::string(metric_names::kOperatorTag), spec_.name}};
  released_ = context.metrics().GetCounter(metric_names::kCdcTransactionsReleasedTotal, tags);
  duplicates_ = context.metrics().GetCounter(metric_names::kCdcDuplicatesDroppedTotal, tags);
  partial_ = context.metrics().GetCounter(metric_names::kCdcTransactionsReleasedPartialTotal, tags);
  restarted_ = context.metrics().GetCounter(metric_names::kCdcTransactionsRestartedTotal, tags);
  lost_at_source_ =
      context.metrics().GetCounter(metric_names::kCdcTransactionsIncompleteAtSourceTotal, tags);
  by_position_ =
      context.metrics().GetCounter(metric_names::kCdcTransactionsCompletedByPositionTotal, tags);
  short_ = context.metrics().GetCounter(metric_names::kCdcTransactionsShortOfEndTotal, tags);
  late_ = context.metrics().GetCounter(metric_names::kCdcLateEventsTotal, tags);
  expired_ = context.metrics().GetCounter(metric_names::kCdcTransactionsExpiredTotal, tags);
  xid_retired_ = context.metrics().GetCounter(metric_names::kCdcTransactionsXidRetiredTotal, tags);
  absl::StatusOr<int32_t> tx_partitions = context.PartitionCount(spec_.transaction_topic);
  tx_topic_caught_up_ms_.assign(
      static_cast<size_t>(tx_partitions.ok() ? std::max(1, *tx_partitions) : 1), -1);
  progress_.assign(tables_, {});
  for (size_t t = 0; t < tables_; ++t) {
    const CdcTable& table = t == 0 ? spec_.root : spec_.children[t - 1];
    absl::StatusOr<int32_t> partitions = context.PartitionCount(table.topic);
    if (!partitions.ok()) {
      return absl::Status(partitions.status().code(),
                          absl::StrCat(spec_.name, ": partitions of ", table.topic, ": ",
                                       partitions.status().message()));
    }
    progress_[t].resize(static_cast<size_t>(std::max(1, *partitions)));
  }
  pending_gauge_ = context.metrics().GetGauge(metric_names::kCdcTransactionsPending, tags);
  oldest_age_gauge_ = context.metrics().GetGauge(metric_names::kCdcOldestPendingAgeMs, tags);
  TRIBUTARY_RETURN_IF_ERROR(Rebuild());
  context.Schedule(kCheckInterval, PunctuationType::kWallClockTime,
                   [this](TimestampMs now) { return CheckHead(now); });
  context.Schedule(spec_.report_interval, PunctuationType::kWallClockTime,
                   [this](TimestampMs) {
                     if (!decisions_.empty()) context_->RequestCommit();
                     return absl::OkStatus();
                   });
  return ReleaseReady();
}

// T<match id>: begins, flags (1 byte: END seen, poisoned), END position, END
// LSN, then per table the events counted and END's count, then (when
// poisoned) per table how many were poisoned, then (when known) when END
// arrived and when an event was last counted, then the transaction id.
std::string TxAssembler::EncodePending(const Pending& pending) {
  std::string out;
  out.reserve(33 + 16 * pending.buffered.size() + pending.tx_id.size());
  PutOrderedInt64(out, pending.begins);
  out.push_back(static_cast<char>((pending.has_end ? kPendingHasEnd : 0) |
                                  (pending.poisoned.empty() ? 0 : kPendingPoisoned) |
                                  (pending.end_arrived_ms >= 0 ? kPendingArrival : 0) |
                                  (pending.last_event_ms >= 0 ? kPendingLastEvent : 0)));
  PutOrderedInt64(out, pending.end_position);
  PutOrderedInt64(out, pending.end_lsn);
  for (size_t t = 0; t < pending.buffered.size(); ++t) {
    PutOrderedInt64(out, pending.buffered[t]);
    PutOrderedInt64(out, t < pending.expected.size() ? pending.expected[t] : 0);
  }
  for (size_t t = 0; t < pending.poisoned.size(); ++t) PutOrderedInt64(out, pending.poisoned[t]);
  if (pending.end_arrived_ms >= 0) PutOrderedInt64(out, pending.end_arrived_ms);
  if (pending.last_event_ms >= 0) PutOrderedInt64(out, pending.last_event_ms);
  out.append(pending.tx_id);
  return out;
}

absl::StatusOr<TxAssembler::Pending> TxAssembler::DecodePending(std::string_view bytes,
                                                                size_t tables) {
  const size_t fixed = 25 + 16 * tables;
  if (bytes.size() < fixed) return absl::DataLossError("corrupt pending transaction");
  Pending pending;
  pending.begins = GetOrderedInt64(bytes);
  const char flags = bytes[8];
  pending.has_end = (flags & kPendingHasEnd) != 0;
  pending.end_position = GetOrderedInt64(bytes.substr(9));
  pending.end_lsn = GetOrderedInt64(bytes.substr(17));
  pending.buffered.resize(tables);
  if (pending.has_end) pending.expected.resize(tables);
  for (size_t t = 0; t < tables; ++t) {
    pending.buffered[t] = GetOrderedInt64(bytes.substr(25 + 16 * t));
    if (pending.has_end) pending.expected[t] = GetOrderedInt64(bytes.substr(33 + 16 * t));
  }
  size_t id_at = fixed;
  if ((flags & kPendingPoisoned) != 0) {
    if (bytes.size() < fixed + 8 * tables) {
      return absl::DataLossError("corrupt pending transaction");
    }
    pending.poisoned.resize(tables);
    for (size_t t = 0; t < tables; ++t) {
      pending.poisoned[t] = GetOrderedInt64(bytes.substr(fixed + 8 * t));
    }
    id_at += 8 * tables;
  }
  if ((flags & kPendingArrival) != 0) {
    if (bytes.size() < id_at + 8) return absl::DataLossError("corrupt pending transaction");
    pending.end_arrived_ms = GetOrderedInt64(bytes.substr(id_at));
    id_at += 8;
  }
  if ((flags & kPendingLastEvent) != 0) {
    if (bytes.size() < id_at + 8) return absl::DataLossError("corrupt pending transaction");
    pending.last_event_ms = GetOrderedInt64(bytes.substr(id_at));
    id_at += 8;
  }
  pending.tx_id = std::string(bytes.substr(id_at));
  return pending;
}

absl::Status TxAssembler::PersistPending(std::string_view match_id, const Pending& pending) {
  return meta_->Put(MetaKey(kPendingPrefix, match_id), EncodePending(pending));
}

absl::Status TxAssembler::Rebuild() {
  pending_.clear();
  queue_.clear();
  // Before one key per pending transaction (T), its END, counts, BEGINs and
  // queue slot had keys of their own: state of that layout is not read.
  for (const char old_prefix : {'E', 'C', 'B', 'Q'}) {
    if (meta_->PrefixScan(std::string(1, old_prefix))->Valid()) {
      return absl::FailedPreconditionError(absl::StrCat(
          spec_.name, ": the store ", MetaStore(spec_),
          " holds pending transactions in the layout of an older Tributary (keys '",
          std::string(1, old_prefix), "...'), which this one does not read: let the old "
          "version finish what is pending, or reset the application (stop it, delete its "
          "state.dir and internal topics, start it again)"));
    }
  }
  for (auto it = meta_->PrefixScan(std::string(1, kPendingPrefix)); it->Valid(); it->Next()) {
    std::string match_id(it->key().substr(1));
    TRIBUTARY_ASSIGN_OR_RETURN(Pending pending, DecodePending(it->value(), tables_));
    // Later than it was: a proof by reading to the end must be newer still.
    if (pending.has_end) pending.end_seen = context_->wall_clock_time();
    if (pending.has_end) queue_[pending.end_position] = match_id;
    pending_[std::move(match_id)] = std::move(pending);
  }
  TRIBUTARY_RETURN_IF_ERROR(released_ids_.Load(*meta_));
  if (released_ids_.size() > 0) max_released_position_ = released_ids_.max_order();
  for (auto it = meta_->PrefixScan(std::string(1, kProgressPrefix)); it->Valid(); it->Next()) {
    std::string_view key = it->key();
    const std::string_view value = it->value();
    if (key.size() != 10 || value.size() != 40 || static_cast<uint8_t>(key[1]) >= tables_) {
      return absl::DataLossError("corrupt partition progress");
    }
    PartitionProgress& progress =
        ProgressOf(static_cast<uint8_t>(key[1]),
                   static_cast<int32_t>(GetOrderedInt64(key.substr(2))));
    progress.passed = GetOrderedInt64(value);
    progress.caught_up_ms = GetOrderedInt64(value.substr(8));
    progress.snapshot_rows_lsn = GetOrderedInt64(value.substr(16));
    progress.past_snapshot_lsn = GetOrderedInt64(value.substr(24));
    progress.passed_lsn = GetOrderedInt64(value.substr(32));
    progress.dirty = false;
  }
  snapshots_.clear();
  for (auto it = meta_->PrefixScan(std::string(1, kSnapshotPrefix)); it->Valid(); it->Next()) {
    const std::string_view value = it->value();
    if (it->key().size() != 9 || value.size() != 8 * (2 + tables_)) {
      return absl::DataLossError("corrupt snapshot state");
    }
    Snapshot& snapshot = snapshots_[GetOrderedInt64(it->key().substr(1))];
    snapshot.lsn = GetOrderedInt64(it->key().substr(1));
    snapshot.rows = GetOrderedInt64(value);
    snapshot.since = context_->wall_clock_time();
    for (size_t t = 0; t < tables_; ++t) {
      // Later than it was, as for ENDs.
      snapshot.table_end_ms.push_back(
          GetOrderedInt64(value.substr(16 + 8 * t)) >= 0 ? snapshot.since.value : -1);
    }
  }
  if (!pending_.empty()) {
    OperatorsLogger()->info("{}: resumed with {} pending transactions ({} with END)",
                            spec_.name, pending_.size(), queue_.size());
  }
  PublishGauges();
  return absl::OkStatus();
}

absl::Status TxAssembler::Process(const Record& record) {
  if (!record.key || !record.value) {
    return absl::DataLossError("routed CDC event without key or value");
  }
  TRIBUTARY_ASSIGN_OR_RETURN(RoutedEvent event, DecodeRoutedEvent(*record.value));
  absl::Status status;
  switch (event.kind) {
    case RoutedEvent::Kind::kReport:
      status = OnReport(event);
      break;
    case RoutedEvent::Kind::kEnd:
      status = OnEnd(*record.key, event);
      break;
    case RoutedEvent::Kind::kBegin:
      status = OnBegin(*record.key);
      break;
  }
  PublishGauges();
  return status;
}

absl::Status TxAssembler::OnReport(const RoutedEvent& report) {
  if (report.table == RoutedEvent::kTransactionTopic) {
    const size_t p = static_cast<size_t>(std::max(0, report.source_partition));
    if (p >= tx_topic_caught_up_ms_.size()) tx_topic_caught_up_ms_.resize(p + 1, -1);
    tx_topic_caught_up_ms_[p] = std::max(tx_topic_caught_up_ms_[p], report.caught_up_ms);
    return absl::OkStatus();
  }
  if (report.table >= tables_) return absl::DataLossError("report of unknown table");
  bool ready = false;
  for (const Run& run : report.runs) {
    if (run.kind == 'C' || run.kind == 'P') {
      TRIBUTARY_RETURN_IF_ERROR(OnRun(report.table, run.partition, run.id, run.events,
                                      /*poisoned=*/run.kind == 'P', ready));
    } else if (run.kind == 'I') {
      // Incremental snapshot rows waiting for transaction run.id: it applies
      // them at its release; when it is not pending (released before they
      // came, or never seen), they go at once.
      if (!pending_.contains(run.id)) {
        Decision decision;
        decision.kind = 'W';
        decision.match_id = run.id;
        decisions_.push_back(std::move(decision));
      }
    } else {
      TRIBUTARY_RETURN_IF_ERROR(OnSnapshotRun(report.table, run.partition, run));
      ready = true;
    }
  }
  if (report.caught_up_ms >= 0) {
    OnProgress(report.table, report.source_partition, report.caught_up_ms);
    ready = true;
  }
  return ready && !(queue_.empty() && snapshots_.empty()) ? ReleaseReady() : absl::OkStatus();
}

absl::StatusOr<std::optional<int64_t>> TxAssembler::ReleasedPosition(
    std::string_view match_id, int64_t* events, bool* partial) {
  TRIBUTARY_ASSIGN_OR_RETURN(auto released, released_ids_.Get(*meta_, match_id));
  if (!released) return std::optional<int64_t>();
  // 8 bytes: written before the released event count was kept; 17: released
  // partial.
  if (released->size() != 8 && released->size() != 16 && released->size() != 17) {
    return absl::DataLossError("corrupt released position");
  }
  if (events != nullptr) {
    *events = released->size() >= 16 ? GetOrderedInt64(std::string_view(*released).substr(8))
                                     : -1;
  }
  if (partial != nullptr) *partial = released->size() == 17;
  return std::optional<int64_t>(GetOrderedInt64(*released));
}

TxAssembler::PartitionProgress& TxAssembler::ProgressOf(uint8_t table, int32_t partition) {
  std::vector<PartitionProgress>& partitions = progress_[table];
  const size_t p = static_cast<size_t>(std::max(0, partition));
  if (p >= partitions.size()) partitions.resize(p + 1);  // partitions were added
  return partitions[p];
}

bool TxAssembler::NotePassed(PartitionProgress& progress, int64_t position) {
  if (position <= progress.passed) return false;
  progress.passed = position;
  progress.dirty = true;
  return true;
}

absl::Status TxAssembler::PersistProgress() {
  WriteBatch batch;
  for (size_t t = 0; t < progress_.size(); ++t) {
    for (size_t p = 0; p < progress_[t].size(); ++p) {
      PartitionProgress& progress = progress_[t][p];
      if (!progress.dirty) continue;
      std::string value;
      PutOrderedInt64(value, progress.passed);
      PutOrderedInt64(value, progress.caught_up_ms);
      PutOrderedInt64(value, progress.snapshot_rows_lsn);
      PutOrderedInt64(value, progress.past_snapshot_lsn);
      PutOrderedInt64(value, progress.passed_lsn);
      batch.Put(ProgressKey(t, p), value);
      progress.dirty = false;
    }
  }
  return batch.empty() ? absl::OkStatus() : meta_->Write(batch);
}

absl::Status TxAssembler::OnRun(uint8_t table, int32_t partition,
                                const std::string& match_id, int64_t events, bool poisoned,
                                bool& ready) {
  PartitionProgress& progress = ProgressOf(table, partition);
  // A partition that moves on may complete the head (or a snapshot).
  if (progress.snapshot_rows_lsn > progress.past_snapshot_lsn) {
    // Written after every snapshot row of this partition.
    progress.past_snapshot_lsn = progress.snapshot_rows_lsn;
    progress.dirty = true;
    ready = true;
  }
  auto it = pending_.find(match_id);
  if (it == pending_.end()) {
    bool partial = false;
    TRIBUTARY_ASSIGN_OR_RETURN(std::optional<int64_t> released,
                               ReleasedPosition(match_id, nullptr, &partial));
    if (released) {
      ready = NotePassed(progress, *released) || ready;
      Decision decision;
      decision.match_id = match_id;
      if (partial) {
        // Released without all its events: these may be the missing ones.
        // They cannot be applied in their place any more; the aggregate
        // tasks send what they hold of them to the dead-letter topic.
        late_->Add(events);
        decision.kind = 'L';
        if (!poisoned) {
          const CdcTable& t = table == 0 ? spec_.root : spec_.children[table - 1];
          OperatorsLogger()->warn(
              "{}: {} event(s) of transaction {} from {}[{}] came after it was released "
              "partial: they go to the dead-letter topic ({})",
              spec_.name, events, match_id, t.topic, partition,
              metric_names::kCdcLateEventsTotal);
        }
      } else {
        duplicates_->Add(events);  // a re-delivered transaction, already applied
        // Its changes wait in the aggregate tasks: they drop them.
        decision.kind = 'D';
      }
      decisions_.push_back(std::move(decision));
      return absl::OkStatus();
    }
    it = pending_.emplace(match_id, Pending{}).first;
  }
  Pending& pending = it->second;
  if (pending.has_end) {
    ready = NotePassed(progress, pending.end_position) || ready;
    if (pending.end_lsn > progress.passed_lsn) {
      progress.passed_lsn = pending.end_lsn;
      ready = true;
    }
  } else if (progress.unresolved != match_id) {
    progress.unresolved = match_id;
  }
  pending.buffered.resize(tables_);
  pending.buffered[table] += events;
  pending.last_event_ms = context_->wall_clock_time().value;
  if (poisoned) {
    pending.poisoned.resize(tables_);
    pending.poisoned[table] += events;
  }
  TRIBUTARY_RETURN_IF_ERROR(PersistPending(match_id, pending));
  if (pending.has_end && !queue_.empty() && queue_.begin()->second == match_id) ready = true;
  return absl::OkStatus();
}

absl::Status TxAssembler::OnBegin(std::string_view match_id) {
  auto it = pending_.find(Sv(match_id));
  if (it == pending_.end()) {
    TRIBUTARY_ASSIGN_OR_RETURN(std::optional<int64_t> released, ReleasedPosition(match_id));
    if (released) {
      duplicates_->Add(1);  // a re-delivered transaction, already applied
      return absl::OkStatus();
    }
    it = pending_.emplace(std::string(match_id), Pending{}).first;
    it->second.buffered.resize(tables_);
  }
  Pending& pending = it->second;
  if (pending.has_end) {
    // After its END: the whole transaction delivered again (a rewound
    // connector), not a restart inside it. The END kept is the first.
    duplicates_->Add(1);
    return absl::OkStatus();
  }
  ++pending.begins;
  if (pending.begins == 2) {
    restarted_->Add(1);
    OperatorsLogger()->info(
        "{}: a second BEGIN of transaction {}: the connector restarted inside it, so its END "
        "counts only part of it; it completes once every input partition has moved past it",
        spec_.name, match_id);
  }
  return PersistPending(match_id, pending);
}

void TxAssembler::OnProgress(uint8_t table, int32_t partition, int64_t caught_up_ms) {
  PartitionProgress& progress = ProgressOf(table, partition);
  if (caught_up_ms <= progress.caught_up_ms) return;
  progress.caught_up_ms = caught_up_ms;
  progress.dirty = true;
}

absl::Status TxAssembler::OnEnd(std::string_view match_id, const RoutedEvent& event) {
  NoteXid(match_id);
  auto it = pending_.find(Sv(match_id));
  if (it != pending_.end() && it->second.has_end) {
    duplicates_->Add(1);
    return absl::OkStatus();
  }
  if (it == pending_.end()) {
    int64_t released_events = -1;
    bool partial = false;
    TRIBUTARY_ASSIGN_OR_RETURN(std::optional<int64_t> released,
                               ReleasedPosition(match_id, &released_events, &partial));
    if (released && partial) {
      // Released without all its events, or expired without END: its END
      // (late, or delivered again) changes nothing.
      OperatorsLogger()->warn("{}: END of transaction {} (offset {}) came after it was "
                              "released partial or expired: nothing more is applied",
                              spec_.name, event.tx_id, event.end_position);
      return absl::OkStatus();
    }
    if (released) {
      duplicates_->Add(1);
      return CheckRedeliveredEnd(event, *released, released_events);
    }
    it = pending_.emplace(std::string(match_id), Pending{}).first;
  }
  if (event.end_position <= max_released_position_) {
    // Every END before the last released one has been seen: this one is
    // new, so the transaction topic's offsets started again.
    return absl::FailedPreconditionError(absl::StrCat(
        spec_.name, ": END of transaction ", Sv(event.tx_id), " at offset ",
        event.end_position, " of ", spec_.transaction_topic,
        ", but offset ", max_released_position_,
        " was already released: the transaction topic was deleted and created again (a "
        "re-created connector?). Its offsets order the transactions, so this application "
        "cannot go on with its state: reset it (stop it, delete its state.dir and internal "
        "topics, and start it again), or give the new connector a new topic.prefix and a new "
        "application.id"));
  }
  Pending& pending = it->second;
  pending.buffered.resize(tables_);
  pending.has_end = true;
  pending.end_position = event.end_position;
  pending.end_seen = context_->wall_clock_time();
  pending.end_arrived_ms = pending.end_seen.value;
  pending.end_lsn = IdLsn(event.tx_id);
  for (auto& partitions : progress_) {
    for (PartitionProgress& progress : partitions) {
      if (!progress.unresolved.empty() && progress.unresolved == match_id) {
        NotePassed(progress, event.end_position);
        progress.passed_lsn = std::max(progress.passed_lsn, pending.end_lsn);
        progress.unresolved.clear();
      }
    }
  }
  TRIBUTARY_RETURN_IF_ERROR(NoteStreamingAt(pending.end_lsn));
  pending.tx_id = std::string(event.tx_id);
  pending.expected.assign(tables_, 0);
  for (const auto& [collection, count] : event.counts) {
    int table = TableOf(collection);
    if (table >= 0) pending.expected[table] = count;
  }
  TRIBUTARY_RETURN_IF_ERROR(PersistPending(match_id, pending));
  queue_[event.end_position] = std::string(match_id);
  return ReleaseReady();
}

int64_t TxAssembler::IdLsn(std::string_view tx_id) const {
  if (spec_.tx_id_mode != TxIdMode::kPostgres) return -1;
  const size_t colon = tx_id.rfind(':');
  int64_t lsn = -1;
  if (colon == std::string_view::npos || !absl::SimpleAtoi(Sv(tx_id.substr(colon + 1)), &lsn)) {
    return -1;
  }
  return lsn;
}

absl::Status TxAssembler::OnSnapshotRun(uint8_t table, int32_t partition, const Run& run) {
  const int64_t lsn = run.lsn;
  auto [it, created] = snapshots_.try_emplace(lsn);
  Snapshot& snapshot = it->second;
  if (created) {
    snapshot.lsn = lsn;
    snapshot.table_end_ms.assign(tables_, -1);
    snapshot.since = context_->wall_clock_time();
    OperatorsLogger()->info(
        "{}: an initial snapshot at LSN {} begins: its rows are held and applied as one "
        "unit, in commit order, once it is complete",
        spec_.name, lsn);
  }
  PartitionProgress& progress = ProgressOf(table, partition);
  if (progress.snapshot_rows_lsn != lsn) {
    // Rows of a later snapshot: the earlier one's rows here are all in.
    progress.past_snapshot_lsn = std::max(progress.past_snapshot_lsn, progress.snapshot_rows_lsn);
    progress.snapshot_rows_lsn = std::max(progress.snapshot_rows_lsn, lsn);
    progress.dirty = true;
  }
  snapshot.rows += run.events;
  const TimestampMs now = context_->wall_clock_time();
  if (run.kind == 'L') {
    // The snapshot's last record: every table is done.
    for (int64_t& end : snapshot.table_end_ms) {
      if (end < 0) end = now.value;
    }
  } else if (run.kind == 'T' && snapshot.table_end_ms[table] < 0) {
    snapshot.table_end_ms[table] = now.value;
  }
  return PersistSnapshot(snapshot);
}

absl::Status TxAssembler::NoteStreamingAt(int64_t lsn) {
  if (lsn < 0) return absl::OkStatus();
  const TimestampMs now = context_->wall_clock_time();
  for (auto& [snapshot_lsn, snapshot] : snapshots_) {
    if (snapshot_lsn < 0 || snapshot_lsn >= lsn) break;
    bool changed = false;
    for (int64_t& end : snapshot.table_end_ms) {
      if (end < 0) {
        end = now.value;
        changed = true;
      }
    }
    if (changed) TRIBUTARY_RETURN_IF_ERROR(PersistSnapshot(snapshot));
  }
  return absl::OkStatus();
}

absl::Status TxAssembler::PersistSnapshot(const Snapshot& snapshot) {
  std::string value;
  PutOrderedInt64(value, snapshot.rows);
  PutOrderedInt64(value, snapshot.since.value);
  for (int64_t end : snapshot.table_end_ms) PutOrderedInt64(value, end);
  return meta_->Put(MetaKey(kSnapshotPrefix, snapshot.lsn), value);
}

absl::Status TxAssembler::ApplySnapshot() {
  const Snapshot snapshot = std::move(snapshots_.begin()->second);
  snapshots_.erase(snapshots_.begin());
  Decision decision;
  decision.kind = 'S';
  decision.lsn = snapshot.lsn;
  decisions_.push_back(std::move(decision));
  TRIBUTARY_RETURN_IF_ERROR(meta_->Delete(MetaKey(kSnapshotPrefix, snapshot.lsn)));
  OperatorsLogger()->info("{}: the initial snapshot at LSN {} is complete: {} rows",
                          spec_.name, snapshot.lsn, snapshot.rows);
  return decisions_.size() >= kMaxDecisionsPerRecord ? FlushDecisions() : absl::OkStatus();
}

absl::Status TxAssembler::PrepareCommit() { return FlushDecisions(); }

absl::Status TxAssembler::FlushDecisions() {
  if (decisions_.empty()) return absl::OkStatus();
  TRIBUTARY_ASSIGN_OR_RETURN(int32_t partitions,
                             context_->PartitionCount(AggregateTopic(spec_)));
  const std::string encoded = EncodeDecisions(decisions_);
  decisions_.clear();
  for (int32_t p = 0; p < std::max(1, partitions); ++p) {
    const std::string key = absl::StrCat(std::string(1, kBroadcastKeyPrefix), p);
    Record out;
    out.key = key;
    out.value = encoded;
    out.timestamp = context_->stream_time();
    TRIBUTARY_RETURN_IF_ERROR(context_->Forward(out));
  }
  return absl::OkStatus();
}

std::optional<int32_t> TxAssembler::BroadcastPartition(const Record& record,
                                                      int32_t partitions) {
  if (!record.key || record.key->empty() || (*record.key)[0] != kBroadcastKeyPrefix) {
    return std::nullopt;
  }
  int32_t partition = 0;
  if (!absl::SimpleAtoi(Sv(record.key->substr(1)), &partition) || partition < 0 ||
      partition >= partitions) {
    return std::nullopt;
  }
  return partition;
}

TxAssembler::Completion TxAssembler::CompletionOf(const Pending& pending) const {
  if (!pending.has_end) return Completion::kIncomplete;
  bool counts_trusted = pending.begins <= 1;
  bool short_of_end = false;
  bool good_match = counts_trusted;  // the events that were not bad input match END
  for (size_t t = 0; t < tables_; ++t) {
    // END counts distinct events the connector wrote since its last (re)start
    // inside the transaction: a lower bound.
    if (pending.buffered[t] < pending.expected[t]) short_of_end = true;
    if (pending.buffered[t] > pending.expected[t]) counts_trusted = false;
    good_match = good_match && pending.buffered[t] - pending.Poisoned(t) == pending.expected[t];
  }
  if (!pending.poisoned.empty()) {
    // A poisoned event may be a corrupted copy of an event still to come
    // (counting it early would release the transaction without that one):
    // counts prove nothing until every partition has moved past it.
    if (short_of_end && pending.begins <= 1) {
      return PartitionsBehind(pending, nullptr, /*later_events_only=*/true)
                 ? Completion::kIncomplete
                 : Completion::kShort;
    }
    if (PartitionsBehind(pending, nullptr)) return Completion::kIncomplete;
    return pending.begins <= 1 ? Completion::kByCounts : Completion::kByPosition;
  }
  if (good_match || (!short_of_end && counts_trusted)) return Completion::kByCounts;
  if (short_of_end && pending.begins <= 1) {
    // Events missing (after a restart inside the transaction END undercounts
    // instead). They will not come once every partition has delivered an
    // event of a later transaction; reading a partition to its end proves it
    // only after the timeout (CheckHead), as an event may become readable
    // later than its END by more than the grace.
    return PartitionsBehind(pending, nullptr, /*later_events_only=*/true)
               ? Completion::kIncomplete
               : Completion::kShort;
  }
  return PartitionsBehind(pending, nullptr) ? Completion::kIncomplete : Completion::kByPosition;
}

bool TxAssembler::Whole(const Pending& pending, Completion completion) const {
  switch (completion) {
    case Completion::kShort:
      return false;
    case Completion::kByCounts:
      // Events that were bad input beyond END's count (a corrupted repeat)
      // took no event's place.
      for (size_t t = 0; t < tables_; ++t) {
        if (pending.buffered[t] - pending.Poisoned(t) < pending.expected[t]) return false;
      }
      return true;
    default:
      return pending.poisoned.empty();
  }
}

bool TxAssembler::PartitionsBehind(
    absl::FunctionRef<int64_t(size_t)> seen_ms,
    absl::FunctionRef<bool(const PartitionProgress&)> moved_past,
    std::vector<std::string>* names) const {
  bool any = false;
  const int64_t grace_ms = absl::ToInt64Milliseconds(spec_.visibility_grace);
  for (size_t t = 0; t < tables_; ++t) {
    for (size_t p = 0; p < progress_[t].size(); ++p) {
      const PartitionProgress& progress = progress_[t][p];
      if (moved_past(progress)) continue;
      const int64_t seen = seen_ms(t);
      if (seen >= 0 && progress.caught_up_ms >= seen + grace_ms) continue;
      any = true;
      if (names == nullptr) return true;
      const CdcTable& table = t == 0 ? spec_.root : spec_.children[t - 1];
      names->push_back(absl::StrCat(table.topic, "[", p, "]"));
    }
  }
  return any;
}

bool TxAssembler::PartitionsBehind(const Pending& pending, std::vector<std::string>* names,
                                   bool later_events_only) const {
  return PartitionsBehind(
      [&](size_t) { return later_events_only ? int64_t{-1} : pending.end_seen.value; },
      [&](const PartitionProgress& p) { return p.passed > pending.end_position; }, names);
}

bool TxAssembler::PartitionsBehindSnapshot(const Snapshot& snapshot,
                                           std::vector<std::string>* names) const {
  return PartitionsBehind(
      [&](size_t table) { return snapshot.table_end_ms[table]; },
      [&](const PartitionProgress& p) {
        return p.past_snapshot_lsn >= snapshot.lsn || p.snapshot_rows_lsn > snapshot.lsn ||
               (snapshot.lsn >= 0 && p.passed_lsn > snapshot.lsn);
      },
      names);
}

absl::Status TxAssembler::ReleaseReady() {
  while (!queue_.empty() || !snapshots_.empty()) {
    if (!snapshots_.empty()) {
      // The earliest snapshot goes before the head when the head committed
      // after it (or when that cannot be told).
      const Snapshot& snapshot = snapshots_.begin()->second;
      const Pending* head = queue_.empty() ? nullptr : &pending_[queue_.begin()->second];
      if (head == nullptr || snapshot.lsn < 0 || head->end_lsn < 0 ||
          head->end_lsn > snapshot.lsn) {
        if (PartitionsBehindSnapshot(snapshot, nullptr)) break;
        TRIBUTARY_RETURN_IF_ERROR(ApplySnapshot());
        continue;
      }
    }
    auto head = queue_.begin();
    if (head->first != head_position_) {
      head_position_ = head->first;
      head_since_ = context_->wall_clock_time();
    }
    const Pending& pending = pending_[head->second];
    const Completion completion = CompletionOf(pending);
    if (completion == Completion::kIncomplete) break;
    std::string match_id = head->second;
    if (!Whole(pending, completion)) {
      bool release = false;
      TRIBUTARY_RETURN_IF_ERROR(OnPartial(match_id, completion, release));
      if (!release) break;
      TRIBUTARY_RETURN_IF_ERROR(Release(match_id, /*partial=*/true));
      continue;
    }
    if (completion == Completion::kByPosition) by_position_->Add(1);
    TRIBUTARY_RETURN_IF_ERROR(Release(match_id, /*partial=*/false));
  }
  return absl::OkStatus();
}

std::string TxAssembler::CountsText(const Pending& pending) const {
  std::vector<std::string> counts;
  for (size_t t = 0; t < tables_; ++t) {
    const CdcTable& table = t == 0 ? spec_.root : spec_.children[t - 1];
    counts.push_back(absl::StrCat(table.data_collection, " ", pending.buffered[t], "/",
                                  t < pending.expected.size() ? pending.expected[t] : 0));
  }
  return absl::StrJoin(counts, ", ");
}

absl::Status TxAssembler::OnPartial(const std::string& match_id, Completion completion,
                                    bool& release) {
  const Pending& pending = pending_[match_id];
  std::string why;
  if (!pending.poisoned.empty()) {
    why = absl::StrCat(pending.PoisonedTotal(), " of its events were bad input and went to the "
                       "dead-letter topic (header tributary.source.transaction)");
  }
  if (completion == Completion::kShort) {
    absl::StrAppend(&why, why.empty() ? "" : "; ",
                    "its END counts events that never came (every input partition has moved "
                    "past it: delivered a later transaction, or was read to its end for "
                    "longer than incomplete.transaction.timeout.ms)");
  }
  const std::string detail =
      absl::StrCat("transaction ", pending.tx_id, " (END at ", spec_.transaction_topic,
                   " offset ", pending.end_position, ") cannot be whole: ", why,
                   "; counted/END: ", CountsText(pending));
  switch (spec_.partial_policy) {
    case IncompletePolicy::kRelease:
      release = true;
      OperatorsLogger()->warn("{}: {}: released without them, marked \"partial\":true "
                              "(partial.transaction.policy=release)",
                              spec_.name, detail);
      break;
    case IncompletePolicy::kHold:
      if (warned_partial_ != match_id) {
        warned_partial_ = match_id;
        OperatorsLogger()->warn("{}: {}: held with every later transaction "
                                "(partial.transaction.policy=hold; restart with =release to "
                                "release it marked partial)",
                                spec_.name, detail);
      }
      return absl::OkStatus();
    case IncompletePolicy::kFail:
      return absl::FailedPreconditionError(absl::StrCat(
          spec_.name, ": ", detail,
          " (partial.transaction.policy=fail; set it to release or hold to go on)"));
  }
  if (completion != Completion::kShort) return absl::OkStatus();
  // The END is the bad input here: it goes to the dead-letter topic too.
  short_->Add(1);
  std::string value = absl::StrCat("{\"transaction\":\"", pending.tx_id, "\",\"counted/END\":\"",
                                   CountsText(pending), "\"}");
  Record end;
  end.topic = spec_.transaction_topic;
  end.partition = Partition{0};
  end.offset = Offset{pending.end_position};
  end.key = match_id;
  end.value = value;
  end.timestamp = context_->wall_clock_time();
  return context_->DeadLetter(
      end, MarkBadInput(absl::DataLossError(absl::StrCat("END of transaction ", pending.tx_id,
                                                         " counts events that never came: ",
                                                         CountsText(pending))),
                        pending.tx_id));
}

absl::Status TxAssembler::RememberReleased(const std::string& match_id, const Pending& pending,
                                          int64_t position, bool partial) {
  WriteBatch meta;
  meta.Delete(MetaKey(kPendingPrefix, match_id));
  // The position, then how many events were released (to tell a later
  // delivery with more events: see OnEnd), then whether partially.
  std::string ordered;
  PutOrderedInt64(ordered, position);
  int64_t released_events = 0;
  for (int64_t n : pending.buffered) released_events += n;
  PutOrderedInt64(ordered, released_events);
  if (partial) ordered.push_back('\1');
  released_ids_.Add(meta, match_id, position, ordered);
  return meta_->Write(meta);
}

absl::Status TxAssembler::Release(const std::string& match_id, bool partial) {
  Pending& pending = pending_[match_id];
  const int64_t position = pending.end_position;
  Decision decision;
  decision.kind = 'R';
  decision.match_id = match_id;
  decision.position = position;
  decision.partial = partial;
  decisions_.push_back(std::move(decision));

  TRIBUTARY_RETURN_IF_ERROR(RememberReleased(match_id, pending, position, partial));
  max_released_position_ = std::max(max_released_position_, position);
  // Forget the oldest released ids beyond the retention.
  TRIBUTARY_RETURN_IF_ERROR(released_ids_.Prune(*meta_));
  queue_.erase(position);
  pending_.erase(match_id);
  released_->Add(1);
  if (partial) partial_->Add(1);
  return decisions_.size() >= kMaxDecisionsPerRecord ? FlushDecisions() : absl::OkStatus();
}

int64_t TxAssembler::TransactionTopicCaughtUpMs() const {
  int64_t oldest = -1;
  for (size_t p = 0; p < tx_topic_caught_up_ms_.size(); ++p) {
    if (p == 0 || tx_topic_caught_up_ms_[p] < oldest) oldest = tx_topic_caught_up_ms_[p];
  }
  return oldest;
}

namespace {

constexpr int64_t kXidCycle = int64_t{1} << 32;

// A PostgreSQL xid (the match id, the part of the id before the colon);
// -1 for anything else.
int64_t XidOf(std::string_view match_id) {
  int64_t xid = -1;
  if (!absl::SimpleAtoi(Sv(match_id), &xid) || xid < 0 || xid >= kXidCycle) return -1;
  return xid;
}

}  // namespace

void TxAssembler::NoteXid(std::string_view match_id) {
  if (spec_.tx_id_mode != TxIdMode::kPostgres) return;
  const int64_t xid = XidOf(match_id);
  if (xid < 0) return;
  // Ahead of the frontier when less than half a cycle ahead of it (ENDs
  // come in commit order, xids in start order: an older xid may commit
  // later).
  if (xid_frontier_ < 0 || (xid - xid_frontier_ + kXidCycle) % kXidCycle < kXidCycle / 2) {
    xid_frontier_ = xid;
  }
}

bool TxAssembler::XidRetired(std::string_view match_id) const {
  if (xid_frontier_ < 0 || spec_.tx_id_mode != TxIdMode::kPostgres) return false;
  const int64_t xid = XidOf(match_id);
  if (xid < 0) return false;
  // How far the frontier is past it; a transaction up to a quarter cycle
  // ahead of the frontier (started later than the newest END's, not
  // committed yet) is not behind.
  const int64_t behind = (xid_frontier_ - xid + kXidCycle) % kXidCycle;
  return behind >= kXidCycle / 2 && behind < kXidCycle - kXidCycle / 4;
}

absl::Status TxAssembler::RetireWrapped(const std::vector<std::string>& match_ids) {
  for (const std::string& match_id : match_ids) {
    const Pending& pending = pending_[match_id];
    OperatorsLogger()->error(
        "{}: transaction {} has had no END while the source's transaction ids moved 2^31 past "
        "it (the newest is {}): PostgreSQL cannot still have it open, and its xid will be given "
        "again. Its changes ({} events counted) go to the dead-letter topic, so that the later "
        "transaction with that xid is not merged with them",
        spec_.name, match_id, xid_frontier_, CountsText(pending));
    Decision decision;
    decision.kind = 'L';
    decision.match_id = match_id;
    decisions_.push_back(std::move(decision));
    TRIBUTARY_RETURN_IF_ERROR(meta_->Delete(MetaKey(kPendingPrefix, match_id)));
    pending_.erase(match_id);
    warned_endless_.erase(match_id);
    xid_retired_->Add(1);
  }
  if (!match_ids.empty()) context_->RequestCommit();
  return absl::OkStatus();
}

absl::Status TxAssembler::ExpireEndless(TimestampMs now) {
  std::vector<std::string> wrapped;
  for (const auto& [match_id, pending] : pending_) {
    if (!pending.has_end && XidRetired(match_id)) wrapped.push_back(match_id);
  }
  TRIBUTARY_RETURN_IF_ERROR(RetireWrapped(wrapped));
  const int64_t timeout_ms = absl::ToInt64Milliseconds(spec_.incomplete_timeout);
  const int64_t caught_up_ms = TransactionTopicCaughtUpMs();
  if (caught_up_ms < 0) return absl::OkStatus();
  std::vector<std::string> expired;
  for (const auto& [match_id, pending] : pending_) {
    if (pending.has_end || pending.last_event_ms < 0) continue;
    // Every END written up to `timeout` after its last event has been read.
    if (caught_up_ms < pending.last_event_ms + timeout_ms) continue;
    expired.push_back(match_id);
  }
  for (const std::string& match_id : expired) {
    const Pending& pending = pending_[match_id];
    const std::string detail = absl::StrCat(
        "transaction ", match_id, " has had no END for ",
        (now.value - pending.last_event_ms) / 1000, " s since its last event (",
        CountsText(pending), " events counted), and the transaction topic has been read to its "
        "end since");
    switch (spec_.incomplete_policy) {
      case IncompletePolicy::kHold:
        if (!warned_endless_.contains(match_id)) {
          warned_endless_[match_id] = true;
          OperatorsLogger()->warn("{}: {}: its changes stay held (incomplete.transaction."
                                  "policy=hold; =release sends them to the dead-letter topic)",
                                  spec_.name, detail);
        }
        continue;
      case IncompletePolicy::kFail:
        return absl::FailedPreconditionError(absl::StrCat(
            spec_.name, ": ", detail,
            " (incomplete.transaction.policy=fail; set it to release or hold to go on)"));
      case IncompletePolicy::kRelease:
        break;
    }
    OperatorsLogger()->warn("{}: {}: its changes go to the dead-letter topic "
                            "(incomplete.transaction.policy=release); its events or END, should "
                            "they come later, too",
                            spec_.name, detail);
    Decision decision;
    decision.kind = 'L';
    decision.match_id = match_id;
    decisions_.push_back(std::move(decision));
    // Remembered as released partial, at the last released position (it has
    // no place of its own in commit order).
    TRIBUTARY_RETURN_IF_ERROR(
        RememberReleased(match_id, pending, max_released_position_, /*partial=*/true));
    pending_.erase(match_id);
    warned_endless_.erase(match_id);
    expired_->Add(1);
  }
  if (!expired.empty()) context_->RequestCommit();
  return absl::OkStatus();
}

absl::Status TxAssembler::CheckHead(TimestampMs now) {
  TRIBUTARY_RETURN_IF_ERROR(ExpireEndless(now));
  PublishGauges();
  TRIBUTARY_RETURN_IF_ERROR(PersistProgress());
  if (!snapshots_.empty()) {
    // A snapshot that does not complete holds the transactions after it.
    const Snapshot& snapshot = snapshots_.begin()->second;
    const int64_t age_ms = now.value - snapshot.since.value;
    if (age_ms >= absl::ToInt64Milliseconds(spec_.incomplete_timeout) &&
        now.value - last_warning_.value >= absl::ToInt64Milliseconds(spec_.incomplete_timeout)) {
      last_warning_ = now;
      std::vector<std::string> behind;
      PartitionsBehindSnapshot(snapshot, &behind);
      OperatorsLogger()->warn(
          "{}: the initial snapshot at LSN {} ({} rows so far) is not complete after {} s: not "
          "yet moved past it: {}; {} transactions are queued",
          spec_.name, snapshot.lsn, snapshot.rows, age_ms / 1000, absl::StrJoin(behind, ", "),
          queue_.size());
    }
  }
  if (queue_.empty()) return absl::OkStatus();
  auto head = queue_.begin();
  const Pending& pending = pending_[head->second];
  // Incomplete since it became the head, or since its END arrived when that
  // is known (it survives a restart or a move of this task).
  const int64_t since_ms = pending.end_arrived_ms >= 0
                               ? std::min(pending.end_arrived_ms, head_since_.value)
                               : head_since_.value;
  const int64_t age_ms = now.value - since_ms;
  oldest_age_gauge_->Set(age_ms);
  if (age_ms < absl::ToInt64Milliseconds(spec_.incomplete_timeout)) return absl::OkStatus();
  std::vector<std::string> behind;
  PartitionsBehind(pending, &behind);
  std::string proof;
  if (behind.empty()) {
    proof = "; every input partition has moved past it, so the missing events will not come "
            "(filtered out before Tributary, e.g. by an SMT or a table filter?)";
  } else {
    proof = absl::StrCat("; not yet moved past it: ", absl::StrJoin(behind, ", "));
  }
  bool short_of_end = false;
  for (size_t t = 0; t < tables_; ++t) {
    short_of_end = short_of_end || pending.buffered[t] < pending.expected[t];
  }
  if (behind.empty() && short_of_end && pending.begins <= 1) {
    // Read to its end everywhere for longer than the timeout after its END:
    // the missing events will not come.
    std::string match_id = head->second;
    bool release = false;
    TRIBUTARY_RETURN_IF_ERROR(OnPartial(match_id, Completion::kShort, release));
    if (!release) return absl::OkStatus();
    TRIBUTARY_RETURN_IF_ERROR(Release(match_id, /*partial=*/true));
    return ReleaseReady();
  }
  std::string detail = absl::StrCat(
      "transaction ", head->second, " (END at transaction-topic offset ", head->first,
      ", ", pending.begins, " BEGIN(s) seen) incomplete for ", age_ms / 1000,
      " s: buffered/expected ", CountsText(pending), proof, "; ", queue_.size() - 1,
      " later transactions wait");
  switch (spec_.incomplete_policy) {
    case IncompletePolicy::kHold:
      if (now.value - last_warning_.value >=
          absl::ToInt64Milliseconds(spec_.incomplete_timeout)) {
        last_warning_ = now;
        OperatorsLogger()->warn("{}: {} (policy hold)", spec_.name, detail);
      }
      return absl::OkStatus();
    case IncompletePolicy::kRelease: {
      OperatorsLogger()->warn("{}: {}: releasing what arrived (policy release)", spec_.name,
                              detail);
      std::string match_id = head->second;
      TRIBUTARY_RETURN_IF_ERROR(Release(match_id, /*partial=*/true));
      return ReleaseReady();
    }
    case IncompletePolicy::kFail:
      return absl::FailedPreconditionError(
          absl::StrCat(spec_.name, ": ", detail,
                       " (policy fail; set incomplete.transaction.policy=release or "
                       "hold to go on)"));
  }
  return absl::OkStatus();
}

void TxAssembler::PublishGauges() {
  pending_gauge_->Set(static_cast<int64_t>(pending_.size()));
  if (queue_.empty()) oldest_age_gauge_->Set(0);
}

}  // namespace tributary::internal
