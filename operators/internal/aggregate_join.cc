#include "operators/internal/aggregate_join.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/absl_compat.h"
#include "base/json_escape.h"
#include "base/status_macros.h"
#include "operators/internal/codec.h"
#include "operators/internal/log.h"

namespace tributary::internal {
namespace {

// Keys of the roots store besides r<root> and v<root>.
constexpr char kTouchedPrefix = 't';  // t<root> -> "d"/"u": held, not yet flushed
constexpr char kShapePrefix = 's';    // s<table> -> the table's shape
constexpr char kFlushedKey = 'b';     // b -> END position of the last flush

std::string RootKey(char prefix, std::string_view root) {
  std::string key(1, prefix);
  key.append(root);
  return key;
}

std::string ChildPrefix(std::string_view root) {
  std::string key(root);
  key.push_back('\0');
  return key;
}

// The inside of a JSON object's text, without its braces and surrounding
// whitespace ("" for an empty object).
std::string_view ObjectBody(std::string_view object) {
  size_t open = object.find('{');
  size_t close = object.rfind('}');
  if (open == std::string_view::npos || close == std::string_view::npos || close <= open) {
    return {};
  }
  std::string_view body = object.substr(open + 1, close - open - 1);
  while (!body.empty() && (body.front() == ' ' || body.front() == '\n')) body.remove_prefix(1);
  while (!body.empty() && (body.back() == ' ' || body.back() == '\n')) body.remove_suffix(1);
  return body;
}

}  // namespace

absl::Status AggregateJoin::Init(ProcessorContext& context) {
  context_ = &context;
  roots_ = context.GetStateStore(RootsStore(spec_));
  children_ = context.GetStateStore(ChildrenStore(spec_));
  if (roots_ == nullptr || children_ == nullptr) {
    return absl::FailedPreconditionError("AggregateJoin: its stores are not connected");
  }
  MetricTags tags{{std::string(metric_names::kTaskTag), context.task_id().ToString()},
                  {std::string(metric_names::kOperatorTag), spec_.name}};
  emitted_ = context.metrics().GetCounter(metric_names::kCdcAggregatesEmittedTotal, tags);
  stale_ = context.metrics().GetCounter(metric_names::kCdcStaleSlicesDroppedTotal, tags);
  unresolved_ = context.metrics().GetCounter(metric_names::kCdcUnavailableValuesUnresolvedTotal, tags);
  reshaped_ = context.metrics().GetCounter(metric_names::kCdcRowsReshapedTotal, tags);
  own_fields_.clear();
  for (const CdcTable& child : spec_.children) own_fields_.push_back(child.array_field);
  own_fields_.push_back(spec_.source_field);
  own_fields_.push_back(spec_.version_field);
  return absl::OkStatus();
}

absl::StatusOr<std::string_view> AggregateJoin::FillUnavailable(
    std::string_view what, std::string_view key, std::string_view row,
    std::optional<std::string_view> previous, std::string& merged) {
  if (!unavailable_.MayHold(row)) return row;
  std::vector<std::string> unresolved;
  TRIBUTARY_ASSIGN_OR_RETURN(bool replaced,
                             unavailable_.Merge(row, previous, merged, unresolved));
  if (!replaced) return row;
  if (!unresolved.empty()) {
    unresolved_->Add(static_cast<int64_t>(unresolved.size()));
    OperatorsLogger()->warn(
        "{}: {} {}: column(s) {} arrived as Debezium's placeholder '{}' (an unchanged "
        "TOASTed value) and no earlier value is known here; the placeholder stays. Set "
        "REPLICA IDENTITY FULL on the table to have Debezium send such values",
        spec_.name, what, key, absl::StrJoin(unresolved, ", "),
        spec_.unavailable_placeholder);
  }
  return std::string_view(merged);
}

absl::Status AggregateJoin::CheckNoClash(std::string_view root_key, std::string_view root_row) {
  bool may_clash = false;
  for (const std::string& name : own_fields_) {
    std::string quoted;
    AppendJsonString(quoted, name);
    may_clash = may_clash || root_row.find(quoted) != std::string_view::npos;
  }
  if (!may_clash) return absl::OkStatus();
  TRIBUTARY_ASSIGN_OR_RETURN(auto fields, clash_fields_.Read(root_row));
  for (const auto& [column, value] : fields) {
    for (size_t i = 0; i < own_fields_.size(); ++i) {
      if (column != own_fields_[i]) continue;
      const char* setting = i < spec_.children.size() ? "the child table's array field"
                            : i == spec_.children.size() ? "aggregate.source.field"
                                                         : "aggregate.version.field";
      return absl::InvalidArgumentError(absl::StrCat(
          "root ", Sv(root_key), " of ", spec_.root.data_collection, " has a column '",
          Sv(column), "', which is also a field of the aggregate: set ", setting,
          " to another name"));
    }
  }
  return absl::OkStatus();
}

absl::Status AggregateJoin::Process(const Record& record) {
  if (!record.key || !record.value) {
    return absl::DataLossError("aggregate slice without key or value");
  }
  const std::string_view root = *record.key;
  TRIBUTARY_ASSIGN_OR_RETURN(RootSlice slice, DecodeRootSlice(*record.value));
  if (!root.empty() && root[0] == kBroadcastKeyPrefix) return ProcessBroadcast(slice);

  const std::string version_key = RootKey('v', root);
  TRIBUTARY_ASSIGN_OR_RETURN(const auto applied, ReadVersion(version_key));
  int64_t version = applied.first;
  const int64_t last_position = applied.second;
  if (slice.position >= 0 && slice.position <= last_position) {
    stale_->Add(1);
    return absl::OkStatus();
  }

  const std::string row_key = RootKey('r', root);
  TRIBUTARY_ASSIGN_OR_RETURN(std::optional<std::string> root_row, roots_->Get(row_key));
  bool root_deleted = false;
  bool root_deleted_once = false;
  WriteBatch root_writes;
  WriteBatch child_writes;
  std::string child_key;
  std::string merged;
  bool changed = false;  // an incremental snapshot row that says something new
  for (const SliceOp& op : slice.ops) {
    switch (op.kind) {
      case SliceOp::Kind::kRootUpsert: {
        std::optional<std::string_view> previous;
        if (root_row) previous = *root_row;
        TRIBUTARY_ASSIGN_OR_RETURN(std::string_view row,
                                   FillUnavailable("root", root, op.row, previous, merged));
        changed = changed || !previous || *previous != row;
        root_row = std::string(row);
        root_deleted = false;
        break;
      }
      case SliceOp::Kind::kRootDelete:
        root_row.reset();
        root_deleted = true;
        root_deleted_once = true;
        changed = true;
        break;
      case SliceOp::Kind::kShape:
      case SliceOp::Kind::kTruncate:
        return absl::DataLossError("table-wide operation in the slice of one root");
      case SliceOp::Kind::kChildUpsert:
      case SliceOp::Kind::kChildDelete:
        child_key = ChildPrefix(root);
        child_key.push_back(static_cast<char>(op.table));
        child_key.append(SortableKey(op.key));
        if (op.kind == SliceOp::Kind::kChildUpsert) {
          std::string_view row = op.row;
          const bool may_hold = unavailable_.MayHold(row);
          if (may_hold || slice.incremental) {
            // The child as it was: written earlier in this slice, or stored.
            std::optional<std::string> stored;
            const auto& entries = child_writes.entries();
            auto earlier = std::find_if(entries.rbegin(), entries.rend(),
                                        [&](const auto& e) { return e.key == child_key; });
            if (earlier != entries.rend()) {
              stored = earlier->value;
            } else {
              TRIBUTARY_ASSIGN_OR_RETURN(stored, children_->Get(child_key));
            }
            std::optional<std::string_view> previous;
            if (stored) previous = *stored;
            if (may_hold) {
              TRIBUTARY_ASSIGN_OR_RETURN(
                  row, FillUnavailable(spec_.children[op.table - 1].data_collection, op.key,
                                       row, previous, merged));
            }
            changed = changed || !previous || *previous != row;
          }
          child_writes.Put(child_key, row);
        } else {
          child_writes.Delete(child_key);
          changed = true;
        }
        break;
    }
  }
  if (root_row) {
    root_writes.Put(row_key, *root_row);
  } else {
    root_writes.Delete(row_key);
  }
  TRIBUTARY_RETURN_IF_ERROR(children_->Write(child_writes));

  if (slice.hold) {
    // Emitted by the transaction's flush; 'd': the root was deleted in it.
    const std::string touched_key = RootKey(kTouchedPrefix, root);
    TRIBUTARY_ASSIGN_OR_RETURN(std::optional<std::string> touched, roots_->Get(touched_key));
    root_writes.Put(touched_key,
                    root_deleted_once || (touched && *touched == "d") ? "d" : "u");
    return roots_->Write(root_writes);
  }

  // Snapshot rows wait for the snapshot's end; its flush emits each root once.
  // An incremental snapshot row equal to what is held says nothing new.
  const bool emit = !slice.snapshot_hold && (!slice.incremental || changed) &&
                    (root_row.has_value() || root_deleted);
  if (emit) ++version;
  std::string new_meta;
  PutOrderedInt64(new_meta, version);
  PutOrderedInt64(new_meta, std::max(slice.position, last_position));
  root_writes.Put(version_key, new_meta);
  TRIBUTARY_RETURN_IF_ERROR(roots_->Write(root_writes));
  if (!emit) return absl::OkStatus();  // children wait for their root

  emitted_->Add(1);
  if (!root_row) {
    Record tombstone;
    tombstone.key = root;
    tombstone.timestamp = record.timestamp;
    return context_->Forward(tombstone);
  }
  return BuildAggregate(root, *root_row, slice, version);
}

absl::StatusOr<std::pair<int64_t, int64_t>> AggregateJoin::ReadVersion(
    const std::string& version_key) {
  // v<root>: version (8 bytes) then the position last applied (8 bytes).
  TRIBUTARY_ASSIGN_OR_RETURN(std::optional<std::string> meta, roots_->Get(version_key));
  if (!meta || meta->size() != 16) return std::pair<int64_t, int64_t>(0, -1);
  return std::pair<int64_t, int64_t>(GetOrderedInt64(*meta),
                                     GetOrderedInt64(std::string_view(*meta).substr(8)));
}

absl::Status AggregateJoin::ProcessBroadcast(const RootSlice& slice) {
  TRIBUTARY_ASSIGN_OR_RETURN(std::optional<std::string> flushed,
                             roots_->Get(std::string(1, kFlushedKey)));
  // Truncates and flushes of a transaction already flushed here: a
  // re-delivery. New shapes apply whenever they differ from the stored one.
  const bool stale = slice.position >= 0 && flushed && flushed->size() == 8 &&
                     slice.position <= GetOrderedInt64(*flushed);
  for (const SliceOp& op : slice.ops) {
    if (op.table > spec_.children.size()) {
      return absl::DataLossError(absl::StrCat("broadcast slice for table #", op.table));
    }
    if (op.kind == SliceOp::Kind::kShape) {
      TRIBUTARY_RETURN_IF_ERROR(ApplyShape(op.table, op.row, slice.hold && !stale));
    } else if (op.kind == SliceOp::Kind::kTruncate && !stale) {
      TRIBUTARY_RETURN_IF_ERROR(Truncate(op.table));
    } else if (op.kind != SliceOp::Kind::kTruncate) {
      return absl::DataLossError("row operation in a broadcast slice");
    }
  }
  if (!slice.flush || stale) return absl::OkStatus();
  return Flush(slice);
}

std::string_view AggregateJoin::TableName(uint8_t table) const {
  return table == 0 ? spec_.root.data_collection : spec_.children[table - 1].data_collection;
}

absl::Status AggregateJoin::ApplyShape(uint8_t table, std::string_view shape, bool touch) {
  const std::string shape_key = absl::StrCat(std::string(1, kShapePrefix),
                                             std::string(1, static_cast<char>(table)));
  TRIBUTARY_ASSIGN_OR_RETURN(std::optional<std::string> stored, roots_->Get(shape_key));
  if (stored && *stored == shape) return absl::OkStatus();
  TRIBUTARY_ASSIGN_OR_RETURN(RowShape parsed, RowShape::Parse(shape));
  // Rows stored in an older shape: every root row, or the child rows of
  // `table` (the children store is by root, so all of it is read).
  KeyValueStore* store = table == 0 ? roots_ : children_;
  WriteBatch rewrites;
  std::vector<std::string> roots;  // whose rows changed, in key order
  {
    auto it = table == 0 ? roots_->PrefixScan("r") : children_->All();
    std::string conformed;
    for (; it->Valid(); it->Next()) {
      const std::string_view key = it->key();
      std::string_view root = key.substr(1);
      if (table > 0) {
        const size_t end = key.find('\0');
        if (end == std::string_view::npos || end + 1 >= key.size() ||
            static_cast<uint8_t>(key[end + 1]) != table) {
          continue;
        }
        root = key.substr(0, end);
      }
      TRIBUTARY_ASSIGN_OR_RETURN(bool rewritten,
                                 parsed.Conform(it->value(), row_fields_, conformed));
      if (!rewritten) continue;
      rewrites.Put(key, conformed);
      if (roots.empty() || roots.back() != root) roots.emplace_back(root);
    }
    TRIBUTARY_RETURN_IF_ERROR(it->status());
  }
  const int64_t rows = static_cast<int64_t>(rewrites.entries().size());
  TRIBUTARY_RETURN_IF_ERROR(store->Write(rewrites));
  if (touch) TRIBUTARY_RETURN_IF_ERROR(Touch(roots));
  TRIBUTARY_RETURN_IF_ERROR(roots_->Put(shape_key, shape));
  reshaped_->Add(rows);
  OperatorsLogger()->info("{}: {} has the columns {} now (ALTER TABLE); {} stored rows rewritten",
                          spec_.name, TableName(table), parsed.Names(), rows);
  return absl::OkStatus();
}

absl::Status AggregateJoin::Truncate(uint8_t table) {
  WriteBatch deletes;
  WriteBatch touched;
  int64_t rows = 0;
  if (table == 0) {
    auto it = roots_->PrefixScan("r");
    for (; it->Valid(); it->Next()) {
      deletes.Delete(it->key());
      touched.Put(RootKey(kTouchedPrefix, it->key().substr(1)), "d");
      ++rows;
    }
    TRIBUTARY_RETURN_IF_ERROR(it->status());
    it.reset();
    TRIBUTARY_RETURN_IF_ERROR(roots_->Write(deletes));
  } else {
    std::vector<std::string> roots;
    auto it = children_->All();
    for (; it->Valid(); it->Next()) {
      const std::string_view key = it->key();
      const size_t end = key.find('\0');
      if (end == std::string_view::npos || end + 1 >= key.size() ||
          static_cast<uint8_t>(key[end + 1]) != table) {
        continue;
      }
      deletes.Delete(key);
      ++rows;
      const std::string_view root = key.substr(0, end);
      if (roots.empty() || roots.back() != root) roots.emplace_back(root);
    }
    TRIBUTARY_RETURN_IF_ERROR(it->status());
    it.reset();
    TRIBUTARY_RETURN_IF_ERROR(children_->Write(deletes));
    TRIBUTARY_RETURN_IF_ERROR(Touch(roots));
  }
  OperatorsLogger()->info("{}: TRUNCATE of {}: {} rows deleted here", spec_.name,
                          TableName(table), rows);
  return roots_->Write(touched);
}

absl::Status AggregateJoin::Touch(const std::vector<std::string>& roots) {
  WriteBatch touched;
  for (const std::string& root : roots) {
    const std::string touched_key = RootKey(kTouchedPrefix, root);
    TRIBUTARY_ASSIGN_OR_RETURN(std::optional<std::string> was, roots_->Get(touched_key));
    if (!was) touched.Put(touched_key, "u");
  }
  return roots_->Write(touched);
}

absl::Status AggregateJoin::Flush(const RootSlice& slice) {
  std::vector<std::pair<std::string, bool>> touched;  // root, deleted in the tx
  WriteBatch writes;
  {
    auto it = roots_->PrefixScan(std::string(1, kTouchedPrefix));
    for (; it->Valid(); it->Next()) {
      touched.emplace_back(std::string(it->key().substr(1)), it->value() == "d");
      writes.Delete(it->key());
    }
    TRIBUTARY_RETURN_IF_ERROR(it->status());
  }
  std::string flushed;
  PutOrderedInt64(flushed, slice.position);
  writes.Put(std::string(1, kFlushedKey), flushed);
  for (const auto& [root, deleted] : touched) {
    const std::string version_key = RootKey('v', root);
    TRIBUTARY_ASSIGN_OR_RETURN(const auto applied, ReadVersion(version_key));
  int64_t version = applied.first;
  const int64_t last_position = applied.second;
    TRIBUTARY_ASSIGN_OR_RETURN(std::optional<std::string> root_row,
                               roots_->Get(RootKey('r', root)));
    const bool emit = root_row.has_value() || deleted;
    if (emit) ++version;
    std::string new_meta;
    PutOrderedInt64(new_meta, version);
    PutOrderedInt64(new_meta, std::max(slice.position, last_position));
    writes.Put(version_key, new_meta);
    if (!emit) continue;  // children wait for their root
    emitted_->Add(1);
    if (!root_row) {
      Record tombstone;
      tombstone.key = root;
      tombstone.timestamp = context_->stream_time();
      TRIBUTARY_RETURN_IF_ERROR(context_->Forward(tombstone));
      continue;
    }
    TRIBUTARY_RETURN_IF_ERROR(BuildAggregate(root, *root_row, slice, version));
  }
  return roots_->Write(writes);
}

absl::Status AggregateJoin::BuildAggregate(std::string_view root_key,
                                           std::string_view root_row,
                                           const RootSlice& slice, int64_t version) {
  TRIBUTARY_RETURN_IF_ERROR(CheckNoClash(root_key, root_row));
  out_.clear();
  out_.push_back('{');
  std::string_view body = ObjectBody(root_row);
  out_.append(body);
  bool first_field = body.empty();
  auto scan = children_->PrefixScan(ChildPrefix(root_key));
  for (size_t table = 1; table <= spec_.children.size(); ++table) {
    if (!first_field) out_.push_back(',');
    first_field = false;
    AppendJsonString(out_, spec_.children[table - 1].array_field);
    out_.append(":[");
    bool first_child = true;
    // Children are stored by table, then child key: one pass over the scan.
    while (scan->Valid()) {
      std::string_view key = scan->key();
      uint8_t child_table = static_cast<uint8_t>(key[root_key.size() + 1]);
      if (child_table != table) break;
      if (!first_child) out_.push_back(',');
      first_child = false;
      out_.append(scan->value());
      scan->Next();
    }
    out_.push_back(']');
  }
  TRIBUTARY_RETURN_IF_ERROR(scan->status());
  if (!first_field) out_.push_back(',');
  AppendJsonString(out_, spec_.source_field);
  out_.append(":{\"id\":");
  AppendJsonString(out_, slice.tx_id);
  absl::StrAppend(&out_, ",\"position\":", slice.position);
  if (slice.partial) out_.append(",\"partial\":true");
  out_.append("},");
  AppendJsonString(out_, spec_.version_field);
  absl::StrAppend(&out_, ":", version, "}");

  Record out;
  out.key = root_key;
  out.value = out_;
  out.timestamp = context_->stream_time();
  return context_->Forward(out);
}

}  // namespace tributary::internal
