// The keys of TxAssembler's meta store (see "State" in tx_assembler.h), for
// its two source files. Internal to operators/.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "operators/internal/codec.h"

namespace tributary::internal::tx_keys {

// T<match id> -> a pending transaction: BEGINs, events counted per table and,
// once its END came, the END's position, LSN, id and counts (one key, so a
// transaction released within a commit interval leaves nothing below the
// record cache, and one that is not costs one put and one delete).
constexpr char kPendingPrefix = 'T';
constexpr char kReleasedPrefix = 'R';       // R<match id> -> ordered END position
constexpr char kReleasedOrderPrefix = 'P';  // P<ordered END position> -> match id
constexpr char kProgressPrefix = 'G';
constexpr char kSnapshotPrefix = 'S';

inline std::string MetaKey(char prefix, std::string_view match_id) {
  std::string key(1, prefix);
  key.append(match_id);
  return key;
}

inline std::string MetaKey(char prefix, int64_t position) {
  std::string key(1, prefix);
  PutOrderedInt64(key, position);
  return key;
}

}  // namespace tributary::internal::tx_keys
