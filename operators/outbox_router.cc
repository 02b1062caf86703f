#include "operators/outbox_router.h"

#include <memory>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"
#include "base/status_macros.h"
#include "operators/internal/log.h"
#include "operators/internal/outbox_json.h"
#include "operators/internal/retained_ids.h"

namespace tributary {
namespace {

using internal::JsonKind;
using internal::KindOf;

// Store <name>-seen-ids:
//   S<event id>        -> "1"        an id already routed
//   O<ordered seq>     -> event id   insertion order, for bounded retention
constexpr char kSeenPrefix = 'S';
constexpr char kOrderPrefix = 'O';

// Kafka's rule for topic names: [a-zA-Z0-9._-], at most 249 characters.
bool LegalTopic(std::string_view topic) {
  if (topic.empty() || topic.size() > 249 || topic == "." || topic == "..")
    return false;
  for (char c : topic) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// Routes the inserted rows of an outbox table. One per task; state is the
// seen-ids store of the task's input partition (Debezium keys outbox events
// by the row's primary key, so every delivery of one id lands in the same
// partition).
//
// The destination topic travels to the dynamic sink in the forwarded
// record's `topic` field (a record made by a processor otherwise leaves it
// empty); the sink's extractor returns it. Forward is synchronous, so the
// view stays valid for as long as the sink needs it.
class OutboxRouter final : public Processor {
 public:
  explicit OutboxRouter(const OutboxSpec& spec)
      : spec_(spec),
        seen_ids_(kSeenPrefix, kOrderPrefix, spec.seen_retention),
        fields_{spec.id_column, spec.aggregate_type_column,
                spec.aggregate_id_column, spec.type_column,
                spec.payload_column} {}

  absl::Status Init(ProcessorContext& context) override {
    context_ = &context;
    seen_ = context.GetStateStore(SeenStoreName(spec_));
    if (seen_ == nullptr) {
      return absl::FailedPreconditionError(
          "OutboxRouter: its store is not connected");
    }
    MetricTags tags{{std::string(metric_names::kTaskTag), context.task_id().ToString()},
                    {std::string(metric_names::kOperatorTag), spec_.name}};
    routed_ = context.metrics().GetCounter(metric_names::kOutboxEventsRoutedTotal, tags);
    duplicates_ =
        context.metrics().GetCounter(metric_names::kOutboxDuplicatesDroppedTotal, tags);
    ignored_ =
        context.metrics().GetCounter(metric_names::kOutboxRecordsIgnoredTotal, tags);
    return seen_ids_.Load(*seen_);
  }

  absl::Status Process(const Record& record) override {
    // Tombstones follow deletes of outbox rows: nothing to route.
    if (!record.value) {
      ignored_->Add(1);
      return absl::OkStatus();
    }
    // Everything is checked before the seen-ids store is asked, so that a
    // malformed row is dead-lettered whatever was routed before it.
    bool housekeeping = false;
    std::optional<std::string_view> payload;
    absl::Status read = ReadEvent(record, housekeeping, payload);
    if (!read.ok()) return MarkBadInput(std::move(read));
    if (housekeeping) {
      ignored_->Add(1);
      return absl::OkStatus();
    }
    TRIBUTARY_ASSIGN_OR_RETURN(std::optional<std::string> seen,
                               seen_ids_.Get(*seen_, id_));
    if (seen) {
      duplicates_->Add(1);
      internal::OperatorsLogger()->debug("{}: dropped repeated outbox event {}",
                                         spec_.name, id_);
      return absl::OkStatus();
    }

    Record out;
    out.key = key_;
    out.value = payload;
    out.timestamp = record.timestamp;
    out.headers = {{kOutboxIdHeader, id_}, {kOutboxTypeHeader, type_}};
    out.topic = topic_;
    TRIBUTARY_RETURN_IF_ERROR(context_->Forward(out));
    routed_->Add(1);
    return Remember(id_);
  }

  static std::string SeenStoreName(const OutboxSpec& spec) {
    return spec.name + "-seen-ids";
  }

 private:
  // Reads and checks the outbox event in `record` into id_, topic_, key_,
  // type_ and `payload`; `housekeeping`: an outbox row's update or delete,
  // which routes nothing. Errors are bad input.
  absl::Status ReadEvent(const Record& record, bool& housekeeping,
                         std::optional<std::string_view>& payload) {
    std::string_view row = *record.value;
    if (spec_.input_mode == OutboxSpec::InputMode::kDebezium) {
      TRIBUTARY_ASSIGN_OR_RETURN(ChangeEvent change,
                                 decoder_.DecodeChange(*record.value));
      if (!spec_.data_collection.empty() &&
          change.source.data_collection != spec_.data_collection) {
        return absl::InvalidArgumentError(absl::StrCat(
            "outbox: change event of '", change.source.data_collection,
            "' on topic '", Sv(record.topic), "', which is configured for '",
            spec_.data_collection, "'"));
      }
      // Only inserts (and snapshot reads of rows never deleted) are events;
      // an outbox row's update or delete is housekeeping.
      if (change.op != ChangeOp::kCreate && change.op != ChangeOp::kRead) {
        housekeeping = true;
        return absl::OkStatus();
      }
      if (!change.after) {
        return absl::InvalidArgumentError(
            absl::StrCat("outbox: insert (op '",
                         std::string(1, static_cast<char>(change.op)),
                         "') without 'after'"));
      }
      row = *change.after;
    }
    TRIBUTARY_ASSIGN_OR_RETURN(auto values,
                               decoder_.ExtractFields(row, fields_));
    for (size_t i = 0; i < fields_.size(); ++i) {
      if (!values[i]) {
        return absl::InvalidArgumentError(
            absl::StrCat("outbox: row has no column '", fields_[i], "'"));
      }
    }
    TRIBUTARY_RETURN_IF_ERROR(ScalarText(*values[0], fields_[0], id_));
    TRIBUTARY_RETURN_IF_ERROR(ScalarText(*values[1], fields_[1], scratch_));
    topic_ = spec_.topic_prefix + scratch_;
    if (scratch_.empty() || !LegalTopic(topic_)) {
      return absl::InvalidArgumentError(
          absl::StrCat("outbox: event ", id_, ": '", topic_, "' (from column '",
                       fields_[1], "') is not a legal Kafka topic name"));
    }
    TRIBUTARY_RETURN_IF_ERROR(ScalarText(*values[2], fields_[2], key_));
    TRIBUTARY_RETURN_IF_ERROR(ScalarText(*values[3], fields_[3], type_));
    // The payload: a JSON string column (text, or jsonb through the JSON
    // converter) gives the text the application stored; an object or array
    // (a JSON-typed column with an expanding converter) its raw JSON; JSON
    // null gives a null value (a tombstone, as Debezium's EventRouter does).
    const std::string_view raw_payload = *values[4];
    switch (KindOf(raw_payload)) {
      case JsonKind::kString:
        TRIBUTARY_RETURN_IF_ERROR(WithColumn(
            internal::UnescapeJsonString(raw_payload, payload_), fields_[4]));
        payload = payload_;
        break;
      case JsonKind::kNull:
        break;
      default:
        payload = raw_payload;
        break;
    }
    return absl::OkStatus();
  }

  static absl::Status WithColumn(absl::Status status, std::string_view column) {
    if (status.ok()) return status;
    return absl::Status(
        status.code(),
        absl::StrCat("outbox: column '", Sv(column), "': ", status.message()));
  }

  // A string column's content, or a number's text; anything else is an error.
  static absl::Status ScalarText(std::string_view raw, std::string_view column,
                                 std::string& out) {
    switch (KindOf(raw)) {
      case JsonKind::kString:
        return WithColumn(internal::UnescapeJsonString(raw, out), column);
      case JsonKind::kNumber:
        out.assign(raw);
        return absl::OkStatus();
      default:
        return absl::InvalidArgumentError(absl::StrCat(
            "outbox: column '", Sv(column), "' is ", Sv(raw.substr(0, 20)),
            ", expected a string or a number"));
    }
  }

  // Records `id` as routed and forgets the oldest ids beyond the retention.
  absl::Status Remember(const std::string& id) {
    WriteBatch batch;
    seen_ids_.Add(batch, id, /*order=*/seen_ids_.max_order() + 1, "1");
    TRIBUTARY_RETURN_IF_ERROR(seen_->Write(batch));
    return seen_ids_.Prune(*seen_);
  }

  const OutboxSpec& spec_;
  internal::RetainedIds seen_ids_;  // in seen_, ordered by a local sequence
  const std::vector<std::string>
      fields_;  // id, type, aggregate id, event type, payload
  DebeziumDecoder decoder_;
  ProcessorContext* context_ = nullptr;
  KeyValueStore* seen_ = nullptr;
  Counter* routed_ = nullptr;
  Counter* duplicates_ = nullptr;
  Counter* ignored_ = nullptr;
  // The forwarded record's parts; valid until the next Process.
  std::string id_, key_, type_, topic_, payload_, scratch_;
};

}  // namespace

absl::Status AddOutboxRouter(Topology& topology, const OutboxSpec& spec_in) {
  if (spec_in.name.empty() || spec_in.topic.empty()) {
    return absl::InvalidArgumentError(
        "outbox router: a name and a topic are required");
  }
  if (spec_in.id_column.empty() || spec_in.aggregate_type_column.empty() ||
      spec_in.aggregate_id_column.empty() || spec_in.type_column.empty() ||
      spec_in.payload_column.empty()) {
    return absl::InvalidArgumentError(
        "outbox router: every column name must be set");
  }
  if (spec_in.seen_retention <= 0) {
    return absl::InvalidArgumentError(
        "outbox router: seen_retention must be positive");
  }
  // Processors keep a reference to the spec; the factories own it.
  auto spec = std::make_shared<const OutboxSpec>(spec_in);
  const std::string& n = spec->name;
  const std::string source = n + "-source";
  const std::string route = n + "-route";
  topology.AddSource(source, {spec->topic})
      .AddProcessor(route,
                    [spec] { return std::make_unique<OutboxRouter>(*spec); },
                    {source})
      .AddStateStore({OutboxRouter::SeenStoreName(*spec)}, {route})
      .AddDynamicSink(
          n + "-sink",
          [](const Record& record) -> absl::StatusOr<std::string> {
            if (record.topic.empty()) {
              return absl::InternalError(
                  "outbox sink: record without a destination topic");
            }
            return std::string(record.topic);
          },
          {route});
  return absl::OkStatus();
}

}  // namespace tributary
