// CdcGenerator: synthetic Debezium traffic for the order service, written
// byte for byte as Debezium's PostgreSQL connector (pgoutput,
// provide.transaction.metadata=true, JSON converter, default replica identity,
// decimal.handling.mode=precise) would write it, together with the aggregate
// versions a correct engine must emit for each source transaction.
//
// The generator keeps its own model of the database (inventory.purchaseorder
// and inventory.orderline, FK orderline.order_id -> purchaseorder.id), draws
// operations from a seeded PRNG (same options, same bytes), and knows which
// orders each transaction touched. Producing to Kafka lives in
// cdc_producer.h; an independent recomputation of the versions from the
// emitted JSON lives in reference_model.h.
// Thread-safety: a CdcGenerator is used by one thread at a time.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "apps/cdc-gen/expected_version.h"

namespace tributary::cdcgen {

// The three topics Debezium writes for the order service.
enum class CdcTopic {
  kTransaction,    // <prefix>.transaction: BEGIN/END markers, one partition
  kPurchaseOrder,  // <prefix>.inventory.purchaseorder
  kOrderLine,      // <prefix>.inventory.orderline
};

// One Kafka record as Debezium's producer would send it.
struct CdcMessage {
  CdcTopic topic = CdcTopic::kTransaction;
  std::string key;                   // JSON
  std::optional<std::string> value;  // JSON; nullopt = tombstone after a delete
};

// Relative weights of the kinds of source transaction. Any non-negative
// values; at least one must be positive.
struct OperationMix {
  double place_order = 30;  // 1 order insert + 1..max_lines line inserts
  double cancel_line = 12;  // line status -> CANCELLED
  double update_order_status = 12;  // order status (SHIPPED also ships lines)
  double update_quantity = 12;      // one line's quantity
  double move_line = 8;             // line's order_id -> another order
  double delete_order = 6;          // its lines' deletes, then the order's
  double multi_order = 15;          // 2..3 of the above in one transaction
  double bulk = 0.1;                // bulk_lines line inserts over a few orders
  double empty = 1;                 // BEGIN + END with event_count 0
  // A line's primary key changed (UPDATE ... SET id = nextval(...)): as
  // Debezium writes it, a delete of the old key (before = the key only) and
  // its tombstone, then a create of the new key, both with the SAME
  // source.lsn and consecutive total_order, both counted in END. So
  // (txId, lsn) does not identify an event; (txId, lsn, table, op, key) does.
  // Also picked inside multi_order.
  double rekey = 4;
};

struct GeneratorOptions {
  uint64_t seed = 1;
  // Debezium's topic.prefix; also source.name.
  std::string topic_prefix = "dbserver1";
  std::string database = "orderdb";  // source.db
  // JSON converter schemas.enable: {"schema":{...},"payload":{...}} for keys
  // and values; false writes the bare payload.
  bool schemas = false;
  int max_lines_per_order = 5;  // a new order gets 1..max lines
  OperationMix mix;
  // Line inserts in one bulk transaction. Every later version of an order
  // that got them carries them all: at 1000 (cdc-gen's --bulk-lines default)
  // a 2,000-transaction run can put over 5 MiB of aggregates in one output
  // partition, more than librdkafka's mock cluster keeps.
  int bulk_lines = 200;
  int bulk_orders = 3;    // spread over 1..bulk_orders existing orders
  // Orders read by an initial snapshot before streaming starts: one op=r
  // event each, no transaction block, no lines; each is a unit of its own.
  // As in Debezium, every read carries the snapshot's txId (first_xid - 1)
  // and the same source.lsn (first_lsn): (txId, lsn) does not identify a
  // snapshot read, so it must not be deduplicated by it.
  int snapshot_orders = 0;
  // purchaseorder.note, a text column. A new note is long (2,100..4,000
  // bytes of varied text: PostgreSQL stores it out of line, TOASTed) with
  // chance `long_note_rate`, else a short phrase. An order update leaves the
  // note alone with chance `note_unchanged_rate` (else writes a new one);
  // an update that leaves a long note alone carries Debezium's placeholder
  // "note":"__debezium_unavailable_value" (default replica identity), and
  // the expected aggregate keeps the previous note.
  double long_note_rate = 0.1;
  double note_unchanged_rate = 0.75;
  // Faults, as Debezium's at-least-once delivery produces them. None of them
  // adds expected versions.
  // Chance per change event of being written a second time (identical bytes)
  // later in the same transaction.
  double duplicate_rate = 0;
  // Chance, after each transaction, that the last 1..3 transactions are
  // written again whole (BEGIN, events, tombstones, END; identical bytes),
  // as after a connector restart.
  double redelivery_rate = 0;
  // Chance per source transaction of n >= 2 change events that the
  // connector restarts inside it (Debezium < 3.7): BEGIN, events 1..k (k
  // uniform in [1, n-1]), a second BEGIN with the same xid (id "<xid>:<LSN of
  // event k>"), events j..n again (j uniform in [1, k+1], so j..k appear
  // twice with the same source.lsn) with total_order and
  // data_collection_order restarted at 1, and an END counting only j..n
  // (per data collection of the transaction, 0 where none of j..n is in it).
  // Duplicates after event k are not written for such a transaction.
  double restart_inside_rate = 0;
  // Where the source log starts: first streaming xid, first LSN, and the
  // commit time of the first transaction (no wall clock: output depends on
  // the options only).
  int64_t first_xid = 571;
  int64_t first_lsn = 24023128;
  int64_t start_ts_ms = 1700000000000;
  // source.version.
  std::string debezium_version = "2.5.4.Final";
  // Whether GeneratedTransaction::expected is filled. Building an aggregate
  // costs time proportional to its size (orders that got a bulk insert have
  // thousands of lines); a pure load run can turn it off.
  bool compute_expected = true;

  // "<prefix>.transaction", "<prefix>.inventory.purchaseorder", ...
  std::string TopicName(CdcTopic topic) const;
};

// What END's data_collections calls a table: "inventory.orderline".
// REQUIRES: topic is a table topic.
std::string DataCollection(CdcTopic topic);

// NUMERIC as the JSON converter writes it under decimal.handling.mode=precise:
// the unscaled value as big-endian two's complement in the fewest bytes
// (Java's BigInteger.toByteArray), base64. 12.50 -> 1250 -> 04 E2 -> "BOI=".
std::string DecimalToBase64(int64_t unscaled);

// Bad input inside one source transaction, written on request
// (CdcGenerator::InjectFault) for tests of what an engine does with it
// (tests/chaos). Debezium never writes these; a damaged record on the way
// (a broken converter, a bad SMT) or a connector bug would. A bad change
// event is spoiled so that no decoder takes it while its "transaction" block
// stays readable (cut off right after that block, an unknown op, a number
// for op, an array for source): an engine can tell which transaction it
// belongs to. Only a transaction that changes both tables gets one; it is
// never restarted inside, has no repeated events and is never redelivered,
// so that its END counts are exact and what a correct engine emits for it is
// certain.
enum class TransactionFault {
  kNone,
  // One line insert, of an order the transaction inserts too, is replaced by
  // its spoiled copy: the transaction is short of that event, and a correct
  // engine releases the rest marked partial. The generator forgets the line
  // (the database keeps it, but no later transaction touches it), so that
  // later versions of its order are exact without it.
  kReplacedEvent,
  // A spoiled copy of one event is written next to it (before or after):
  // the transaction stays whole.
  kExtraCopy,
  // END counts one or two events more of one table than were written: a
  // correct engine releases the transaction marked partial once every input
  // partition has moved past it.
  kOvercountingEnd,
};

// "replaced event", "extra copy", "overcounting END"; "" for kNone.
std::string_view TransactionFaultName(TransactionFault fault);

// One unit of the generated stream, with the messages in the order Debezium
// writes them.
struct GeneratedTransaction {
  enum class Kind {
    // BEGIN, change events (+ a tombstone after each delete, + duplicates),
    // END. `expected` holds one version per touched order.
    kTransaction,
    // One op=r event of the initial snapshot; `expected` holds its order.
    kSnapshotRead,
    // Earlier transactions written again; `expected` is empty.
    kRedelivery,
  };
  Kind kind = Kind::kTransaction;
  int64_t xid = 0;  // kRedelivery: the xid of the last transaction repeated
  std::vector<CdcMessage> messages;
  // Ascending root id; each aggregate in the layout of ExpectedVersion.
  // Empty when GeneratorOptions::compute_expected is false.
  std::vector<ExpectedVersion> expected;
  // Distinct change events, excluding tombstones and duplicates: END's
  // event_count, except after a restart. kRedelivery: 0.
  int64_t change_events = 0;
  // kTransaction: the connector restarted inside it (see
  // GeneratorOptions::restart_inside_rate): two BEGINs, END undercounts.
  // A reader can only know it is complete by positions, so a producer must
  // write all its events before its END (as Debezium does).
  bool restarted = false;
  // kTransaction: bad input written into it on request (see
  // TransactionFault), how it was spoiled ("truncated JSON", "unknown op",
  // ...; for kOvercountingEnd "orderline counted 2 more") and the record as
  // written: the spoiled change event, or the END marker.
  TransactionFault fault = TransactionFault::kNone;
  std::string fault_detail;
  CdcMessage fault_record;

  // Whether a reader can know it complete only by positions: restarted, or
  // with a bad event that counts for it (which may stand for any event). A
  // producer must then write all its events before its END, as Debezium does.
  bool CompleteOnlyByPosition() const {
    return restarted || fault == TransactionFault::kReplacedEvent ||
           fault == TransactionFault::kExtraCopy;
  }

  void Clear();
};

class CdcGenerator {
 public:
  // InvalidArgument when the options are inconsistent.
  static absl::StatusOr<std::unique_ptr<CdcGenerator>> Create(
      GeneratorOptions options);
  ~CdcGenerator();
  CdcGenerator(const CdcGenerator&) = delete;
  CdcGenerator& operator=(const CdcGenerator&) = delete;

  // Fills `out` (cleared first; its buffers are reused) with the next unit:
  // the snapshot reads first, then source transactions in commit order, with
  // redeliveries between them when enabled.
  absl::Status NextTransaction(GeneratedTransaction& out);

  // Fills `out` (cleared first) with the next source transaction, one that
  // inserts `orders` orders with `lines_per_order` lines each: per order its
  // insert, then its lines' inserts, so orders * (1 + lines_per_order) change
  // events (one END counting them all, purchaseorder then orderline in
  // data_collections), LSNs increasing as in any transaction. `expected`
  // holds one version per order, with all its lines. For a bounded-memory
  // benchmark (bench/huge-tx). No faults inside it (no duplicates, no
  // restart) and it is never redelivered, whatever the rates; a redelivery
  // pending from the previous transaction is dropped. The whole unit is in
  // memory (about 0.7 KB per row without schemas, ~4 KB with).
  // InvalidArgument when orders < 1 or lines_per_order < 0;
  // FailedPrecondition while snapshot reads are pending.
  absl::Status HugeTransaction(int64_t orders, int lines_per_order,
                               GeneratedTransaction& out);

  // The next source transaction that can take `fault` (see
  // TransactionFault), once `after_transactions` more source transactions
  // have been generated, gets it; faults armed earlier go first, one per
  // transaction. Two generators with the same options armed at the same
  // points write the same bytes. REQUIRES: fault != kNone.
  void InjectFault(TransactionFault fault, int64_t after_transactions = 0);
  // Faults armed and not yet written.
  int64_t faults_armed() const;

  const GeneratorOptions& options() const;
  const std::string& topic(CdcTopic topic) const;

  // The model's current aggregate of every live order, by order id, in the
  // layout of ExpectedVersion::aggregate.
  std::map<int64_t, std::string> CurrentAggregates() const;
  int64_t live_orders() const;
  int64_t live_lines() const;

 private:
  struct State;
  explicit CdcGenerator(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace tributary::cdcgen
