// Row images as the aggregate join stores them (JSON objects as Debezium
// wrote them): reading their top-level fields, and putting back the values
// Debezium could not send. Thread-safety: a RowFields / UnavailableValues is
// used by one thread at a time (one per task).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "simdjson.h"

namespace tributary::internal {

// Reads the top-level fields of JSON objects.
class RowFields {
 public:
  // (unescaped key, raw JSON text of the value) in document order.
  // Lifetime: the views are valid until the next Read.
  absl::StatusOr<std::vector<std::pair<std::string_view, std::string_view>>> Read(
      std::string_view object);

 private:
  simdjson::ondemand::parser parser_;
  simdjson::padded_string padded_;
};

// Debezium's stand-in for a value it did not get: with PostgreSQL's default
// replica identity, an UPDATE that leaves a TOASTed (large, stored out of
// line) column alone does not send it, and the connector writes its
// `unavailable.value.placeholder` instead: as a JSON string for text and
// json columns, base64-encoded for bytea, as a one-element array for arrays.
class UnavailableValues {
 public:
  explicit UnavailableValues(std::string_view placeholder);

  // False when `row` surely holds no placeholder (a substring test: cheap).
  bool MayHold(std::string_view row) const;

  // `row` with every field whose value is a placeholder replaced by the same
  // field of `previous` (the row as it was before this change), written to
  // `out`. Fields that `previous` lacks (or all, without `previous`) keep the
  // placeholder and are appended to `unresolved`. Returns whether anything
  // was a placeholder; when not, `out` is left untouched.
  absl::StatusOr<bool> Merge(std::string_view row, std::optional<std::string_view> previous,
                             std::string& out, std::vector<std::string>& unresolved);

 private:
  bool IsPlaceholder(std::string_view raw_value) const;

  std::string text_;          // __debezium_unavailable_value
  std::string base64_;        // its bytes base64-encoded (bytea)
  std::string as_string_;     // "__debezium_unavailable_value"
  std::string as_base64_;     // "X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ=="
  std::string as_array_;      // ["__debezium_unavailable_value"]
  RowFields row_fields_;
  RowFields previous_fields_;
};

}  // namespace tributary::internal
