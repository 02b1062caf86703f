#include "operators/internal/cdc_router.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"
#include "base/status_macros.h"
#include "operators/internal/cdc_messages.h"
#include "operators/internal/log.h"
#include "operators/internal/tx_assembler.h"

namespace tributary::internal {

void SortablePosition(std::string_view position, std::string& out) {
  out.clear();
  size_t start = 0;
  while (start <= position.size()) {
    size_t end = position.find(':', start);
    if (end == std::string_view::npos) end = position.size();
    std::string_view part = position.substr(start, end - start);
    bool digits = !part.empty() && part.size() <= 20 &&
                  part.find_first_not_of("0123456789") == std::string_view::npos;
    if (digits) out.append(20 - part.size(), '0');
    out.append(part);
    if (end == position.size()) break;
    out.push_back(':');
    start = end + 1;
  }
}

CdcRouter::CdcRouter(const TransactionAggregateSpec& spec, int table)
    : spec_(spec), table_(table), decoder_(spec.tx_id_mode, spec.value_mode) {
  if (table_ >= 0) {
    const CdcTable& t = table_ == 0 ? spec_.root : spec_.children[table_ - 1];
    fields_.push_back(t.key_column);
    if (table_ > 0) fields_.push_back(t.parent_column);
  }
}

namespace {
constexpr char kIndexPrefix = 'x';
constexpr char kLastTxKey[] = "L";

int SnapshotRank(char kind) { return kind == 'L' ? 2 : kind == 'T' ? 1 : 0; }
}  // namespace

absl::Status CdcRouter::Init(ProcessorContext& context) {
  context_ = &context;
  if (table_ < 0) {
    // Proofs that the transaction topic was read to its end: an END that
    // has not come by then will not (the assembler expires such a
    // transaction; see TxAssembler).
    report_ = RoutedEvent();
    report_.kind = RoutedEvent::Kind::kReport;
    report_.table = RoutedEvent::kTransactionTopic;
    report_.source_partition = context.task_id().partition;
    context.Schedule(spec_.progress_interval, PunctuationType::kWallClockTime,
                     [this](TimestampMs now) { return ReportProgress(now); });
    return absl::OkStatus();
  }
  state_ = context.GetStateStore(StateStore(spec_, table_));
  if (state_ == nullptr) return absl::FailedPreconditionError("CdcRouter: its store is not connected");
  TRIBUTARY_ASSIGN_OR_RETURN(std::optional<std::string> last, state_->Get(kLastTxKey));
  last_tx_ = last.value_or("");
  report_ = RoutedEvent();
  report_.kind = RoutedEvent::Kind::kReport;
  report_.table = static_cast<uint8_t>(table_);
  report_.source_partition = context.task_id().partition;
  MetricTags tags{{std::string(metric_names::kTaskTag), context.task_id().ToString()},
                  {std::string(metric_names::kOperatorTag), spec_.name}};
  orphans_ = context.metrics().GetCounter(metric_names::kCdcOrphanChildDeletesTotal, tags);
  repeats_ = context.metrics().GetCounter(metric_names::kCdcDuplicatesDroppedTotal, tags);
  context.Schedule(spec_.progress_interval, PunctuationType::kWallClockTime,
                   [this](TimestampMs now) { return ReportProgress(now); });
  context.Schedule(spec_.report_interval, PunctuationType::kWallClockTime,
                   [this](TimestampMs) {
                     if (report_due_) context_->RequestCommit();
                     return absl::OkStatus();
                   });
  return absl::OkStatus();
}

absl::Status CdcRouter::ReportProgress(TimestampMs now) {
  (void)now;
  const std::string& topic = table_ < 0    ? spec_.transaction_topic
                             : table_ == 0 ? spec_.root.topic
                                           : spec_.children[table_ - 1].topic;
  absl::StatusOr<SourceProgress> progress = context_->QuerySourceProgress(topic);
  if (!progress.ok()) {
    // Not fatal: the proof is only late. The next interval asks again.
    OperatorsLogger()->debug("{}: progress of {}[{}] unknown: {}", spec_.name, topic,
                             context_->task_id().partition, progress.status().ToString());
    return absl::OkStatus();
  }
  if (!progress->caught_up()) return absl::OkStatus();
  report_.caught_up_ms = progress->as_of.value;
  report_due_ = true;  // sent at the next commit
  return absl::OkStatus();
}

absl::Status CdcRouter::PrepareCommit() {
  if (last_tx_dirty_) {
    TRIBUTARY_RETURN_IF_ERROR(state_->Put(kLastTxKey, last_tx_));
    last_tx_dirty_ = false;
  }
  if (!report_due_) return absl::OkStatus();
  encoded_ = EncodeRoutedEvent(report_);
  report_.runs.clear();
  report_.caught_up_ms = -1;
  report_due_ = false;
  Record out;
  out.key = table_ < 0 ? "progress" : "report";
  out.value = encoded_;
  out.timestamp = context_->stream_time();
  // The transaction router's only child is its sink.
  return table_ < 0 ? context_->Forward(out) : context_->Forward(out, ReportSink(spec_, table_));
}

void CdcRouter::Count(char kind, std::string_view id, int64_t lsn, int32_t partition) {
  report_due_ = true;
  if (!report_.runs.empty()) {
    Run& last = report_.runs.back();
    const bool same = last.partition == partition &&
                      (Run::HasId(kind) ? last.kind == kind && last.id == id
                                        : !Run::HasId(last.kind) && last.lsn == lsn);
    if (same) {
      ++last.events;
      if (!Run::HasId(kind) && SnapshotRank(kind) > SnapshotRank(last.kind)) last.kind = kind;
      return;
    }
  }
  report_.runs.push_back(Run{kind, partition, std::string(id), lsn, 1});
}

bool CdcRouter::Repeat(int32_t partition, std::string_view tx, char op,
                       std::string_view key) {
  identity_.assign(1, op);
  identity_.append(key);
  Latest& latest = latest_[partition];
  if (latest.tx != tx) {
    latest.tx.assign(tx);
    latest.position = position_;
    latest.at_position.assign(1, identity_);
    return false;
  }
  if (position_ < latest.position) return true;
  if (position_ == latest.position) {
    for (const std::string& seen : latest.at_position) {
      if (seen == identity_) return true;
    }
  } else {
    latest.position = position_;
    latest.at_position.clear();
  }
  latest.at_position.push_back(identity_);
  return false;
}

absl::Status CdcRouter::NoteLastTransaction(std::string_view match_id) {
  if (last_tx_ == match_id) return absl::OkStatus();
  last_tx_.assign(match_id);
  last_tx_dirty_ = true;  // written at the commit
  return absl::OkStatus();
}

absl::Status CdcRouter::Send(std::optional<std::string_view> root, const RowChange& change) {
  encoded_ = EncodeRowChange(change);
  Record out;
  out.value = encoded_;
  out.timestamp = context_->stream_time();
  if (root) {
    out.key = *root;
    return context_->Forward(out, RowSink(spec_, table_));
  }
  TRIBUTARY_ASSIGN_OR_RETURN(int32_t partitions,
                             context_->PartitionCount(TxAssembler::AggregateTopic(spec_)));
  for (int32_t p = 0; p < std::max(1, partitions); ++p) {
    const std::string key = absl::StrCat(std::string(1, kBroadcastKeyPrefix), p);
    out.key = key;
    TRIBUTARY_RETURN_IF_ERROR(context_->Forward(out, RowSink(spec_, table_)));
  }
  return absl::OkStatus();
}

absl::Status CdcRouter::ForgetChildren() {
  WriteBatch forget;
  {
    auto it = state_->PrefixScan(std::string(1, kIndexPrefix));
    for (; it->Valid(); it->Next()) forget.Delete(it->key());
    TRIBUTARY_RETURN_IF_ERROR(it->status());
  }
  return state_->Write(forget);
}

absl::Status CdcRouter::Process(const Record& record) {
  // Tombstones follow deletes on table topics and carry nothing to apply.
  if (!record.value) return absl::OkStatus();
  return table_ < 0 ? RouteMarker(record) : RouteChange(record);
}

absl::Status CdcRouter::RouteMarker(const Record& record) {
  absl::StatusOr<TransactionMarker> decoded = decoder_.DecodeMarker(*record.value);
  if (!decoded.ok()) return MarkBadInput(decoded.status());
  const TransactionMarker& marker = *decoded;
  RoutedEvent event;
  event.tx_id = marker.id;
  if (marker.status == TransactionMarker::Status::kBegin) {
    // The assembler counts BEGINs: a second one means the connector
    // restarted inside the transaction and END will undercount.
    event.kind = RoutedEvent::Kind::kBegin;
  } else {
    event.kind = RoutedEvent::Kind::kEnd;
    event.end_position = record.offset.value;
    event.ts_ms = marker.ts_ms;
    for (const DataCollectionCount& c : marker.data_collections) {
      event.counts.emplace_back(c.data_collection, c.event_count);
    }
  }
  encoded_ = EncodeRoutedEvent(event);
  Record out;
  out.key = marker.match_id;
  out.value = encoded_;
  out.timestamp = record.timestamp;
  return context_->Forward(out);
}

absl::Status CdcRouter::Poisoned(const Record& record, absl::Status error,
                                 const std::optional<TransactionRef>& transaction) {
  std::string id;
  std::string match_id;
  if (transaction) {
    id.assign(transaction->id);
    match_id.assign(transaction->match_id);
  } else if (std::optional<std::string> found = decoder_.FindTransactionId(*record.value)) {
    id = *std::move(found);
    match_id.assign(MatchId(id, spec_.tx_id_mode));
  }
  if (!match_id.empty()) Count('P', match_id, -1, record.partition.value);
  return MarkBadInput(std::move(error), id);
}

absl::Status CdcRouter::RouteChange(const Record& record) {
  absl::StatusOr<ChangeEvent> decoded = decoder_.DecodeChange(*record.value);
  if (!decoded.ok()) return Poisoned(record, decoded.status(), std::nullopt);
  ChangeEvent& change = *decoded;
  const CdcTable& table = table_ == 0 ? spec_.root : spec_.children[table_ - 1];
  if (change.source.data_collection != table.data_collection) {
    return Poisoned(record, absl::InvalidArgumentError(absl::StrCat(
        "change event of '", change.source.data_collection, "' on topic '",
        Sv(record.topic), "', which is configured for '", table.data_collection, "'")),
        change.transaction);
  }
  SortablePosition(change.source.position, position_);
  RowChange out;
  out.position = position_;
  out.op = static_cast<char>(change.op);
  out.change.table = static_cast<uint8_t>(table_);
  std::string unit_id;
  if (change.transaction) {
    out.unit = RowChange::Unit::kTransaction;
    out.unit_id = change.transaction->match_id;
  } else if (change.op == ChangeOp::kRead && !change.source.snapshot.empty() &&
             change.source.snapshot != "false" && change.source.snapshot != "incremental") {
    // A row of an initial snapshot: every row of one PostgreSQL snapshot
    // carries the snapshot's LSN.
    out.unit = RowChange::Unit::kSnapshot;
  } else if (change.op == ChangeOp::kRead) {
    out.unit = RowChange::Unit::kIncremental;
    out.unit_id = last_tx_;
    out.source_partition = record.partition.value;
    out.source_offset = record.offset.value;
  } else {
    out.unit = RowChange::Unit::kStandalone;
  }

  std::optional<std::string_view> key;
  std::optional<std::string_view> parent;
  if (change.op != ChangeOp::kTruncate) {
    std::optional<std::string_view> image = change.after ? change.after : change.before;
    if (!image) {
      return Poisoned(record,
                      absl::InvalidArgumentError(absl::StrCat(
                          "change event (op '", std::string(1, static_cast<char>(change.op)),
                          "') of '", change.source.data_collection,
                          "' has neither 'before' nor 'after'")),
                      change.transaction);
    }
    if (spec_.max_aggregate_bytes > 0 && image->size() > spec_.max_aggregate_bytes) {
      // It could be in no aggregate version, nor cross the repartition topic.
      return Poisoned(record,
                      absl::OutOfRangeError(absl::StrCat(
                          "row image of '", change.source.data_collection, "' is ",
                          image->size(), " bytes, over aggregate.max.bytes (",
                          spec_.max_aggregate_bytes, ")")),
                      change.transaction);
    }
    absl::StatusOr<std::vector<std::optional<std::string_view>>> values =
        decoder_.ExtractFields(*image, fields_);
    if (!values.ok()) return Poisoned(record, values.status(), change.transaction);
    if (!(*values)[0] || *(*values)[0] == "null") {
      return Poisoned(record,
                      absl::InvalidArgumentError(absl::StrCat(
                          "row of '", change.source.data_collection, "' has no key column '",
                          fields_[0], "'")),
                      change.transaction);
    }
    key = (*values)[0];
    if (table_ > 0 && change.after) {
      if (!(*values)[1]) {
        return Poisoned(record,
                        absl::InvalidArgumentError(absl::StrCat(
                            "row of '", change.source.data_collection,
                            "' has no parent column '", fields_[1], "'")),
                        change.transaction);
      }
      parent = (*values)[1];
    }
  }

  // Decoded without error: it counts, and its unit is known. Nothing above
  // has an effect, so that bad input is dead-lettered whole.
  int64_t lsn = -1;
  switch (out.unit) {
    case RowChange::Unit::kTransaction:
      if (Repeat(record.partition.value, out.unit_id, out.op, key.value_or(""))) {
        repeats_->Add(1);
        return absl::OkStatus();
      }
      Count('C', out.unit_id, -1, record.partition.value);
      TRIBUTARY_RETURN_IF_ERROR(NoteLastTransaction(out.unit_id));
      break;
    case RowChange::Unit::kSnapshot: {
      if (spec_.tx_id_mode != TxIdMode::kPostgres || !absl::SimpleAtoi(position_, &lsn)) {
        lsn = -1;
      }
      const std::string_view snapshot = change.source.snapshot;
      Count(snapshot == "last" ? 'L' : snapshot == "last_in_data_collection" ? 'T' : 'i', {},
            lsn, record.partition.value);
      unit_id = SnapshotUnitId(lsn);
      out.unit_id = unit_id;
      break;
    }
    case RowChange::Unit::kIncremental:
      // The assembler says when that transaction was released before.
      if (!last_tx_.empty()) Count('I', last_tx_, -1, record.partition.value);
      break;
    default:
      break;
  }

  if (change.shape_hash != 0) {
    if (out.unit == RowChange::Unit::kIncremental) {
      // Never a new shape of the table (a chunk may be read with the schema
      // of before an ALTER that streamed changes have shown already): the
      // aggregate brings the row to the present shape.
      out.shape = change.shape;
    } else if (change.shape_hash != sent_shape_) {
      RowChange shape = out;
      shape.change.kind = SliceOp::Kind::kShape;
      shape.change.row = change.shape;
      TRIBUTARY_RETURN_IF_ERROR(Send(std::nullopt, shape));
      sent_shape_ = change.shape_hash;
    }
  }
  if (change.op == ChangeOp::kTruncate) {
    out.change.kind = SliceOp::Kind::kTruncate;
    TRIBUTARY_RETURN_IF_ERROR(Send(std::nullopt, out));
    return table_ > 0 ? ForgetChildren() : absl::OkStatus();
  }
  if (change.op != ChangeOp::kDelete) out.change.row = change.after.value_or("{}");
  if (table_ == 0) {
    out.change.kind =
        change.op == ChangeOp::kDelete ? SliceOp::Kind::kRootDelete : SliceOp::Kind::kRootUpsert;
    return Send(*key, out);
  }

  out.change.key = *key;
  index_key_.assign(1, kIndexPrefix);
  index_key_.append(*key);
  TRIBUTARY_ASSIGN_OR_RETURN(std::optional<std::string> old_root, state_->Get(index_key_));
  RowChange remove = out;
  remove.change.kind = SliceOp::Kind::kChildDelete;
  remove.change.row = {};
  remove.shape.reset();
  if (change.op == ChangeOp::kDelete) {
    if (!old_root) {
      // Most often the repeat of a delete (a connector restart delivers
      // events again): the first removed the child. Logged once per task.
      if (orphans_->value() == 0) {
        OperatorsLogger()->warn(
            "{}: delete of child {} of table #{} whose root is unknown (a delete delivered "
            "again, or of a row this application never saw); it changes nothing; more such "
            "deletes are counted in {}",
            spec_.name, *key, table_, metric_names::kCdcOrphanChildDeletesTotal);
      }
      orphans_->Add(1);
      return absl::OkStatus();
    }
    TRIBUTARY_RETURN_IF_ERROR(Send(*old_root, remove));
    return state_->Delete(index_key_);
  }
  std::optional<std::string_view> new_root = parent;
  if (new_root && *new_root == "null") new_root.reset();
  if (old_root && (!new_root || *old_root != *new_root)) {
    TRIBUTARY_RETURN_IF_ERROR(Send(*old_root, remove));
  }
  if (new_root) {
    out.change.kind = SliceOp::Kind::kChildUpsert;
    TRIBUTARY_RETURN_IF_ERROR(Send(*new_root, out));
    if (!old_root || *old_root != *new_root) {
      return state_->Put(index_key_, *new_root);
    }
  } else if (old_root) {
    return state_->Delete(index_key_);
  }
  return absl::OkStatus();
}

}  // namespace tributary::internal
