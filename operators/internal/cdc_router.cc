#include "operators/internal/cdc_router.h"

#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"
#include "base/status_macros.h"
#include "operators/internal/cdc_messages.h"
#include "operators/internal/log.h"

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

absl::Status CdcRouter::Init(ProcessorContext& context) {
  context_ = &context;
  if (table_ >= 0) {
    context.Schedule(spec_.progress_interval, PunctuationType::kWallClockTime,
                     [this](TimestampMs now) { return ReportProgress(now); });
  }
  return absl::OkStatus();
}

absl::Status CdcRouter::ReportProgress(TimestampMs now) {
  const CdcTable& table = table_ == 0 ? spec_.root : spec_.children[table_ - 1];
  absl::StatusOr<SourceProgress> progress = context_->QuerySourceProgress(table.topic);
  if (!progress.ok()) {
    // Not fatal: the proof is only late. The next interval asks again.
    OperatorsLogger()->debug("{}: progress of {}[{}] unknown: {}", spec_.name, table.topic,
                             context_->task_id().partition, progress.status().ToString());
    return absl::OkStatus();
  }
  if (!progress->caught_up()) return absl::OkStatus();
  RoutedEvent event;
  event.kind = RoutedEvent::Kind::kProgress;
  event.table = static_cast<uint8_t>(table_);
  event.source_partition = context_->task_id().partition;
  event.caught_up_ms = progress->as_of.value;
  encoded_ = EncodeRoutedEvent(event);
  Record out;
  out.key = "progress";
  out.value = encoded_;
  out.timestamp = now;
  return context_->Forward(out);
}

absl::Status CdcRouter::Process(const Record& record) {
  // Tombstones follow deletes on table topics and carry nothing to apply.
  if (!record.value) return absl::OkStatus();
  return table_ < 0 ? RouteMarker(record) : RouteChange(record);
}

absl::Status CdcRouter::RouteMarker(const Record& record) {
  TRIBUTARY_ASSIGN_OR_RETURN(TransactionMarker marker, decoder_.DecodeMarker(*record.value));
  RoutedEvent event;
  event.tx_id = marker.id;
  if (marker.status == TransactionMarker::Status::kBegin) {
    // The assembler counts BEGINs: a second one means the connector
    // restarted inside the transaction and END will undercount.
    event.kind = RoutedEvent::Kind::kBegin;
    encoded_ = EncodeRoutedEvent(event);
    Record out;
    out.key = marker.match_id;
    out.value = encoded_;
    out.timestamp = record.timestamp;
    return context_->Forward(out);
  }
  event.kind = RoutedEvent::Kind::kEnd;
  event.end_position = record.offset.value;
  event.ts_ms = marker.ts_ms;
  for (const DataCollectionCount& c : marker.data_collections) {
    event.counts.emplace_back(c.data_collection, c.event_count);
  }
  encoded_ = EncodeRoutedEvent(event);
  Record out;
  out.key = marker.match_id;
  out.value = encoded_;
  out.timestamp = record.timestamp;
  return context_->Forward(out);
}

absl::Status CdcRouter::RouteChange(const Record& record) {
  TRIBUTARY_ASSIGN_OR_RETURN(ChangeEvent change, decoder_.DecodeChange(*record.value));
  const CdcTable& table = table_ == 0 ? spec_.root : spec_.children[table_ - 1];
  if (change.source.data_collection != table.data_collection) {
    return absl::InvalidArgumentError(absl::StrCat(
        "change event of '", change.source.data_collection, "' on topic '",
        Sv(record.topic), "', which is configured for '", table.data_collection, "'"));
  }
  RoutedEvent event;
  event.kind = change.transaction ? RoutedEvent::Kind::kChange
                                  : RoutedEvent::Kind::kStandalone;
  event.table = static_cast<uint8_t>(table_);
  event.source_partition = record.partition.value;
  event.op = static_cast<char>(change.op);
  if (!change.transaction && change.op == ChangeOp::kRead) {
    const std::string_view snapshot = change.source.snapshot;
    if (snapshot == "last") {
      event.snapshot = 'L';
    } else if (snapshot == "last_in_data_collection") {
      event.snapshot = 'T';
    } else if (!snapshot.empty() && snapshot != "false" && snapshot != "incremental") {
      event.snapshot = 'i';
    }
  }
  event.ts_ms = change.ts_ms;
  SortablePosition(change.source.position, position_);
  event.position = position_;
  if (change.op != ChangeOp::kTruncate) {
    std::optional<std::string_view> image = change.after ? change.after : change.before;
    if (!image) {
      return absl::InvalidArgumentError(absl::StrCat(
          "change event (op '", std::string(1, static_cast<char>(change.op)),
          "') of '", change.source.data_collection, "' has neither 'before' nor 'after'"));
    }
    TRIBUTARY_ASSIGN_OR_RETURN(auto values, decoder_.ExtractFields(*image, fields_));
    if (!values[0] || *values[0] == "null") {
      return absl::InvalidArgumentError(absl::StrCat(
          "row of '", change.source.data_collection, "' has no key column '",
          fields_[0], "'"));
    }
    event.key = *values[0];
    if (table_ > 0 && change.after) {
      if (!values[1]) {
        return absl::InvalidArgumentError(absl::StrCat(
            "row of '", change.source.data_collection, "' has no parent column '",
            fields_[1], "'"));
      }
      event.parent = values[1];
    }
    if (change.op != ChangeOp::kDelete) event.row = change.after;
    // Events without a transaction (snapshot rows) carry their shape always:
    // an incremental snapshot's row may come in an older schema than the
    // streamed events before it.
    if (change.shape_hash != 0 &&
        (!change.transaction || change.shape_hash != sent_shape_)) {
      event.shape = change.shape;
      if (change.transaction) sent_shape_ = change.shape_hash;
    }
  }
  encoded_ = EncodeRoutedEvent(event);
  Record out;
  if (change.transaction) {
    out.key = change.transaction->match_id;
  } else {
    standalone_key_ = absl::StrCat("standalone:", Sv(record.topic), ":",
                                   record.partition.value, ":", record.offset.value);
    out.key = standalone_key_;
  }
  out.value = encoded_;
  out.timestamp = record.timestamp;
  return context_->Forward(out);
}

}  // namespace tributary::internal
