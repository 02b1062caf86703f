// The records the CDC operators pass to each other through repartition
// topics, and their binary encoding (see codec.h). Internal to operators/.
// Lifetime: decoded views point into the encoded bytes they came from.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace tributary::internal {

// Route -> assemble, keyed by transaction (match id).
struct RoutedEvent {
  enum class Kind : char {
    kChange = 'C',      // a change event inside a source transaction
    kStandalone = 'S',  // a change event that is a unit of its own (snapshot)
    kEnd = 'E',         // a transaction's END marker
  };
  Kind kind = Kind::kChange;
  // kChange / kStandalone:
  uint8_t table = 0;          // 0: root, 1..: children in spec order
  char op = 'c';              // Debezium op
  std::string_view position;  // sortable source position (dedup key)
  std::string_view key;       // the row's key column, raw JSON
  std::optional<std::string_view> parent;  // children: parent column of 'after'
  std::optional<std::string_view> row;     // 'after' image; nullopt on delete
  // kEnd:
  std::string_view tx_id;  // the END's full id, as written
  int64_t end_position = -1;  // offset of the END in the transaction topic
  std::vector<std::pair<std::string_view, int64_t>> counts;  // data collection -> n
  int64_t ts_ms = 0;
};

std::string EncodeRoutedEvent(const RoutedEvent& event);
absl::StatusOr<RoutedEvent> DecodeRoutedEvent(std::string_view bytes);

// One operation on one root's aggregate.
struct SliceOp {
  enum class Kind : char {
    kRootUpsert = 'R',
    kRootDelete = 'D',
    kChildUpsert = 'c',
    kChildDelete = 'd',
  };
  Kind kind = Kind::kRootUpsert;
  uint8_t table = 0;
  std::string_view key;  // child key (children), raw JSON
  std::string_view row;  // upserts only
};

// Assemble -> aggregate, keyed by root key: everything one released
// transaction does to one root.
struct RootSlice {
  std::string_view tx_id;
  int64_t position = -1;  // END offset; -1 for standalone units
  bool partial = false;
  std::vector<SliceOp> ops;
};

std::string EncodeRootSlice(const RootSlice& slice);
absl::StatusOr<RootSlice> DecodeRootSlice(std::string_view bytes);

// A sortable encoding of a raw JSON key: integers by numeric value, anything
// else by its text after all integers.
std::string SortableKey(std::string_view raw_json);

}  // namespace tributary::internal
