// JsonDocument: an owned, validated JSON text, the value type of
// Serdes::Json(). Fields are read with simdjson On Demand:
//   absl::StatusOr<JsonDocument> doc = JsonDocument::Parse(R"({"id": 7})");
//   simdjson::ondemand::document json;
//   if (doc->Document().get(json) == simdjson::SUCCESS) {
//     int64_t id;
//     if (json["id"].get_int64().get(id) == simdjson::SUCCESS) { ... }
//   }
// Kept apart from serde.h so that only code reading JSON includes simdjson.
// Thread-safety: const methods other than Document() may be called from
// several threads at once; Document() uses a parser inside the object, so one
// thread at a time per object. Distinct objects are independent.
#pragma once

#include <simdjson.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace tributary {

class JsonDocument {
 public:
  // An empty text, which is not JSON: Document() fails with simdjson::EMPTY.
  // The DSL gives this for a null value when the value type is JsonDocument
  // rather than std::optional<JsonDocument>.
  JsonDocument() = default;
  // Copies the text, not the parser.
  JsonDocument(const JsonDocument& other);
  JsonDocument& operator=(const JsonDocument& other);
  JsonDocument(JsonDocument&&) noexcept = default;
  JsonDocument& operator=(JsonDocument&&) noexcept = default;

  // Copies `text` and checks that all of it is one JSON value (On Demand is
  // lazy, so this walks every value once). The error names simdjson's
  // complaint, e.g. "invalid JSON (12 bytes): TAPE_ERROR: ...".
  static absl::StatusOr<JsonDocument> Parse(std::string_view text);

  // The JSON text. Valid while this object lives unchanged.
  std::string_view text() const { return std::string_view(text_); }
  bool empty() const { return text_.size() == 0; }

  // The text as an On Demand document, parsed by a parser this object owns
  // (made on first use and reused).
  // Lifetime: the document, and every value and string_view read from it,
  // is valid while this JsonDocument lives unchanged and until the next call
  // to Document() on it. On Demand reads forward only: to read fields in
  // another order, call Document() again or rewind() the document.
  simdjson::simdjson_result<simdjson::ondemand::document> Document() const;

  // Same text, byte for byte.
  bool operator==(const JsonDocument& other) const {
    return text() == other.text();
  }

 private:
  explicit JsonDocument(simdjson::padded_string text)
      : text_(std::move(text)) {}

  simdjson::padded_string text_;
  mutable std::unique_ptr<simdjson::ondemand::parser> parser_;
};

}  // namespace tributary
