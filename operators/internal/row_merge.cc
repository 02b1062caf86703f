#include "operators/internal/row_merge.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "base/json_escape.h"
#include "base/status_macros.h"

namespace tributary::internal {
namespace od = simdjson::ondemand;

namespace {

std::string_view TrimRight(std::string_view text) {
  while (!text.empty() && (text.back() == ' ' || text.back() == '\n' || text.back() == '\r' ||
                           text.back() == '\t')) {
    text.remove_suffix(1);
  }
  return text;
}

}  // namespace

absl::StatusOr<std::vector<std::pair<std::string_view, std::string_view>>> RowFields::Read(
    std::string_view object) {
  padded_ = simdjson::padded_string(object);
  std::vector<std::pair<std::string_view, std::string_view>> fields;
  auto malformed = [&](simdjson::error_code error) {
    return absl::InvalidArgumentError(
        absl::StrCat("row image is not a JSON object: ", simdjson::error_message(error)));
  };
  od::document doc;
  od::object root;
  simdjson::error_code error = parser_.iterate(padded_).get(doc);
  if (!error) error = doc.get_object().get(root);
  if (error) return malformed(error);
  for (auto field : root) {
    std::string_view key;
    od::value value;
    od::json_type type;
    if ((error = field.unescaped_key().get(key)) || (error = field.value().get(value)) ||
        (error = value.type().get(type))) {
      return malformed(error);
    }
    // Unescaped keys live in the parser's string buffer until the next
    // iterate: keep them.
    std::string_view raw;
    if (type == od::json_type::object) {
      od::object inner;
      if (!(error = value.get_object().get(inner))) error = inner.raw_json().get(raw);
    } else if (type == od::json_type::array) {
      od::array inner;
      if (!(error = value.get_array().get(inner))) error = inner.raw_json().get(raw);
    } else {
      raw = TrimRight(value.raw_json_token());
      if (type == od::json_type::string) error = value.get_raw_json_string().error();
    }
    if (error) return malformed(error);
    fields.emplace_back(key, TrimRight(raw));
  }
  return fields;
}

UnavailableValues::UnavailableValues(std::string_view placeholder)
    : text_(placeholder), base64_(absl::Base64Escape(absl::string_view(placeholder.data(), placeholder.size()))) {
  AppendJsonString(as_string_, text_);
  AppendJsonString(as_base64_, base64_);
  as_array_ = absl::StrCat("[", as_string_, "]");
}

bool UnavailableValues::MayHold(std::string_view row) const {
  return !text_.empty() && (row.find(text_) != std::string_view::npos ||
                            row.find(base64_) != std::string_view::npos);
}

bool UnavailableValues::IsPlaceholder(std::string_view raw_value) const {
  return raw_value == as_string_ || raw_value == as_base64_ || raw_value == as_array_;
}

absl::StatusOr<bool> UnavailableValues::Merge(std::string_view row,
                                              std::optional<std::string_view> previous,
                                              std::string& out,
                                              std::vector<std::string>& unresolved) {
  if (!MayHold(row)) return false;
  absl::StatusOr<std::vector<std::pair<std::string_view, std::string_view>>> fields =
      row_fields_.Read(row);
  if (!fields.ok()) return fields.status();
  bool any = false;
  for (const auto& [key, value] : *fields) any = any || IsPlaceholder(value);
  if (!any) return false;
  std::vector<std::pair<std::string_view, std::string_view>> before;
  if (previous) {
    absl::StatusOr<std::vector<std::pair<std::string_view, std::string_view>>> read =
        previous_fields_.Read(*previous);
    if (!read.ok()) return read.status();
    before = *std::move(read);
  }
  out.clear();
  out.push_back('{');
  for (const auto& [key, value] : *fields) {
    if (out.size() > 1) out.push_back(',');
    AppendJsonString(out, key);
    out.push_back(':');
    std::string_view chosen = value;
    if (IsPlaceholder(value)) {
      auto it = std::find_if(before.begin(), before.end(),
                             [&key = key](const auto& field) { return field.first == key; });
      if (it != before.end() && !IsPlaceholder(it->second)) {
        chosen = it->second;
      } else {
        unresolved.emplace_back(key);
      }
    }
    out.append(chosen);
  }
  out.push_back('}');
  return true;
}

absl::StatusOr<RowShape> RowShape::Parse(std::string_view shape) {
  RowFields fields;
  absl::StatusOr<std::vector<std::pair<std::string_view, std::string_view>>> columns =
      fields.Read(shape);
  if (!columns.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("table shape: ", columns.status().message()));
  }
  RowShape parsed;
  for (const auto& [name, value] : *columns) parsed.columns_.emplace_back(name, value);
  return parsed;
}

absl::StatusOr<bool> RowShape::Conform(std::string_view row, RowFields& fields,
                                       std::string& out) const {
  TRIBUTARY_ASSIGN_OR_RETURN(auto values, fields.Read(row));
  bool same = values.size() == columns_.size();
  for (size_t i = 0; same && i < values.size(); ++i) same = values[i].first == columns_[i].first;
  if (same) return false;
  out.clear();
  out.push_back('{');
  for (const auto& [name, default_value] : columns_) {
    if (out.size() > 1) out.push_back(',');
    AppendJsonString(out, name);
    out.push_back(':');
    auto it = std::find_if(values.begin(), values.end(),
                           [&](const auto& field) { return field.first == name; });
    out.append(it == values.end() ? std::string_view(default_value) : it->second);
  }
  out.push_back('}');
  return true;
}

std::string RowShape::Names() const {
  std::string names = "(";
  for (const auto& [name, default_value] : columns_) {
    if (names.size() > 1) names.append(", ");
    names.append(name);
  }
  names.push_back(')');
  return names;
}

}  // namespace tributary::internal
