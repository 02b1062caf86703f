#include "operators/internal/aggregate_join.h"

#include <algorithm>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/absl_compat.h"
#include "base/json_escape.h"
#include "base/status_macros.h"
#include "operators/internal/codec.h"
#include "operators/internal/log.h"
#include "operators/internal/tx_assembler.h"
#include "state/in_memory_store.h"

namespace tributary::internal {
namespace {

// Keys of the roots store besides r<root> and v<root>.
constexpr char kTouchedPrefix = 't';  // t<root> -> "d"/"u": held, not yet flushed
constexpr char kShapePrefix = 's';    // s<table> -> the table's shape

// Keys of the pending store.
constexpr char kUnitPrefix = 'u';
constexpr char kTableOpPrefix = 'w';
constexpr char kWaitingPrefix = 'i';
// In the roots store: the offset of the last record processed as of the
// last commit.
constexpr char kProcessedKey = 'o';
// In the roots store: the release under way in pieces (ReleaseProgress).
constexpr char kReleaseProgressKey = 'q';

std::string UnitPrefix(char kind, std::string_view unit) {
  std::string key(1, kind);
  key.append(unit);
  key.push_back('\0');
  return key;
}

// What tells two changes of one unit and root apart (see the header).
void AppendIdentity(std::string& key, const RowChange& change) {
  key.push_back(static_cast<char>(change.change.table));
  key.push_back(static_cast<char>(change.change.kind));
  key.push_back(change.op);
  key.append(change.change.key);
}

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

// A root's children in the store's order, each with its table: read from a
// scan of the children store (and copied into `fill`, if not null)...
class ScanCursor {
 public:
  ScanCursor(KeyValueIterator& scan, size_t prefix_size, AssembledRoots::Children* fill)
      : scan_(scan), prefix_size_(prefix_size), fill_(fill) {}
  bool Valid() const { return scan_.Valid(); }
  uint8_t table() const {
    const std::string_view key = scan_.key();
    return key.size() > prefix_size_ ? static_cast<uint8_t>(key[prefix_size_]) : 0;
  }
  std::string_view row() const { return scan_.value(); }
  void Next() {
    if (fill_ != nullptr) {
      fill_->emplace_hint(fill_->end(), scan_.key().substr(prefix_size_), scan_.value());
    }
    scan_.Next();
  }

 private:
  KeyValueIterator& scan_;
  const size_t prefix_size_;
  AssembledRoots::Children* fill_;
};

// ... or from the root's assembled children.
class AssembledCursor {
 public:
  explicit AssembledCursor(const AssembledRoots::Children& children)
      : it_(children.begin()), end_(children.end()) {}
  bool Valid() const { return it_ != end_; }
  uint8_t table() const { return it_->first.empty() ? 0 : static_cast<uint8_t>(it_->first[0]); }
  std::string_view row() const { return it_->second; }
  void Next() { ++it_; }

 private:
  AssembledRoots::Children::const_iterator it_;
  const AssembledRoots::Children::const_iterator end_;
};

// Appends one array field per child table to `out`, of the rows `cursor`
// yields (by table, then child key: one pass). Returns the new first_field.
template <typename Cursor>
bool AppendChildArrays(const std::vector<CdcTable>& tables, Cursor& cursor, bool first_field,
                       std::string& out) {
  for (size_t table = 1; table <= tables.size(); ++table) {
    if (!first_field) out.push_back(',');
    first_field = false;
    AppendJsonString(out, tables[table - 1].array_field);
    out.append(":[");
    bool first_child = true;
    for (; cursor.Valid() && cursor.table() == table; cursor.Next()) {
      if (!first_child) out.push_back(',');
      first_child = false;
      out.append(cursor.row());
    }
    out.push_back(']');
  }
  return first_field;
}

// The aggregate's "source" object of a version applied from `slice`:
// {"id":"<tx>","position":N} (with "partial":true when it was).
std::string SourceObject(const RootSlice& slice) {
  std::string out = "{\"id\":";
  AppendJsonString(out, slice.tx_id);
  absl::StrAppend(&out, ",\"position\":", slice.position);
  if (slice.partial) out.append(",\"partial\":true");
  out.push_back('}');
  return out;
}

// Appends the aggregate's own fields: "<source field>":<source>,"<version field>":n.
void AppendOwnFields(const TransactionAggregateSpec& spec, std::string_view source,
                     int64_t version, std::string& out) {
  AppendJsonString(out, spec.source_field);
  out.push_back(':');
  out.append(source);
  out.push_back(',');
  AppendJsonString(out, spec.version_field);
  absl::StrAppend(&out, ":", version);
}

// The reference emitted in place of a version over spec.max_aggregate_bytes
// (see TransactionAggregateSpec).
std::string OversizeReference(const TransactionAggregateSpec& spec, std::string_view root_key,
                              std::string_view source, int64_t version, size_t bytes) {
  std::string reference = "{";
  AppendJsonString(reference, spec.root.key_column);
  reference.push_back(':');
  reference.append(root_key);
  reference.push_back(',');
  AppendOwnFields(spec, source, version, reference);
  absl::StrAppend(&reference, ",\"oversize\":{\"bytes\":", bytes,
                  ",\"limit\":", spec.max_aggregate_bytes, "}}");
  return reference;
}

// v<root>: the root's version and the position last applied to it (8 bytes
// each, PutOrderedInt64), then the source object of the version last
// emitted (absent in what releases before interactive queries wrote).
std::string VersionMeta(int64_t version, int64_t position, std::string_view source) {
  std::string meta;
  PutOrderedInt64(meta, version);
  PutOrderedInt64(meta, position);
  meta.append(source);
  return meta;
}

}  // namespace

AggregateJoin::AggregateJoin(const TransactionAggregateSpec& spec)
    : spec_(spec),
      assembled_(spec.aggregate_cache_bytes),
      unavailable_(spec.unavailable_placeholder) {}

absl::Status AggregateJoin::Init(ProcessorContext& context) {
  context_ = &context;
  roots_ = context.GetStateStore(RootsStore(spec_));
  children_ = context.GetStateStore(ChildrenStore(spec_));
  spill_ = context.GetStateStore(PendingStore(spec_));
  if (roots_ == nullptr || children_ == nullptr || spill_ == nullptr) {
    return absl::FailedPreconditionError("AggregateJoin: its stores are not connected");
  }
  MetricTags tags{{std::string(metric_names::kTaskTag), context.task_id().ToString()},
                  {std::string(metric_names::kOperatorTag), spec_.name}};
  emitted_ = context.metrics().GetCounter(metric_names::kCdcAggregatesEmittedTotal, tags);
  oversize_ = context.metrics().GetCounter(metric_names::kCdcAggregatesOversizeTotal, tags);
  stale_ = context.metrics().GetCounter(metric_names::kCdcStaleSlicesDroppedTotal, tags);
  unresolved_ = context.metrics().GetCounter(metric_names::kCdcUnavailableValuesUnresolvedTotal, tags);
  reshaped_ = context.metrics().GetCounter(metric_names::kCdcRowsReshapedTotal, tags);
  snapshot_rows_reshaped_ =
      context.metrics().GetCounter(metric_names::kCdcSnapshotRowsReshapedTotal, tags);
  spilled_ = context.metrics().GetCounter(metric_names::kCdcHeldBytesSpilledTotal, tags);
  held_gauge_ = context.metrics().GetGauge(metric_names::kCdcHeldChangeBytes, tags);
  built_cached_ = context.metrics().GetCounter(metric_names::kCdcAggregateBuildsCachedTotal, tags);
  built_scanned_ =
      context.metrics().GetCounter(metric_names::kCdcAggregateBuildsScannedTotal, tags);
  assembled_gauge_ = context.metrics().GetGauge(metric_names::kCdcAggregateCacheBytes, tags);
  assembled_.Clear();
  own_fields_.clear();
  for (const CdcTable& child : spec_.children) own_fields_.push_back(child.array_field);
  own_fields_.push_back(spec_.source_field);
  own_fields_.push_back(spec_.version_field);
  // Held changes are kept only from records not yet committed past (see
  // PrepareCommit): they come again, so what a previous run held goes.
  held_ = InMemoryStore::Create(PendingStore(spec_) + "-memory");
  held_bytes_ = 0;
  units_.clear();
  {
    WriteBatch wipe;
    auto it = spill_->All();
    for (; it->Valid(); it->Next()) {
      wipe.Delete(it->key());
      if (wipe.size() >= 10000) {
        TRIBUTARY_RETURN_IF_ERROR(spill_->Write(wipe));
        wipe.Clear();
      }
    }
    TRIBUTARY_RETURN_IF_ERROR(it->status());
    TRIBUTARY_RETURN_IF_ERROR(spill_->Write(wipe));
  }
  TRIBUTARY_ASSIGN_OR_RETURN(std::optional<std::string> processed,
                             roots_->Get(std::string(1, kProcessedKey)));
  processed_through_ = processed && processed->size() == 8 ? GetOrderedInt64(*processed) : -1;
  last_offset_ = processed_through_;
  release_progress_.reset();
  release_progress_dirty_ = false;
  TRIBUTARY_ASSIGN_OR_RETURN(std::optional<std::string> progress,
                             roots_->Get(std::string(1, kReleaseProgressKey)));
  if (progress) {
    if (progress->size() < 16) return absl::DataLossError("corrupt release progress");
    ReleaseProgress loaded;
    loaded.offset = GetOrderedInt64(*progress);
    loaded.index = GetOrderedInt64(std::string_view(*progress).substr(8));
    loaded.root = progress->substr(16);
    release_progress_ = std::move(loaded);
  }
  return absl::OkStatus();
}

absl::Status AggregateJoin::PrepareCommit() {
  // Held changes live in memory (or the spill store, without changelog):
  // the committed input offset stays at the first of them, so that after a
  // restart they are read again.
  int64_t first = -1;
  for (const auto& [id, unit] : units_) {
    if (first < 0 || unit.first_offset < first) first = unit.first_offset;
  }
  TRIBUTARY_RETURN_IF_ERROR(
      context_->HoldCommittedOffset(TxAssembler::AggregateTopic(spec_), first));
  TRIBUTARY_RETURN_IF_ERROR(PersistReleaseProgress());
  held_gauge_->Set(static_cast<int64_t>(held_bytes_));
  assembled_gauge_->Set(static_cast<int64_t>(assembled_.bytes()));
  if (last_offset_ <= processed_through_written_) return absl::OkStatus();
  std::string processed;
  PutOrderedInt64(processed, last_offset_);
  processed_through_written_ = last_offset_;
  return roots_->Put(std::string(1, kProcessedKey), processed);
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
  if (!record.key || !record.value || record.value->empty()) {
    return absl::DataLossError("aggregate topic record without key or value");
  }
  // Records at or below processed_through_ were processed before the last
  // commit and are read again (PrepareCommit): their effects are in the
  // stores; only the changes they held are needed again.
  const int64_t offset = record.offset.value;
  const bool again = offset >= 0 && offset <= processed_through_;
  if (offset > last_offset_) last_offset_ = offset;
  const std::string_view value = *record.value;
  if (value[0] == kDecisionsTag) {
    TRIBUTARY_ASSIGN_OR_RETURN(std::vector<Decision> decisions, DecodeDecisions(value));
    // A release may be cut into pieces, each committed on its own (the
    // record is left unfinished and comes again), so that no Kafka
    // transaction outlasts transaction.timeout.ms: the progress says which
    // decision of this record was under way and the last root it applied.
    // Those before it are done (committed), those after it are not.
    const bool resuming = release_progress_ && release_progress_->offset == offset;
    for (size_t i = 0; i < decisions.size(); ++i) {
      const Decision& decision = decisions[i];
      const int64_t index = static_cast<int64_t>(i);
      bool decision_again = again;
      if (resuming) decision_again = index < release_progress_->index;
      if (decision.kind != 'R' || decision_again) {
        TRIBUTARY_RETURN_IF_ERROR(Decide(decision, decision_again));
        continue;
      }
      ReleaseProgress piece;
      if (resuming && index == release_progress_->index) piece = *release_progress_;
      piece.offset = offset;
      piece.index = index;
      bool finished = true;
      TRIBUTARY_RETURN_IF_ERROR(Release(decision, &piece, &finished));
      if (!finished) {
        release_progress_ = std::move(piece);
        release_progress_dirty_ = true;
        return absl::OkStatus();  // unfinished: it comes again after the commit
      }
    }
    if (release_progress_ && release_progress_->offset <= offset) {
      release_progress_.reset();
      release_progress_dirty_ = true;
    }
    return absl::OkStatus();
  }
  if (value[0] != kRowChangeTag) {
    return absl::FailedPreconditionError(absl::StrCat(
        spec_.name, ": a record on the aggregate topic as an older version of Tributary wrote "
        "them: reset the application (delete its internal topics and state.dir) to run this "
        "version"));
  }
  TRIBUTARY_ASSIGN_OR_RETURN(RowChange change, DecodeRowChange(value));
  return OnRowChange(*record.key, change, value, offset, again);
}

absl::Status AggregateJoin::Decide(const Decision& decision, bool again) {
  switch (decision.kind) {
    case 'R':
      if (again) return Forget(decision.match_id, kAllHeld);
      return Release(decision);
    case 'S':
      if (again) return Forget(SnapshotUnitId(decision.lsn), kAllHeld);
      return ApplySnapshot(decision.lsn);
    case 'W':
      if (again) return Forget(decision.match_id, kWaitingHeld);
      return ApplyWaiting(decision.match_id);
    case 'D':
      // Changes of a transaction released already (delivered again).
      return Forget(decision.match_id, kChangesHeld | kTableOpsHeld);
    case 'L':
      // Changes of a transaction released partial: they came too late.
      if (!again) TRIBUTARY_RETURN_IF_ERROR(DeadLetterHeld(decision.match_id));
      return Forget(decision.match_id, kChangesHeld | kTableOpsHeld);
    default:
      return absl::DataLossError("unknown decision");
  }
}

absl::Status AggregateJoin::OnRowChange(std::string_view root, const RowChange& change,
                                        std::string_view raw, int64_t offset, bool again) {
  if (change.change.table > spec_.children.size()) {
    return absl::DataLossError(absl::StrCat("row change of table #", change.change.table));
  }
  const bool table_op = change.change.kind == SliceOp::Kind::kShape ||
                        change.change.kind == SliceOp::Kind::kTruncate;
  switch (change.unit) {
    case RowChange::Unit::kStandalone: {
      if (again) return absl::OkStatus();
      if (table_op) return ApplyTableOp(change, /*hold=*/false);
      RootSlice slice;
      slice.ops.push_back(change.change);
      return ApplySlice(root, slice);
    }
    case RowChange::Unit::kIncremental: {
      if (table_op) return absl::DataLossError("table-wide operation in an incremental row");
      if (change.unit_id.empty()) {
        return again ? absl::OkStatus() : ApplyIncremental(root, change);
      }
      // Waits for that transaction's release, or the assembler's word that
      // it was released already (a decision 'W').
      std::string key = UnitPrefix(kWaitingPrefix, change.unit_id);
      PutOrderedInt64(key, change.source_partition);
      PutOrderedInt64(key, change.source_offset);
      key.push_back(static_cast<char>(change.change.kind));
      key.append(root);
      return Hold(change.unit_id, kWaitingHeld, key, raw, offset);
    }
    case RowChange::Unit::kTransaction:
    case RowChange::Unit::kSnapshot:
      break;
    default:
      return absl::DataLossError("row change of unknown unit");
  }
  // Held until the unit's release. The same change delivered again has the
  // same key: it is held once.
  std::string key = UnitPrefix(table_op ? kTableOpPrefix : kUnitPrefix, change.unit_id);
  if (!table_op) {
    key.append(root);
    key.push_back('\0');
  }
  key.append(change.position);
  key.push_back('\0');
  AppendIdentity(key, change);
  return Hold(change.unit_id, table_op ? kTableOpsHeld : kChangesHeld, key, raw, offset);
}

absl::Status AggregateJoin::Hold(std::string_view unit_id, int kind, const std::string& key,
                                 std::string_view raw, int64_t offset) {
  auto [it, created] = units_.try_emplace(std::string(unit_id));
  HeldUnit& unit = it->second;
  if (created || unit.first_offset < 0) unit.first_offset = offset;
  unit.kinds |= kind;
  const size_t bytes = key.size() + raw.size() + 64;
  if (unit.spilled) return spill_->Put(key, raw);
  unit.bytes += bytes;
  held_bytes_ += bytes;
  TRIBUTARY_RETURN_IF_ERROR(held_->Put(key, raw));
  return held_bytes_ > spec_.held_memory_bytes ? Spill() : absl::OkStatus();
}

absl::Status AggregateJoin::Spill() {
  // Everything held in memory goes to the spill store (local RocksDB); the
  // units keep their changes there until released.
  WriteBatch batch;
  int64_t bytes = 0;
  {
    auto it = held_->All();
    for (; it->Valid(); it->Next()) {
      batch.Put(it->key(), it->value());
      bytes += static_cast<int64_t>(it->key().size() + it->value().size());
      if (batch.size() >= 10000) {
        TRIBUTARY_RETURN_IF_ERROR(spill_->Write(batch));
        batch.Clear();
      }
    }
    TRIBUTARY_RETURN_IF_ERROR(it->status());
  }
  TRIBUTARY_RETURN_IF_ERROR(spill_->Write(batch));
  held_ = InMemoryStore::Create(PendingStore(spec_) + "-memory");
  for (auto& [id, unit] : units_) {
    unit.spilled = true;
    unit.bytes = 0;
  }
  if (spilled_->value() == 0) {
    OperatorsLogger()->info(
        "{}: held changes passed {} bytes in memory: spilled to the local store; more in {}",
        spec_.name, spec_.held_memory_bytes, metric_names::kCdcHeldBytesSpilledTotal);
  }
  spilled_->Add(bytes);
  held_bytes_ = 0;
  return absl::OkStatus();
}

absl::Status AggregateJoin::Forget(const std::string& unit_id, int kinds) {
  auto it = units_.find(unit_id);
  if (it == units_.end()) return absl::OkStatus();
  HeldUnit& unit = it->second;
  KeyValueStore& store = unit.spilled ? *spill_ : *held_;
  for (auto [kind, prefix] : {std::pair{kChangesHeld, kUnitPrefix},
                              std::pair{kTableOpsHeld, kTableOpPrefix},
                              std::pair{kWaitingHeld, kWaitingPrefix}}) {
    if ((unit.kinds & kinds & kind) == 0) continue;
    TRIBUTARY_RETURN_IF_ERROR(DeleteHeld(store, UnitPrefix(prefix, unit_id)));
  }
  unit.kinds &= ~kinds;
  if (unit.kinds != 0) return absl::OkStatus();  // (bytes stay counted until it goes)
  held_bytes_ -= std::min(held_bytes_, unit.bytes);
  units_.erase(it);
  return absl::OkStatus();
}

KeyValueStore* AggregateJoin::HeldStore(const std::string& unit_id, int kind) {
  auto found = units_.find(unit_id);
  if (found == units_.end() || (found->second.kinds & kind) == 0) return nullptr;
  return found->second.spilled ? spill_ : held_.get();
}

absl::Status AggregateJoin::DeadLetterHeld(const std::string& unit_id) {
  KeyValueStore* held = HeldStore(unit_id, kChangesHeld);
  if (held == nullptr) return absl::OkStatus();
  KeyValueStore& store = *held;
  const std::string prefix = UnitPrefix(kUnitPrefix, unit_id);
  const absl::Status late = MarkBadInput(
      absl::FailedPreconditionError(absl::StrCat(
          "change of transaction ", unit_id,
          " came after the transaction was released partial (without it): not applied")),
      unit_id);
  const std::string topic = TxAssembler::AggregateTopic(spec_);  // Record holds a view
  auto it = store.PrefixScan(prefix);
  for (; it->Valid(); it->Next()) {
    const std::string_view rest = it->key().substr(prefix.size());
    TRIBUTARY_ASSIGN_OR_RETURN(RowChange change, DecodeRowChange(it->value()));
    Record dead;
    dead.topic = topic;
    dead.key = rest.substr(0, rest.find('\0'));  // the root
    dead.value = change.change.row.empty() ? std::optional<std::string_view>()
                                           : std::optional<std::string_view>(change.change.row);
    // Headers are views: of the decoded change (in the store's value) and
    // of `op`, both alive until the send.
    const char op[1] = {change.op};
    dead.headers = {{"tributary.change.key", change.change.key},
                    {"tributary.change.position", change.position},
                    {"tributary.change.op", std::string_view(op, 1)}};
    dead.timestamp = context_->wall_clock_time();
    TRIBUTARY_RETURN_IF_ERROR(context_->DeadLetter(dead, late));
  }
  return it->status();
}

absl::Status AggregateJoin::DeleteHeld(KeyValueStore& store, const std::string& prefix) {
  // In pieces, each one WriteBatch, so that forgetting a huge unit takes
  // bounded memory; each piece starts where the last one stopped (not at the
  // prefix, past the tombstones it left).
  constexpr size_t kPiece = 10000;
  std::string upper = prefix;  // the prefix ends in '\0': the next one up
  upper.back() = '\1';
  std::string from = prefix;
  while (true) {
    WriteBatch piece;
    bool more = false;
    {
      auto it = store.Range(from, upper);
      for (; it->Valid() && piece.size() < kPiece; it->Next()) piece.Delete(it->key());
      TRIBUTARY_RETURN_IF_ERROR(it->status());
      if (it->Valid()) {
        more = true;
        from.assign(it->key());
      }
    }
    TRIBUTARY_RETURN_IF_ERROR(store.Write(piece));
    if (!more) return absl::OkStatus();
  }
}

absl::Status AggregateJoin::ApplyUnit(KeyValueStore& store, std::string_view unit,
                                      const RootSlice& proto,
                                      std::optional<std::string_view> from,
                                      std::optional<std::string_view> to,
                                      ReleaseProgress* piece, bool* finished) {
  const std::string prefix = UnitPrefix(kUnitPrefix, unit);
  std::string root;
  std::vector<std::string> raws;  // the root's changes, in key order
  size_t applied = 0;
  size_t budget = piece != nullptr && spec_.release_piece_changes > 0
                      ? spec_.release_piece_changes
                      : std::numeric_limits<size_t>::max();
  auto apply = [&]() -> absl::Status {
    if (raws.empty()) return absl::OkStatus();
    RootSlice slice = proto;
    for (const std::string& bytes : raws) {
      TRIBUTARY_ASSIGN_OR_RETURN(RowChange change, DecodeRowChange(bytes));
      slice.ops.push_back(change.change);
    }
    TRIBUTARY_RETURN_IF_ERROR(ApplySlice(root, slice));
    applied += raws.size();
    raws.clear();
    if (piece != nullptr) piece->root = root;
    return absl::OkStatus();
  };
  // Resuming: from the root after the last one applied (its keys are
  // <prefix><root>\0...; the next root's sort after <prefix><root>\1).
  std::string start = prefix;
  if (piece != nullptr && !piece->root.empty()) {
    start.append(piece->root);
    start.push_back('\1');
  }
  std::string upper = prefix;
  upper.back() = '\1';
  auto it = store.Range(start, upper);
  for (; it->Valid(); it->Next()) {
    const std::string_view rest = it->key().substr(prefix.size());
    const size_t root_end = rest.find('\0');
    if (root_end == std::string_view::npos) return absl::DataLossError("corrupt held change");
    const std::string_view rest_after_root = rest.substr(root_end + 1);
    const std::string_view position = rest_after_root.substr(0, rest_after_root.find('\0'));
    if ((from && position < *from) || (to && position >= *to)) continue;
    const std::string_view this_root = rest.substr(0, root_end);
    if (this_root != root) {
      TRIBUTARY_RETURN_IF_ERROR(apply());
      // A piece ends before a new root once its budget is spent, where the
      // context takes the record back as unfinished.
      if (applied >= budget) {
        if (context_->Unfinished()) {
          if (finished != nullptr) *finished = false;
          return absl::OkStatus();
        }
        budget = std::numeric_limits<size_t>::max();
      }
      root.assign(this_root);
    }
    raws.emplace_back(it->value());
  }
  TRIBUTARY_RETURN_IF_ERROR(it->status());
  return apply();
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> AggregateJoin::TakeTableOps(
    KeyValueStore& store, std::string_view unit_id) {
  std::vector<std::pair<std::string, std::string>> table_ops;
  const std::string prefix = UnitPrefix(kTableOpPrefix, unit_id);
  auto it = store.PrefixScan(prefix);
  for (; it->Valid(); it->Next()) {
    const std::string_view rest = it->key().substr(prefix.size());
    table_ops.emplace_back(std::string(rest.substr(0, rest.find('\0'))),
                           std::string(it->value()));
  }
  TRIBUTARY_RETURN_IF_ERROR(it->status());
  return table_ops;
}

absl::Status AggregateJoin::ApplyTableOp(const RowChange& op, bool hold) {
  if (op.change.kind == SliceOp::Kind::kShape) {
    return ApplyShape(op.change.table, op.change.row, hold);
  }
  return Truncate(op.change.table);
}

absl::Status AggregateJoin::PersistReleaseProgress() {
  if (!release_progress_dirty_) return absl::OkStatus();
  release_progress_dirty_ = false;
  const std::string key(1, kReleaseProgressKey);
  if (!release_progress_) return roots_->Delete(key);
  std::string value;
  PutOrderedInt64(value, release_progress_->offset);
  PutOrderedInt64(value, release_progress_->index);
  value.append(release_progress_->root);
  return roots_->Put(key, value);
}

absl::Status AggregateJoin::Release(const Decision& decision, ReleaseProgress* piece,
                                    bool* finished) {
  const std::string& unit_id = decision.match_id;
  auto found = units_.find(unit_id);
  if (found == units_.end()) return absl::OkStatus();  // nothing of it here
  const HeldUnit unit = found->second;
  KeyValueStore& store = unit.spilled ? *spill_ : *held_;
  RootSlice proto;
  proto.tx_id = unit_id;
  proto.position = decision.position;
  proto.partial = decision.partial;
  std::vector<std::pair<std::string, std::string>> table_ops;
  if (unit.kinds & kTableOpsHeld) {
    TRIBUTARY_ASSIGN_OR_RETURN(table_ops, TakeTableOps(store, unit_id));
  }
  if (table_ops.empty()) {
    if (unit.kinds & kChangesHeld) {
      bool done = true;
      TRIBUTARY_RETURN_IF_ERROR(
          ApplyUnit(store, unit_id, proto, std::nullopt, std::nullopt, piece, &done));
      if (!done) {
        if (finished != nullptr) *finished = false;
        return absl::OkStatus();  // the rest in the next piece
      }
    }
  } else {
    proto.hold = true;
    std::optional<std::string_view> from;
    for (const auto& [position, bytes] : table_ops) {
      TRIBUTARY_RETURN_IF_ERROR(ApplyUnit(store, unit_id, proto, from, position));
      TRIBUTARY_ASSIGN_OR_RETURN(RowChange op, DecodeRowChange(bytes));
      TRIBUTARY_RETURN_IF_ERROR(ApplyTableOp(op, /*hold=*/true));
      from = position;
    }
    TRIBUTARY_RETURN_IF_ERROR(ApplyUnit(store, unit_id, proto, from, std::nullopt));
    RootSlice flush = proto;
    flush.hold = false;
    flush.flush = true;
    TRIBUTARY_RETURN_IF_ERROR(Flush(flush));
  }
  TRIBUTARY_RETURN_IF_ERROR(Forget(unit_id, kChangesHeld | kTableOpsHeld));
  return ApplyWaiting(unit_id);
}

absl::Status AggregateJoin::ApplyWaiting(const std::string& unit_id) {
  // Incremental snapshot rows that waited for this transaction.
  KeyValueStore* held = HeldStore(unit_id, kWaitingHeld);
  if (held == nullptr) return absl::OkStatus();
  KeyValueStore& store = *held;
  const std::string prefix = UnitPrefix(kWaitingPrefix, unit_id);
  auto it = store.PrefixScan(prefix);
  for (; it->Valid(); it->Next()) {
    const std::string_view rest = it->key().substr(prefix.size());
    if (rest.size() < 17) return absl::DataLossError("corrupt waiting row");
    const std::string bytes(it->value());  // `row` points into it
    TRIBUTARY_ASSIGN_OR_RETURN(RowChange row, DecodeRowChange(bytes));
    TRIBUTARY_RETURN_IF_ERROR(ApplyIncremental(rest.substr(17), row));
  }
  TRIBUTARY_RETURN_IF_ERROR(it->status());
  it.reset();
  return Forget(unit_id, kWaitingHeld);
}

absl::Status AggregateJoin::ApplySnapshot(int64_t lsn) {
  const std::string unit_id = SnapshotUnitId(lsn);
  auto found = units_.find(unit_id);
  if (found == units_.end()) return absl::OkStatus();
  KeyValueStore& store = found->second.spilled ? *spill_ : *held_;
  // New shapes first: the rows are read in them.
  TRIBUTARY_ASSIGN_OR_RETURN(auto table_ops, TakeTableOps(store, unit_id));
  for (const auto& [position, bytes] : table_ops) {
    TRIBUTARY_ASSIGN_OR_RETURN(RowChange op, DecodeRowChange(bytes));
    TRIBUTARY_RETURN_IF_ERROR(ApplyTableOp(op, /*hold=*/false));
  }
  RootSlice proto;
  proto.tx_id = "snapshot";
  TRIBUTARY_RETURN_IF_ERROR(
      ApplyUnit(store, unit_id, proto, std::nullopt, std::nullopt));
  return Forget(unit_id, kAllHeld);
}

absl::Status AggregateJoin::ApplyIncremental(std::string_view root, RowChange change) {
  // A chunk may be read with the schema of before an ALTER that streamed
  // changes have shown already: the row takes the table's present shape.
  std::string conformed;
  if (change.shape && (change.change.kind == SliceOp::Kind::kChildUpsert ||
                       change.change.kind == SliceOp::Kind::kRootUpsert)) {
    const std::string shape_key = absl::StrCat(
        std::string(1, kShapePrefix), std::string(1, static_cast<char>(change.change.table)));
    TRIBUTARY_ASSIGN_OR_RETURN(std::optional<std::string> current, roots_->Get(shape_key));
    if (current && !current->empty() && *current != *change.shape) {
      TRIBUTARY_ASSIGN_OR_RETURN(RowShape parsed, RowShape::Parse(*current));
      TRIBUTARY_ASSIGN_OR_RETURN(bool rewritten,
                                 parsed.Conform(change.change.row, row_fields_, conformed));
      if (rewritten) {
        change.change.row = conformed;
        if (snapshot_rows_reshaped_->value() == 0) {
          OperatorsLogger()->warn(
              "{}: an incremental snapshot row of {} came in another shape than the table's "
              "streamed changes (Debezium read it with a schema of before an ALTER TABLE); it "
              "is read in the table's present shape {}; more such rows are counted in {}",
              spec_.name, TableName(change.change.table), parsed.Names(),
              metric_names::kCdcSnapshotRowsReshapedTotal);
        }
        snapshot_rows_reshaped_->Add(1);
      }
    }
  }
  RootSlice slice;
  slice.incremental = true;
  slice.ops.push_back(change.change);
  return ApplySlice(root, slice);
}

absl::Status AggregateJoin::ApplySlice(std::string_view root, const RootSlice& slice) {
  const std::string version_key = RootKey('v', root);
  TRIBUTARY_ASSIGN_OR_RETURN(const StoredVersion applied, ReadVersion(*roots_, version_key));
  int64_t version = applied.version;
  const int64_t last_position = applied.position;
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
  bool root_row_changed = false;  // to be written
  // False while every op was the removal of a child not here (a router's
  // index may name a root the child has already left, e.g. after a
  // TRUNCATE read on another partition): such a slice changes nothing.
  bool effective = false;
  // The child as it is: written earlier in this slice, or stored (as the
  // root's assembled children hold it, when they are cached).
  const std::string child_prefix = ChildPrefix(root);
  const AssembledRoots::Children* assembled = assembled_.Find(root);
  auto current_child = [&](const std::string& key) -> absl::StatusOr<std::optional<std::string>> {
    const auto& entries = child_writes.entries();
    auto earlier = std::find_if(entries.rbegin(), entries.rend(),
                                [&](const auto& e) { return e.key == key; });
    if (earlier != entries.rend()) return earlier->value;
    if (assembled == nullptr) return children_->Get(key);
    auto child = assembled->find(Sv(std::string_view(key).substr(child_prefix.size())));
    if (child == assembled->end()) return std::nullopt;
    return child->second;
  };
  for (const SliceOp& op : slice.ops) {
    effective = effective || op.kind != SliceOp::Kind::kChildDelete;
    switch (op.kind) {
      case SliceOp::Kind::kRootUpsert: {
        std::optional<std::string_view> previous;
        if (root_row) previous = *root_row;
        TRIBUTARY_ASSIGN_OR_RETURN(std::string_view row,
                                   FillUnavailable("root", root, op.row, previous, merged));
        changed = changed || !previous || *previous != row;
        root_row_changed = root_row_changed || !previous || *previous != row;
        root_row = std::string(row);
        root_deleted = false;
        break;
      }
      case SliceOp::Kind::kRootDelete:
        root_row_changed = true;
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
        child_key = child_prefix;
        child_key.push_back(static_cast<char>(op.table));
        child_key.append(SortableKey(op.key));
        if (op.kind == SliceOp::Kind::kChildUpsert) {
          std::string_view row = op.row;
          const bool may_hold = unavailable_.MayHold(row);
          if (may_hold || slice.incremental) {
            TRIBUTARY_ASSIGN_OR_RETURN(std::optional<std::string> stored,
                                       current_child(child_key));
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
          TRIBUTARY_ASSIGN_OR_RETURN(std::optional<std::string> stored,
                                     current_child(child_key));
          if (!stored) break;
          effective = true;
          child_writes.Delete(child_key);
          changed = true;
        }
        break;
    }
  }
  if (!effective) return absl::OkStatus();
  if (root_row_changed) {
    if (root_row) {
      root_writes.Put(row_key, *root_row);
    } else {
      root_writes.Delete(row_key);
    }
  }
  if (absl::Status written = children_->Write(child_writes); !written.ok()) {
    assembled_.Erase(root);
    return written;
  }
  assembled_.Apply(root, child_prefix, child_writes);

  if (slice.hold) {
    // Emitted by the transaction's flush; 'd': the root was deleted in it.
    const std::string touched_key = RootKey(kTouchedPrefix, root);
    TRIBUTARY_ASSIGN_OR_RETURN(std::optional<std::string> touched, roots_->Get(touched_key));
    root_writes.Put(touched_key,
                    root_deleted_once || (touched && *touched == "d") ? "d" : "u");
    return roots_->Write(root_writes);
  }

  // An incremental snapshot row equal to what is held says nothing new.
  const bool emit = (!slice.incremental || changed) &&
                    (root_row.has_value() || root_deleted);
  if (emit) ++version;
  const std::string source = emit ? SourceObject(slice) : applied.source;
  root_writes.Put(version_key,
                  VersionMeta(version, std::max(slice.position, last_position), source));
  TRIBUTARY_RETURN_IF_ERROR(roots_->Write(root_writes));
  if (!emit) return absl::OkStatus();  // children wait for their root

  emitted_->Add(1);
  if (!root_row) {
    Record tombstone;
    tombstone.key = root;
    tombstone.timestamp = context_->stream_time();
    return context_->Forward(tombstone);
  }
  return BuildAggregate(root, *root_row, source, slice.tx_id, version);
}

absl::StatusOr<AggregateJoin::StoredVersion> AggregateJoin::ReadVersion(
    KeyValueStore& roots, const std::string& version_key) {
  TRIBUTARY_ASSIGN_OR_RETURN(std::optional<std::string> meta, roots.Get(version_key));
  StoredVersion stored;
  if (!meta || meta->size() < 16) return stored;
  stored.version = GetOrderedInt64(*meta);
  stored.position = GetOrderedInt64(std::string_view(*meta).substr(8));
  stored.source = meta->substr(16);
  return stored;
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
  if (table > 0) {
    for (const std::string& root : roots) assembled_.Erase(root);
  }
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
    for (const std::string& root : roots) assembled_.Erase(root);
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
  for (const auto& [root, deleted] : touched) {
    const std::string version_key = RootKey('v', root);
    TRIBUTARY_ASSIGN_OR_RETURN(const StoredVersion applied, ReadVersion(*roots_, version_key));
    int64_t version = applied.version;
    const int64_t last_position = applied.position;
    TRIBUTARY_ASSIGN_OR_RETURN(std::optional<std::string> root_row,
                               roots_->Get(RootKey('r', root)));
    const bool emit = root_row.has_value() || deleted;
    if (emit) ++version;
    const std::string source = emit ? SourceObject(slice) : applied.source;
    writes.Put(version_key,
               VersionMeta(version, std::max(slice.position, last_position), source));
    if (!emit) continue;  // children wait for their root
    emitted_->Add(1);
    if (!root_row) {
      Record tombstone;
      tombstone.key = root;
      tombstone.timestamp = context_->stream_time();
      TRIBUTARY_RETURN_IF_ERROR(context_->Forward(tombstone));
      continue;
    }
    TRIBUTARY_RETURN_IF_ERROR(BuildAggregate(root, *root_row, source, slice.tx_id, version));
  }
  return roots_->Write(writes);
}

absl::Status AggregateJoin::BuildAggregate(std::string_view root_key,
                                           std::string_view root_row, std::string_view source,
                                           std::string_view tx_id, int64_t version) {
  TRIBUTARY_RETURN_IF_ERROR(CheckNoClash(root_key, root_row));
  out_.clear();
  out_.push_back('{');
  std::string_view body = ObjectBody(root_row);
  out_.append(body);
  bool first_field = body.empty();
  // The root's children as the store holds them: assembled already, or
  // read (and assembled, when the cache is on).
  if (const AssembledRoots::Children* children = assembled_.Find(root_key)) {
    built_cached_->Add(1);
    AssembledCursor cursor(*children);
    first_field = AppendChildArrays(spec_.children, cursor, first_field, out_);
  } else {
    built_scanned_->Add(1);
    const std::string prefix = ChildPrefix(root_key);
    auto scan = children_->PrefixScan(prefix);
    scanned_.clear();
    ScanCursor cursor(*scan, prefix.size(), assembled_.enabled() ? &scanned_ : nullptr);
    first_field = AppendChildArrays(spec_.children, cursor, first_field, out_);
    if (assembled_.enabled()) {
      while (cursor.Valid()) cursor.Next();  // rows of no table: as the store holds them
    }
    TRIBUTARY_RETURN_IF_ERROR(scan->status());
    if (assembled_.enabled()) assembled_.Insert(root_key, std::move(scanned_));
  }
  if (!first_field) out_.push_back(',');
  AppendOwnFields(spec_, source, version, out_);
  out_.push_back('}');

  Record out;
  out.key = root_key;
  out.value = out_;
  out.timestamp = context_->stream_time();
  if (spec_.max_aggregate_bytes > 0 &&
      root_key.size() + out_.size() > spec_.max_aggregate_bytes) {
    return ForwardOversize(root_key, source, tx_id, version, root_key.size() + out_.size());
  }
  return context_->Forward(out);
}

absl::Status AggregateJoin::ForwardOversize(std::string_view root_key, std::string_view source,
                                            std::string_view tx_id, int64_t version,
                                            size_t bytes) {
  // The version keeps its place (no gap in the versions): a reference with
  // the root's key, the transaction and the version, and the size; the same
  // goes to the dead-letter topic for the operator.
  oversize_->Add(1);
  const std::string reference = OversizeReference(spec_, root_key, source, version, bytes);
  Record out;
  out.key = root_key;
  out.value = reference;
  out.timestamp = context_->stream_time();
  TRIBUTARY_RETURN_IF_ERROR(context_->Forward(out));
  out.topic = spec_.output_topic;
  return context_->DeadLetter(
      out, MarkBadInput(absl::OutOfRangeError(absl::StrCat(
                            "version ", version, " of ", spec_.root.data_collection, " ",
                            Sv(root_key), " is ", bytes, " bytes, over aggregate.max.bytes (",
                            spec_.max_aggregate_bytes,
                            "): the output holds this reference (\"oversize\") instead")),
                        tx_id));
}

absl::StatusOr<std::optional<std::string>> AggregateJoin::Query(
    const TransactionAggregateSpec& spec, KeyValueStore& roots, KeyValueStore& children,
    std::string_view root_key) {
  TRIBUTARY_ASSIGN_OR_RETURN(std::optional<std::string> root_row,
                             roots.Get(RootKey('r', root_key)));
  if (!root_row) return std::nullopt;  // never emitted, or its last version a tombstone
  TRIBUTARY_ASSIGN_OR_RETURN(std::optional<std::string> touched,
                             roots.Get(RootKey(kTouchedPrefix, root_key)));
  if (touched) {
    return absl::UnavailableError(absl::StrCat(
        "root ", Sv(root_key),
        " is held by a transaction with a table-wide operation under way"));
  }
  TRIBUTARY_ASSIGN_OR_RETURN(const StoredVersion stored,
                             ReadVersion(roots, RootKey('v', root_key)));
  if (stored.version <= 0) return std::nullopt;  // a root row not emitted yet
  if (stored.source.empty()) {
    return absl::UnimplementedError(absl::StrCat(
        "the last version of ", Sv(root_key),
        " was stored by a release without interactive queries, which did not keep its "
        "source; its next version is queryable"));
  }
  std::string out = "{";
  std::string_view body = ObjectBody(*root_row);
  out.append(body);
  bool first_field = body.empty();
  const std::string prefix = ChildPrefix(root_key);
  auto scan = children.PrefixScan(prefix);
  ScanCursor cursor(*scan, prefix.size(), nullptr);
  first_field = AppendChildArrays(spec.children, cursor, first_field, out);
  TRIBUTARY_RETURN_IF_ERROR(scan->status());
  if (!first_field) out.push_back(',');
  AppendOwnFields(spec, stored.source, stored.version, out);
  out.push_back('}');
  if (spec.max_aggregate_bytes > 0 && root_key.size() + out.size() > spec.max_aggregate_bytes) {
    return OversizeReference(spec, root_key, stored.source, stored.version,
                             root_key.size() + out.size());
  }
  return out;
}

absl::StatusOr<std::string> AggregateJoin::QueryKey(std::string_view id) {
  // An integer as Debezium writes one: -?(0|[1-9][0-9]*), within int64.
  int64_t number = 0;
  if (absl::SimpleAtoi(Sv(id), &number) && absl::StrCat(number) == id) return std::string(id);
  // A JSON string literal, quotes included.
  bool valid = id.size() >= 2 && id.front() == '"' && id.back() == '"';
  const size_t end = id.size() - 1;  // the closing quote
  for (size_t i = 1; valid && i < end; ++i) {
    const unsigned char c = static_cast<unsigned char>(id[i]);
    if (c == '"' || c < 0x20) {
      valid = false;
    } else if (c == '\\') {
      if (i + 1 >= end) {
        valid = false;
      } else if (id[i + 1] == 'u') {
        valid = i + 5 < end && std::all_of(id.begin() + i + 2, id.begin() + i + 6, [](char h) {
                  return absl::ascii_isxdigit(static_cast<unsigned char>(h));
                });
        i += 5;
      } else {
        valid = std::string_view("\"\\/bfnrt").find(id[i + 1]) != std::string_view::npos;
        i += 1;
      }
    }
  }
  if (valid) return std::string(id);
  return absl::InvalidArgumentError(
      "expected the root key as Debezium writes it: an integer (e.g. 1001) or a JSON string "
      "in double quotes (e.g. \"A-7\")");
}

}  // namespace tributary::internal
