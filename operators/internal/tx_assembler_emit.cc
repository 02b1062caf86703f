// TxAssembler, its second half: a released unit (a transaction, a snapshot
// row, an incremental snapshot row) becomes RootSlices, with the table-wide
// operations (new shapes, truncates) broadcast to every aggregate partition
// where they happened. See "Table-wide operations" in tx_assembler.h.
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

using tx_keys::MetaKey;
using tx_keys::kShapePrefix;
using tx_keys::kTouchedPrefix;

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

absl::StatusOr<std::string_view> TxAssembler::ShapeOf(uint8_t table) {
  auto it = shapes_.find(table);
  if (it == shapes_.end()) {
    TRIBUTARY_ASSIGN_OR_RETURN(std::optional<std::string> stored,
                               meta_->Get(MetaKey(kShapePrefix, std::string(1, char(table)))));
    it = shapes_.emplace(table, stored.value_or("")).first;
  }
  return std::string_view(it->second);
}

absl::Status TxAssembler::Broadcast(std::string_view tx_id, int64_t position,
                                    const RootSlice& slice) {
  TRIBUTARY_ASSIGN_OR_RETURN(int32_t partitions,
                             context_->PartitionCount(AggregateTopic(spec_)));
  RootSlice copy = slice;
  copy.tx_id = tx_id;
  copy.position = position;
  const std::string encoded = EncodeRootSlice(copy);
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

absl::Status TxAssembler::ConformIncrementalRow(RoutedEvent& event, std::string& storage) {
  if (!event.shape) return absl::OkStatus();
  const std::string_view shape = *std::exchange(event.shape, std::nullopt);
  TRIBUTARY_ASSIGN_OR_RETURN(std::string_view current, ShapeOf(event.table));
  if (current.empty() || current == shape || !event.row) return absl::OkStatus();
  TRIBUTARY_ASSIGN_OR_RETURN(RowShape parsed, RowShape::Parse(current));
  TRIBUTARY_ASSIGN_OR_RETURN(bool rewritten, parsed.Conform(*event.row, row_fields_, storage));
  if (!rewritten) return absl::OkStatus();
  event.row = storage;
  if (snapshot_rows_reshaped_->value() == 0) {
    OperatorsLogger()->warn(
        "{}: an incremental snapshot row of table #{} came in another shape than the table's "
        "streamed changes (Debezium read it with a schema of before an ALTER TABLE); it is "
        "read in the table's present shape {}; more such rows are counted in {}",
        spec_.name, event.table, parsed.Names(), metric_names::kCdcSnapshotRowsReshapedTotal);
  }
  snapshot_rows_reshaped_->Add(1);
  return absl::OkStatus();
}

absl::Status TxAssembler::Emit(std::string_view tx_id, int64_t position, bool partial,
                               const std::vector<RoutedEvent>& unit_events, Unit unit) {
  // A streamed transaction's shapes follow commit order, as do an initial
  // snapshot's (one read at one position). An incremental snapshot row's do
  // not (a chunk may be read with the schema of before an ALTER that
  // streamed changes have shown already): it never changes a table's shape
  // and is brought to the present one.
  std::vector<RoutedEvent> incremental;
  std::string conformed;
  if (unit == Unit::kIncrementalRow) {
    incremental = unit_events;
    for (RoutedEvent& event : incremental) {
      TRIBUTARY_RETURN_IF_ERROR(ConformIncrementalRow(event, conformed));
    }
  }
  const std::vector<RoutedEvent>& events =
      unit == Unit::kIncrementalRow ? incremental : unit_events;
  const bool snapshot_hold = unit == Unit::kSnapshotRow;
  // Table-wide operations before event i: a new shape of a table (its first
  // event after an ALTER TABLE) and truncates, in log order. A transaction
  // with one is held: its slices are applied but emit nothing until the
  // flush that ends it, which emits every root it touched once, including
  // those whose rows the table-wide operation changed. (Snapshot rows are
  // units without versions of their own; a new shape there only rewrites.)
  std::map<size_t, std::vector<SliceOp>> table_ops;
  bool hold = false;
  {
    absl::flat_hash_map<uint8_t, std::string_view> shapes;
    for (size_t i = 0; i < events.size(); ++i) {
      const RoutedEvent& event = events[i];
      if (event.shape) {
        auto known = shapes.find(event.table);
        if (known == shapes.end()) {
          TRIBUTARY_ASSIGN_OR_RETURN(std::string_view current, ShapeOf(event.table));
          known = shapes.emplace(event.table, current).first;
        }
        if (known->second != *event.shape) {
          known->second = *event.shape;
          table_ops[i].push_back({SliceOp::Kind::kShape, event.table, {}, *event.shape});
        }
      }
      if (event.op == 't') {
        table_ops[i].push_back({SliceOp::Kind::kTruncate, event.table, {}, {}});
      }
    }
    hold = unit == Unit::kTransaction && !table_ops.empty();
  }
  std::map<std::string, RootSlice> slices;
  std::deque<std::string> parents;  // owns root keys read from the index
  auto slice_of = [&](std::string_view root) -> RootSlice& {
    RootSlice& slice = slices[std::string(root)];
    slice.tx_id = tx_id;
    slice.position = position;
    slice.partial = partial;
    slice.snapshot_hold = snapshot_hold;
    slice.incremental = unit == Unit::kIncrementalRow;
    slice.hold = hold;
    return slice;
  };
  std::string encoded;
  auto forward_slices = [&]() -> absl::Status {
    for (const auto& [root, slice] : slices) {
      if (snapshot_hold) {
        // Emitted when the snapshot has been applied (ApplySnapshot).
        TRIBUTARY_RETURN_IF_ERROR(meta_->Put(MetaKey(kTouchedPrefix, root), ""));
      }
      encoded = EncodeRootSlice(slice);
      Record out;
      out.key = root;
      out.value = encoded;
      out.timestamp = context_->stream_time();
      TRIBUTARY_RETURN_IF_ERROR(context_->Forward(out));
    }
    slices.clear();
    parents.clear();
    return absl::OkStatus();
  };
  for (size_t i = 0; i < events.size(); ++i) {
    const RoutedEvent& event = events[i];
    if (auto ops = table_ops.find(i); ops != table_ops.end()) {
      // What came before goes first: a slice says nothing of table ops.
      TRIBUTARY_RETURN_IF_ERROR(forward_slices());
      RootSlice broadcast;
      broadcast.partial = partial;
      broadcast.hold = hold;
      broadcast.ops = ops->second;
      TRIBUTARY_RETURN_IF_ERROR(Broadcast(tx_id, position, broadcast));
      for (const SliceOp& op : ops->second) {
        if (op.kind == SliceOp::Kind::kShape) {
          shapes_[op.table] = std::string(op.row);
          TRIBUTARY_RETURN_IF_ERROR(
              meta_->Put(MetaKey(kShapePrefix, std::string(1, char(op.table))), op.row));
        } else if (op.table > 0) {
          TRIBUTARY_RETURN_IF_ERROR(ForgetChildren(op.table));
        }
      }
    }
    if (event.op == 't') continue;
    if (event.table == 0) {
      SliceOp op;
      op.kind = event.op == 'd' ? SliceOp::Kind::kRootDelete : SliceOp::Kind::kRootUpsert;
      if (event.row) op.row = *event.row;
      slice_of(event.key).ops.push_back(op);
      continue;
    }
    std::string index_key(1, static_cast<char>(event.table));
    index_key.append(event.key);
    TRIBUTARY_ASSIGN_OR_RETURN(std::optional<std::string> old_parent, index_->Get(index_key));
    std::optional<std::string_view> old_root;
    if (old_parent) old_root = parents.emplace_back(std::move(*old_parent));
    SliceOp remove{SliceOp::Kind::kChildDelete, event.table, event.key, {}};
    if (event.op == 'd') {
      if (old_root) {
        slice_of(*old_root).ops.push_back(remove);
        TRIBUTARY_RETURN_IF_ERROR(index_->Delete(index_key));
      } else {
        orphans_->Add(1);
        OperatorsLogger()->warn("{}: delete of child {} of table #{} whose root is unknown",
                                spec_.name, event.key, event.table);
      }
      continue;
    }
    std::optional<std::string_view> new_root = event.parent;
    if (new_root && *new_root == "null") new_root.reset();
    if (old_root && (!new_root || *old_root != *new_root)) {
      slice_of(*old_root).ops.push_back(remove);
    }
    if (new_root) {
      SliceOp upsert{SliceOp::Kind::kChildUpsert, event.table, event.key,
                     event.row.value_or("{}")};
      slice_of(*new_root).ops.push_back(upsert);
      if (!old_root || *old_root != *new_root) {
        TRIBUTARY_RETURN_IF_ERROR(index_->Put(index_key, *new_root));
      }
    } else if (old_root) {
      TRIBUTARY_RETURN_IF_ERROR(index_->Delete(index_key));
    }
  }
  TRIBUTARY_RETURN_IF_ERROR(forward_slices());
  if (hold) {
    RootSlice flush;
    flush.partial = partial;
    flush.flush = true;
    TRIBUTARY_RETURN_IF_ERROR(Broadcast(tx_id, position, flush));
  }
  return absl::OkStatus();
}

absl::Status TxAssembler::ForgetChildren(uint8_t table) {
  // The index entries of a truncated child table: its rows are gone.
  WriteBatch forget;
  {
    auto it = index_->PrefixScan(std::string(1, static_cast<char>(table)));
    for (; it->Valid(); it->Next()) forget.Delete(it->key());
    TRIBUTARY_RETURN_IF_ERROR(it->status());
  }
  return index_->Write(forget);
}

}  // namespace tributary::internal
