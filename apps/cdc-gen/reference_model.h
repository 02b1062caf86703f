// ReferenceModel: an independent recomputation of the aggregate versions a
// correct engine must emit, from the change events as they appear on the
// wire. It shares no code with the generator's model: it decodes the emitted
// JSON with simdjson DOM, keeps rows as their JSON text, and builds each
// aggregate from those texts. Tests use it to check the generator, and the
// integration tests to check the engine.
//
// Aggregate layout (the same as ExpectedVersion::aggregate): the root's row
// image fields in row-image order, then "lines": [child row images, ascending
// child id]; a deleted root has no aggregate (tombstone).
// Thread-safety: one thread at a time per object.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "apps/cdc-gen/expected_version.h"

namespace tributary::cdcgen {

// What the reference needs from one Debezium change event.
struct DecodedChange {
  char op = 'c';       // 'c', 'u', 'd' or 'r'
  std::string table;   // source.table, e.g. "orderline"
  std::string schema;  // source.schema, e.g. "inventory"
  // Minified row images; nullopt when JSON null.
  std::optional<std::string> before;
  std::optional<std::string> after;
  // source.txId and source.lsn (0 when null or absent). (tx_id, lsn) does
  // not identify a change event: a primary-key update's delete and create
  // share one lsn (so do a multi-table TRUNCATE's events); the identity is
  // (tx_id, lsn, table, op, key), see ReferenceReplay.
  int64_t tx_id = 0;
  int64_t lsn = 0;
  // The transaction block; nullopt for snapshot reads.
  struct Transaction {
    std::string id;  // "<xid>:<lsn>"
    int64_t total_order = 0;
    int64_t data_collection_order = 0;
  };
  std::optional<Transaction> transaction;
};

// What the reference needs from one BEGIN/END marker.
struct DecodedMarker {
  bool begin = true;
  std::string id;                      // as written, "<xid>:<lsn>"
  std::string xid;                     // the part before ':'
  std::optional<int64_t> event_count;  // END only
  std::vector<std::pair<std::string, int64_t>> data_collections;  // END only
};

// Decodes Debezium JSON values, with or without the JSON converter's
// {"schema":...,"payload":...} wrapper.
class ReferenceDecoder {
 public:
  ReferenceDecoder();
  ~ReferenceDecoder();
  ReferenceDecoder(const ReferenceDecoder&) = delete;
  ReferenceDecoder& operator=(const ReferenceDecoder&) = delete;

  // REQUIRES: `value` is not a tombstone (null Kafka value).
  absl::StatusOr<DecodedChange> DecodeChange(std::string_view value);
  absl::StatusOr<DecodedMarker> DecodeMarker(std::string_view value);
  // The "id" of a key ({"id":1001}, possibly wrapped) as raw JSON text.
  absl::StatusOr<std::string> DecodeKeyId(std::string_view key);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct ReferenceModelOptions {
  std::string root_table = "purchaseorder";
  std::string child_table = "orderline";
  std::string key_field = "id";           // primary key of both tables
  std::string parent_field = "order_id";  // child -> root
  std::string children_field = "lines";   // array in the aggregate
  // Debezium's unavailable.value.placeholder: a string field holding it
  // (an unchanged TOASTed text column) takes the row's previous value.
  std::string unavailable_placeholder = "__debezium_unavailable_value";
};

class ReferenceModel {
 public:
  explicit ReferenceModel(ReferenceModelOptions options = {});
  ~ReferenceModel();
  ReferenceModel(const ReferenceModel&) = delete;
  ReferenceModel& operator=(const ReferenceModel&) = delete;

  // Applies one source transaction's distinct change events (in commit
  // order, duplicates already removed) and returns one version per touched
  // root, ascending root id, each with `tx_id`. A root is touched when its
  // row changed or a child joined, left or changed. For a snapshot read pass
  // it alone with tx_id "". Changes to other tables are ignored.
  // FailedPrecondition when the changes break the model (a delete or update
  // of an unknown row, a child whose root does not exist at the end of the
  // transaction, a root deleted while children still point at it); the
  // model is then unspecified. A field of an update's image holding the
  // unavailable-value placeholder takes the value of the model's previous
  // row (kept as sent when the row has none).
  absl::StatusOr<std::vector<ExpectedVersion>> ApplyTransaction(
      std::string_view tx_id, absl::Span<const DecodedChange> changes);

  // The current aggregate of every live root, by root id.
  std::map<int64_t, std::string> CurrentAggregates() const;
  size_t root_count() const { return roots_.size(); }
  size_t child_count() const { return children_.size(); }
  // Placeholders replaced by a previous value, and kept (no previous row).
  int64_t placeholders_filled() const { return placeholders_filled_; }
  int64_t placeholders_unresolved() const { return placeholders_unresolved_; }

 private:
  struct Child {
    int64_t parent = 0;
    std::string row;
  };

  struct Parser;

  // The integer `field` of a row image.
  absl::StatusOr<int64_t> ReadInt(std::string_view row,
                                  const std::string& field);
  std::string BuildAggregate(int64_t root) const;
  // `row` with each placeholder field taken from `previous` (may be null).
  absl::StatusOr<std::string> FillUnavailable(const std::string& row,
                                              const std::string* previous);

  ReferenceModelOptions options_;
  std::unique_ptr<Parser> parser_;
  std::map<int64_t, std::string> roots_;  // id -> minified row image
  std::map<int64_t, Child> children_;     // id -> parent + row image
  std::map<int64_t, std::set<int64_t>> children_of_;
  int64_t placeholders_filled_ = 0;
  int64_t placeholders_unresolved_ = 0;
};

// Replays Debezium messages in the order one connector wrote them (per
// transaction BEGIN, its change events and tombstones, END; snapshot reads
// alone) through a ReferenceModel as a correct engine must read them:
// - change events are deduplicated by their identity (txId, source.lsn,
//   schema.table, op, key): (txId, lsn) alone would merge a primary-key
//   update's delete and create;
// - a second BEGIN of the open transaction (a connector restarted inside it,
//   Debezium < 3.7) keeps what was buffered; the events written again after
//   it are repeats by identity;
// - END's counts are not trusted (after a restart they count only what
//   followed it): the transaction is what was buffered;
// - a change event that does not decode, inside a transaction, is bad input
//   of that transaction (an engine must tell which transaction a bad event
//   is of from the event itself: cdc-gen's keep their transaction block
//   readable, see TransactionFault): never applied; when END counts more
//   events, in all or of one table, than the good ones buffered (bad input
//   took an event's place, or END counts events never written), the
//   transaction is what was buffered and its versions are partial;
// - a transaction already applied (a redelivery) is skipped.
// Thread-safety: one thread at a time.
class ReferenceReplay {
 public:
  explicit ReferenceReplay(ReferenceModelOptions options = {});
  ReferenceReplay(const ReferenceReplay&) = delete;
  ReferenceReplay& operator=(const ReferenceReplay&) = delete;

  // A BEGIN or END marker's value. At an END, the transaction's versions
  // (see ReferenceModel::ApplyTransaction), marked partial when END counts
  // more than the good events seen; empty for a redelivered or empty
  // transaction. FailedPrecondition for markers out of place (a BEGIN of
  // another transaction while one is open, an END of none).
  absl::StatusOr<std::vector<ExpectedVersion>> OnMarker(std::string_view value);
  // A table-topic record. A snapshot read (no transaction block) is applied
  // at once, alone, with tx_id ""; a tombstone (nullopt) is ignored; one
  // that does not decode is bad input of the open transaction.
  // FailedPrecondition for a change of a transaction that is not open;
  // InvalidArgument for one that does not decode outside any.
  absl::StatusOr<std::vector<ExpectedVersion>> OnChange(
      std::string_view key, std::optional<std::string_view> value);

  const ReferenceModel& model() const { return model_; }
  int64_t transactions_applied() const { return applied_; }
  int64_t repeats_dropped() const { return repeats_; }
  int64_t redeliveries_skipped() const { return redeliveries_; }
  // Second (third, ...) BEGINs of an open transaction.
  int64_t restarts_seen() const { return restarts_; }
  // ENDs counting fewer events than the transaction's distinct ones.
  int64_t undercounting_ends() const { return undercounts_; }
  // Distinct change events that shared (txId, lsn) with another one.
  int64_t shared_lsn_events() const { return shared_lsn_; }
  // Change events that did not decode, inside a transaction.
  int64_t bad_events() const { return bad_events_; }
  // Transactions applied partial (END counts more than their good events).
  int64_t partial_transactions() const { return partial_; }

 private:
  ReferenceDecoder decoder_;
  ReferenceModel model_;
  bool open_ = false;
  std::string xid_;
  std::vector<DecodedChange> buffer_;
  std::set<std::string> identities_;
  std::set<std::pair<int64_t, int64_t>> lsns_;
  std::set<std::string> applied_xids_;
  int64_t applied_ = 0;
  int64_t repeats_ = 0;
  int64_t redeliveries_ = 0;
  int64_t restarts_ = 0;
  int64_t undercounts_ = 0;
  int64_t shared_lsn_ = 0;
  int64_t bad_events_ = 0;
  int64_t partial_ = 0;
};

// Whether two JSON texts are the same value: objects compare as unordered
// maps, numbers by value. Top-level fields named in `ignore_top_level` are
// left out of the comparison on both sides, e.g. {"source_tx", "version"}
// to compare an engine's output with an ExpectedVersion aggregate.
// InvalidArgument when either text is not JSON.
absl::StatusOr<bool> JsonEquivalent(
    std::string_view a, std::string_view b,
    const std::vector<std::string>& ignore_top_level = {});

}  // namespace tributary::cdcgen
