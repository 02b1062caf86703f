// The outbox router: what Debezium's outbox EventRouter SMT does, done in the
// engine, exactly once. Rows inserted into an outbox table (id, aggregatetype,
// aggregateid, type, payload) in the same database transactions as the
// business data become records on "<topic_prefix><aggregatetype>", keyed by
// aggregateid, with the payload as value and the event id and type as
// headers. A re-delivered outbox row (same id) is written once: seen ids are
// kept in a changelogged store for `seen_retention` ids.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "engine/topology.h"
#include "operators/debezium.h"

namespace tributary {

// What AddOutboxRouter's operator emits (tags metric_names::kTaskTag and
// kOperatorTag).
namespace metric_names {
inline constexpr std::string_view kOutboxEventsRoutedTotal = "outbox-events-routed-total";
inline constexpr std::string_view kOutboxDuplicatesDroppedTotal = "outbox-duplicates-dropped-total";
inline constexpr std::string_view kOutboxRecordsIgnoredTotal = "outbox-records-ignored-total";
}  // namespace metric_names

struct OutboxSpec {
  std::string name = "outbox";  // prefix of node and store names
  std::string topic;            // the outbox table's topic
  std::string data_collection = "inventory.outbox";
  std::string topic_prefix = "outbox.event.";
  std::string id_column = "id";
  std::string aggregate_type_column = "aggregatetype";
  std::string aggregate_id_column = "aggregateid";
  std::string type_column = "type";
  std::string payload_column = "payload";
  enum class InputMode {
    kDebezium,  // Debezium change events (only inserts route; deletes ignored)
    kPlainRow,  // JDBC source connector rows: the value is the row itself
  };
  InputMode input_mode = InputMode::kDebezium;
  int64_t seen_retention = 1'000'000;
};

// Header names on routed records.
inline constexpr char kOutboxIdHeader[] = "id";
inline constexpr char kOutboxTypeHeader[] = "type";

absl::Status AddOutboxRouter(Topology& topology, const OutboxSpec& spec);

}  // namespace tributary
