// Small helpers for reading the raw JSON text of one column value, as
// DebeziumDecoder::ExtractFields returns it (`"abc"`, `1001`, `{...}`,
// `null`): what kind of value it is, and a JSON string's content.
// Thread-safety: stateless functions.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace tributary::internal {

enum class JsonKind { kString, kNumber, kObject, kArray, kBool, kNull };

// The kind of a raw JSON value, from its first character.
// REQUIRES: `raw` is a well-formed JSON value without leading whitespace
// (ExtractFields checks scalars and trims).
JsonKind KindOf(std::string_view raw);

// Replaces `out` with the content of the JSON string literal `quoted`
// (quotes included): escapes resolved, \uXXXX (and surrogate pairs) written
// as UTF-8. InvalidArgument for anything that is not one well-formed string
// literal (bad escape, lone surrogate, raw control character, ...).
absl::Status UnescapeJsonString(std::string_view quoted, std::string& out);

}  // namespace tributary::internal
