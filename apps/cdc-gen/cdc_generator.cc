#include "apps/cdc-gen/cdc_generator.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <deque>
#include <map>
#include <random>
#include <set>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/json_escape.h"

namespace tributary::cdcgen {
namespace {

constexpr std::string_view kSchemaName = "inventory";
constexpr std::string_view kOrderTable = "purchaseorder";
constexpr std::string_view kLineTable = "orderline";
constexpr int32_t kDateBase = 19358;  // 2023-01-01, days since the epoch

// Redeliveries repeat at most this many of the latest transactions.
constexpr size_t kRedeliveryHistory = 3;

// Product names include a quote and non-ASCII text so that every reader has
// to handle JSON escapes and UTF-8.
constexpr std::array<std::string_view, 8> kProducts = {
    "Widget",          "Gadget",         "Sprocket", "12\" pizza pan",
    "Caf\xC3\xA9 mug", "Flux capacitor", "Gizmo XL", "Back\\slash hook"};

constexpr std::string_view kPlaced = "PLACED";
constexpr std::string_view kShipped = "SHIPPED";
constexpr std::string_view kCancelled = "CANCELLED";
constexpr std::string_view kEntered = "ENTERED";

// What Debezium writes for an unchanged TOASTed column (its
// unavailable.value.placeholder default), and the note length above which
// the generator treats a note as stored out of line.
constexpr std::string_view kUnavailable = "__debezium_unavailable_value";
constexpr size_t kToastThreshold = 2000;

// Notes: short phrases, and words for long ones (with a quote, a backslash
// and non-ASCII text, so that a placeholder's previous value must be copied
// with its escapes).
constexpr std::array<std::string_view, 6> kShortNotes = {
    "",
    "Leave at the door",
    "Call \"before\" delivery",
    "Fragile: caf\xC3\xA9 cups",
    "Gift wrap, no invoice",
    "Back\\door, ring twice"};
constexpr std::array<std::string_view, 12> kNoteWords = {
    "customer", "asked",  "\"urgent\"", "pallet",
    "dock",     "r\xC3\xA9sum\xC3\xA9", "C:\\inbox", "invoice",
    "courier",  "signed", "refund",       "backorder"};

void AppendInt(std::string& out, int64_t value) {
  char buffer[24];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  out.append(buffer, end);
}

void AppendDecimalBase64(std::string& out, int64_t unscaled) {
  out += '"';
  out += DecimalToBase64(unscaled);
  out += '"';
}

// Live primary keys with O(1) add, remove and uniform pick.
class IdPool {
 public:
  void Add(int64_t id) {
    positions_[id] = ids_.size();
    ids_.push_back(id);
  }
  void Remove(int64_t id) {
    auto it = positions_.find(id);
    if (it == positions_.end()) return;
    const size_t position = it->second;
    const int64_t last = ids_.back();
    ids_[position] = last;
    positions_[last] = position;
    ids_.pop_back();
    positions_.erase(id);
  }
  // REQUIRES: !empty().
  int64_t Pick(uint64_t random) const { return ids_[random % ids_.size()]; }
  bool empty() const { return ids_.empty(); }
  size_t size() const { return ids_.size(); }

 private:
  std::vector<int64_t> ids_;
  std::unordered_map<int64_t, size_t> positions_;
};

struct OrderRow {
  int64_t id = 0;
  int64_t customer_id = 0;
  int32_t order_date = 0;
  std::string_view status;
  std::string note;
  std::vector<int64_t> lines;  // ascending line id

  void AddLine(int64_t line_id) {
    lines.insert(std::lower_bound(lines.begin(), lines.end(), line_id),
                 line_id);
  }
  void RemoveLine(int64_t line_id) {
    auto it = std::lower_bound(lines.begin(), lines.end(), line_id);
    if (it != lines.end() && *it == line_id) lines.erase(it);
  }
};

struct LineRow {
  int64_t id = 0;
  int64_t order_id = 0;
  int product = 0;
  int32_t quantity = 0;
  int64_t price_cents = 0;
  std::string_view status;
  std::string image;  // the row image of the fields above, kept current
};

// `note_unavailable`: the note as Debezium sends an unchanged TOASTed value.
void AppendOrderRow(std::string& out, const OrderRow& order,
                    bool note_unavailable = false) {
  out += "{\"id\":";
  AppendInt(out, order.id);
  out += ",\"customer_id\":";
  AppendInt(out, order.customer_id);
  out += ",\"order_date\":";
  AppendInt(out, order.order_date);
  out += ",\"status\":";
  AppendJsonString(out, order.status);
  out += ",\"note\":";
  AppendJsonString(out, note_unavailable ? kUnavailable : order.note);
  out += '}';
}

void AppendLineRow(std::string& out, const LineRow& line) {
  out += "{\"id\":";
  AppendInt(out, line.id);
  out += ",\"order_id\":";
  AppendInt(out, line.order_id);
  out += ",\"product\":";
  AppendJsonString(out, kProducts[line.product]);
  out += ",\"quantity\":";
  AppendInt(out, line.quantity);
  out += ",\"price\":";
  AppendDecimalBase64(out, line.price_cents);
  out += ",\"status\":";
  AppendJsonString(out, line.status);
  out += '}';
}

enum class Table { kOrder = 0, kLine = 1 };

CdcTopic TopicOf(Table table) {
  return table == Table::kOrder ? CdcTopic::kPurchaseOrder
                                : CdcTopic::kOrderLine;
}

// --- The JSON converter's schemas (schemas.enable=true) ---

constexpr std::string_view kOrderColumns =
    R"({"type":"int32","optional":false,"field":"id"},)"
    R"({"type":"int32","optional":true,"field":"customer_id"},)"
    R"({"type":"int32","optional":true,"name":"io.debezium.time.Date","version":1,"field":"order_date"},)"
    R"({"type":"string","optional":true,"field":"status"},)"
    R"({"type":"string","optional":true,"field":"note"})";

constexpr std::string_view kLineColumns =
    R"({"type":"int32","optional":false,"field":"id"},)"
    R"({"type":"int32","optional":true,"field":"order_id"},)"
    R"({"type":"string","optional":true,"field":"product"},)"
    R"({"type":"int32","optional":true,"field":"quantity"},)"
    R"({"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"10"},"field":"price"},)"
    R"({"type":"string","optional":true,"field":"status"})";

constexpr std::string_view kSourceSchema =
    R"({"type":"struct","fields":[)"
    R"({"type":"string","optional":false,"field":"version"},)"
    R"({"type":"string","optional":false,"field":"connector"},)"
    R"({"type":"string","optional":false,"field":"name"},)"
    R"({"type":"int64","optional":false,"field":"ts_ms"},)"
    R"({"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"true,last,false,incremental"},"default":"false","field":"snapshot"},)"
    R"({"type":"string","optional":false,"field":"db"},)"
    R"({"type":"string","optional":true,"field":"sequence"},)"
    R"({"type":"string","optional":false,"field":"schema"},)"
    R"({"type":"string","optional":false,"field":"table"},)"
    R"({"type":"int64","optional":true,"field":"txId"},)"
    R"({"type":"int64","optional":true,"field":"lsn"},)"
    R"({"type":"int64","optional":true,"field":"xmin"}],)"
    R"("optional":false,"name":"io.debezium.connector.postgresql.Source","field":"source"})";

constexpr std::string_view kTransactionBlockSchema =
    R"({"type":"struct","fields":[)"
    R"({"type":"string","optional":false,"field":"id"},)"
    R"({"type":"int64","optional":false,"field":"total_order"},)"
    R"({"type":"int64","optional":false,"field":"data_collection_order"}],)"
    R"("optional":true,"name":"event.block","version":1,"field":"transaction"})";

constexpr std::string_view kMarkerKeySchema =
    R"({"type":"struct","fields":[{"type":"string","optional":false,"field":"id"}],)"
    R"("optional":false,"name":"io.debezium.connector.common.TransactionMetadataKey","version":1})";

constexpr std::string_view kMarkerValueSchema =
    R"({"type":"struct","fields":[)"
    R"({"type":"string","optional":false,"field":"status"},)"
    R"({"type":"string","optional":false,"field":"id"},)"
    R"({"type":"int64","optional":true,"field":"event_count"},)"
    R"({"type":"array","items":{"type":"struct","fields":[)"
    R"({"type":"string","optional":false,"field":"data_collection"},)"
    R"({"type":"int64","optional":false,"field":"event_count"}],"optional":false},)"
    R"("optional":true,"field":"data_collections"},)"
    R"({"type":"int64","optional":false,"field":"ts_ms"}],)"
    R"("optional":false,"name":"io.debezium.connector.common.TransactionMetadataValue","version":1})";

// Schema names as Debezium derives them: "<prefix>.<schema>.<table>.Key".
std::string KeySchema(std::string_view prefix, std::string_view table) {
  std::string name =
      absl::StrCat(std::string(prefix), ".", std::string(kSchemaName), ".",
                   std::string(table), ".Key");
  std::string out =
      R"({"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"}],"optional":false,"name":)";
  AppendJsonString(out, name);
  out += '}';
  return out;
}

std::string ValueSchema(std::string_view prefix, std::string_view table,
                        std::string_view columns) {
  const std::string base =
      absl::StrCat(std::string(prefix), ".", std::string(kSchemaName), ".",
                   std::string(table));
  std::string row_name;
  AppendJsonString(row_name, base + ".Value");
  std::string envelope_name;
  AppendJsonString(envelope_name, base + ".Envelope");
  std::string out = R"({"type":"struct","fields":[)";
  for (std::string_view field : {"before", "after"}) {
    absl::StrAppend(&out, R"({"type":"struct","fields":[)",
                    std::string(columns), R"(],"optional":true,"name":)",
                    row_name, R"(,"field":")", std::string(field), R"("},)");
  }
  absl::StrAppend(&out, std::string(kSourceSchema), ",",
                  R"({"type":"string","optional":false,"field":"op"},)",
                  R"({"type":"int64","optional":true,"field":"ts_ms"},)",
                  std::string(kTransactionBlockSchema),
                  R"(],"optional":false,"name":)", envelope_name,
                  R"(,"version":1})");
  return out;
}

enum class Op {
  kPlaceOrder,
  kCancelLine,
  kUpdateOrderStatus,
  kUpdateQuantity,
  kMoveLine,
  kDeleteOrder,
  kRekeyLine,
  kMultiOrder,
  kBulk,
  kEmpty,
};

constexpr int kSingleOps = 7;  // the first seven Op values

// OperationMix's weights in Op order.
std::array<double, 10> Weights(const OperationMix& m) {
  return {m.place_order,     m.cancel_line, m.update_order_status,
          m.update_quantity, m.move_line,   m.delete_order,
          m.rekey,           m.multi_order, m.bulk,
          m.empty};
}

}  // namespace

std::string GeneratorOptions::TopicName(CdcTopic topic) const {
  switch (topic) {
    case CdcTopic::kTransaction:
      return absl::StrCat(topic_prefix, ".transaction");
    case CdcTopic::kPurchaseOrder:
      return absl::StrCat(topic_prefix, ".", std::string(kSchemaName), ".",
                          std::string(kOrderTable));
    case CdcTopic::kOrderLine:
      return absl::StrCat(topic_prefix, ".", std::string(kSchemaName), ".",
                          std::string(kLineTable));
  }
  return "";
}

std::string DataCollection(CdcTopic topic) {
  return absl::StrCat(
      std::string(kSchemaName), ".",
      std::string(topic == CdcTopic::kPurchaseOrder ? kOrderTable
                                                    : kLineTable));
}

std::string DecimalToBase64(int64_t unscaled) {
  uint8_t bytes[8];
  for (int i = 0; i < 8; ++i) {
    bytes[i] =
        static_cast<uint8_t>(static_cast<uint64_t>(unscaled) >> (8 * (7 - i)));
  }
  // Drop leading bytes that only repeat the sign.
  int start = 0;
  while (start < 7) {
    const bool redundant =
        (bytes[start] == 0x00 && (bytes[start + 1] & 0x80) == 0) ||
        (bytes[start] == 0xFF && (bytes[start + 1] & 0x80) != 0);
    if (!redundant) break;
    ++start;
  }
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (int i = start; i < 8; i += 3) {
    const int left = 8 - i;
    uint32_t chunk = static_cast<uint32_t>(bytes[i]) << 16;
    if (left > 1) chunk |= static_cast<uint32_t>(bytes[i + 1]) << 8;
    if (left > 2) chunk |= bytes[i + 2];
    out += kAlphabet[(chunk >> 18) & 63];
    out += kAlphabet[(chunk >> 12) & 63];
    out += left > 1 ? kAlphabet[(chunk >> 6) & 63] : '=';
    out += left > 2 ? kAlphabet[chunk & 63] : '=';
  }
  return out;
}

std::string_view TransactionFaultName(TransactionFault fault) {
  switch (fault) {
    case TransactionFault::kNone:
      return "";
    case TransactionFault::kReplacedEvent:
      return "replaced event";
    case TransactionFault::kExtraCopy:
      return "extra copy";
    case TransactionFault::kOvercountingEnd:
      return "overcounting END";
  }
  return "";
}

void GeneratedTransaction::Clear() {
  kind = Kind::kTransaction;
  xid = 0;
  messages.clear();
  expected.clear();
  change_events = 0;
  restarted = false;
  fault = TransactionFault::kNone;
  fault_detail.clear();
  fault_record = CdcMessage();
}

// The generator's database model, log position and message writer.
struct CdcGenerator::State {
  // One distinct change event in tx.out.
  struct Event {
    size_t index = 0;  // of its message (a delete's tombstone follows it)
    Table table = Table::kOrder;
    char op = 'c';
    int64_t row_id = 0;  // the row's primary key
    int64_t lsn = 0;
    // Where the value's ,"total_order":... tail starts.
    size_t counters_at = 0;
  };

  // What one source transaction has written so far.
  struct Tx {
    int64_t xid = 0;
    int64_t commit_ts = 0;
    int64_t total_order = 0;
    std::array<int64_t, 2> table_events = {0, 0};
    std::vector<Event> events;  // in total_order
    // What END counts: total_order and table_events, except after a restart.
    bool restarted = false;
    int64_t end_total = 0;
    std::array<int64_t, 2> end_counts = {0, 0};
    std::vector<Table> collections;  // in order of first event
    std::set<int64_t> touched;       // root ids
    std::set<int64_t> created;       // orders inserted by this transaction
    std::vector<size_t> duplicates;  // message indexes to write twice
    std::vector<CdcMessage>* out = nullptr;
  };

  explicit State(GeneratorOptions opts)
      : options(std::move(opts)),
        rng(options.seed),
        fault_rng(options.seed ^ 0x9E3779B97F4A7C15ull),
        poison_rng(options.seed ^ 0xC2B2AE3D27D4EB4Full),
        xid(options.first_xid - 1),
        lsn(options.first_lsn),
        commit_ts(options.start_ts_ms),
        snapshot_left(options.snapshot_orders) {
    for (CdcTopic topic : {CdcTopic::kTransaction, CdcTopic::kPurchaseOrder,
                           CdcTopic::kOrderLine}) {
      topics[static_cast<int>(topic)] = options.TopicName(topic);
    }
    weights = Weights(options.mix);
    for (int i = 0; i < static_cast<int>(weights.size()); ++i) {
      total_weight += weights[i];
      if (i < kSingleOps) single_weight += weights[i];
    }
    source_head = "{\"version\":";
    AppendJsonString(source_head, options.debezium_version);
    source_head += ",\"connector\":\"postgresql\",\"name\":";
    AppendJsonString(source_head, options.topic_prefix);
    source_head += ",\"ts_ms\":";
    std::string db;
    AppendJsonString(db, options.database);
    for (Table table : {Table::kOrder, Table::kLine}) {
      const std::string_view name =
          table == Table::kOrder ? kOrderTable : kLineTable;
      std::string& tail = source_tail[static_cast<int>(table)];
      tail = ",\"schema\":";
      AppendJsonString(tail, kSchemaName);
      tail += ",\"table\":";
      AppendJsonString(tail, name);
      tail += ",\"txId\":";
      if (options.schemas) {
        key_head[static_cast<int>(table)] =
            absl::StrCat("{\"schema\":", KeySchema(options.topic_prefix, name),
                         ",\"payload\":");
        value_head[static_cast<int>(table)] = absl::StrCat(
            "{\"schema\":",
            ValueSchema(options.topic_prefix, name,
                        table == Table::kOrder ? kOrderColumns : kLineColumns),
            ",\"payload\":");
      }
    }
    source_db = absl::StrCat(",\"db\":", db, ",\"sequence\":");
    if (options.schemas) {
      marker_key_head = absl::StrCat(
          "{\"schema\":", std::string(kMarkerKeySchema), ",\"payload\":");
      marker_value_head = absl::StrCat(
          "{\"schema\":", std::string(kMarkerValueSchema), ",\"payload\":");
    }
  }

  // --- PRNG ---
  int64_t Uniform(int64_t n) {
    return n <= 1 ? 0 : static_cast<int64_t>(rng() % static_cast<uint64_t>(n));
  }
  static double Real(std::mt19937_64& r) {
    return static_cast<double>(r() >> 11) * 0x1.0p-53;
  }
  bool Chance(double p) { return p > 0 && Real(rng) < p; }
  bool FaultChance(double p) { return p > 0 && Real(fault_rng) < p; }

  // --- message writing ---

  void AppendKey(std::string& out, Table table, int64_t id) const {
    const bool wrap = options.schemas;
    if (wrap) out += key_head[static_cast<int>(table)];
    out += "{\"id\":";
    AppendInt(out, id);
    out += '}';
    if (wrap) out += '}';
  }

  // The source block of a change at `change_lsn`; `snapshot` is "false",
  // "true" or "last".
  void AppendSource(std::string& out, Table table, int64_t ts_ms,
                    std::string_view snapshot, int64_t tx_xid,
                    int64_t change_lsn) const {
    out += source_head;
    AppendInt(out, ts_ms);
    out += ",\"snapshot\":\"";
    out += snapshot;
    out += '"';
    out += source_db;
    // sequence: ["<last commit LSN>","<this LSN>"] as one JSON string.
    out += "\"[";
    if (last_commit_lsn < 0) {
      out += "null";
    } else {
      out += "\\\"";
      AppendInt(out, last_commit_lsn);
      out += "\\\"";
    }
    out += ",\\\"";
    AppendInt(out, change_lsn);
    out += "\\\"]\"";
    out += source_tail[static_cast<int>(table)];
    AppendInt(out, tx_xid);
    out += ",\"lsn\":";
    AppendInt(out, change_lsn);
    out += ",\"xmin\":null}";
  }

  // Writes one change event (and after a delete its tombstone) to tx.out.
  // `after` is the row image, or null for a delete.
  // `same_lsn`: at the LSN of the previous change (the create of a primary-key
  // update shares its delete's).
  void EmitChange(Tx& tx, Table table, char op, int64_t id,
                  const std::string* after, bool same_lsn = false) {
    if (!same_lsn) lsn += 40 + Uniform(160);
    const int t = static_cast<int>(table);
    if (tx.table_events[t] == 0) tx.collections.push_back(table);
    const int64_t total_order = ++tx.total_order;
    const int64_t collection_order = ++tx.table_events[t];

    CdcMessage& message = tx.out->emplace_back();
    message.topic = TopicOf(table);
    AppendKey(message.key, table, id);
    std::string value;
    value.reserve(options.schemas ? 4096 : 640);
    if (options.schemas) value += value_head[t];
    value += "{\"before\":";
    if (op == 'd') {
      value += "{\"id\":";
      AppendInt(value, id);
      value += '}';
    } else {
      value += "null";
    }
    value += ",\"after\":";
    value += after != nullptr ? *after : std::string("null");
    value += ",\"source\":";
    AppendSource(value, table, tx.commit_ts, "false", tx.xid, lsn);
    value += ",\"op\":\"";
    value += op;
    value += "\",\"ts_ms\":";
    AppendInt(value, tx.commit_ts + 3 + Uniform(40));
    value += ",\"transaction\":{\"id\":\"";
    AppendInt(value, tx.xid);
    value += ':';
    AppendInt(value, lsn);
    value += '"';
    tx.events.push_back(
        {tx.out->size() - 1, table, op, id, lsn, value.size()});
    AppendCounters(value, total_order, collection_order);
    message.value = std::move(value);

    if (FaultChance(options.duplicate_rate)) {
      tx.duplicates.push_back(tx.out->size() - 1);
    }
    if (op == 'd') {
      // A new element may move `message`: build the tombstone afresh.
      CdcMessage& tombstone = tx.out->emplace_back();
      tombstone.topic = TopicOf(table);
      AppendKey(tombstone.key, table, id);
    }
  }

  // The value's tail after the transaction block's id.
  void AppendCounters(std::string& value, int64_t total_order,
                      int64_t collection_order) const {
    value += ",\"total_order\":";
    AppendInt(value, total_order);
    value += ",\"data_collection_order\":";
    AppendInt(value, collection_order);
    value += "}}";
    if (options.schemas) value += '}';
  }

  // A BEGIN, or an END counting tx.end_total and tx.end_counts; its id is
  // "<xid>:<marker_lsn>".
  void EmitMarker(Tx& tx, bool begin, int64_t marker_lsn) {
    CdcMessage& message = tx.out->emplace_back();
    message.topic = CdcTopic::kTransaction;
    std::string id = absl::StrCat(tx.xid, ":", marker_lsn);
    if (options.schemas) message.key += marker_key_head;
    message.key += "{\"id\":\"";
    message.key += id;
    message.key += "\"}";
    if (options.schemas) message.key += '}';

    std::string value;
    if (options.schemas) value += marker_value_head;
    value += begin ? "{\"status\":\"BEGIN\",\"id\":\""
                   : "{\"status\":\"END\",\"id\":\"";
    value += id;
    value += "\",\"event_count\":";
    if (begin) {
      value += "null,\"data_collections\":null";
    } else {
      AppendInt(value, tx.end_total);
      value += ",\"data_collections\":[";
      bool first = true;
      for (Table table : tx.collections) {
        if (!first) value += ',';
        first = false;
        value += "{\"data_collection\":";
        AppendJsonString(value, DataCollection(TopicOf(table)));
        value += ",\"event_count\":";
        AppendInt(value, tx.end_counts[static_cast<int>(table)]);
        value += '}';
      }
      value += ']';
    }
    value += ",\"ts_ms\":";
    AppendInt(value, tx.commit_ts);
    value += '}';
    if (options.schemas) value += '}';
    message.value = std::move(value);
  }

  // Writes each chosen change event again at a random later place before
  // END, as an at-least-once redelivery inside the transaction would.
  void WriteDuplicates(Tx& tx) {
    std::vector<CdcMessage>& out = *tx.out;
    for (auto it = tx.duplicates.rbegin(); it != tx.duplicates.rend(); ++it) {
      const size_t index = *it;
      const size_t span = out.size() - index;  // >= 1
      const size_t at = index + 1 + fault_rng() % span;
      CdcMessage copy = out[index];
      out.insert(out.begin() + static_cast<std::ptrdiff_t>(at),
                 std::move(copy));
    }
  }

  // Rewrites tx.out as a connector restarted inside the transaction writes
  // it (see GeneratorOptions::restart_inside_rate): events 1..k, a second
  // BEGIN, events j..n again with counters from 1; END will count j..n.
  // REQUIRES: at least two events; no duplicates written yet.
  void RestartInside(Tx& tx) {
    std::vector<CdcMessage>& out = *tx.out;
    const size_t n = tx.events.size();
    const size_t k = 1 + fault_rng() % (n - 1);
    const size_t j = 1 + fault_rng() % (k + 1);
    const Event& last_before = tx.events[k - 1];
    const size_t prefix_end =
        last_before.index + 1 + (last_before.op == 'd' ? 1 : 0);
    std::vector<CdcMessage> again;
    tx.end_total = 0;
    tx.end_counts = {0, 0};
    for (size_t i = j; i <= n; ++i) {
      const Event& event = tx.events[i - 1];
      CdcMessage& copy = again.emplace_back(out[event.index]);
      copy.value->resize(event.counters_at);
      AppendCounters(*copy.value, ++tx.end_total,
                     ++tx.end_counts[static_cast<int>(event.table)]);
      if (event.op == 'd') again.push_back(out[event.index + 1]);
    }
    out.resize(prefix_end);
    std::erase_if(tx.duplicates,
                  [&](size_t index) { return index >= prefix_end; });
    EmitMarker(tx, /*begin=*/true, last_before.lsn);
    out.insert(out.end(), std::make_move_iterator(again.begin()),
               std::make_move_iterator(again.end()));
    tx.restarted = true;
  }

  // --- bad input on request (TransactionFault) ---

  // The armed fault due for `tx`, taken off the list, when `tx` can take
  // it; else kNone.
  TransactionFault DueFault(const Tx& tx) {
    if (armed.empty() || armed.front().not_before > source_transactions) {
      return TransactionFault::kNone;
    }
    const TransactionFault fault = armed.front().fault;
    if (tx.collections.size() < 2) return TransactionFault::kNone;
    if (fault == TransactionFault::kReplacedEvent &&
        ReplaceableLines(tx).empty()) {
      return TransactionFault::kNone;
    }
    armed.erase(armed.begin());
    return fault;
  }

  // The events of `tx` that may be replaced (kReplacedEvent): inserts of a
  // line of an order `tx` inserts too (so the order's version stays, and
  // nothing earlier refers to the line) that no other event of `tx` touches
  // (the line's story in this transaction is that one event).
  std::vector<const Event*> ReplaceableLines(const Tx& tx) const {
    std::map<int64_t, int> line_events;
    for (const Event& event : tx.events) {
      if (event.table == Table::kLine) ++line_events[event.row_id];
    }
    std::vector<const Event*> out;
    for (const Event& event : tx.events) {
      if (event.table != Table::kLine || event.op != 'c' ||
          line_events[event.row_id] != 1) {
        continue;
      }
      auto line = lines.find(event.row_id);
      if (line != lines.end() && tx.created.count(line->second.order_id) != 0) {
        out.push_back(&event);
      }
    }
    return out;
  }

  // `value` (a change event with operation `op`) spoiled so that no decoder
  // takes it, with its transaction block still readable; `detail` says how.
  std::string Spoil(const std::string& value, char op, std::string& detail) {
    std::string out = value;
    const auto replace = [&](std::string_view from, std::string_view to) {
      const size_t at = out.find(from);
      if (at != std::string::npos) out.replace(at, from.size(), to);
    };
    switch (poison_rng() % 4) {
      case 0: {
        detail = "truncated JSON";
        // Cut right after the transaction block: the envelope never closes.
        const size_t block = out.find("\"transaction\":{");
        const size_t end = out.find('}', block);
        out.resize(end + 1);
        break;
      }
      case 1:
        detail = "unknown op";
        replace(absl::StrCat("\"op\":\"", std::string(1, op), "\""),
                "\"op\":\"x\"");
        break;
      case 2:
        detail = "wrong type: op";
        replace(absl::StrCat("\"op\":\"", std::string(1, op), "\""),
                "\"op\":5");
        break;
      default:
        detail = "wrong type: source";
        replace("\"source\":{", "\"source\":[],\"x\":{");
        break;
    }
    return out;
  }

  // Writes `fault` into `tx` (taken by DueFault) before its END, and into
  // `out` what was done. kOvercountingEnd only raises END's counts.
  void WriteFault(Tx& tx, TransactionFault fault, GeneratedTransaction& out) {
    out.fault = fault;
    std::vector<CdcMessage>& messages = *tx.out;
    switch (fault) {
      case TransactionFault::kNone:
        return;
      case TransactionFault::kReplacedEvent: {
        const std::vector<const Event*> candidates = ReplaceableLines(tx);
        const Event& event = *candidates[poison_rng() % candidates.size()];
        CdcMessage& message = messages[event.index];
        message.value = Spoil(*message.value, event.op, out.fault_detail);
        out.fault_record = message;
        // No later transaction touches the line: the database has it, but
        // an engine never saw it, and the expected versions leave it out.
        LineRow& line = lines.at(event.row_id);
        orders.at(line.order_id).RemoveLine(line.id);
        line_pool.Remove(line.id);
        lines.erase(event.row_id);
        return;
      }
      case TransactionFault::kExtraCopy: {
        const Event& event = tx.events[poison_rng() % tx.events.size()];
        CdcMessage copy = messages[event.index];
        copy.value = Spoil(*copy.value, event.op, out.fault_detail);
        out.fault_record = copy;
        // Before the event, or after it (and its tombstone).
        size_t at = event.index;
        if (poison_rng() % 2 == 1) at += event.op == 'd' ? 2 : 1;
        messages.insert(messages.begin() + static_cast<std::ptrdiff_t>(at),
                        std::move(copy));
        return;
      }
      case TransactionFault::kOvercountingEnd: {
        const Table table =
            tx.collections[poison_rng() % tx.collections.size()];
        const int64_t more = 1 + static_cast<int64_t>(poison_rng() % 2);
        tx.end_counts[static_cast<int>(table)] += more;
        tx.end_total += more;
        out.fault_detail =
            absl::StrCat(std::string(table == Table::kOrder ? kOrderTable
                                                            : kLineTable),
                         " counted ", more, " more");
        return;
      }
    }
  }

  // --- database operations ---

  std::string OrderImage(const OrderRow& order,
                         bool note_unavailable = false) const {
    std::string out;
    AppendOrderRow(out, order, note_unavailable);
    return out;
  }

  std::string NewNote() {
    if (!Chance(options.long_note_rate)) {
      return std::string(kShortNotes[Uniform(kShortNotes.size())]);
    }
    const size_t length = 2100 + static_cast<size_t>(Uniform(1901));
    std::string note;
    note.reserve(length + 24);
    while (note.size() < length) {
      if (!note.empty()) note += ' ';
      note += kNoteWords[Uniform(kNoteWords.size())];
      AppendInt(note, Uniform(100000));
    }
    return note;
  }
  static void RefreshImage(LineRow& line) {
    line.image.clear();
    AppendLineRow(line.image, line);
  }

  std::string Aggregate(const OrderRow& order) const {
    std::string out;
    out.reserve(96 + order.lines.size() * 128);
    AppendOrderRow(out, order);
    out.pop_back();  // '}'
    out += ",\"lines\":[";
    bool first = true;
    for (int64_t line_id : order.lines) {
      if (!first) out += ',';
      first = false;
      out += lines.at(line_id).image;
    }
    out += "]}";
    return out;
  }

  int64_t InsertOrder(Tx& tx) {
    OrderRow order;
    order.id = next_order_id++;
    order.customer_id = 1001 + Uniform(500);
    order.order_date = kDateBase + static_cast<int32_t>(Uniform(730));
    order.status = kPlaced;
    order.note = NewNote();
    const std::string image = OrderImage(order);
    const int64_t id = order.id;
    orders.emplace(id, std::move(order));
    order_pool.Add(id);
    tx.touched.insert(id);
    tx.created.insert(id);
    EmitChange(tx, Table::kOrder, 'c', id, &image);
    return id;
  }

  void InsertLine(Tx& tx, int64_t order_id) {
    LineRow line;
    line.id = next_line_id++;
    line.order_id = order_id;
    line.product = static_cast<int>(Uniform(kProducts.size()));
    line.quantity = static_cast<int32_t>(1 + Uniform(10));
    line.price_cents = 99 + Uniform(99901);
    line.status = kEntered;
    RefreshImage(line);
    orders.at(order_id).AddLine(line.id);
    line_pool.Add(line.id);
    tx.touched.insert(order_id);
    const int64_t id = line.id;
    const LineRow& stored = lines.emplace(id, std::move(line)).first->second;
    EmitChange(tx, Table::kLine, 'c', id, &stored.image);
  }

  void UpdateLine(Tx& tx, LineRow& line) {
    RefreshImage(line);
    tx.touched.insert(line.order_id);
    EmitChange(tx, Table::kLine, 'u', line.id, &line.image);
  }

  void PlaceOrder(Tx& tx) {
    const int64_t order_id = InsertOrder(tx);
    const int64_t count = 1 + Uniform(options.max_lines_per_order);
    for (int64_t i = 0; i < count; ++i) InsertLine(tx, order_id);
  }

  void CancelLine(Tx& tx) {
    if (line_pool.empty()) return PlaceOrder(tx);
    int64_t id = line_pool.Pick(rng());
    for (int attempt = 0; attempt < 3 && lines.at(id).status == kCancelled;
         ++attempt) {
      id = line_pool.Pick(rng());
    }
    LineRow& line = lines.at(id);
    line.status = kCancelled;
    UpdateLine(tx, line);
  }

  void UpdateOrderStatus(Tx& tx) {
    if (order_pool.empty()) return PlaceOrder(tx);
    OrderRow& order = orders.at(order_pool.Pick(rng()));
    static constexpr std::array<std::string_view, 3> kStatuses = {
        kPlaced, kShipped, kCancelled};
    std::string_view status = order.status;
    while (status == order.status) status = kStatuses[Uniform(3)];
    order.status = status;
    const bool keep_note = Chance(options.note_unchanged_rate);
    if (!keep_note) order.note = NewNote();
    const std::string image =
        OrderImage(order, keep_note && order.note.size() > kToastThreshold);
    tx.touched.insert(order.id);
    EmitChange(tx, Table::kOrder, 'u', order.id, &image);
    // Shipping or cancelling an order does the same to its open lines.
    if (status == kPlaced) return;
    for (int64_t line_id : order.lines) {
      LineRow& line = lines.at(line_id);
      if (line.status != kEntered) continue;
      line.status = status;
      UpdateLine(tx, line);
    }
  }

  void UpdateQuantity(Tx& tx) {
    if (line_pool.empty()) return PlaceOrder(tx);
    LineRow& line = lines.at(line_pool.Pick(rng()));
    const int32_t quantity = static_cast<int32_t>(1 + Uniform(20));
    line.quantity = quantity == line.quantity ? quantity + 1 : quantity;
    UpdateLine(tx, line);
  }

  void MoveLine(Tx& tx) {
    if (line_pool.empty() || order_pool.size() < 2) return PlaceOrder(tx);
    LineRow& line = lines.at(line_pool.Pick(rng()));
    int64_t target = order_pool.Pick(rng());
    while (target == line.order_id) target = order_pool.Pick(rng());
    orders.at(line.order_id).RemoveLine(line.id);
    tx.touched.insert(line.order_id);  // the order it leaves
    line.order_id = target;
    orders.at(target).AddLine(line.id);
    UpdateLine(tx, line);  // touches the order it joins
  }

  void DeleteOrder(Tx& tx) {
    // An order inserted by this same transaction is not deleted: its
    // expected "version" would be a tombstone for a key never emitted.
    int64_t id = -1;
    for (int attempt = 0; attempt < 4 && !order_pool.empty(); ++attempt) {
      const int64_t candidate = order_pool.Pick(rng());
      if (tx.created.count(candidate) == 0) {
        id = candidate;
        break;
      }
    }
    if (id < 0) return PlaceOrder(tx);
    OrderRow& order = orders.at(id);
    // The FK: the lines go first, each followed by its tombstone.
    for (int64_t line_id : order.lines) {
      EmitChange(tx, Table::kLine, 'd', line_id, nullptr);
      line_pool.Remove(line_id);
      lines.erase(line_id);
    }
    tx.touched.insert(id);
    EmitChange(tx, Table::kOrder, 'd', id, nullptr);
    order_pool.Remove(id);
    orders.erase(id);
  }

  // UPDATE orderline SET id = nextval(...): a delete of the old key and a
  // create of the new one at one LSN.
  void RekeyLine(Tx& tx) {
    if (line_pool.empty()) return PlaceOrder(tx);
    const int64_t old_id = line_pool.Pick(rng());
    auto node = lines.extract(old_id);
    LineRow& line = node.mapped();
    line_pool.Remove(old_id);
    OrderRow& order = orders.at(line.order_id);
    order.RemoveLine(old_id);
    EmitChange(tx, Table::kLine, 'd', old_id, nullptr);
    line.id = next_line_id++;
    RefreshImage(line);
    order.AddLine(line.id);
    line_pool.Add(line.id);
    tx.touched.insert(line.order_id);
    node.key() = line.id;
    const LineRow& stored = lines.insert(std::move(node)).position->second;
    EmitChange(tx, Table::kLine, 'c', stored.id, &stored.image,
               /*same_lsn=*/true);
  }

  void Bulk(Tx& tx) {
    std::vector<int64_t> targets;
    const int64_t wanted = 1 + Uniform(options.bulk_orders);
    for (int64_t i = 0; i < wanted && !order_pool.empty(); ++i) {
      const int64_t id = order_pool.Pick(rng());
      if (std::find(targets.begin(), targets.end(), id) == targets.end()) {
        targets.push_back(id);
      }
    }
    if (targets.empty()) targets.push_back(InsertOrder(tx));
    for (int i = 0; i < options.bulk_lines; ++i) {
      InsertLine(tx, targets[static_cast<size_t>(i) % targets.size()]);
    }
  }

  Op PickOp(bool single_only) {
    const double total = single_only ? single_weight : total_weight;
    double r = Real(rng) * total;
    const int n = single_only ? kSingleOps : static_cast<int>(weights.size());
    for (int i = 0; i < n; ++i) {
      if (r < weights[i]) return static_cast<Op>(i);
      r -= weights[i];
    }
    return Op::kPlaceOrder;  // rounding at the top end
  }

  void RunOp(Tx& tx, Op op) {
    switch (op) {
      case Op::kPlaceOrder:
        return PlaceOrder(tx);
      case Op::kCancelLine:
        return CancelLine(tx);
      case Op::kUpdateOrderStatus:
        return UpdateOrderStatus(tx);
      case Op::kUpdateQuantity:
        return UpdateQuantity(tx);
      case Op::kMoveLine:
        return MoveLine(tx);
      case Op::kDeleteOrder:
        return DeleteOrder(tx);
      case Op::kRekeyLine:
        return RekeyLine(tx);
      case Op::kMultiOrder: {
        const int64_t count = 2 + Uniform(2);
        for (int64_t i = 0; i < count; ++i) RunOp(tx, PickOp(true));
        return;
      }
      case Op::kBulk:
        return Bulk(tx);
      case Op::kEmpty:
        return;
    }
  }

  // --- units ---

  void SnapshotRead(GeneratedTransaction& out) {
    const int64_t snapshot_xid = options.first_xid - 1;
    out.kind = GeneratedTransaction::Kind::kSnapshotRead;
    out.xid = snapshot_xid;
    out.change_events = 1;
    --snapshot_left;

    OrderRow order;
    order.id = next_order_id++;
    order.customer_id = 1001 + Uniform(500);
    order.order_date = kDateBase + static_cast<int32_t>(Uniform(730));
    order.status = kPlaced;
    order.note = NewNote();
    CdcMessage& message = out.messages.emplace_back();
    message.topic = CdcTopic::kPurchaseOrder;
    AppendKey(message.key, Table::kOrder, order.id);
    std::string value;
    if (options.schemas) value += value_head[static_cast<int>(Table::kOrder)];
    value += "{\"before\":null,\"after\":";
    AppendOrderRow(value, order);
    value += ",\"source\":";
    // Every snapshot read carries the snapshot's xid and LSN.
    AppendSource(value, Table::kOrder, options.start_ts_ms,
                 snapshot_left == 0 ? "last" : "true", snapshot_xid,
                 options.first_lsn);
    value += ",\"op\":\"r\",\"ts_ms\":";
    AppendInt(value, options.start_ts_ms + 1 + Uniform(40));
    value += ",\"transaction\":null}";
    if (options.schemas) value += '}';
    message.value = std::move(value);

    if (options.compute_expected) {
      out.expected.push_back({order.id, "", Aggregate(order)});
    }
    const int64_t id = order.id;
    orders.emplace(id, std::move(order));
    order_pool.Add(id);
  }

  void Redeliver(GeneratedTransaction& out) {
    pending_redelivery = false;
    out.kind = GeneratedTransaction::Kind::kRedelivery;
    const size_t count = 1 + fault_rng() % history.size();
    for (size_t i = history.size() - count; i < history.size(); ++i) {
      out.messages.insert(out.messages.end(), history[i].second.begin(),
                          history[i].second.end());
      out.xid = history[i].first;
    }
  }

  void SourceTransaction(GeneratedTransaction& out) {
    out.kind = GeneratedTransaction::Kind::kTransaction;
    xid = xid < options.first_xid ? options.first_xid
                                  : xid + 1 + (Chance(0.05) ? Uniform(5) : 0);
    lsn += 16 + Uniform(600);  // WAL written by other work in between
    commit_ts += 1 + Uniform(40);
    Tx tx;
    tx.xid = xid;
    tx.commit_ts = commit_ts;
    tx.out = &out.messages;

    lsn += 8 + Uniform(48);
    EmitMarker(tx, /*begin=*/true, lsn);
    RunOp(tx, PickOp(false));
    const bool restart =
        tx.events.size() >= 2 && FaultChance(options.restart_inside_rate);
    // A transaction with bad input has exact counts: no restart inside it,
    // no repeated events (drawn all the same), never redelivered.
    const TransactionFault fault = DueFault(tx);
    if (restart && fault == TransactionFault::kNone) {
      RestartInside(tx);
    } else {
      tx.end_total = tx.total_order;
      tx.end_counts = tx.table_events;
    }
    if (fault == TransactionFault::kNone) {
      WriteDuplicates(tx);
    } else {
      WriteFault(tx, fault, out);
    }
    lsn += 16 + Uniform(48);
    EmitMarker(tx, /*begin=*/false, lsn);
    last_commit_lsn = lsn;
    if (fault == TransactionFault::kOvercountingEnd) {
      out.fault_record = out.messages.back();
    }
    ++source_transactions;

    out.xid = xid;
    out.restarted = tx.restarted;
    out.change_events = tx.total_order;
    const std::string tx_id = absl::StrCat(xid);
    // Short of an event (replaced, or counted by END and never written): a
    // correct engine releases what came, marked partial.
    const bool partial = fault == TransactionFault::kReplacedEvent ||
                         fault == TransactionFault::kOvercountingEnd;
    for (int64_t root : tx.touched) {
      if (!options.compute_expected) break;
      auto it = orders.find(root);
      if (it == orders.end()) {
        out.expected.push_back({root, tx_id, std::nullopt, partial});
      } else {
        out.expected.push_back({root, tx_id, Aggregate(it->second), partial});
      }
    }

    if (options.redelivery_rate > 0) {
      if (fault == TransactionFault::kNone) {
        history.emplace_back(xid, out.messages);
        if (history.size() > kRedeliveryHistory) history.pop_front();
      }
      pending_redelivery = FaultChance(options.redelivery_rate);
    }
  }

  // See CdcGenerator::HugeTransaction. Log positions advance as in
  // SourceTransaction; no fault is drawn into it.
  void HugeTransaction(int64_t order_count, int lines_per_order,
                       GeneratedTransaction& out) {
    pending_redelivery = false;
    out.kind = GeneratedTransaction::Kind::kTransaction;
    xid = xid < options.first_xid ? options.first_xid
                                  : xid + 1 + (Chance(0.05) ? Uniform(5) : 0);
    lsn += 16 + Uniform(600);
    commit_ts += 1 + Uniform(40);
    Tx tx;
    tx.xid = xid;
    tx.commit_ts = commit_ts;
    tx.out = &out.messages;
    const int64_t rows = order_count * (1 + int64_t{lines_per_order});
    out.messages.reserve(static_cast<size_t>(rows + 2));  // no deletes
    tx.events.reserve(static_cast<size_t>(rows));

    lsn += 8 + Uniform(48);
    EmitMarker(tx, /*begin=*/true, lsn);
    for (int64_t o = 0; o < order_count; ++o) {
      const int64_t order_id = InsertOrder(tx);
      for (int l = 0; l < lines_per_order; ++l) InsertLine(tx, order_id);
    }
    tx.end_total = tx.total_order;
    tx.end_counts = tx.table_events;
    // EmitChange drew duplicates; none is written here.
    tx.duplicates.clear();
    lsn += 16 + Uniform(48);
    EmitMarker(tx, /*begin=*/false, lsn);
    last_commit_lsn = lsn;
    ++source_transactions;

    out.xid = xid;
    out.change_events = tx.total_order;
    if (options.compute_expected) {
      const std::string tx_id = absl::StrCat(xid);
      out.expected.reserve(tx.touched.size());
      for (int64_t root : tx.touched) {
        out.expected.push_back({root, tx_id, Aggregate(orders.at(root))});
      }
    }
  }

  GeneratorOptions options;
  std::array<std::string, 3> topics;
  std::mt19937_64 rng;        // the database's story
  std::mt19937_64 fault_rng;  // duplicates, redeliveries, restarts only
  std::mt19937_64 poison_rng;  // which event, how spoiled (TransactionFault)
  std::array<double, 10> weights{};
  double total_weight = 0;
  double single_weight = 0;

  // Constant text, precomputed.
  std::string source_head;
  std::string source_db;
  std::array<std::string, 2> source_tail;
  std::array<std::string, 2> key_head;    // schemas only
  std::array<std::string, 2> value_head;  // schemas only
  std::string marker_key_head;            // schemas only
  std::string marker_value_head;          // schemas only

  // The database.
  std::unordered_map<int64_t, OrderRow> orders;
  std::unordered_map<int64_t, LineRow> lines;
  IdPool order_pool;
  IdPool line_pool;
  int64_t next_order_id = 1001;
  int64_t next_line_id = 1;

  // The source log.
  int64_t xid;
  int64_t lsn;
  int64_t commit_ts;
  int64_t last_commit_lsn = -1;  // none yet
  int snapshot_left;

  // Faults armed by InjectFault, by not_before (source transactions
  // generated before the fault may be written).
  struct Armed {
    TransactionFault fault = TransactionFault::kNone;
    int64_t not_before = 0;
  };
  std::vector<Armed> armed;
  int64_t source_transactions = 0;

  // Redeliveries: (xid, messages) of the latest transactions.
  std::deque<std::pair<int64_t, std::vector<CdcMessage>>> history;
  bool pending_redelivery = false;
};

absl::StatusOr<std::unique_ptr<CdcGenerator>> CdcGenerator::Create(
    GeneratorOptions options) {
  if (options.topic_prefix.empty()) {
    return absl::InvalidArgumentError("topic prefix must not be empty");
  }
  if (options.max_lines_per_order < 1) {
    return absl::InvalidArgumentError("max_lines_per_order must be >= 1");
  }
  if (options.bulk_lines < 1 || options.bulk_orders < 1) {
    return absl::InvalidArgumentError(
        "bulk_lines and bulk_orders must be >= 1");
  }
  if (options.snapshot_orders < 0) {
    return absl::InvalidArgumentError("snapshot_orders must be >= 0");
  }
  for (double rate : {options.duplicate_rate, options.redelivery_rate,
                      options.restart_inside_rate, options.long_note_rate,
                      options.note_unchanged_rate}) {
    if (!(rate >= 0 && rate <= 1)) {
      return absl::InvalidArgumentError(
          "duplicate, redelivery, restart and note rates must be within "
          "[0, 1]");
    }
  }
  if (options.first_xid < 2 || options.first_lsn < 1) {
    return absl::InvalidArgumentError("first_xid must be >= 2, first_lsn >= 1");
  }
  const OperationMix& m = options.mix;
  const std::array<double, 10> weights = Weights(m);
  double total = 0;
  double single = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (!(weights[i] >= 0) || std::isinf(weights[i])) {
      return absl::InvalidArgumentError(
          "operation weights must be finite and >= 0");
    }
    total += weights[i];
    if (i < kSingleOps) single += weights[i];
  }
  if (total <= 0) {
    return absl::InvalidArgumentError("operation mix has no positive weight");
  }
  if (m.multi_order > 0 && single <= 0) {
    return absl::InvalidArgumentError(
        "multi_order needs a positive weight for a single operation");
  }
  return std::unique_ptr<CdcGenerator>(
      new CdcGenerator(std::make_unique<State>(std::move(options))));
}

CdcGenerator::CdcGenerator(std::unique_ptr<State> state)
    : state_(std::move(state)) {}

CdcGenerator::~CdcGenerator() = default;

absl::Status CdcGenerator::NextTransaction(GeneratedTransaction& out) {
  out.Clear();
  if (state_->snapshot_left > 0) {
    state_->SnapshotRead(out);
  } else if (state_->pending_redelivery && !state_->history.empty()) {
    state_->Redeliver(out);
  } else {
    state_->SourceTransaction(out);
  }
  return absl::OkStatus();
}

absl::Status CdcGenerator::HugeTransaction(int64_t orders, int lines_per_order,
                                           GeneratedTransaction& out) {
  if (orders < 1 || lines_per_order < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a huge transaction needs orders >= 1 and lines_per_order >= 0, got ",
        orders, " and ", lines_per_order));
  }
  if (state_->snapshot_left > 0) {
    return absl::FailedPreconditionError(
        "a huge transaction follows the snapshot reads; they are pending");
  }
  out.Clear();
  state_->HugeTransaction(orders, lines_per_order, out);
  return absl::OkStatus();
}

void CdcGenerator::InjectFault(TransactionFault fault,
                               int64_t after_transactions) {
  if (fault == TransactionFault::kNone) return;
  State::Armed armed{fault, state_->source_transactions +
                                std::max<int64_t>(0, after_transactions)};
  auto& list = state_->armed;
  const auto earlier = [](const State::Armed& a, const State::Armed& b) {
    return a.not_before < b.not_before;
  };
  list.insert(std::upper_bound(list.begin(), list.end(), armed, earlier),
              armed);
}

int64_t CdcGenerator::faults_armed() const {
  return static_cast<int64_t>(state_->armed.size());
}

const GeneratorOptions& CdcGenerator::options() const {
  return state_->options;
}

const std::string& CdcGenerator::topic(CdcTopic topic) const {
  return state_->topics[static_cast<int>(topic)];
}

std::map<int64_t, std::string> CdcGenerator::CurrentAggregates() const {
  std::map<int64_t, std::string> aggregates;
  for (const auto& [id, order] : state_->orders) {
    aggregates.emplace(id, state_->Aggregate(order));
  }
  return aggregates;
}

int64_t CdcGenerator::live_orders() const {
  return static_cast<int64_t>(state_->orders.size());
}

int64_t CdcGenerator::live_lines() const {
  return static_cast<int64_t>(state_->lines.size());
}

}  // namespace tributary::cdcgen
