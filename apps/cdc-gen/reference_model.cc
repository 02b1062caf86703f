#include "apps/cdc-gen/reference_model.h"

#include <simdjson.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"

namespace tributary::cdcgen {
namespace {

using simdjson::dom::element;

absl::Status JsonError(std::string_view what, simdjson::error_code error) {
  return absl::InvalidArgumentError(
      absl::StrCat(Sv(what), ": ", simdjson::error_message(error)));
}

// The envelope: the value itself, or its "payload" when the JSON converter
// wrapped it as {"schema":...,"payload":...}.
element Unwrap(element doc) {
  simdjson::dom::object object;
  if (doc.get_object().get(object) != simdjson::SUCCESS) return doc;
  element schema;
  element payload;
  if (object["schema"].get(schema) == simdjson::SUCCESS &&
      object["payload"].get(payload) == simdjson::SUCCESS) {
    return payload;
  }
  return doc;
}

std::optional<std::string> Image(element value) {
  if (value.is_null()) return std::nullopt;
  return simdjson::minify(value);
}

int64_t IntOrZero(simdjson::dom::object object, std::string_view field) {
  int64_t value = 0;
  if (object[field].get_int64().get(value) != simdjson::SUCCESS) return 0;
  return value;
}

// `text` as a JSON string literal.
void AppendQuoted(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      out += "\\u00";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
  }
  out += '"';
}

bool Equivalent(element a, element b, const std::vector<std::string>* ignore) {
  using simdjson::dom::element_type;
  const element_type ta = a.type();
  const element_type tb = b.type();
  const auto is_number = [](element_type t) {
    return t == element_type::INT64 || t == element_type::UINT64 ||
           t == element_type::DOUBLE;
  };
  if (is_number(ta) && is_number(tb)) {
    if (ta == element_type::DOUBLE || tb == element_type::DOUBLE) {
      return double(a) == double(b);
    }
    if (ta == element_type::UINT64 || tb == element_type::UINT64) {
      return ta == tb && uint64_t(a) == uint64_t(b);
    }
    return int64_t(a) == int64_t(b);
  }
  if (ta != tb) return false;
  switch (ta) {
    case element_type::NULL_VALUE:
      return true;
    case element_type::BOOL:
      return bool(a) == bool(b);
    case element_type::STRING:
      return std::string_view(a) == std::string_view(b);
    case element_type::ARRAY: {
      simdjson::dom::array xa = a;
      simdjson::dom::array xb = b;
      if (xa.size() != xb.size()) return false;
      auto ib = xb.begin();
      for (element item : xa) {
        if (!Equivalent(item, *ib, nullptr)) return false;
        ++ib;
      }
      return true;
    }
    case element_type::OBJECT: {
      simdjson::dom::object oa = a;
      simdjson::dom::object ob = b;
      const auto ignored = [ignore](std::string_view key) {
        if (ignore == nullptr) return false;
        for (const std::string& name : *ignore) {
          if (name == key) return true;
        }
        return false;
      };
      size_t count_a = 0;
      for (auto field : oa) {
        if (ignored(field.key)) continue;
        ++count_a;
        element other;
        if (ob.at_key(field.key).get(other) != simdjson::SUCCESS) return false;
        if (!Equivalent(field.value, other, nullptr)) return false;
      }
      size_t count_b = 0;
      for (auto field : ob) {
        if (!ignored(field.key)) ++count_b;
      }
      return count_a == count_b;
    }
    default:
      return false;
  }
}

}  // namespace

struct ReferenceDecoder::Impl {
  simdjson::dom::parser parser;
};

ReferenceDecoder::ReferenceDecoder() : impl_(std::make_unique<Impl>()) {}
ReferenceDecoder::~ReferenceDecoder() = default;

absl::StatusOr<DecodedChange> ReferenceDecoder::DecodeChange(
    std::string_view value) {
  element doc;
  if (auto error = impl_->parser.parse(value.data(), value.size()).get(doc)) {
    return JsonError("change event", error);
  }
  simdjson::dom::object envelope;
  if (auto error = Unwrap(doc).get_object().get(envelope)) {
    return JsonError("change event envelope", error);
  }
  DecodedChange change;
  std::string_view op;
  if (auto error = envelope["op"].get_string().get(op); error || op.empty()) {
    return absl::InvalidArgumentError("change event: no op");
  }
  if (op.size() != 1 ||
      std::string_view("cudrt").find(op[0]) == std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("change event: unknown op '", Sv(op), "'"));
  }
  change.op = op[0];
  simdjson::dom::object source;
  if (auto error = envelope["source"].get_object().get(source)) {
    return JsonError("change event source", error);
  }
  std::string_view table;
  std::string_view schema;
  if (source["table"].get_string().get(table) != simdjson::SUCCESS) {
    return absl::InvalidArgumentError("change event: no source.table");
  }
  if (source["schema"].get_string().get(schema) != simdjson::SUCCESS) {
    schema = "";  // MySQL has none
  }
  change.table = std::string(table);
  change.schema = std::string(schema);
  change.tx_id = IntOrZero(source, "txId");
  change.lsn = IntOrZero(source, "lsn");
  element before;
  element after;
  if (envelope["before"].get(before) != simdjson::SUCCESS ||
      envelope["after"].get(after) != simdjson::SUCCESS) {
    return absl::InvalidArgumentError("change event: no before/after");
  }
  for (element image : {before, after}) {
    if (!image.is_null() && !image.is_object()) {
      return absl::InvalidArgumentError(
          "change event: before/after neither an object nor null");
    }
  }
  change.before = Image(before);
  change.after = Image(after);
  element block;
  if (envelope["transaction"].get(block) == simdjson::SUCCESS &&
      !block.is_null()) {
    simdjson::dom::object object;
    std::string_view id;
    if (block.get_object().get(object) != simdjson::SUCCESS ||
        object["id"].get_string().get(id) != simdjson::SUCCESS) {
      return absl::InvalidArgumentError("change event: bad transaction block");
    }
    change.transaction = DecodedChange::Transaction{
        std::string(id), IntOrZero(object, "total_order"),
        IntOrZero(object, "data_collection_order")};
  }
  return change;
}

absl::StatusOr<DecodedMarker> ReferenceDecoder::DecodeMarker(
    std::string_view value) {
  element doc;
  if (auto error = impl_->parser.parse(value.data(), value.size()).get(doc)) {
    return JsonError("transaction marker", error);
  }
  simdjson::dom::object marker;
  if (auto error = Unwrap(doc).get_object().get(marker)) {
    return JsonError("transaction marker", error);
  }
  DecodedMarker out;
  std::string_view status;
  std::string_view id;
  if (marker["status"].get_string().get(status) != simdjson::SUCCESS ||
      marker["id"].get_string().get(id) != simdjson::SUCCESS) {
    return absl::InvalidArgumentError("transaction marker: no status/id");
  }
  if (status != "BEGIN" && status != "END") {
    return absl::InvalidArgumentError(
        absl::StrCat("transaction marker: status ", Sv(status)));
  }
  out.begin = status == "BEGIN";
  out.id = std::string(id);
  out.xid = out.id.substr(0, out.id.find(':'));
  int64_t count = 0;
  if (marker["event_count"].get_int64().get(count) == simdjson::SUCCESS) {
    out.event_count = count;
  }
  simdjson::dom::array collections;
  if (marker["data_collections"].get_array().get(collections) ==
      simdjson::SUCCESS) {
    for (element item : collections) {
      std::string_view name;
      int64_t events = 0;
      if (item["data_collection"].get_string().get(name) != simdjson::SUCCESS ||
          item["event_count"].get_int64().get(events) != simdjson::SUCCESS) {
        return absl::InvalidArgumentError(
            "transaction marker: bad data_collections entry");
      }
      out.data_collections.emplace_back(std::string(name), events);
    }
  }
  return out;
}

absl::StatusOr<std::string> ReferenceDecoder::DecodeKeyId(
    std::string_view key) {
  element doc;
  if (auto error = impl_->parser.parse(key.data(), key.size()).get(doc)) {
    return JsonError("key", error);
  }
  element id;
  if (auto error = Unwrap(doc)["id"].get(id)) return JsonError("key id", error);
  return simdjson::minify(id);
}

struct ReferenceModel::Parser {
  simdjson::dom::parser parser;
  simdjson::dom::parser previous;  // FillUnavailable's second document
};

ReferenceModel::ReferenceModel(ReferenceModelOptions options)
    : options_(std::move(options)), parser_(std::make_unique<Parser>()) {}

ReferenceModel::~ReferenceModel() = default;

absl::StatusOr<int64_t> ReferenceModel::ReadInt(std::string_view row,
                                                const std::string& field) {
  element doc;
  if (auto error = parser_->parser.parse(row.data(), row.size()).get(doc)) {
    return JsonError("row image", error);
  }
  int64_t value = 0;
  if (auto error = doc[field].get_int64().get(value)) {
    return JsonError(absl::StrCat("row image field ", field), error);
  }
  return value;
}

absl::StatusOr<std::string> ReferenceModel::FillUnavailable(
    const std::string& row, const std::string* previous) {
  element doc;
  if (auto error = parser_->parser.parse(row).get(doc)) {
    return JsonError("row image", error);
  }
  simdjson::dom::object fields;
  if (auto error = doc.get_object().get(fields)) {
    return JsonError("row image", error);
  }
  simdjson::dom::object old_fields;
  bool have_old = false;
  if (previous != nullptr) {
    element old_doc;
    if (auto error = parser_->previous.parse(*previous).get(old_doc)) {
      return JsonError("previous row image", error);
    }
    have_old = old_doc.get_object().get(old_fields) == simdjson::SUCCESS;
  }
  std::string out = "{";
  for (auto field : fields) {
    if (out.size() > 1) out += ',';
    AppendQuoted(out, field.key);
    out += ':';
    std::string_view text;
    const bool placeholder =
        field.value.get_string().get(text) == simdjson::SUCCESS &&
        text == options_.unavailable_placeholder;
    element old_value;
    if (placeholder && have_old &&
        old_fields.at_key(field.key).get(old_value) == simdjson::SUCCESS) {
      out += simdjson::minify(old_value);
      ++placeholders_filled_;
      continue;
    }
    if (placeholder) ++placeholders_unresolved_;
    out += simdjson::minify(field.value);
  }
  out += '}';
  return out;
}

std::string ReferenceModel::BuildAggregate(int64_t root) const {
  const std::string& row = roots_.at(root);
  std::string out(row, 0, row.size() - 1);  // without the closing '}'
  if (out != "{") out += ',';
  absl::StrAppend(&out, "\"", options_.children_field, "\":[");
  auto it = children_of_.find(root);
  if (it != children_of_.end()) {
    bool first = true;
    for (int64_t child : it->second) {
      if (!first) out += ',';
      first = false;
      out += children_.at(child).row;
    }
  }
  out += "]}";
  return out;
}

absl::StatusOr<std::vector<ExpectedVersion>> ReferenceModel::ApplyTransaction(
    std::string_view tx_id, absl::Span<const DecodedChange> changes) {
  std::set<int64_t> touched;
  for (const DecodedChange& change : changes) {
    const bool is_root = change.table == options_.root_table;
    if (!is_root && change.table != options_.child_table) continue;
    if (change.op == 'd') {
      if (!change.before) {
        return absl::FailedPreconditionError("delete without before image");
      }
      absl::StatusOr<int64_t> id = ReadInt(*change.before, options_.key_field);
      if (!id.ok()) return id.status();
      if (is_root) {
        if (roots_.erase(*id) == 0) {
          return absl::FailedPreconditionError(
              absl::StrCat("delete of unknown root ", *id));
        }
        auto kids = children_of_.find(*id);
        if (kids != children_of_.end() && !kids->second.empty()) {
          return absl::FailedPreconditionError(
              absl::StrCat("root ", *id, " deleted while ", kids->second.size(),
                           " children still refer to it"));
        }
        touched.insert(*id);
      } else {
        auto child = children_.find(*id);
        if (child == children_.end()) {
          return absl::FailedPreconditionError(
              absl::StrCat("delete of unknown child ", *id));
        }
        const int64_t parent = child->second.parent;
        children_of_[parent].erase(*id);
        if (children_of_[parent].empty()) children_of_.erase(parent);
        children_.erase(child);
        touched.insert(parent);
      }
      continue;
    }
    if (!change.after) {
      return absl::FailedPreconditionError(absl::StrCat(
          "op ", std::string(1, change.op), " without after image"));
    }
    absl::StatusOr<int64_t> id = ReadInt(*change.after, options_.key_field);
    if (!id.ok()) return id.status();
    if (change.op == 'u' &&
        (is_root ? roots_.count(*id) : children_.count(*id)) == 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("update of unknown row ", *id, " in ", change.table));
    }
    std::string after = *change.after;
    if (after.find(options_.unavailable_placeholder) != std::string::npos) {
      const std::string* previous = nullptr;
      if (is_root) {
        auto it = roots_.find(*id);
        if (it != roots_.end()) previous = &it->second;
      } else {
        auto it = children_.find(*id);
        if (it != children_.end()) previous = &it->second.row;
      }
      absl::StatusOr<std::string> filled = FillUnavailable(after, previous);
      if (!filled.ok()) return filled.status();
      after = *std::move(filled);
    }
    if (is_root) {
      roots_[*id] = std::move(after);
      touched.insert(*id);
      continue;
    }
    absl::StatusOr<int64_t> parent = ReadInt(after, options_.parent_field);
    if (!parent.ok()) return parent.status();
    auto existing = children_.find(*id);
    if (existing != children_.end() && existing->second.parent != *parent) {
      const int64_t old_parent = existing->second.parent;
      children_of_[old_parent].erase(*id);
      if (children_of_[old_parent].empty()) children_of_.erase(old_parent);
      touched.insert(old_parent);
    }
    children_[*id] = Child{*parent, std::move(after)};
    children_of_[*parent].insert(*id);
    touched.insert(*parent);
  }

  std::vector<ExpectedVersion> versions;
  versions.reserve(touched.size());
  for (int64_t root : touched) {
    if (roots_.count(root) == 0) {
      if (children_of_.count(root) != 0) {
        return absl::FailedPreconditionError(absl::StrCat(
            "children refer to root ", root, ", which does not exist"));
      }
      versions.push_back({root, std::string(tx_id), std::nullopt});
    } else {
      versions.push_back({root, std::string(tx_id), BuildAggregate(root)});
    }
  }
  return versions;
}

std::map<int64_t, std::string> ReferenceModel::CurrentAggregates() const {
  std::map<int64_t, std::string> aggregates;
  for (const auto& [id, row] : roots_)
    aggregates.emplace(id, BuildAggregate(id));
  return aggregates;
}

ReferenceReplay::ReferenceReplay(ReferenceModelOptions options)
    : model_(std::move(options)) {}

absl::StatusOr<std::vector<ExpectedVersion>> ReferenceReplay::OnMarker(
    std::string_view value) {
  absl::StatusOr<DecodedMarker> marker = decoder_.DecodeMarker(value);
  if (!marker.ok()) return marker.status();
  if (marker->begin) {
    if (open_ && marker->xid == xid_) {
      ++restarts_;  // the connector restarted inside it: keep the buffer
      return std::vector<ExpectedVersion>{};
    }
    if (open_) {
      return absl::FailedPreconditionError(absl::StrCat(
          "BEGIN of ", marker->xid, " while ", xid_, " is open"));
    }
    open_ = true;
    xid_ = marker->xid;
    buffer_.clear();
    identities_.clear();
    lsns_.clear();
    return std::vector<ExpectedVersion>{};
  }
  if (!open_ || marker->xid != xid_) {
    return absl::FailedPreconditionError(
        absl::StrCat("END of ", marker->xid, " outside its transaction"));
  }
  open_ = false;
  const int64_t distinct = static_cast<int64_t>(buffer_.size());
  const int64_t counted = marker->event_count.value_or(0);
  // Short: END counts more events (in all, or of one table) than the good
  // ones written; the bad events stood for some, or they never came.
  bool short_of_end = counted > distinct;
  for (const auto& [collection, events] : marker->data_collections) {
    int64_t good = 0;
    for (const DecodedChange& change : buffer_) {
      if (absl::StrCat(change.schema, ".", change.table) == collection) ++good;
    }
    short_of_end = short_of_end || events > good;
  }
  if (counted < distinct) ++undercounts_;
  if (!applied_xids_.insert(xid_).second) {
    ++redeliveries_;
    return std::vector<ExpectedVersion>{};
  }
  ++applied_;
  absl::StatusOr<std::vector<ExpectedVersion>> versions =
      model_.ApplyTransaction(xid_, buffer_);
  if (versions.ok() && short_of_end) {
    ++partial_;
    for (ExpectedVersion& version : *versions) version.partial = true;
  }
  return versions;
}

absl::StatusOr<std::vector<ExpectedVersion>> ReferenceReplay::OnChange(
    std::string_view key, std::optional<std::string_view> value) {
  if (!value) return std::vector<ExpectedVersion>{};  // tombstone
  absl::StatusOr<DecodedChange> change = decoder_.DecodeChange(*value);
  if (!change.ok()) {
    // Bad input: not applied. Inside a transaction it is that transaction's
    // (the connector writes BEGIN, its events, END); it may have taken a
    // good event's place, which END's counts tell.
    if (!open_) return change.status();
    ++bad_events_;
    return std::vector<ExpectedVersion>{};
  }
  if (!change->transaction) {  // a snapshot read: a unit of its own
    return model_.ApplyTransaction("", {*change});
  }
  if (!open_ || absl::StrCat(change->tx_id) != xid_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "change of transaction ", change->tx_id, " outside it"));
  }
  absl::StatusOr<std::string> key_id = decoder_.DecodeKeyId(key);
  if (!key_id.ok()) return key_id.status();
  std::string identity = absl::StrCat(
      change->tx_id, "/", change->lsn, "/", change->schema, ".", change->table,
      "/", std::string(1, change->op), "/", *key_id);
  if (!identities_.insert(std::move(identity)).second) {
    ++repeats_;
    return std::vector<ExpectedVersion>{};
  }
  if (!lsns_.emplace(change->tx_id, change->lsn).second) ++shared_lsn_;
  buffer_.push_back(*std::move(change));
  return std::vector<ExpectedVersion>{};
}

absl::StatusOr<bool> JsonEquivalent(
    std::string_view a, std::string_view b,
    const std::vector<std::string>& ignore_top_level) {
  simdjson::dom::parser parser_a;
  simdjson::dom::parser parser_b;
  element doc_a;
  element doc_b;
  if (auto error = parser_a.parse(a.data(), a.size()).get(doc_a)) {
    return JsonError("first JSON text", error);
  }
  if (auto error = parser_b.parse(b.data(), b.size()).get(doc_b)) {
    return JsonError("second JSON text", error);
  }
  return Equivalent(doc_a, doc_b, &ignore_top_level);
}

}  // namespace tributary::cdcgen
