#include "engine/json_document.h"

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tributary {
namespace {

namespace ondemand = simdjson::ondemand;
using simdjson::error_code;

// Reads every value below `value`, which makes On Demand check all of it:
// numbers, string escapes, literals, and the structure between them.
error_code ValidateValue(ondemand::value value) {
  ondemand::json_type type;
  if (error_code e = value.type().get(type)) return e;
  switch (type) {
    case ondemand::json_type::object: {
      ondemand::object object;
      if (error_code e = value.get_object().get(object)) return e;
      for (auto field : object) {
        std::string_view key;
        if (error_code e = field.unescaped_key().get(key)) return e;
        ondemand::value child;
        if (error_code e = field.value().get(child)) return e;
        if (error_code e = ValidateValue(child)) return e;
      }
      return simdjson::SUCCESS;
    }
    case ondemand::json_type::array: {
      ondemand::array array;
      if (error_code e = value.get_array().get(array)) return e;
      for (auto element : array) {
        ondemand::value child;
        if (error_code e = element.get(child)) return e;
        if (error_code e = ValidateValue(child)) return e;
      }
      return simdjson::SUCCESS;
    }
    case ondemand::json_type::number: {
      ondemand::number number;
      return value.get_number().get(number);
    }
    case ondemand::json_type::string: {
      std::string_view string;
      return value.get_string().get(string);
    }
    case ondemand::json_type::boolean: {
      bool boolean;
      return value.get_bool().get(boolean);
    }
    case ondemand::json_type::null: {
      bool is_null = false;
      if (error_code e = value.is_null().get(is_null)) return e;
      return is_null ? simdjson::SUCCESS : simdjson::N_ATOM_ERROR;
    }
  }
  return simdjson::INCORRECT_TYPE;
}

error_code ValidateDocument(ondemand::document& doc) {
  bool scalar = false;
  if (error_code e = doc.is_scalar().get(scalar)) return e;
  if (!scalar) {
    ondemand::value root;
    if (error_code e = doc.get_value().get(root)) return e;
    if (error_code e = ValidateValue(root)) return e;
  } else {
    ondemand::json_type type;
    if (error_code e = doc.type().get(type)) return e;
    switch (type) {
      case ondemand::json_type::number: {
        ondemand::number number;
        if (error_code e = doc.get_number().get(number)) return e;
        break;
      }
      case ondemand::json_type::string: {
        std::string_view string;
        if (error_code e = doc.get_string().get(string)) return e;
        break;
      }
      case ondemand::json_type::boolean: {
        bool boolean;
        if (error_code e = doc.get_bool().get(boolean)) return e;
        break;
      }
      case ondemand::json_type::null: {
        bool is_null = false;
        if (error_code e = doc.is_null().get(is_null)) return e;
        if (!is_null) return simdjson::N_ATOM_ERROR;
        break;
      }
      default:
        return simdjson::INCORRECT_TYPE;
    }
  }
  // simdjson 3.0 has no document::at_end(); past the last token the location
  // is OUT_OF_BOUNDS.
  return doc.current_location().error() == simdjson::OUT_OF_BOUNDS
             ? simdjson::SUCCESS
             : simdjson::TRAILING_CONTENT;
}

}  // namespace

JsonDocument::JsonDocument(const JsonDocument& other)
    : text_(other.text().data(), other.text().size()) {}

JsonDocument& JsonDocument::operator=(const JsonDocument& other) {
  if (this != &other) {
    text_ = simdjson::padded_string(other.text().data(), other.text().size());
    parser_.reset();
  }
  return *this;
}

absl::StatusOr<JsonDocument> JsonDocument::Parse(std::string_view text) {
  simdjson::padded_string padded(text.data(), text.size());
  // One parser per thread for validation; it keeps its buffers between calls.
  thread_local ondemand::parser parser;
  ondemand::document doc;
  error_code e = parser.iterate(padded).get(doc);
  if (e == simdjson::SUCCESS) e = ValidateDocument(doc);
  if (e != simdjson::SUCCESS) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid JSON (", text.size(),
                     " bytes): ", simdjson::error_message(e)));
  }
  return JsonDocument(std::move(padded));
}

simdjson::simdjson_result<ondemand::document> JsonDocument::Document() const {
  if (empty()) return simdjson::EMPTY;
  if (parser_ == nullptr) parser_ = std::make_unique<ondemand::parser>();
  return parser_->iterate(text_);
}

}  // namespace tributary
