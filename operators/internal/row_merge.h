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

// A table's columns with their defaults (ChangeEvent::shape: one JSON object,
// e.g. {"id":null,"qty":7}), to bring rows stored before an ALTER TABLE to
// the table's present shape.
class RowShape {
 public:
  static absl::StatusOr<RowShape> Parse(std::string_view shape);

  // `row` in this shape, into `out`: the shape's columns in its order, each
  // with the row's value, or the column's default where the row has none
  // (ADD COLUMN ... DEFAULT: PostgreSQL shows existing rows with it); a
  // column the shape lacks (DROP COLUMN) is left out. Returns false, leaving
  // `out` untouched, when the row has exactly the shape's columns in order.
  absl::StatusOr<bool> Conform(std::string_view row, RowFields& fields,
                               std::string& out) const;

  // "(id, qty)", for messages.
  std::string Names() const;

 private:
  std::vector<std::pair<std::string, std::string>> columns_;  // name, default
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
