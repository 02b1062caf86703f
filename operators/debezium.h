// Decoding of Debezium's JSON change events and transaction markers with
// simdjson On Demand: each value is parsed once, and what is returned are
// views into the decoder's own padded copy of the value, or, for row images
// rewritten with readable values (ValueMode::kReadable), into the decoder's
// own copy of the rewritten image.
// Thread-safety: a DebeziumDecoder is used by one thread at a time (one per
// task). Lifetime: what DecodeChange / DecodeMarker return is valid until the
// next Decode* call on the same decoder. What ExtractFields returns is valid
// until the next ExtractFields call, and, when it was given a row image that
// DecodeChange returned, until the next Decode* call as well.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace tributary {

// What Debezium writes in place of a value it does not have (setting
// unavailable.value.placeholder), e.g. an unchanged TOASTed column of an
// UPDATE under PostgreSQL's default replica identity: the string itself for
// text and json(b) columns, ["<placeholder>"] for arrays, the base64 of its
// bytes for bytea. Row images keep it as sent, in every ValueMode.
inline constexpr std::string_view kDebeziumUnavailablePlaceholder =
    "__debezium_unavailable_value";

enum class ChangeOp : char {
  kCreate = 'c',
  kUpdate = 'u',
  kDelete = 'd',
  kRead = 'r',  // snapshot read
  kTruncate = 't',
};

// How a transaction id identifies its transaction.
enum class TxIdMode {
  // PostgreSQL: ids are "<xid>:<lsn>" and the LSN part differs on every
  // message of one transaction; only the part before the first ':' matches.
  kPostgres,
  // MySQL, SQL Server, ...: the whole id identifies the transaction.
  kWhole,
};

// How DecodeChange returns row images.
enum class ValueMode {
  // With the JSON converter's schemas on, every field with a logical type is
  // rewritten to a readable JSON value; other fields keep their bytes and
  // the key order stays:
  //   org.apache.kafka.connect.data.Decimal, io.debezium.data.
  //   VariableScaleDecimal -> exact decimal string ("12.50", "-0.05", "0")
  //   io.debezium.time.Date, ...connect.data.Date -> "2024-03-15"
  //   io.debezium.time.{Time,MicroTime,NanoTime}, ...connect.data.Time
  //     -> "13:45:30.123456" (fraction without trailing zeros, if any)
  //   io.debezium.time.{Timestamp,MicroTimestamp,NanoTimestamp},
  //   ...connect.data.Timestamp -> "2024-03-15T13:45:30.123456Z" (UTC)
  //   io.debezium.data.Json -> the JSON text it holds, as a JSON value (a
  //     string that does not parse stays a string)
  //   arrays and structs -> each element / field by its own schema
  // Already readable strings (ZonedTimestamp, ZonedTime, Uuid, Enum,
  // EnumSet, Xml, ...), unknown logical types, nulls and the unavailable
  // placeholder are kept as sent. Without a schema, or when nothing needs a
  // change, the images are the views kRaw returns.
  kReadable,
  // The images exactly as the connector wrote them.
  kRaw,
};

// The "transaction" block of a change event.
struct TransactionRef {
  std::string_view id;        // as written, e.g. "571:53195831"
  std::string_view match_id;  // what identifies the transaction, e.g. "571"
  int64_t total_order = 0;            // 1-based over the transaction's events
  int64_t data_collection_order = 0;  // 1-based within one data collection
};

// The "source" block, reduced to what the engine needs.
struct SourceInfo {
  std::string_view connector;  // "postgresql", "mysql", ...
  std::string_view db;
  std::string_view schema;  // empty for MySQL
  std::string_view table;
  // "schema.table" (PostgreSQL) or "db.table" (MySQL): what END markers count.
  std::string data_collection;
  // Where the change sits in the source log; with the transaction id it
  // identifies one change event. PostgreSQL: source.lsn as decimal text;
  // MySQL: "<file>:<pos>:<row>"; others: source.sequence or empty.
  std::string position;
  // source.snapshot as written: "false" while streaming; "first", "true",
  // "last" (and "first_in_data_collection", "last_in_data_collection") in an
  // initial snapshot; "incremental" in an incremental one; empty if absent.
  std::string_view snapshot;
  int64_t ts_ms = 0;
};

struct ChangeEvent {
  ChangeOp op = ChangeOp::kCreate;
  // JSON text of the row images (see ValueMode); nullopt when the image is
  // JSON null.
  std::optional<std::string_view> before;
  std::optional<std::string_view> after;
  SourceInfo source;
  std::optional<TransactionRef> transaction;  // absent for snapshot reads
  int64_t ts_ms = 0;
  // ValueMode::kReadable with a schema: the table's columns now, each with
  // its default, as one JSON object (e.g. {"id":null,"qty":7}; see
  // internal::EnvelopePlan::shape), and its hash; else empty and 0. Valid
  // until the decoder's next call.
  std::string_view shape;
  uint64_t shape_hash = 0;
};

struct DataCollectionCount {
  std::string_view data_collection;
  int64_t event_count = 0;
};

struct TransactionMarker {
  enum class Status { kBegin, kEnd };
  Status status = Status::kBegin;
  std::string_view id;
  std::string_view match_id;
  std::optional<int64_t> event_count;            // END only
  std::vector<DataCollectionCount> data_collections;  // END only
  int64_t ts_ms = 0;
};

class DebeziumDecoder {
 public:
  // `placeholder`: the connector's unavailable.value.placeholder.
  explicit DebeziumDecoder(
      TxIdMode mode = TxIdMode::kPostgres,
      ValueMode values = ValueMode::kReadable,
      std::string_view placeholder = kDebeziumUnavailablePlaceholder);
  ~DebeziumDecoder();
  DebeziumDecoder(const DebeziumDecoder&) = delete;
  DebeziumDecoder& operator=(const DebeziumDecoder&) = delete;

  // Decodes a change event value, with or without the JSON converter's
  // {"schema":...,"payload":...} wrapper. A tombstone (null Kafka value) is
  // not a change event: callers handle it before calling this.
  // Errors (InvalidArgument / DataLoss) say what is wrong and where, e.g.
  // "change event: unknown op 'x'", "change event: missing 'source.lsn'",
  // "change event: 'after.price': Decimal value \"#\" is not base64".
  absl::StatusOr<ChangeEvent> DecodeChange(std::string_view value);

  // Decodes a value of the transaction topic (BEGIN or END marker).
  absl::StatusOr<TransactionMarker> DecodeMarker(std::string_view value);

  // Reads top-level fields of a JSON object (a row image or a key), each as
  // its raw JSON text (`1001`, `"abc"`, `null`, `{...}`), in one pass.
  // Fields not present are nullopt. Also unwraps {"schema":..,"payload":{..}}
  // (an object whose only keys are those two, with an object payload).
  // Reading stops once every field is found, so a syntax error after that
  // point goes unnoticed.
  absl::StatusOr<std::vector<std::optional<std::string_view>>> ExtractFields(
      std::string_view object, const std::vector<std::string>& fields);

  // The id in the "transaction" block of a change event DecodeChange
  // refused, when a lenient read can still find it (the block is well
  // formed, whatever comes after it); else nullopt. For telling which
  // transaction a bad event belonged to.
  std::optional<std::string> FindTransactionId(std::string_view value);

  TxIdMode mode() const { return mode_; }
  ValueMode value_mode() const { return value_mode_; }

 private:
  struct Impl;
  TxIdMode mode_;
  ValueMode value_mode_;
  std::unique_ptr<Impl> impl_;
};

// The part of a transaction id that identifies the transaction under `mode`.
std::string_view MatchId(std::string_view id, TxIdMode mode);

}  // namespace tributary
