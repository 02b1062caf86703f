#include "operators/internal/cdc_messages.h"

#include <cstdint>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"
#include "operators/internal/codec.h"

namespace tributary::internal {

std::string EncodeRoutedEvent(const RoutedEvent& event) {
  std::string out;
  out.reserve(64 + event.tx_id.size() + 32 * event.runs.size());
  out.push_back(static_cast<char>(event.kind));
  if (event.kind == RoutedEvent::Kind::kBegin) {
    PutBytes(out, event.tx_id);
    return out;
  }
  if (event.kind == RoutedEvent::Kind::kReport) {
    out.push_back(static_cast<char>(event.table));
    PutVarint(out, static_cast<uint32_t>(event.source_partition));
    PutOrderedInt64(out, event.caught_up_ms);
    PutVarint(out, event.runs.size());
    for (const Run& run : event.runs) {
      out.push_back(run.kind);
      PutVarint(out, static_cast<uint32_t>(run.partition));
      if (Run::HasId(run.kind)) {
        PutBytes(out, run.id);
      } else {
        PutOrderedInt64(out, run.lsn);
      }
      PutVarint(out, static_cast<uint64_t>(run.events));
    }
    return out;
  }
  if (event.kind == RoutedEvent::Kind::kEnd) {
    PutBytes(out, event.tx_id);
    PutOrderedInt64(out, event.end_position);
    PutOrderedInt64(out, event.ts_ms);
    PutVarint(out, event.counts.size());
    for (const auto& [collection, count] : event.counts) {
      PutBytes(out, collection);
      PutOrderedInt64(out, count);
    }
    return out;
  }
  return out;
}

absl::StatusOr<RoutedEvent> DecodeRoutedEvent(std::string_view bytes) {
  Reader reader(bytes);
  RoutedEvent event;
  char kind = 0;
  reader.Byte(kind);
  if (kind == 'C' || kind == 'S' || kind == 'P') {
    // Row images and progress records, as Tributary wrote them before the
    // assembler worked on metadata only.
    return absl::FailedPreconditionError(
        "a change event on the assembler's input topic, as an older version of Tributary "
        "wrote them: reset the application (delete its internal topics and state.dir) to run "
        "this version");
  }
  event.kind = static_cast<RoutedEvent::Kind>(kind);
  bool ok = false;
  uint64_t partition = 0;
  char table = 0;
  switch (event.kind) {
    case RoutedEvent::Kind::kBegin:
      ok = reader.Bytes(event.tx_id);
      break;
    case RoutedEvent::Kind::kReport: {
      uint64_t n = 0;
      ok = reader.Byte(table) && reader.Varint(partition) && partition <= INT32_MAX &&
           reader.OrderedInt64(event.caught_up_ms) && reader.Varint(n) && n <= bytes.size();
      event.table = static_cast<uint8_t>(table);
      event.source_partition = static_cast<int32_t>(partition);
      for (uint64_t i = 0; ok && i < n; ++i) {
        Run run;
        uint64_t events = 0, run_partition = 0;
        std::string_view id;
        ok = reader.Byte(run.kind) && reader.Varint(run_partition) &&
             run_partition <= INT32_MAX &&
             (Run::HasId(run.kind) ? reader.Bytes(id) : reader.OrderedInt64(run.lsn)) &&
             reader.Varint(events) && events <= INT64_MAX;
        run.id = std::string(id);
        run.partition = static_cast<int32_t>(run_partition);
        run.events = static_cast<int64_t>(events);
        event.runs.push_back(std::move(run));
      }
      break;
    }
    case RoutedEvent::Kind::kEnd: {
      uint64_t n = 0;
      ok = reader.Bytes(event.tx_id) && reader.OrderedInt64(event.end_position) &&
           reader.OrderedInt64(event.ts_ms) && reader.Varint(n) && n < 100000;
      for (uint64_t i = 0; ok && i < n; ++i) {
        std::string_view collection;
        int64_t count = 0;
        ok = reader.Bytes(collection) && reader.OrderedInt64(count);
        event.counts.emplace_back(collection, count);
      }
      break;
    }
    default:
      break;
  }
  if (!ok || !reader.done()) {
    return absl::DataLossError("corrupt routed CDC event on the internal topic");
  }
  return event;
}

std::string EncodeRowChange(const RowChange& change) {
  std::string out;
  out.reserve(32 + change.unit_id.size() + change.position.size() + change.change.key.size() +
              change.change.row.size());
  out.push_back(kRowChangeTag);
  out.push_back(static_cast<char>(change.unit));
  PutBytes(out, change.unit_id);
  PutBytes(out, change.position);
  out.push_back(change.op);
  out.push_back(static_cast<char>(change.change.kind));
  out.push_back(static_cast<char>(change.change.table));
  PutBytes(out, change.change.key);
  PutBytes(out, change.change.row);
  PutOptional(out, change.shape);
  PutVarint(out, static_cast<uint32_t>(change.source_partition));
  PutOrderedInt64(out, change.source_offset);
  return out;
}

absl::StatusOr<RowChange> DecodeRowChange(std::string_view bytes) {
  Reader reader(bytes);
  RowChange change;
  char tag = 0, unit = 0, kind = 0, table = 0;
  uint64_t partition = 0;
  bool ok = reader.Byte(tag) && tag == kRowChangeTag && reader.Byte(unit) &&
            reader.Bytes(change.unit_id) && reader.Bytes(change.position) &&
            reader.Byte(change.op) && reader.Byte(kind) && reader.Byte(table) &&
            reader.Bytes(change.change.key) && reader.Bytes(change.change.row) &&
            reader.Optional(change.shape) && reader.Varint(partition) &&
            partition <= INT32_MAX && reader.OrderedInt64(change.source_offset);
  change.unit = static_cast<RowChange::Unit>(unit);
  change.change.kind = static_cast<SliceOp::Kind>(kind);
  change.change.table = static_cast<uint8_t>(table);
  change.source_partition = static_cast<int32_t>(partition);
  if (!ok || !reader.done()) {
    return absl::DataLossError("corrupt row change on the aggregate topic");
  }
  return change;
}

std::string EncodeDecisions(const std::vector<Decision>& decisions) {
  std::string out;
  out.push_back(kDecisionsTag);
  PutVarint(out, decisions.size());
  for (const Decision& d : decisions) {
    out.push_back(d.kind);
    if (d.kind == 'R') {
      PutBytes(out, d.match_id);
      PutOrderedInt64(out, d.position);
      out.push_back(d.partial ? 1 : 0);
    } else if (d.kind == 'W' || d.kind == 'D' || d.kind == 'L') {
      PutBytes(out, d.match_id);
    } else {
      PutOrderedInt64(out, d.lsn);
    }
  }
  return out;
}

absl::StatusOr<std::vector<Decision>> DecodeDecisions(std::string_view bytes) {
  Reader reader(bytes);
  std::vector<Decision> decisions;
  char tag = 0;
  uint64_t n = 0;
  bool ok = reader.Byte(tag) && tag == kDecisionsTag && reader.Varint(n) && n <= bytes.size();
  for (uint64_t i = 0; ok && i < n; ++i) {
    Decision d;
    ok = reader.Byte(d.kind);
    if (!ok) break;
    if (d.kind == 'R') {
      std::string_view id;
      char partial = 0;
      ok = reader.Bytes(id) && reader.OrderedInt64(d.position) && reader.Byte(partial);
      d.match_id = std::string(id);
      d.partial = partial != 0;
    } else if (d.kind == 'W' || d.kind == 'D' || d.kind == 'L') {
      std::string_view id;
      ok = reader.Bytes(id);
      d.match_id = std::string(id);
    } else {
      ok = d.kind == 'S' && reader.OrderedInt64(d.lsn);
    }
    decisions.push_back(std::move(d));
  }
  if (!ok || !reader.done()) {
    return absl::DataLossError("corrupt release decisions on the aggregate topic");
  }
  return decisions;
}

std::string SnapshotUnitId(int64_t lsn) { return absl::StrCat("\x01snapshot:", lsn); }

std::string SortableKey(std::string_view raw_json) {
  std::string out;
  int64_t number = 0;
  if (absl::SimpleAtoi(Sv(raw_json), &number) &&
      raw_json.find_first_of(".eE ") == std::string_view::npos) {
    out.push_back('0');
    PutOrderedInt64(out, number);
  } else {
    out.push_back('1');
    out.append(raw_json);
  }
  return out;
}

}  // namespace tributary::internal
