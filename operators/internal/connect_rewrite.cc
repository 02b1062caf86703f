// Schemas are compiled with simdjson's DOM (once per distinct schema); row
// images are rewritten with On Demand in one forward pass per object or
// array that holds something to convert: the text between converted values
// is copied as one span, so fields without a logical type keep their bytes.
// A nested object or array (a VariableScaleDecimal, an array of Decimals) is
// taken as its raw text first and read by a parser of its own depth.

#include "operators/internal/connect_rewrite.h"

#include <simdjson.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"
#include "base/json_escape.h"
#include "base/status_macros.h"
#include "operators/internal/connect_values.h"

namespace tributary::internal {
namespace {

namespace od = simdjson::ondemand;
namespace dom = simdjson::dom;

// Schemas nest no deeper than this; deeper parts are copied as they are.
constexpr int kMaxDepth = 16;

// ---------------------------------------------------------------------------
// Compiling schemas

std::string_view OptionalString(dom::element element, const char* key) {
  std::string_view s;
  if (element[key].get_string().get(s) != simdjson::SUCCESS) return {};
  return s;
}

// The time-of-day and timestamp logical types, with their units.
struct TemporalType {
  std::string_view name;
  ValuePlan::Kind kind;
  int64_t units_per_second;
};
constexpr TemporalType kTemporalTypes[] = {
    {"io.debezium.time.Time", ValuePlan::Kind::kTime, 1000},
    {"org.apache.kafka.connect.data.Time", ValuePlan::Kind::kTime, 1000},
    {"io.debezium.time.MicroTime", ValuePlan::Kind::kTime, 1000000},
    {"io.debezium.time.NanoTime", ValuePlan::Kind::kTime, 1000000000},
    {"io.debezium.time.Timestamp", ValuePlan::Kind::kTimestamp, 1000},
    {"org.apache.kafka.connect.data.Timestamp", ValuePlan::Kind::kTimestamp, 1000},
    {"io.debezium.time.MicroTimestamp", ValuePlan::Kind::kTimestamp, 1000000},
    {"io.debezium.time.NanoTimestamp", ValuePlan::Kind::kTimestamp, 1000000000},
};

absl::Status CompileStruct(dom::element schema, const std::string& path,
                           int depth, StructPlan* out, bool* converts);

// Compiles the schema of one value. Logical types Debezium writes as strings
// already readable (ZonedTimestamp, ZonedTime, Uuid, Enum, EnumSet, Xml,
// ...) and those without a rule (MicroDuration, Bits, geometries) are kCopy.
absl::Status CompileValue(dom::element schema, const std::string& path,
                          int depth, ValuePlan* out) {
  const std::string_view name = OptionalString(schema, "name");
  const std::string_view type = OptionalString(schema, "type");
  if (name == "org.apache.kafka.connect.data.Decimal") {
    std::string_view scale_text;
    int32_t scale = 0;
    if (schema["parameters"]["scale"].get_string().get(scale_text) !=
            simdjson::SUCCESS ||
        !absl::SimpleAtoi(Sv(scale_text), &scale)) {
      return absl::InvalidArgumentError(
          absl::StrCat("schema of '", path,
                       "': Decimal without an integer 'parameters.scale'"));
    }
    if (scale > 100000 || scale < -100000) {
      return absl::InvalidArgumentError(absl::StrCat(
          "schema of '", path, "': Decimal scale ", scale, " out of range"));
    }
    out->kind = ValuePlan::Kind::kDecimal;
    out->scale = scale;
    return absl::OkStatus();
  }
  if (name == "io.debezium.data.VariableScaleDecimal") {
    out->kind = ValuePlan::Kind::kVariableScaleDecimal;
    return absl::OkStatus();
  }
  if (name == "io.debezium.time.Date" ||
      name == "org.apache.kafka.connect.data.Date") {
    out->kind = ValuePlan::Kind::kDate;
    return absl::OkStatus();
  }
  for (const TemporalType& temporal : kTemporalTypes) {
    if (name == temporal.name) {
      out->kind = temporal.kind;
      out->units_per_second = temporal.units_per_second;
      return absl::OkStatus();
    }
  }
  if (name == "io.debezium.data.Json") {
    out->kind = ValuePlan::Kind::kJson;
    return absl::OkStatus();
  }
  if (depth >= kMaxDepth) return absl::OkStatus();
  if (type == "array") {
    dom::element items;
    if (schema["items"].get(items) != simdjson::SUCCESS) {
      return absl::InvalidArgumentError(
          absl::StrCat("schema of '", path, "': array without 'items'"));
    }
    auto plan = std::make_unique<ValuePlan>();
    TRIBUTARY_RETURN_IF_ERROR(
        CompileValue(items, absl::StrCat(path, "[]"), depth + 1, plan.get()));
    if (plan->kind != ValuePlan::Kind::kCopy) {
      out->kind = ValuePlan::Kind::kArray;
      out->items = std::move(plan);
    }
    return absl::OkStatus();
  }
  if (type == "struct") {
    auto plan = std::make_unique<StructPlan>();
    bool converts = false;
    TRIBUTARY_RETURN_IF_ERROR(
        CompileStruct(schema, path, depth + 1, plan.get(), &converts));
    if (converts) {
      out->kind = ValuePlan::Kind::kStruct;
      out->fields = std::move(plan);
    }
  }
  return absl::OkStatus();
}

absl::Status CompileStruct(dom::element schema, const std::string& path,
                           int depth, StructPlan* out, bool* converts) {
  dom::array fields;
  if (schema["fields"].get_array().get(fields) != simdjson::SUCCESS) {
    return absl::InvalidArgumentError(
        absl::StrCat("schema of '", path, "': struct without 'fields'"));
  }
  *converts = false;
  for (dom::element field : fields) {
    std::string_view name;
    if (field["field"].get_string().get(name) != simdjson::SUCCESS) {
      return absl::InvalidArgumentError(
          absl::StrCat("schema of '", path, "': a field without a name"));
    }
    ValuePlan plan;
    TRIBUTARY_RETURN_IF_ERROR(
        CompileValue(field, absl::StrCat(path, ".", Sv(name)), depth, &plan));
    *converts |= plan.kind != ValuePlan::Kind::kCopy;
    out->names.emplace_back(name);
    out->plans.push_back(std::move(plan));
  }
  for (size_t i = 0; i < out->names.size(); ++i) {
    out->index.emplace(out->names[i], i);
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Rewriting

std::string_view TrimRight(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n' ||
                        s.back() == '\r' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

// Where a value sits, for error messages; built into text only on error.
struct Path {
  const Path* parent = nullptr;
  std::string_view key;  // a field name, or empty for an array element
  size_t index = 0;      // array elements
};

void AppendPath(const Path* path, std::string* out) {
  if (path == nullptr) return;
  AppendPath(path->parent, out);
  if (!path->key.empty() || path->parent == nullptr) {
    if (path->parent != nullptr) out->push_back('.');
    out->append(path->key);
  } else {
    absl::StrAppend(out, "[", path->index, "]");
  }
}

template <typename... Parts>
absl::Status Invalid(const Path& path, const Parts&... parts) {
  std::string text = "'";
  AppendPath(&path, &text);
  absl::StrAppend(&text, "': ", parts...);
  return absl::InvalidArgumentError(text);
}

// Bytes readable from text.data() on.
size_t Readable(std::string_view text, const char* limit) {
  return static_cast<size_t>(limit - text.data());
}

absl::string_view Excerpt(std::string_view s) {
  return Sv(s.substr(0, 64));
}

// The output of one object or array being rewritten: the input text from
// `copied` on is not yet in `out`.
struct Splice {
  std::string* out;
  const char* copied;
  bool changed = false;

  // Copies the input up to `start`.
  void Flush(const char* start) {
    out->append(copied, static_cast<size_t>(start - copied));
    copied = start;
  }
  // Copies the input up to `start`; what is appended next replaces the
  // input up to `end`.
  void Replace(const char* start, const char* end) {
    Flush(start);
    copied = end;
    changed = true;
  }
};

const char* JsonTypeName(od::json_type type) {
  switch (type) {
    case od::json_type::array:
      return "an array";
    case od::json_type::object:
      return "an object";
    case od::json_type::number:
      return "a number";
    case od::json_type::string:
      return "a string";
    case od::json_type::boolean:
      return "a boolean";
    case od::json_type::null:
      return "null";
  }
  return "unknown";
}

// ---------------------------------------------------------------------------
// Hashing schema texts

__extension__ typedef unsigned __int128 Uint128;

uint64_t Load64(const char* p) {
  uint64_t w;
  std::memcpy(&w, p, sizeof(w));
  return w;
}

uint64_t Mum(uint64_t a, uint64_t b) {
  const Uint128 r = static_cast<Uint128>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}

}  // namespace

// A wyhash-style hash, 16 bytes per 64x64->128 multiply on three
// independent lanes: several times faster than std::hash on the kilobytes
// of a schema, which every schema-on event pays. Collisions only cost a
// text comparison.
uint64_t HashSchemaText(std::string_view text) {
  constexpr uint64_t k0 = 0xa0761d6478bd642full;
  constexpr uint64_t k1 = 0xe7037ed1a0b428dbull;
  constexpr uint64_t k2 = 0x8ebc6af09c88c6e3ull;
  constexpr uint64_t k3 = 0x589965cc75374cc3ull;
  const char* p = text.data();
  size_t n = text.size();
  uint64_t seed = k0 ^ Mum(n ^ k1, k0);
  uint64_t a = 0;
  uint64_t b = 0;
  if (n <= 16) {
    if (n >= 8) {
      a = Load64(p);
      b = Load64(p + n - 8);
    } else if (n > 0) {
      for (size_t i = 0; i < n; ++i) a = (a << 8) | static_cast<uint8_t>(p[i]);
    }
  } else {
    if (n > 48) {
      uint64_t s1 = seed;
      uint64_t s2 = seed;
      do {
        seed = Mum(Load64(p) ^ k1, Load64(p + 8) ^ seed);
        s1 = Mum(Load64(p + 16) ^ k2, Load64(p + 24) ^ s1);
        s2 = Mum(Load64(p + 32) ^ k3, Load64(p + 40) ^ s2);
        p += 48;
        n -= 48;
      } while (n > 48);
      seed ^= s1 ^ s2;
    }
    while (n > 16) {
      seed = Mum(Load64(p) ^ k1, Load64(p + 8) ^ seed);
      p += 16;
      n -= 16;
    }
    a = Load64(p + n - 16);
    b = Load64(p + n - 8);
  }
  return Mum(k1 ^ text.size(), Mum(a ^ k1, b ^ seed));
}

namespace {

// EnvelopePlan::shape of the struct schema `image`; `plan` (null: nothing to
// convert) makes the defaults readable as it does the rows.
absl::StatusOr<std::string> CompileShape(dom::element image, const StructPlan* plan) {
  dom::array fields;
  if (image["fields"].get_array().get(fields) != simdjson::SUCCESS) return std::string();
  std::string shape = "{";
  for (dom::element field : fields) {
    if (shape.size() > 1) shape.push_back(',');
    AppendJsonString(shape, OptionalString(field, "field"));
    shape.push_back(':');
    dom::element value;
    if (field["default"].get(value) == simdjson::SUCCESS) {
      shape.append(simdjson::minify(value));
    } else {
      shape.append("null");
    }
  }
  shape.push_back('}');
  if (plan == nullptr) return shape;
  const size_t size = shape.size();
  shape.append(simdjson::SIMDJSON_PADDING, ' ');
  RowRewriter rewriter(std::nullopt);
  std::string readable;
  TRIBUTARY_ASSIGN_OR_RETURN(
      bool rewritten, rewriter.Rewrite(*plan, std::string_view(shape.data(), size),
                                       shape.size(), "default of after", &readable));
  if (rewritten) return readable;
  shape.resize(size);
  return shape;
}

}  // namespace

absl::StatusOr<std::unique_ptr<EnvelopePlan>> CompileEnvelopePlan(
    std::string_view schema) {
  dom::parser parser;
  dom::element root;
  if (simdjson::error_code error =
          parser.parse(schema.data(), schema.size()).get(root)) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed schema: ", simdjson::error_message(error)));
  }
  auto plan = std::make_unique<EnvelopePlan>();
  dom::array fields;
  if (OptionalString(root, "type") != "struct" ||
      root["fields"].get_array().get(fields) != simdjson::SUCCESS) {
    return plan;  // not an envelope: nothing to convert
  }
  for (dom::element field : fields) {
    const std::string_view name = OptionalString(field, "field");
    if (name != "before" && name != "after") continue;
    if (OptionalString(field, "type") != "struct") continue;
    auto image = std::make_unique<StructPlan>();
    bool converts = false;
    TRIBUTARY_RETURN_IF_ERROR(
        CompileStruct(field, std::string(name), 1, image.get(), &converts));
    if (name == "after") {
      TRIBUTARY_ASSIGN_OR_RETURN(plan->shape,
                                 CompileShape(field, converts ? image.get() : nullptr));
      plan->shape_hash = HashSchemaText(plan->shape);
    }
    if (!converts) continue;
    (name == "before" ? plan->before : plan->after) = std::move(image);
  }
  return plan;
}

SchemaPlanCache::SchemaPlanCache(size_t capacity)
    : capacity_(std::max<size_t>(capacity, 1)) {}

SchemaPlanCache::~SchemaPlanCache() = default;

absl::StatusOr<const EnvelopePlan*> SchemaPlanCache::Get(
    std::string_view schema) {
  const uint64_t hash = HashSchemaText(schema);
  ++clock_;
  auto hit = [&](size_t i) {
    return entries_[i].hash == hash && entries_[i].text == schema;
  };
  if (last_hit_ < entries_.size() && hit(last_hit_)) {
    entries_[last_hit_].last_use = clock_;
    return entries_[last_hit_].plan.get();
  }
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (!hit(i)) continue;
    last_hit_ = i;
    entries_[i].last_use = clock_;
    return entries_[i].plan.get();
  }
  TRIBUTARY_ASSIGN_OR_RETURN(std::unique_ptr<EnvelopePlan> plan,
                             CompileEnvelopePlan(schema));
  ++compilations_;
  size_t slot = entries_.size();
  if (entries_.size() < capacity_) {
    entries_.emplace_back();
  } else {
    slot = 0;
    for (size_t i = 1; i < entries_.size(); ++i) {
      if (entries_[i].last_use < entries_[slot].last_use) slot = i;
    }
  }
  Entry& entry = entries_[slot];
  entry.hash = hash;
  entry.text.assign(schema);
  entry.plan = std::move(plan);
  entry.last_use = clock_;
  last_hit_ = slot;
  return entry.plan.get();
}

struct RowRewriter::Impl {
  explicit Impl(std::optional<std::string_view> placeholder_text)
      : has_placeholder(placeholder_text.has_value()),
        placeholder(placeholder_text.value_or("")) {}

  bool has_placeholder;
  std::string placeholder;
  // One On Demand parser per nesting depth: a nested object or array is
  // read while its parent's document is still being iterated.
  std::vector<std::unique_ptr<od::parser>> parsers;
  // Validates the JSON text inside io.debezium.data.Json strings.
  dom::parser json_parser;
  std::unique_ptr<char[]> json_buffer;  // padded copy for json_parser
  size_t json_capacity = 0;
  std::string bytes;    // decoded base64
  std::string scratch;  // Rewrite's output until it is known to change

  od::parser& ParserAt(size_t depth) {
    while (parsers.size() <= depth) {
      parsers.push_back(std::make_unique<od::parser>());
    }
    return *parsers[depth];
  }

  bool IsPlaceholder(std::string_view s) const { return has_placeholder && s == placeholder; }

  bool IsValidJson(std::string_view text) {
    const size_t needed = text.size() + simdjson::SIMDJSON_PADDING;
    if (needed > json_capacity) {
      json_capacity = std::max(needed, 2 * json_capacity);
      json_buffer.reset(new char[json_capacity]);
    }
    if (!text.empty()) std::memcpy(json_buffer.get(), text.data(), text.size());
    std::memset(json_buffer.get() + text.size(), 0, simdjson::SIMDJSON_PADDING);
    dom::element ignored;
    return json_parser.parse(json_buffer.get(), text.size(), false)
               .get(ignored) == simdjson::SUCCESS;
  }

  absl::StatusOr<bool> RewriteStruct(const StructPlan& plan,
                                     std::string_view text, const char* limit,
                                     const Path& path, size_t depth,
                                     std::string* out);
  absl::StatusOr<bool> RewriteArray(const ValuePlan& items,
                                    std::string_view text, const char* limit,
                                    const Path& path, size_t depth,
                                    std::string* out);
  absl::Status RewriteValue(const ValuePlan& plan, od::value& value,
                            const char* limit, const Path& path, size_t depth,
                            Splice& splice);
  absl::Status AppendVariableScaleDecimal(std::string_view text,
                                          const char* limit, const Path& path,
                                          size_t depth, bool* kept,
                                          std::string* out);
};

namespace {

absl::Status Malformed(const Path& path, simdjson::error_code error) {
  return Invalid(path, "malformed JSON: ", simdjson::error_message(error));
}

// The raw text of an object or array value (consumes it).
absl::Status RawComposite(const Path& path, od::value& value,
                          od::json_type type, std::string_view* out) {
  simdjson::error_code error = simdjson::SUCCESS;
  if (type == od::json_type::object) {
    od::object object;
    error = value.get_object().get(object);
    if (!error) error = object.raw_json().get(*out);
  } else {
    od::array array;
    error = value.get_array().get(array);
    if (!error) error = array.raw_json().get(*out);
  }
  if (error) return Malformed(path, error);
  *out = TrimRight(*out);
  return absl::OkStatus();
}

const char* KindName(ValuePlan::Kind kind) {
  switch (kind) {
    case ValuePlan::Kind::kDecimal:
      return "Decimal";
    case ValuePlan::Kind::kVariableScaleDecimal:
      return "VariableScaleDecimal";
    case ValuePlan::Kind::kDate:
      return "Date";
    case ValuePlan::Kind::kTime:
      return "Time";
    case ValuePlan::Kind::kTimestamp:
      return "Timestamp";
    case ValuePlan::Kind::kJson:
      return "Json";
    case ValuePlan::Kind::kArray:
      return "array";
    case ValuePlan::Kind::kStruct:
      return "struct";
    case ValuePlan::Kind::kCopy:
      break;
  }
  return "value";
}

}  // namespace

absl::Status RowRewriter::Impl::AppendVariableScaleDecimal(
    std::string_view text, const char* limit, const Path& path, size_t depth,
    bool* kept, std::string* out) {
  od::parser& parser = ParserAt(depth);
  od::document doc;
  simdjson::error_code error =
      parser.iterate(text.data(), text.size(), Readable(text, limit)).get(doc);
  od::object object;
  if (!error) error = doc.get_object().get(object);
  if (error) return Malformed(path, error);
  std::optional<int64_t> scale;
  std::optional<std::string_view> value;
  for (auto result : object) {
    if (result.error()) return Malformed(path, result.error());
    od::field& field = result.value_unsafe();
    if (field.key().unsafe_is_equal("scale")) {
      int64_t n = 0;
      if ((error = field.value().get_int64().get(n))) {
        return Invalid(path, "VariableScaleDecimal 'scale' must be an integer");
      }
      scale = n;
    } else if (field.key().unsafe_is_equal("value")) {
      std::string_view s;
      if ((error = field.value().get_string().get(s))) {
        return Invalid(path, "VariableScaleDecimal 'value' must be a string");
      }
      value = s;
    }
  }
  if (!scale || !value) {
    return Invalid(path, "VariableScaleDecimal needs 'scale' and 'value'");
  }
  if (IsPlaceholder(*value)) {
    *kept = true;
    return absl::OkStatus();
  }
  if (!absl::Base64Unescape(Sv(*value), &bytes)) {
    return Invalid(path, "VariableScaleDecimal value \"", Excerpt(*value),
                   "\" is not base64");
  }
  if (IsPlaceholder(bytes)) {
    *kept = true;
    return absl::OkStatus();
  }
  if (*scale > INT32_MAX || *scale < INT32_MIN) {
    return Invalid(path, "VariableScaleDecimal scale ", *scale,
                   " out of range");
  }
  *kept = false;
  out->push_back('"');
  if (absl::Status status =
          AppendDecimal(bytes, static_cast<int32_t>(*scale), out);
      !status.ok()) {
    return Invalid(path, status.message());
  }
  out->push_back('"');
  return absl::OkStatus();
}

absl::Status RowRewriter::Impl::RewriteValue(const ValuePlan& plan,
                                             od::value& value,
                                             const char* limit,
                                             const Path& path, size_t depth,
                                             Splice& splice) {
  od::json_type type = od::json_type::null;
  if (simdjson::error_code error = value.type().get(type)) {
    return Malformed(path, error);
  }
  if (type == od::json_type::null) return absl::OkStatus();
  std::string& out = *splice.out;

  // Strings: the placeholder stays; Decimal and Json read theirs.
  std::string_view token;
  std::string_view text;
  if (type == od::json_type::string) {
    token = TrimRight(value.raw_json_token());
    if (simdjson::error_code error = value.get_string().get(text)) {
      return Malformed(path, error);
    }
    if (IsPlaceholder(text)) return absl::OkStatus();
  }

  switch (plan.kind) {
    case ValuePlan::Kind::kDecimal:
      if (type == od::json_type::string) {
        if (!absl::Base64Unescape(Sv(text), &bytes)) {
          return Invalid(path, "Decimal value \"", Excerpt(text),
                         "\" is not base64");
        }
        if (IsPlaceholder(bytes)) return absl::OkStatus();  // bytes-style
        // On error the caller drops the whole output: no need to undo.
        splice.Replace(token.data(), token.data() + token.size());
        out.push_back('"');
        if (absl::Status status = AppendDecimal(bytes, plan.scale, &out);
            !status.ok()) {
          return Invalid(path, status.message());
        }
        out.push_back('"');
        return absl::OkStatus();
      }
      if (type == od::json_type::number) {
        // JsonConverter with decimal.format=NUMERIC: already exact text.
        token = TrimRight(value.raw_json_token());
        if (simdjson::error_code error = value.get_number().error()) {
          return Malformed(path, error);
        }
        splice.Replace(token.data(), token.data() + token.size());
        absl::StrAppend(&out, "\"", Sv(token), "\"");
        return absl::OkStatus();
      }
      break;
    case ValuePlan::Kind::kDate:
    case ValuePlan::Kind::kTime:
    case ValuePlan::Kind::kTimestamp: {
      if (type != od::json_type::number) break;
      token = TrimRight(value.raw_json_token());
      int64_t n = 0;
      if (value.get_int64().get(n) != simdjson::SUCCESS) {
        return Invalid(path, KindName(plan.kind), " value ", Excerpt(token),
                       " is not a 64-bit integer");
      }
      if (plan.kind == ValuePlan::Kind::kDate &&
          (n >= (int64_t{1} << 40) || n <= -(int64_t{1} << 40))) {
        return Invalid(path, "Date value ", n, " out of range");
      }
      // On error the caller drops the whole output: no need to undo.
      splice.Replace(token.data(), token.data() + token.size());
      out.push_back('"');
      if (plan.kind == ValuePlan::Kind::kDate) {
        AppendDate(n, &out);
      } else if (plan.kind == ValuePlan::Kind::kTime) {
        if (absl::Status status =
                AppendTimeOfDay(n, plan.units_per_second, &out);
            !status.ok()) {
          return Invalid(path, status.message());
        }
      } else {
        AppendTimestamp(n, plan.units_per_second, &out);
      }
      out.push_back('"');
      return absl::OkStatus();
    }
    case ValuePlan::Kind::kJson:
      if (type != od::json_type::string) break;
      // Not JSON (e.g. a placeholder set to something else): kept as sent.
      if (!IsValidJson(text)) return absl::OkStatus();
      splice.Replace(token.data(), token.data() + token.size());
      out.append(text);
      return absl::OkStatus();
    case ValuePlan::Kind::kVariableScaleDecimal:
    case ValuePlan::Kind::kArray:
    case ValuePlan::Kind::kStruct: {
      const od::json_type expected = plan.kind == ValuePlan::Kind::kArray
                                         ? od::json_type::array
                                         : od::json_type::object;
      if (type != expected) break;
      std::string_view raw;
      TRIBUTARY_RETURN_IF_ERROR(RawComposite(path, value, type, &raw));
      if (plan.kind == ValuePlan::Kind::kVariableScaleDecimal) {
        std::string converted;
        bool kept = false;
        TRIBUTARY_RETURN_IF_ERROR(AppendVariableScaleDecimal(
            raw, limit, path, depth + 1, &kept, &converted));
        if (kept) return absl::OkStatus();
        splice.Replace(raw.data(), raw.data() + raw.size());
        out.append(converted);
        return absl::OkStatus();
      }
      // Copy up to the nested value; it writes itself only if it changes.
      splice.Flush(raw.data());
      absl::StatusOr<bool> changed =
          plan.kind == ValuePlan::Kind::kArray
              ? RewriteArray(*plan.items, raw, limit, path, depth + 1, &out)
              : RewriteStruct(*plan.fields, raw, limit, path, depth + 1, &out);
      if (!changed.ok()) return changed.status();
      if (*changed) {
        splice.copied = raw.data() + raw.size();
        splice.changed = true;
      }
      return absl::OkStatus();
    }
    case ValuePlan::Kind::kCopy:
      return absl::OkStatus();
  }
  if (type == od::json_type::string) {
    return Invalid(path, KindName(plan.kind),
                   " value must not be the string \"", Excerpt(text), "\"");
  }
  return Invalid(path, KindName(plan.kind), " value must not be ",
                 JsonTypeName(type));
}

absl::StatusOr<bool> RowRewriter::Impl::RewriteStruct(
    const StructPlan& plan, std::string_view text, const char* limit,
    const Path& path, size_t depth, std::string* out) {
  od::parser& parser = ParserAt(depth);
  od::document doc;
  simdjson::error_code error =
      parser.iterate(text.data(), text.size(), Readable(text, limit)).get(doc);
  od::object object;
  if (!error) error = doc.get_object().get(object);
  if (error) return Malformed(path, error);
  const size_t mark = out->size();
  Splice splice{out, text.data()};
  size_t cursor = 0;  // Debezium writes fields in schema order
  for (auto result : object) {
    if (result.error()) return Malformed(path, result.error());
    od::field& field = result.value_unsafe();
    // The key as written; Debezium's column names rarely need escapes.
    const char* start = field.key().raw();
    const char* p = start;
    bool escaped = false;
    while (*p != '"') {
      if (*p == '\\') {
        escaped = true;
        ++p;
      }
      ++p;
    }
    std::string_view key(start, static_cast<size_t>(p - start));
    if (escaped) {
      if ((error = field.unescaped_key().get(key))) {
        return Malformed(path, error);
      }
    }
    size_t i = cursor;
    if (i >= plan.names.size() || plan.names[i] != key) {
      const auto it = plan.index.find(key);
      if (it == plan.index.end()) continue;  // not in the schema: copied
      i = it->second;
    }
    cursor = i + 1;
    const ValuePlan& field_plan = plan.plans[i];
    if (field_plan.kind == ValuePlan::Kind::kCopy) continue;
    const Path field_path{&path, plan.names[i]};
    TRIBUTARY_RETURN_IF_ERROR(RewriteValue(field_plan, field.value(), limit,
                                           field_path, depth, splice));
  }
  if (!splice.changed) {
    out->resize(mark);
    return false;
  }
  out->append(splice.copied,
              static_cast<size_t>(text.data() + text.size() - splice.copied));
  return true;
}

absl::StatusOr<bool> RowRewriter::Impl::RewriteArray(
    const ValuePlan& items, std::string_view text, const char* limit,
    const Path& path, size_t depth, std::string* out) {
  od::parser& parser = ParserAt(depth);
  od::document doc;
  simdjson::error_code error =
      parser.iterate(text.data(), text.size(), Readable(text, limit)).get(doc);
  od::array array;
  if (!error) error = doc.get_array().get(array);
  if (error) return Malformed(path, error);
  const size_t mark = out->size();
  Splice splice{out, text.data()};
  size_t index = 0;
  for (auto result : array) {
    if (result.error()) return Malformed(path, result.error());
    const Path element_path{&path, {}, index++};
    TRIBUTARY_RETURN_IF_ERROR(RewriteValue(items, result.value_unsafe(), limit,
                                           element_path, depth, splice));
  }
  if (!splice.changed) {
    out->resize(mark);
    return false;
  }
  out->append(splice.copied,
              static_cast<size_t>(text.data() + text.size() - splice.copied));
  return true;
}

RowRewriter::RowRewriter(std::optional<std::string_view> placeholder)
    : impl_(std::make_unique<Impl>(placeholder)) {}

RowRewriter::~RowRewriter() = default;

absl::StatusOr<bool> RowRewriter::Rewrite(const StructPlan& plan,
                                          std::string_view row,
                                          size_t readable,
                                          std::string_view path,
                                          std::string* out) {
  std::string& rewritten = impl_->scratch;
  rewritten.clear();
  const Path root{nullptr, path};
  TRIBUTARY_ASSIGN_OR_RETURN(
      bool changed, impl_->RewriteStruct(plan, row, row.data() + readable,
                                         root, 0, &rewritten));
  // Swapping keeps both strings' capacity: steady state allocates nothing.
  if (changed) std::swap(*out, rewritten);
  return changed;
}

}  // namespace tributary::internal
