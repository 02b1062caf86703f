// Debezium change events and transaction markers, decoded in one forward pass
// with simdjson On Demand. Every object is read with a `for (field : object)`
// loop that dispatches on the key, so no value is scanned twice; strings
// without escapes and row images are returned as views into the decoder's
// padded copy of the input.

#include "operators/debezium.h"

#include <simdjson.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"
#include "base/status_macros.h"
#include "operators/internal/connect_rewrite.h"

namespace tributary {
namespace {

namespace od = simdjson::ondemand;

// A copy of the input followed by SIMDJSON_PADDING zero bytes, as simdjson
// requires. Grows as needed and never shrinks, so steady state is
// allocation-free.
class PaddedBuffer {
 public:
  std::string_view Assign(std::string_view text) {
    const size_t needed = text.size() + simdjson::SIMDJSON_PADDING;
    if (needed > capacity_) {
      const size_t capacity = std::max(needed, 2 * capacity_);
      data_.reset(new char[capacity]);
      capacity_ = capacity;
    }
    if (!text.empty()) std::memcpy(data_.get(), text.data(), text.size());
    std::memset(data_.get() + text.size(), 0, simdjson::SIMDJSON_PADDING);
    return {data_.get(), text.size()};
  }
  const char* data() const { return data_.get(); }
  // Bytes readable from data(): the text and at least SIMDJSON_PADDING more.
  size_t capacity() const { return capacity_; }

 private:
  std::unique_ptr<char[]> data_;
  size_t capacity_ = 0;
};

std::string_view TrimRight(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n' ||
                        s.back() == '\r' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

const char* TypeName(od::json_type type) {
  switch (type) {
    case od::json_type::array:
      return "array";
    case od::json_type::object:
      return "object";
    case od::json_type::number:
      return "number";
    case od::json_type::string:
      return "string";
    case od::json_type::boolean:
      return "boolean";
    case od::json_type::null:
      return "null";
  }
  return "unknown";
}

// The key of `field` as written between its quotes (escapes not decoded).
// Sets `*escaped` when the key contains a backslash.
std::string_view RawKey(const od::field& field, bool* escaped) {
  const char* start = field.key().raw();
  const char* p = start;
  *escaped = false;
  // Stage 1 has checked that every string is closed, and the buffer is
  // padded, so this stops at the closing quote.
  while (*p != '"') {
    if (*p == '\\') {
      *escaped = true;
      ++p;
    }
    ++p;
  }
  return {start, static_cast<size_t>(p - start)};
}

// What is being decoded, for error messages, and where the text starts, to
// report byte offsets.
class Context {
 public:
  Context(std::string_view what, std::string_view text)
      : what_(what), text_(text) {}
  void set_document(od::document* doc) { doc_ = doc; }

  template <typename... Parts>
  absl::Status Invalid(const Parts&... parts) const {
    return absl::InvalidArgumentError(absl::StrCat(Sv(what_), ": ", parts...));
  }

  // A simdjson error: the JSON itself is broken.
  absl::Status Malformed(simdjson::error_code error) const {
    const char* location = nullptr;
    if (error == simdjson::INCOMPLETE_ARRAY_OR_OBJECT) {
      // Detected up front, before any location is meaningful: the text ends
      // inside an object or array.
      return Invalid("malformed JSON at byte ", text_.size(), ": ",
                     simdjson::error_message(error));
    }
    if (doc_ != nullptr &&
        doc_->current_location().get(location) == simdjson::SUCCESS &&
        location >= text_.data() && location <= text_.data() + text_.size()) {
      return Invalid("malformed JSON at byte ", location - text_.data(), ": ",
                     simdjson::error_message(error));
    }
    return Invalid("malformed JSON (", text_.size(),
                   " bytes): ", simdjson::error_message(error));
  }

  // REQUIRES: the root value has been read to its end.
  absl::Status CheckEnd() const {
    const char* location = nullptr;
    if (doc_ != nullptr &&
        doc_->current_location().get(location) == simdjson::SUCCESS) {
      return Invalid("malformed JSON at byte ", location - text_.data(),
                     ": unexpected content after the top-level value");
    }
    return absl::OkStatus();
  }

 private:
  std::string_view what_;
  std::string_view text_;
  od::document* doc_ = nullptr;
};

absl::Status TypeOf(const Context& ctx, od::value& value, od::json_type* type) {
  simdjson::error_code error = value.type().get(*type);
  return error ? ctx.Malformed(error) : absl::OkStatus();
}

absl::Status WrongType(const Context& ctx, std::string_view path,
                       std::string_view expected, od::json_type got) {
  return ctx.Invalid("'", Sv(path), "' must be ", Sv(expected), ", got ",
                     TypeName(got));
}

// A JSON string. Without escapes it is a view into the padded input;
// with escapes it is decoded into the parser's string buffer. Both live until
// the parser's next document.
absl::Status ReadString(const Context& ctx, od::value& value,
                        std::string_view path, std::string_view* out) {
  od::json_type type = od::json_type::null;
  TRIBUTARY_RETURN_IF_ERROR(TypeOf(ctx, value, &type));
  if (type != od::json_type::string) {
    return WrongType(ctx, path, "a string", type);
  }
  std::string_view token = TrimRight(value.raw_json_token());
  if (token.size() >= 2 && token.back() == '"' &&
      std::memchr(token.data() + 1, '\\', token.size() - 2) == nullptr) {
    *out = token.substr(1, token.size() - 2);
    return absl::OkStatus();
  }
  simdjson::error_code error = value.get_string().get(*out);
  return error ? ctx.Malformed(error) : absl::OkStatus();
}

// A string or null (nullopt).
absl::Status ReadOptionalString(const Context& ctx, od::value& value,
                                std::string_view path,
                                std::optional<std::string_view>* out) {
  od::json_type type = od::json_type::null;
  TRIBUTARY_RETURN_IF_ERROR(TypeOf(ctx, value, &type));
  if (type == od::json_type::null) {
    out->reset();
    return absl::OkStatus();
  }
  std::string_view s;
  TRIBUTARY_RETURN_IF_ERROR(ReadString(ctx, value, path, &s));
  *out = s;
  return absl::OkStatus();
}

// An integer that fits int64; `text`, if given, receives it as written.
absl::Status ReadInt64(const Context& ctx, od::value& value,
                       std::string_view path, int64_t* out,
                       std::string_view* text = nullptr) {
  od::json_type type = od::json_type::null;
  TRIBUTARY_RETURN_IF_ERROR(TypeOf(ctx, value, &type));
  if (type != od::json_type::number) {
    return WrongType(ctx, path, "an integer", type);
  }
  std::string_view token = TrimRight(value.raw_json_token());
  if (value.get_int64().get(*out) != simdjson::SUCCESS) {
    return ctx.Invalid("'", Sv(path), "' must be a 64-bit integer, got ",
                       Sv(token));
  }
  if (text != nullptr) *text = token;
  return absl::OkStatus();
}

// An integer or null (nullopt).
absl::Status ReadOptionalInt64(const Context& ctx, od::value& value,
                               std::string_view path,
                               std::optional<int64_t>* out,
                               std::string_view* text = nullptr) {
  od::json_type type = od::json_type::null;
  TRIBUTARY_RETURN_IF_ERROR(TypeOf(ctx, value, &type));
  if (type == od::json_type::null) {
    out->reset();
    return absl::OkStatus();
  }
  int64_t n = 0;
  TRIBUTARY_RETURN_IF_ERROR(ReadInt64(ctx, value, path, &n, text));
  *out = n;
  return absl::OkStatus();
}

absl::Status GetObject(const Context& ctx, od::value& value,
                       std::string_view path, od::object* out) {
  od::json_type type = od::json_type::null;
  TRIBUTARY_RETURN_IF_ERROR(TypeOf(ctx, value, &type));
  if (type != od::json_type::object) {
    return WrongType(ctx, path, "an object", type);
  }
  simdjson::error_code error = value.get_object().get(*out);
  return error ? ctx.Malformed(error) : absl::OkStatus();
}

// The raw text of any value. Scalars are checked to be well-formed; the
// insides of objects and arrays only for balanced brackets (On Demand does
// not look into what it skips).
absl::Status RawValue(const Context& ctx, od::value& value,
                      std::string_view* out) {
  od::json_type type = od::json_type::null;
  TRIBUTARY_RETURN_IF_ERROR(TypeOf(ctx, value, &type));
  simdjson::error_code error = simdjson::SUCCESS;
  switch (type) {
    case od::json_type::object: {
      od::object object;
      error = value.get_object().get(object);
      if (!error) error = object.raw_json().get(*out);
      break;
    }
    case od::json_type::array: {
      od::array array;
      error = value.get_array().get(array);
      if (!error) error = array.raw_json().get(*out);
      break;
    }
    case od::json_type::number: {
      *out = value.raw_json_token();
      simdjson::error_code number_error = value.get_number().error();
      if (number_error) error = number_error;
      break;
    }
    case od::json_type::string: {
      *out = value.raw_json_token();
      error = value.get_raw_json_string().error();
      break;
    }
    case od::json_type::boolean: {
      *out = value.raw_json_token();
      error = value.get_bool().error();
      break;
    }
    case od::json_type::null: {
      *out = value.raw_json_token();
      bool is_null = false;
      error = value.is_null().get(is_null);
      if (!error && !is_null) error = simdjson::N_ATOM_ERROR;
      break;
    }
  }
  if (error) return ctx.Malformed(error);
  *out = TrimRight(*out);
  return absl::OkStatus();
}

// A row image: an object (its raw text) or null (nullopt).
absl::Status ReadRowImage(const Context& ctx, od::value& value,
                          std::string_view path,
                          std::optional<std::string_view>* out) {
  od::json_type type = od::json_type::null;
  TRIBUTARY_RETURN_IF_ERROR(TypeOf(ctx, value, &type));
  if (type == od::json_type::null) {
    out->reset();
    return absl::OkStatus();
  }
  if (type != od::json_type::object) {
    return WrongType(ctx, path, "an object or null", type);
  }
  std::string_view raw;
  TRIBUTARY_RETURN_IF_ERROR(RawValue(ctx, value, &raw));
  *out = raw;
  return absl::OkStatus();
}

// The root of a document as an object.
absl::Status RootObject(const Context& ctx, od::document& doc,
                        od::object* out) {
  od::json_type type = od::json_type::null;
  simdjson::error_code error = doc.type().get(type);
  if (error) return ctx.Malformed(error);
  if (type != od::json_type::object) {
    return ctx.Invalid("value must be a JSON object, got ", TypeName(type));
  }
  error = doc.get_object().get(*out);
  return error ? ctx.Malformed(error) : absl::OkStatus();
}

// Iterates the fields of `object`, calling `on_field(key, value)` for each;
// `key` is the raw key (Debezium's keys never need escapes).
template <typename OnField>
absl::Status ForEachField(const Context& ctx, od::object& object,
                          OnField&& on_field) {
  for (auto result : object) {
    if (result.error()) return ctx.Malformed(result.error());
    od::field& field = result.value_unsafe();
    TRIBUTARY_RETURN_IF_ERROR(on_field(field.key(), field.value()));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Change events

// What the source block yields before it is turned into SourceInfo.
struct SourceFields {
  bool seen = false;
  bool has_table = false;
  std::string_view lsn;  // number text
  std::optional<std::string_view> file;
  std::string_view pos;  // number text
  std::string_view row;  // number text
  std::optional<std::string_view> sequence;
};

absl::Status ReadSource(const Context& ctx, od::value& value, SourceInfo* info,
                        SourceFields* fields) {
  od::object object;
  TRIBUTARY_RETURN_IF_ERROR(GetObject(ctx, value, "source", &object));
  fields->seen = true;
  return ForEachField(
      ctx, object, [&](od::raw_json_string key, od::value& v) -> absl::Status {
        switch (*key.raw()) {
          case 'c':
            if (key.unsafe_is_equal("connector")) {
              return ReadString(ctx, v, "source.connector", &info->connector);
            }
            break;
          case 'd':
            if (key.unsafe_is_equal("db")) {
              return ReadString(ctx, v, "source.db", &info->db);
            }
            break;
          case 's':
            if (key.unsafe_is_equal("schema")) {
              return ReadString(ctx, v, "source.schema", &info->schema);
            }
            if (key.unsafe_is_equal("snapshot")) {
              // A string since Debezium 1.x; anything else says nothing.
              od::json_type type = od::json_type::null;
              TRIBUTARY_RETURN_IF_ERROR(TypeOf(ctx, v, &type));
              if (type != od::json_type::string) return absl::OkStatus();
              return ReadString(ctx, v, "source.snapshot", &info->snapshot);
            }
            // Only a position of last resort: PostgreSQL and MySQL (whose
            // connector name comes first) have better ones, so their sequence,
            // which always needs unescaping, is not decoded.
            if (key.unsafe_is_equal("sequence") &&
                info->connector != "postgresql" && info->connector != "mysql") {
              return ReadOptionalString(ctx, v, "source.sequence",
                                        &fields->sequence);
            }
            break;
          case 't':
            if (key.unsafe_is_equal("table")) {
              fields->has_table = true;
              return ReadString(ctx, v, "source.table", &info->table);
            }
            if (key.unsafe_is_equal("ts_ms")) {
              return ReadInt64(ctx, v, "source.ts_ms", &info->ts_ms);
            }
            break;
          case 'l':
            if (key.unsafe_is_equal("lsn")) {
              std::optional<int64_t> lsn;
              fields->lsn = {};
              return ReadOptionalInt64(ctx, v, "source.lsn", &lsn,
                                       &fields->lsn);
            }
            break;
          case 'f':
            if (key.unsafe_is_equal("file")) {
              return ReadOptionalString(ctx, v, "source.file", &fields->file);
            }
            break;
          case 'p':
            if (key.unsafe_is_equal("pos")) {
              std::optional<int64_t> pos;
              return ReadOptionalInt64(ctx, v, "source.pos", &pos,
                                       &fields->pos);
            }
            break;
          case 'r':
            if (key.unsafe_is_equal("row")) {
              std::optional<int64_t> row;
              return ReadOptionalInt64(ctx, v, "source.row", &row,
                                       &fields->row);
            }
            break;
          default:
            break;
        }
        return absl::OkStatus();
      });
}

absl::Status ReadTransaction(const Context& ctx, od::value& value,
                             TxIdMode mode,
                             std::optional<TransactionRef>* out) {
  od::json_type type = od::json_type::null;
  TRIBUTARY_RETURN_IF_ERROR(TypeOf(ctx, value, &type));
  if (type == od::json_type::null) {
    out->reset();
    return absl::OkStatus();
  }
  if (type != od::json_type::object) {
    return WrongType(ctx, "transaction", "an object or null", type);
  }
  od::object object;
  TRIBUTARY_RETURN_IF_ERROR(GetObject(ctx, value, "transaction", &object));
  TransactionRef tx;
  bool has_id = false;
  TRIBUTARY_RETURN_IF_ERROR(ForEachField(
      ctx, object, [&](od::raw_json_string key, od::value& v) -> absl::Status {
        if (key.unsafe_is_equal("id")) {
          has_id = true;
          return ReadString(ctx, v, "transaction.id", &tx.id);
        }
        if (key.unsafe_is_equal("total_order")) {
          return ReadInt64(ctx, v, "transaction.total_order", &tx.total_order);
        }
        if (key.unsafe_is_equal("data_collection_order")) {
          return ReadInt64(ctx, v, "transaction.data_collection_order",
                           &tx.data_collection_order);
        }
        return absl::OkStatus();
      }));
  if (!has_id) return ctx.Invalid("missing 'transaction.id'");
  tx.match_id = MatchId(tx.id, mode);
  *out = tx;
  return absl::OkStatus();
}

absl::Status ReadOp(const Context& ctx, od::value& value, ChangeOp* op) {
  std::string_view text;
  TRIBUTARY_RETURN_IF_ERROR(ReadString(ctx, value, "op", &text));
  if (text.size() == 1) {
    switch (text[0]) {
      case 'c':
      case 'u':
      case 'd':
      case 'r':
      case 't':
        *op = static_cast<ChangeOp>(text[0]);
        return absl::OkStatus();
      default:
        break;
    }
  }
  return ctx.Invalid("unknown op '", Sv(text), "'");
}

struct EnvelopeState {
  ChangeEvent* event = nullptr;
  SourceFields source;
  bool has_op = false;
};

// One field of the envelope; unknown fields (ts_us, ts_ns, ...) are skipped.
absl::Status ReadEnvelopeField(const Context& ctx, TxIdMode mode,
                               od::raw_json_string key, od::value& value,
                               EnvelopeState& state) {
  ChangeEvent& event = *state.event;
  switch (*key.raw()) {
    case 'b':
      if (key.unsafe_is_equal("before")) {
        return ReadRowImage(ctx, value, "before", &event.before);
      }
      break;
    case 'a':
      if (key.unsafe_is_equal("after")) {
        return ReadRowImage(ctx, value, "after", &event.after);
      }
      break;
    case 's':
      if (key.unsafe_is_equal("source")) {
        return ReadSource(ctx, value, &event.source, &state.source);
      }
      break;
    case 'o':
      if (key.unsafe_is_equal("op")) {
        state.has_op = true;
        return ReadOp(ctx, value, &event.op);
      }
      break;
    case 't':
      if (key.unsafe_is_equal("ts_ms")) {
        std::optional<int64_t> ts;
        TRIBUTARY_RETURN_IF_ERROR(ReadOptionalInt64(ctx, value, "ts_ms", &ts));
        event.ts_ms = ts.value_or(0);
        return absl::OkStatus();
      }
      if (key.unsafe_is_equal("transaction")) {
        return ReadTransaction(ctx, value, mode, &event.transaction);
      }
      break;
    default:
      break;
  }
  return absl::OkStatus();
}

// Fills the derived fields of SourceInfo once the whole block is read.
void FinishSource(const SourceFields& fields, SourceInfo& info) {
  std::string& dc = info.data_collection;
  const std::string_view prefix = info.schema.empty() ? info.db : info.schema;
  dc.reserve(prefix.size() + 1 + info.table.size());
  if (!prefix.empty()) {
    dc.append(prefix);
    dc.push_back('.');
  }
  dc.append(info.table);

  std::string& position = info.position;
  if (!fields.lsn.empty()) {
    position.assign(fields.lsn);
  } else if (fields.file.has_value()) {
    const std::string_view pos = fields.pos.empty() ? "0" : fields.pos;
    const std::string_view row = fields.row.empty() ? "0" : fields.row;
    position.reserve(fields.file->size() + pos.size() + row.size() + 2);
    position.append(*fields.file);
    position.push_back(':');
    position.append(pos);
    position.push_back(':');
    position.append(row);
  } else if (fields.sequence.has_value()) {
    position.assign(*fields.sequence);
  }
}

// ---------------------------------------------------------------------------
// Transaction markers

struct MarkerState {
  TransactionMarker* marker = nullptr;
  bool has_status = false;
  bool has_id = false;
};

absl::Status ReadDataCollections(const Context& ctx, od::value& value,
                                 std::vector<DataCollectionCount>* out) {
  od::json_type type = od::json_type::null;
  TRIBUTARY_RETURN_IF_ERROR(TypeOf(ctx, value, &type));
  out->clear();
  if (type == od::json_type::null) return absl::OkStatus();
  if (type != od::json_type::array) {
    return WrongType(ctx, "data_collections", "an array or null", type);
  }
  od::array array;
  simdjson::error_code error = value.get_array().get(array);
  if (error) return ctx.Malformed(error);
  for (auto element : array) {
    if (element.error()) return ctx.Malformed(element.error());
    od::value& item = element.value_unsafe();
    od::object object;
    TRIBUTARY_RETURN_IF_ERROR(
        GetObject(ctx, item, "data_collections[]", &object));
    DataCollectionCount count;
    bool has_name = false;
    bool has_count = false;
    TRIBUTARY_RETURN_IF_ERROR(ForEachField(
        ctx, object,
        [&](od::raw_json_string key, od::value& v) -> absl::Status {
          if (key.unsafe_is_equal("data_collection")) {
            has_name = true;
            return ReadString(ctx, v, "data_collections[].data_collection",
                              &count.data_collection);
          }
          if (key.unsafe_is_equal("event_count")) {
            has_count = true;
            return ReadInt64(ctx, v, "data_collections[].event_count",
                             &count.event_count);
          }
          return absl::OkStatus();
        }));
    if (!has_name) {
      return ctx.Invalid("missing 'data_collections[].data_collection'");
    }
    if (!has_count)
      return ctx.Invalid("missing 'data_collections[].event_count'");
    out->push_back(count);
  }
  return absl::OkStatus();
}

absl::Status ReadMarkerField(const Context& ctx, TxIdMode mode,
                             od::raw_json_string key, od::value& value,
                             MarkerState& state) {
  TransactionMarker& marker = *state.marker;
  if (key.unsafe_is_equal("status")) {
    state.has_status = true;
    std::string_view status;
    TRIBUTARY_RETURN_IF_ERROR(ReadString(ctx, value, "status", &status));
    if (status == "BEGIN") {
      marker.status = TransactionMarker::Status::kBegin;
    } else if (status == "END") {
      marker.status = TransactionMarker::Status::kEnd;
    } else {
      return ctx.Invalid("unknown status '", Sv(status), "'");
    }
    return absl::OkStatus();
  }
  if (key.unsafe_is_equal("id")) {
    state.has_id = true;
    TRIBUTARY_RETURN_IF_ERROR(ReadString(ctx, value, "id", &marker.id));
    marker.match_id = MatchId(marker.id, mode);
    return absl::OkStatus();
  }
  if (key.unsafe_is_equal("event_count")) {
    return ReadOptionalInt64(ctx, value, "event_count", &marker.event_count);
  }
  if (key.unsafe_is_equal("data_collections")) {
    return ReadDataCollections(ctx, value, &marker.data_collections);
  }
  if (key.unsafe_is_equal("ts_ms")) {
    std::optional<int64_t> ts;
    TRIBUTARY_RETURN_IF_ERROR(ReadOptionalInt64(ctx, value, "ts_ms", &ts));
    marker.ts_ms = ts.value_or(0);
    return absl::OkStatus();
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// ExtractFields

// If `key` is among `names`, stores the value's raw text at each such index
// and counts newly found names in `*found`.
absl::Status MatchField(const Context& ctx, std::string_view key,
                        od::value& value, const std::vector<std::string>& names,
                        std::vector<std::optional<std::string_view>>& out,
                        size_t* found) {
  std::optional<std::string_view> raw;
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] != key) continue;
    if (!raw.has_value()) {
      std::string_view text;
      TRIBUTARY_RETURN_IF_ERROR(RawValue(ctx, value, &text));
      raw = text;
    }
    if (!out[i].has_value()) ++*found;
    out[i] = raw;
  }
  return absl::OkStatus();
}

// Reads the requested top-level fields of `object` into `out`, stopping once
// every one is found.
absl::Status ExtractFrom(const Context& ctx, od::object& object,
                         const std::vector<std::string>& names,
                         std::vector<std::optional<std::string_view>>& out) {
  size_t found = 0;
  for (auto result : object) {
    if (result.error()) return ctx.Malformed(result.error());
    od::field& field = result.value_unsafe();
    bool escaped = false;
    std::string_view key = RawKey(field, &escaped);
    if (escaped) {
      simdjson::error_code error = field.unescaped_key().get(key);
      if (error) return ctx.Malformed(error);
    }
    TRIBUTARY_RETURN_IF_ERROR(
        MatchField(ctx, key, field.value(), names, out, &found));
    if (found == names.size()) break;
  }
  return absl::OkStatus();
}

// Parses a Debezium envelope (a change event or a transaction marker) and
// calls `read_field(key, value)` for each of its fields. The fields stand at
// the root or, with the JSON converter's schemas on, inside "payload"; the
// root's "schema" object is skipped, or, if `schema` is not null, its raw
// text stored there.
// REQUIRES: `text` is what `buffer.Assign` returned last. Views `read_field`
// keeps are valid until `parser`'s next document.
template <typename ReadField>
absl::Status ReadEnvelope(Context& ctx, od::parser& parser,
                          const PaddedBuffer& buffer, std::string_view text,
                          ReadField&& read_field,
                          std::optional<std::string_view>* schema = nullptr) {
  od::document doc;
  simdjson::error_code error =
      parser.iterate(text.data(), text.size(), buffer.capacity()).get(doc);
  if (error) return ctx.Malformed(error);
  ctx.set_document(&doc);
  auto read_root_field = [&](od::raw_json_string key,
                             od::value& v) -> absl::Status {
    if (key.unsafe_is_equal("payload")) {
      od::object payload;
      TRIBUTARY_RETURN_IF_ERROR(GetObject(ctx, v, "payload", &payload));
      return ForEachField(ctx, payload, read_field);
    }
    if (key.unsafe_is_equal("schema")) {
      if (schema == nullptr) return absl::OkStatus();
      od::json_type type = od::json_type::null;
      TRIBUTARY_RETURN_IF_ERROR(TypeOf(ctx, v, &type));
      if (type != od::json_type::object) return absl::OkStatus();
      std::string_view raw;
      TRIBUTARY_RETURN_IF_ERROR(RawValue(ctx, v, &raw));
      *schema = raw;
      return absl::OkStatus();
    }
    return read_field(key, v);
  };
  const absl::Status status = [&]() -> absl::Status {
    od::object root;
    TRIBUTARY_RETURN_IF_ERROR(RootObject(ctx, doc, &root));
    TRIBUTARY_RETURN_IF_ERROR(ForEachField(ctx, root, read_root_field));
    return ctx.CheckEnd();
  }();
  ctx.set_document(nullptr);  // `doc` ends here.
  return status;
}

}  // namespace

std::string_view MatchId(std::string_view id, TxIdMode mode) {
  if (mode == TxIdMode::kWhole) return id;
  const size_t colon = id.find(':');
  return colon == std::string_view::npos ? id : id.substr(0, colon);
}

struct DebeziumDecoder::Impl {
  explicit Impl(std::string_view placeholder) : rewriter(placeholder) {}

  // Rewrites `*image` (a view into `buffer`) by `plan` into `storage`.
  absl::Status Rewrite(const Context& ctx, const internal::StructPlan* plan,
                       std::string_view path,
                       std::optional<std::string_view>& image,
                       std::string& storage) {
    if (plan == nullptr || !image.has_value()) return absl::OkStatus();
    const size_t readable = buffer.capacity() -
                            static_cast<size_t>(image->data() - buffer.data());
    absl::StatusOr<bool> changed =
        rewriter.Rewrite(*plan, *image, readable, path, &storage);
    if (!changed.ok()) return ctx.Invalid(changed.status().message());
    if (*changed) image = storage;
    return absl::OkStatus();
  }

  // DecodeChange and DecodeMarker: results point into these.
  od::parser parser;
  PaddedBuffer buffer;
  // ValueMode::kReadable: compiled schemas, and the rewritten row images.
  internal::SchemaPlanCache plans;
  internal::RowRewriter rewriter;
  std::string before;
  std::string after;
  // ExtractFields, kept apart so that it may read views DecodeChange gave.
  od::parser fields_parser;
  PaddedBuffer fields_buffer;
};

DebeziumDecoder::DebeziumDecoder(TxIdMode mode, ValueMode values,
                                 std::string_view placeholder)
    : mode_(mode),
      value_mode_(values),
      impl_(std::make_unique<Impl>(placeholder)) {}

DebeziumDecoder::~DebeziumDecoder() = default;

absl::StatusOr<ChangeEvent> DebeziumDecoder::DecodeChange(
    std::string_view value) {
  const std::string_view text = impl_->buffer.Assign(value);
  Context ctx("change event", text);
  ChangeEvent event;
  EnvelopeState state;
  state.event = &event;
  std::optional<std::string_view> schema;
  TRIBUTARY_RETURN_IF_ERROR(ReadEnvelope(
      ctx, impl_->parser, impl_->buffer, text,
      [&](od::raw_json_string key, od::value& v) -> absl::Status {
        return ReadEnvelopeField(ctx, mode_, key, v, state);
      },
      value_mode_ == ValueMode::kReadable ? &schema : nullptr));

  if (!state.has_op) return ctx.Invalid("missing 'op'");
  if (!state.source.seen) return ctx.Invalid("missing 'source'");
  if (!state.source.has_table) return ctx.Invalid("missing 'source.table'");
  FinishSource(state.source, event.source);

  if (schema.has_value() && (event.before || event.after)) {
    absl::StatusOr<const internal::EnvelopePlan*> plan =
        impl_->plans.Get(*schema);
    if (!plan.ok()) return ctx.Invalid(plan.status().message());
    event.shape = (*plan)->shape;
    event.shape_hash = (*plan)->shape_hash;
    TRIBUTARY_RETURN_IF_ERROR(impl_->Rewrite(ctx, (*plan)->before.get(),
                                             "before", event.before,
                                             impl_->before));
    TRIBUTARY_RETURN_IF_ERROR(impl_->Rewrite(ctx, (*plan)->after.get(),
                                             "after", event.after,
                                             impl_->after));
  }
  return event;
}

absl::StatusOr<TransactionMarker> DebeziumDecoder::DecodeMarker(
    std::string_view value) {
  const std::string_view text = impl_->buffer.Assign(value);
  Context ctx("transaction marker", text);
  TransactionMarker marker;
  MarkerState state;
  state.marker = &marker;
  TRIBUTARY_RETURN_IF_ERROR(
      ReadEnvelope(ctx, impl_->parser, impl_->buffer, text,
                   [&](od::raw_json_string key, od::value& v) -> absl::Status {
                     return ReadMarkerField(ctx, mode_, key, v, state);
                   }));

  if (!state.has_status) return ctx.Invalid("missing 'status'");
  if (!state.has_id) return ctx.Invalid("missing 'id'");
  return marker;
}

std::optional<std::string> DebeziumDecoder::FindTransactionId(std::string_view value) {
  static const std::vector<std::string> kTransaction = {"transaction"};
  static const std::vector<std::string> kId = {"id"};
  absl::StatusOr<std::vector<std::optional<std::string_view>>> block =
      ExtractFields(value, kTransaction);
  if (!block.ok() || !(*block)[0] || !absl::StartsWith(Sv(*(*block)[0]), "{")) return std::nullopt;
  const std::string text(*(*block)[0]);  // ExtractFields reuses its buffer
  absl::StatusOr<std::vector<std::optional<std::string_view>>> id = ExtractFields(text, kId);
  if (!id.ok() || !(*id)[0]) return std::nullopt;
  std::string_view raw = *(*id)[0];
  if (raw.size() >= 2 && raw.front() == '"' && raw.back() == '"') {
    raw = raw.substr(1, raw.size() - 2);
  }
  if (raw.empty() || raw.find_first_of("\\\"") != std::string_view::npos) return std::nullopt;
  return std::string(raw);
}

absl::StatusOr<std::vector<std::optional<std::string_view>>>
DebeziumDecoder::ExtractFields(std::string_view object,
                               const std::vector<std::string>& fields) {
  od::parser& parser = impl_->fields_parser;
  // A row image that DecodeChange returned already sits in a padded buffer
  // (the decoder never writes to it while parsing): read it in place rather
  // than copying it again. Anything else is copied into the fields buffer.
  const PaddedBuffer& decoded = impl_->buffer;
  const bool in_decoded =
      object.data() >= decoded.data() &&
      object.data() + object.size() + simdjson::SIMDJSON_PADDING <=
          decoded.data() + decoded.capacity();
  const char* base = decoded.data();
  size_t capacity = decoded.capacity();
  std::string_view text = object;
  if (!in_decoded) {
    text = impl_->fields_buffer.Assign(object);
    base = impl_->fields_buffer.data();
    capacity = impl_->fields_buffer.capacity();
  }
  std::vector<std::optional<std::string_view>> out(fields.size());

  // Reads `part` (a sub-span of the buffer) as a plain object.
  auto extract_plain = [&](std::string_view part) -> absl::Status {
    Context ctx("ExtractFields", part);
    const size_t readable = capacity - static_cast<size_t>(part.data() - base);
    od::document doc;
    simdjson::error_code error =
        parser.iterate(part.data(), part.size(), readable).get(doc);
    if (error) return ctx.Malformed(error);
    ctx.set_document(&doc);
    od::object root;
    TRIBUTARY_RETURN_IF_ERROR(RootObject(ctx, doc, &root));
    std::fill(out.begin(), out.end(), std::nullopt);
    return ExtractFrom(ctx, root, fields, out);
  };

  // One pass that also recognizes the {"schema":...,"payload":{...}} wrapper:
  // an object whose only keys are "schema" and "payload", with an object
  // payload. In practice "schema" comes first; the payload is then read in
  // place. Otherwise the pass records what it needs and a second, rare pass
  // reads the right part.
  Context ctx("ExtractFields", text);
  od::document doc;
  simdjson::error_code error =
      parser.iterate(text.data(), text.size(),
                     capacity - static_cast<size_t>(text.data() - base))
          .get(doc);
  if (error) return ctx.Malformed(error);
  ctx.set_document(&doc);
  od::object root;
  TRIBUTARY_RETURN_IF_ERROR(RootObject(ctx, doc, &root));

  bool saw_schema = false;
  bool saw_other = false;
  bool unwrapped = false;  // the payload has been read in place
  std::optional<std::string_view> payload_text;
  size_t found = 0;
  for (auto result : root) {
    if (result.error()) return ctx.Malformed(result.error());
    od::field& field = result.value_unsafe();
    bool escaped = false;
    std::string_view key = RawKey(field, &escaped);
    if (escaped) {
      error = field.unescaped_key().get(key);
      if (error) return ctx.Malformed(error);
    }
    od::value& value = field.value();
    bool object_payload = false;
    if (key == "payload" && !payload_text && !unwrapped) {
      od::json_type type = od::json_type::null;
      TRIBUTARY_RETURN_IF_ERROR(TypeOf(ctx, value, &type));
      object_payload = type == od::json_type::object;
    }
    if (key == "schema") {
      saw_schema = true;
    } else if (object_payload && saw_schema && !saw_other) {
      od::object payload;
      error = value.get_object().get(payload);
      if (error) return ctx.Malformed(error);
      std::fill(out.begin(), out.end(), std::nullopt);
      TRIBUTARY_RETURN_IF_ERROR(ExtractFrom(ctx, payload, fields, out));
      unwrapped = true;
      continue;
    } else if (object_payload && !saw_other) {
      // Payload before schema: keep its text for a second pass.
      std::string_view raw;
      TRIBUTARY_RETURN_IF_ERROR(RawValue(ctx, value, &raw));
      payload_text = raw;
      for (size_t i = 0; i < fields.size(); ++i) {
        if (fields[i] != key) continue;
        if (!out[i].has_value()) ++found;
        out[i] = raw;
      }
      continue;
    } else {
      saw_other = true;
      if (unwrapped) break;  // not a wrapper after all: read it plainly below
    }
    if (unwrapped) continue;
    TRIBUTARY_RETURN_IF_ERROR(MatchField(ctx, key, value, fields, out, &found));
    // A plain object (a key other than schema/payload seen) with every
    // field found: the rest need not be read.
    if (saw_other && found == fields.size()) return out;
  }

  if (unwrapped) {
    if (!saw_other) {
      TRIBUTARY_RETURN_IF_ERROR(ctx.CheckEnd());
      return out;
    }
    TRIBUTARY_RETURN_IF_ERROR(extract_plain(text));
    return out;
  }
  TRIBUTARY_RETURN_IF_ERROR(ctx.CheckEnd());
  if (saw_schema && payload_text && !saw_other) {
    TRIBUTARY_RETURN_IF_ERROR(extract_plain(*payload_text));
  }
  return out;
}

}  // namespace tributary
