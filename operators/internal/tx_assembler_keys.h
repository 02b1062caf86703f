// The keys of TxAssembler's meta store (see "State" in tx_assembler.h), for
// its two source files. Internal to operators/.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "operators/internal/codec.h"

namespace tributary::internal::tx_keys {

constexpr char kEndPrefix = 'E';
constexpr char kQueuePrefix = 'Q';
constexpr char kReleasedPrefix = 'R';       // R<match id> -> ordered END position
constexpr char kReleasedOrderPrefix = 'P';  // P<ordered END position> -> match id
constexpr char kBeginPrefix = 'B';
constexpr char kProgressPrefix = 'G';
constexpr char kSnapshotPrefix = 'S';
constexpr char kCountsPrefix = 'C';  // C<match id> -> events counted per table

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
