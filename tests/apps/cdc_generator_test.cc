// Tests of the CDC generator (apps/cdc-gen): reproducible bytes, Debezium's
// exact message shapes and PostgreSQL traps, the expected aggregate versions
// against the independent ReferenceModel, faults, and producing to the mock
// cluster with Kafka's murmur2 partitioning.
#include "apps/cdc-gen/cdc_generator.h"

#include <librdkafka/rdkafka.h>
#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "apps/cdc-gen/cdc_producer.h"
#include "apps/cdc-gen/expected_version.h"
#include "apps/cdc-gen/reference_model.h"
#include "engine/internal/rdkafka_handles.h"
#include "engine/mock_cluster.h"
#include "gtest/gtest.h"

namespace tributary::cdcgen {
namespace {

using Kind = GeneratedTransaction::Kind;
using simdjson::dom::element;
using simdjson::dom::object;

std::vector<GeneratedTransaction> Generate(const GeneratorOptions& options,
                                           int units) {
  auto generator = CdcGenerator::Create(options);
  EXPECT_TRUE(generator.ok()) << generator.status();
  std::vector<GeneratedTransaction> out(static_cast<size_t>(units));
  for (auto& unit : out) {
    EXPECT_TRUE((*generator)->NextTransaction(unit).ok());
  }
  return out;
}

std::string Str(simdjson::simdjson_result<element> value) {
  return std::string(std::string_view(value));
}

std::vector<std::string> Keys(object o) {
  std::vector<std::string> keys;
  for (auto field : o) keys.emplace_back(field.key);
  return keys;
}

// Parses `text`; with `schemas`, checks the {"schema":{...},"payload":...}
// wrapper and returns the payload.
element Payload(simdjson::dom::parser& parser, const std::string& text,
                bool schemas) {
  element doc = parser.parse(text);
  if (!schemas) return doc;
  object wrapper = doc;
  EXPECT_EQ(Keys(wrapper), (std::vector<std::string>{"schema", "payload"}));
  object schema = wrapper["schema"];
  EXPECT_EQ(std::string_view(schema["type"]), "struct");
  return wrapper["payload"];
}

int64_t LsnOf(std::string_view id) {
  const size_t colon = id.find(':');
  EXPECT_NE(colon, std::string_view::npos) << id;
  return std::stoll(std::string(id.substr(colon + 1)));
}

std::string XidOf(std::string_view id) {
  return std::string(id.substr(0, id.find(':')));
}

TEST(DecimalToBase64, MatchesJavaBigIntegerBytes) {
  EXPECT_EQ(DecimalToBase64(1250), "BOI=");  // 12.50
  EXPECT_EQ(DecimalToBase64(200), "AMg=");   // 0x00C8: sign byte kept
  EXPECT_EQ(DecimalToBase64(0), "AA==");
  EXPECT_EQ(DecimalToBase64(-1), "/w==");
  EXPECT_EQ(DecimalToBase64(128), "AIA=");
  EXPECT_EQ(DecimalToBase64(99999), "AYaf");  // 0x01869F
  EXPECT_EQ(DecimalToBase64(-129), "/38=");   // 0xFF7F
}

TEST(CdcGenerator, RejectsBadOptions) {
  GeneratorOptions options;
  options.max_lines_per_order = 0;
  EXPECT_FALSE(CdcGenerator::Create(options).ok());
  options = {};
  options.mix = OperationMix{0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_FALSE(CdcGenerator::Create(options).ok());
  options = {};
  options.duplicate_rate = 1.5;
  EXPECT_FALSE(CdcGenerator::Create(options).ok());
  options = {};
  options.restart_inside_rate = -0.1;
  EXPECT_FALSE(CdcGenerator::Create(options).ok());
  options = {};
  options.note_unchanged_rate = 2;
  EXPECT_FALSE(CdcGenerator::Create(options).ok());
}

TEST(CdcGenerator, SameSeedSameBytes) {
  GeneratorOptions options;
  options.seed = 42;
  options.schemas = true;
  options.duplicate_rate = 0.1;
  options.redelivery_rate = 0.05;
  options.snapshot_orders = 5;
  auto a = Generate(options, 400);
  auto b = Generate(options, 400);
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].messages.size(), b[i].messages.size()) << i;
    for (size_t j = 0; j < a[i].messages.size(); ++j) {
      EXPECT_EQ(a[i].messages[j].key, b[i].messages[j].key);
      EXPECT_EQ(a[i].messages[j].value, b[i].messages[j].value);
    }
    EXPECT_EQ(a[i].expected, b[i].expected);
  }
  options.seed = 43;
  auto c = Generate(options, 400);
  bool differ = false;
  for (size_t i = 5; i < a.size() && !differ; ++i) {
    differ = a[i].messages.size() != c[i].messages.size() ||
             a[i].messages[1].value != c[i].messages[1].value;
  }
  EXPECT_TRUE(differ);
}

TEST(CdcGenerator, TopicNames) {
  GeneratorOptions options;
  EXPECT_EQ(options.TopicName(CdcTopic::kTransaction), "dbserver1.transaction");
  EXPECT_EQ(options.TopicName(CdcTopic::kPurchaseOrder),
            "dbserver1.inventory.purchaseorder");
  EXPECT_EQ(options.TopicName(CdcTopic::kOrderLine),
            "dbserver1.inventory.orderline");
  EXPECT_EQ(DataCollection(CdcTopic::kOrderLine), "inventory.orderline");
}

// Every message of every transaction has Debezium's exact PostgreSQL shape.
class ShapeTest : public ::testing::TestWithParam<bool> {};

TEST_P(ShapeTest, MessagesHaveDebeziumShape) {
  const bool schemas = GetParam();
  GeneratorOptions options;
  options.seed = 7;
  options.schemas = schemas;
  options.duplicate_rate = 0.05;
  options.mix.bulk = 1;
  options.bulk_lines = 50;
  options.mix.empty = 3;
  auto units = Generate(options, 600);

  simdjson::dom::parser parser;
  simdjson::dom::parser key_parser;
  int64_t last_xid = 0;
  int empty_transactions = 0;
  int duplicates = 0;
  int rekeys = 0;
  std::set<char> ops_seen;
  for (const GeneratedTransaction& unit : units) {
    ASSERT_EQ(unit.kind, Kind::kTransaction);
    ASSERT_GE(unit.messages.size(), 2u);
    EXPECT_GT(unit.xid, last_xid);
    last_xid = unit.xid;
    const std::string xid = std::to_string(unit.xid);

    // BEGIN.
    const CdcMessage& begin_message = unit.messages.front();
    ASSERT_EQ(begin_message.topic, CdcTopic::kTransaction);
    object begin = Payload(parser, *begin_message.value, schemas);
    EXPECT_EQ(Keys(begin),
              (std::vector<std::string>{"status", "id", "event_count",
                                        "data_collections", "ts_ms"}));
    EXPECT_EQ(std::string_view(begin["status"]), "BEGIN");
    EXPECT_TRUE(begin["event_count"].is_null());
    EXPECT_TRUE(begin["data_collections"].is_null());
    const std::string begin_id = Str(begin["id"]);
    EXPECT_EQ(XidOf(begin_id), xid);
    {
      object key = Payload(key_parser, begin_message.key, schemas);
      EXPECT_EQ(Keys(key), std::vector<std::string>{"id"});
      EXPECT_EQ(std::string_view(key["id"]), begin_id);
    }

    // Change events.
    std::set<std::string> seen_identities;  // lsn/op/key
    std::set<std::string> ids = {begin_id};
    std::map<std::string, int64_t> per_table;  // data collection -> count
    std::vector<std::string> collections_in_order;
    int64_t distinct = 0;
    int64_t last_lsn = LsnOf(begin_id);
    std::string last_op;
    std::string last_table;
    std::vector<std::string> pending_tombstones;  // keys of deletes
    for (size_t i = 1; i + 1 < unit.messages.size(); ++i) {
      const CdcMessage& message = unit.messages[i];
      ASSERT_NE(message.topic, CdcTopic::kTransaction);
      const std::string table = message.topic == CdcTopic::kPurchaseOrder
                                    ? "purchaseorder"
                                    : "orderline";
      if (!message.value) {  // tombstone: right after its delete (or a dup)
        ASSERT_FALSE(pending_tombstones.empty());
        EXPECT_EQ(message.key, pending_tombstones.back());
        pending_tombstones.pop_back();
        continue;
      }
      object envelope = Payload(parser, *message.value, schemas);
      EXPECT_EQ(Keys(envelope),
                (std::vector<std::string>{"before", "after", "source", "op",
                                          "ts_ms", "transaction"}));
      object source = envelope["source"];
      EXPECT_EQ(Keys(source),
                (std::vector<std::string>{
                    "version", "connector", "name", "ts_ms", "snapshot", "db",
                    "sequence", "schema", "table", "txId", "lsn", "xmin"}));
      EXPECT_EQ(std::string_view(source["connector"]), "postgresql");
      EXPECT_EQ(std::string_view(source["db"]), "orderdb");
      EXPECT_EQ(std::string_view(source["schema"]), "inventory");
      EXPECT_EQ(std::string_view(source["name"]), "dbserver1");
      EXPECT_EQ(std::string_view(source["snapshot"]), "false");
      EXPECT_EQ(std::string_view(source["table"]), table);
      EXPECT_EQ(int64_t(source["txId"]), unit.xid);
      const int64_t lsn = int64_t(source["lsn"]);
      std::string_view sequence = source["sequence"];
      EXPECT_NE(sequence.find("\"" + std::to_string(lsn) + "\"]"),
                std::string_view::npos)
          << sequence;
      object block = envelope["transaction"];
      EXPECT_EQ(Keys(block),
                (std::vector<std::string>{"id", "total_order",
                                          "data_collection_order"}));
      const std::string id = Str(block["id"]);
      EXPECT_EQ(id, xid + ":" + std::to_string(lsn));

      const std::string op = Str(envelope["op"]);
      ops_seen.insert(op[0]);
      object key = Payload(key_parser, message.key, schemas);
      EXPECT_EQ(Keys(key), std::vector<std::string>{"id"});
      const int64_t key_id = int64_t(key["id"]);
      if (op == "d") {
        object before = envelope["before"];
        EXPECT_EQ(Keys(before), std::vector<std::string>{"id"});
        EXPECT_EQ(int64_t(before["id"]), key_id);
        EXPECT_TRUE(envelope["after"].is_null());
      } else {
        EXPECT_TRUE(op == "c" || op == "u") << op;
        EXPECT_TRUE(envelope["before"].is_null());  // default replica identity
        object after = envelope["after"];
        EXPECT_EQ(int64_t(after["id"]), key_id);
        if (table == "orderline") {
          EXPECT_EQ(Keys(after),
                    (std::vector<std::string>{"id", "order_id", "product",
                                              "quantity", "price", "status"}));
        } else {
          EXPECT_EQ(Keys(after),
                    (std::vector<std::string>{"id", "customer_id", "order_date",
                                              "status", "note"}));
        }
      }

      const std::string identity =
          std::to_string(lsn) + "/" + table + "/" + op + "/" + message.key;
      if (!seen_identities.insert(identity).second) {  // a duplicate
        ++duplicates;
        continue;
      }
      if (op == "d") pending_tombstones.push_back(message.key);
      // Each distinct event: a new id, later LSN, counters 1-based per tx;
      // except a primary-key update's create, at its delete's LSN.
      if (lsn == last_lsn) {
        EXPECT_EQ(op, "c");
        EXPECT_EQ(last_op, "d");
        EXPECT_EQ(table, "orderline");
        EXPECT_EQ(last_table, "orderline");
        ++rekeys;
      } else {
        EXPECT_TRUE(ids.insert(id).second) << id;
        EXPECT_GT(lsn, last_lsn);
      }
      last_lsn = lsn;
      last_op = op;
      last_table = table;
      ++distinct;
      EXPECT_EQ(int64_t(block["total_order"]), distinct);
      const std::string collection = "inventory." + table;
      if (per_table[collection]++ == 0)
        collections_in_order.push_back(collection);
      EXPECT_EQ(int64_t(block["data_collection_order"]), per_table[collection]);
    }
    EXPECT_TRUE(pending_tombstones.empty());

    // END.
    const CdcMessage& end_message = unit.messages.back();
    ASSERT_EQ(end_message.topic, CdcTopic::kTransaction);
    object end = Payload(parser, *end_message.value, schemas);
    EXPECT_EQ(Keys(end),
              (std::vector<std::string>{"status", "id", "event_count",
                                        "data_collections", "ts_ms"}));
    EXPECT_EQ(std::string_view(end["status"]), "END");
    const std::string end_id = Str(end["id"]);
    EXPECT_EQ(XidOf(end_id), xid);
    EXPECT_GT(LsnOf(end_id), last_lsn);
    EXPECT_TRUE(ids.insert(end_id).second) << "END id repeats another id";
    EXPECT_EQ(int64_t(end["event_count"]), distinct);
    EXPECT_EQ(unit.change_events, distinct);
    simdjson::dom::array collections = end["data_collections"];
    std::vector<std::string> names;
    for (object entry : collections) {
      EXPECT_EQ(Keys(entry),
                (std::vector<std::string>{"data_collection", "event_count"}));
      const std::string name = Str(entry["data_collection"]);
      names.push_back(name);
      EXPECT_EQ(int64_t(entry["event_count"]), per_table[name]) << name;
    }
    EXPECT_EQ(names, collections_in_order);
    if (distinct == 0) {
      ++empty_transactions;
      EXPECT_EQ(collections.size(), 0u);
      EXPECT_TRUE(unit.expected.empty());
    }
  }
  EXPECT_GT(empty_transactions, 0);
  EXPECT_GT(duplicates, 0);
  EXPECT_GT(rekeys, 0);
  EXPECT_EQ(ops_seen, (std::set<char>{'c', 'u', 'd'}));
}

INSTANTIATE_TEST_SUITE_P(SchemasOnAndOff, ShapeTest, ::testing::Bool());

// The line-to-order map as the reference would know it: line id -> order id.
void TrackLines(simdjson::dom::parser& parser, const GeneratedTransaction& unit,
                std::map<int64_t, int64_t>& line_order) {
  for (const CdcMessage& message : unit.messages) {
    if (message.topic != CdcTopic::kOrderLine || !message.value) continue;
    object envelope = parser.parse(*message.value);
    element after = envelope["after"];
    if (after.is_null()) {
      line_order.erase(int64_t(envelope["before"]["id"]));
    } else {
      line_order[int64_t(after["id"])] = int64_t(after["order_id"]);
    }
  }
}

TEST(CdcGenerator, MoveLineYieldsVersionsForBothOrders) {
  GeneratorOptions options;
  options.seed = 11;
  options.mix = {.place_order = 1,
                 .cancel_line = 0,
                 .update_order_status = 0,
                 .update_quantity = 0,
                 .move_line = 1,
                 .delete_order = 0,
                 .multi_order = 0,
                 .bulk = 0,
                 .empty = 0,
                 .rekey = 0};
  auto units = Generate(options, 300);
  simdjson::dom::parser parser;
  std::map<int64_t, int64_t> line_order;
  int moves = 0;
  for (const GeneratedTransaction& unit : units) {
    if (unit.messages.size() == 3 &&
        unit.messages[1].topic == CdcTopic::kOrderLine) {
      object envelope = parser.parse(*unit.messages[1].value);
      ASSERT_EQ(std::string_view(envelope["op"]), "u");
      const int64_t line = int64_t(envelope["after"]["id"]);
      const int64_t to = int64_t(envelope["after"]["order_id"]);
      const int64_t from = line_order.at(line);
      ASSERT_NE(from, to);
      ASSERT_EQ(unit.expected.size(), 2u);
      const std::set<int64_t> roots = {unit.expected[0].root_id,
                                       unit.expected[1].root_id};
      EXPECT_EQ(roots, (std::set<int64_t>{from, to}));
      for (const ExpectedVersion& version : unit.expected) {
        ASSERT_TRUE(version.aggregate.has_value());
        EXPECT_EQ(version.tx_id, std::to_string(unit.xid));
        object aggregate = parser.parse(*version.aggregate);
        bool has_line = false;
        for (object l : simdjson::dom::array(aggregate["lines"])) {
          has_line |= int64_t(l["id"]) == line;
        }
        EXPECT_EQ(has_line, version.root_id == to);
      }
      ++moves;
    }
    TrackLines(parser, unit, line_order);
  }
  EXPECT_GT(moves, 50);
}

TEST(CdcGenerator, DeleteOrderDeletesLinesFirstAndYieldsTombstone) {
  GeneratorOptions options;
  options.seed = 12;
  options.mix = {.place_order = 2,
                 .cancel_line = 0,
                 .update_order_status = 0,
                 .update_quantity = 0,
                 .move_line = 0,
                 .delete_order = 1,
                 .multi_order = 0,
                 .bulk = 0,
                 .empty = 0,
                 .rekey = 0};
  auto units = Generate(options, 300);
  simdjson::dom::parser parser;
  std::map<int64_t, int64_t> line_order;
  int deletes = 0;
  for (const GeneratedTransaction& unit : units) {
    const CdcMessage& last_event = unit.messages[unit.messages.size() - 2];
    if (last_event.topic == CdcTopic::kPurchaseOrder && !last_event.value) {
      // ... d(line), tombstone, ..., d(order), tombstone, END
      const CdcMessage& order_delete = unit.messages[unit.messages.size() - 3];
      object envelope = parser.parse(*order_delete.value);
      ASSERT_EQ(std::string_view(envelope["op"]), "d");
      const int64_t order = int64_t(envelope["before"]["id"]);
      std::set<int64_t> lines_of_order;
      for (const auto& [line, owner] : line_order) {
        if (owner == order) lines_of_order.insert(line);
      }
      std::set<int64_t> deleted_lines;
      for (size_t i = 1; i + 3 < unit.messages.size(); i += 2) {
        ASSERT_EQ(unit.messages[i].topic, CdcTopic::kOrderLine);
        object line_delete = parser.parse(*unit.messages[i].value);
        EXPECT_EQ(std::string_view(line_delete["op"]), "d");
        deleted_lines.insert(int64_t(line_delete["before"]["id"]));
        EXPECT_FALSE(unit.messages[i + 1].value.has_value());  // tombstone
        EXPECT_EQ(unit.messages[i + 1].key, unit.messages[i].key);
      }
      EXPECT_EQ(deleted_lines, lines_of_order);
      ASSERT_EQ(unit.expected.size(), 1u);
      EXPECT_EQ(unit.expected[0].root_id, order);
      EXPECT_FALSE(unit.expected[0].aggregate.has_value());
      ++deletes;
    }
    TrackLines(parser, unit, line_order);
  }
  EXPECT_GT(deletes, 50);
}

TEST(CdcGenerator, FaultsAddNoExpectedVersions) {
  GeneratorOptions clean;
  clean.seed = 5;
  GeneratorOptions faulty = clean;
  faulty.duplicate_rate = 0.2;
  faulty.redelivery_rate = 0.2;
  faulty.restart_inside_rate = 0.2;
  auto a = Generate(clean, 300);
  auto b = Generate(faulty, 400);
  std::vector<ExpectedVersion> expected_a;
  std::vector<ExpectedVersion> expected_b;
  for (const auto& unit : a) {
    expected_a.insert(expected_a.end(), unit.expected.begin(),
                      unit.expected.end());
  }
  int redeliveries = 0;
  size_t transactions = 0;
  int64_t extra_messages = 0;
  int restarted = 0;
  std::map<int64_t, const GeneratedTransaction*> by_xid;
  for (const auto& unit : b) {
    if (unit.kind == Kind::kRedelivery) {
      ++redeliveries;
      EXPECT_TRUE(unit.expected.empty());
      EXPECT_EQ(unit.change_events, 0);
      // The repeated transactions end with the latest one, byte for byte.
      const GeneratedTransaction* original = by_xid.at(unit.xid);
      ASSERT_GE(unit.messages.size(), original->messages.size());
      const size_t offset = unit.messages.size() - original->messages.size();
      for (size_t i = 0; i < original->messages.size(); ++i) {
        EXPECT_EQ(unit.messages[offset + i].key, original->messages[i].key);
        EXPECT_EQ(unit.messages[offset + i].value, original->messages[i].value);
      }
      continue;
    }
    if (transactions == a.size()) break;
    by_xid[unit.xid] = &unit;
    restarted += unit.restarted ? 1 : 0;
    extra_messages += static_cast<int64_t>(unit.messages.size()) -
                      static_cast<int64_t>(a[transactions].messages.size());
    ++transactions;
    expected_b.insert(expected_b.end(), unit.expected.begin(),
                      unit.expected.end());
  }
  EXPECT_GT(redeliveries, 10);
  EXPECT_GT(extra_messages, 20);  // duplicates and restarts inside them
  EXPECT_GT(restarted, 10);
  EXPECT_EQ(expected_a, expected_b);
}

// What CheckAgainstReference's replay saw.
struct ReplayCounts {
  int64_t snapshot_reads = 0;
  int64_t repeats = 0;
  int64_t redeliveries = 0;
  int64_t restarts = 0;
  int64_t undercounting_ends = 0;
  int64_t shared_lsn_events = 0;
  int64_t placeholders_filled = 0;
  int64_t placeholders_unresolved = 0;
  int64_t bad_events = 0;
  int64_t partial_transactions = 0;
};

// Feeds `message` to `replay` as an engine sees it, appending the versions
// it emits to `out`.
void ReplayMessage(ReferenceReplay& replay, const CdcMessage& message,
                   std::vector<ExpectedVersion>& out) {
  absl::StatusOr<std::vector<ExpectedVersion>> versions;
  if (message.topic == CdcTopic::kTransaction) {
    ASSERT_TRUE(message.value.has_value());
    versions = replay.OnMarker(*message.value);
  } else {
    versions = replay.OnChange(
        message.key,
        message.value ? std::optional<std::string_view>(*message.value) : std::nullopt);
  }
  ASSERT_TRUE(versions.ok()) << versions.status();
  out.insert(out.end(), versions->begin(), versions->end());
}

// Replays the generated stream the way an engine sees it in commit order
// (BEGIN, events, END; snapshot reads alone) through ReferenceReplay (which
// deduplicates by identity, survives a second BEGIN, does not trust END's
// counts and skips redelivered transactions) and the independent
// ReferenceModel; its versions must equal the generator's.
// `arm`, when given, is called before each unit (to inject faults).
void CheckAgainstReference(
    const GeneratorOptions& options, int units_count,
    ReplayCounts* counts = nullptr,
    const std::function<void(CdcGenerator&, int unit)>& arm = nullptr) {
  auto generator = CdcGenerator::Create(options);
  ASSERT_TRUE(generator.ok());
  ReferenceReplay replay;
  std::vector<ExpectedVersion> from_generator;
  std::vector<ExpectedVersion> from_reference;
  int64_t snapshot_reads = 0;
  GeneratedTransaction unit;
  for (int u = 0; u < units_count; ++u) {
    if (arm) arm(**generator, u);
    ASSERT_TRUE((*generator)->NextTransaction(unit).ok());
    from_generator.insert(from_generator.end(), unit.expected.begin(),
                          unit.expected.end());
    for (const CdcMessage& message : unit.messages) {
      if (message.topic != CdcTopic::kTransaction && unit.kind == Kind::kSnapshotRead) {
        ++snapshot_reads;
      }
      ASSERT_NO_FATAL_FAILURE(ReplayMessage(replay, message, from_reference));
    }
  }
  const ReferenceModel& model = replay.model();
  if (counts != nullptr) {
    *counts = {snapshot_reads,
               replay.repeats_dropped(),
               replay.redeliveries_skipped(),
               replay.restarts_seen(),
               replay.undercounting_ends(),
               replay.shared_lsn_events(),
               model.placeholders_filled(),
               model.placeholders_unresolved(),
               replay.bad_events(),
               replay.partial_transactions()};
  }
  EXPECT_EQ(snapshot_reads, options.snapshot_orders);
  ASSERT_EQ(from_generator.size(), from_reference.size());
  for (size_t i = 0; i < from_generator.size(); ++i) {
    const ExpectedVersion& g = from_generator[i];
    const ExpectedVersion& r = from_reference[i];
    ASSERT_EQ(g.root_id, r.root_id) << i;
    ASSERT_EQ(g.tx_id, r.tx_id) << i;
    ASSERT_EQ(g.partial, r.partial) << i << " tx " << g.tx_id;
    ASSERT_EQ(g.aggregate.has_value(), r.aggregate.has_value()) << i;
    if (g.aggregate) {
      auto same = JsonEquivalent(*g.aggregate, *r.aggregate);
      ASSERT_TRUE(same.ok()) << same.status();
      ASSERT_TRUE(*same) << *g.aggregate << "\n vs\n" << *r.aggregate;
    }
  }
  // The expected versions replayed in order give the final state.
  std::map<int64_t, std::string> replayed;
  for (const ExpectedVersion& version : from_generator) {
    if (version.aggregate) {
      replayed[version.root_id] = *version.aggregate;
    } else {
      replayed.erase(version.root_id);
    }
  }
  const std::map<int64_t, std::string> live = (*generator)->CurrentAggregates();
  const std::map<int64_t, std::string> reference = model.CurrentAggregates();
  EXPECT_EQ(replayed, live);
  ASSERT_EQ(reference.size(), live.size());
  for (const auto& [id, aggregate] : live) {
    auto same = JsonEquivalent(aggregate, reference.at(id));
    ASSERT_TRUE(same.ok());
    EXPECT_TRUE(*same) << id;
  }
  EXPECT_EQ(static_cast<int64_t>(model.root_count()),
            (*generator)->live_orders());
  EXPECT_EQ(static_cast<int64_t>(model.child_count()),
            (*generator)->live_lines());
}

TEST(ReferenceModel, AgreesWithGeneratorBare) {
  GeneratorOptions options;
  options.seed = 21;
  options.snapshot_orders = 25;
  options.duplicate_rate = 0.05;
  options.redelivery_rate = 0.05;
  options.mix.bulk = 0.5;
  options.bulk_lines = 300;
  CheckAgainstReference(options, 3000);
}

TEST(ReferenceModel, AgreesWithGeneratorSchemas) {
  GeneratorOptions options;
  options.seed = 22;
  options.schemas = true;
  options.snapshot_orders = 3;
  options.duplicate_rate = 0.05;
  options.redelivery_rate = 0.05;
  CheckAgainstReference(options, 800);
}

// High rates of primary-key updates, restarts inside transactions and
// unchanged long notes: the generator's versions equal the reference's, and
// the replay saw each behaviour.
class NewBehavioursTest : public ::testing::TestWithParam<bool> {};

TEST_P(NewBehavioursTest, ReferenceAgreesWithGenerator) {
  GeneratorOptions options;
  options.seed = 23;
  options.schemas = GetParam();
  options.snapshot_orders = 5;
  options.duplicate_rate = 0.05;
  options.redelivery_rate = 0.05;
  options.mix.rekey = 20;
  options.restart_inside_rate = 0.3;
  options.long_note_rate = 0.5;
  options.note_unchanged_rate = 0.8;
  options.mix.bulk = 0.5;
  options.bulk_lines = 200;
  ReplayCounts counts;
  ASSERT_NO_FATAL_FAILURE(CheckAgainstReference(options, 1500, &counts));
  EXPECT_GT(counts.shared_lsn_events, 100);  // rekeys' creates
  EXPECT_GT(counts.restarts, 100);
  EXPECT_GT(counts.undercounting_ends, 50);
  EXPECT_GT(counts.repeats, counts.restarts);  // j..k written twice
  EXPECT_GT(counts.redeliveries, 10);
  EXPECT_GT(counts.placeholders_filled, 20);
  EXPECT_EQ(counts.placeholders_unresolved, 0);
}

INSTANTIATE_TEST_SUITE_P(SchemasOnAndOff, NewBehavioursTest,
                         ::testing::Bool());

// The change events (values, in order) of a source transaction's messages.
std::vector<std::string> ChangeEvents(const GeneratedTransaction& unit) {
  std::vector<std::string> out;
  for (const CdcMessage& m : unit.messages) {
    if (m.topic != CdcTopic::kTransaction && m.value) out.push_back(*m.value);
  }
  return out;
}

// Bad input inside transactions on request (TransactionFault), with every
// other fault on: each fault goes to the first transaction changing both
// tables once its turn has come; the spoiled event does not decode but keeps
// its transaction block; the transaction has exact counts (no restart, no
// repeat) and is never redelivered; a replaced line is never touched again.
class TransactionFaultTest : public ::testing::TestWithParam<bool> {};

TEST_P(TransactionFaultTest, EachFaultLandsInATwoTableTransactionAsDocumented) {
  GeneratorOptions options;
  options.seed = 31;
  options.schemas = GetParam();
  options.duplicate_rate = 0.3;
  options.redelivery_rate = 0.3;
  options.restart_inside_rate = 0.3;
  auto generator = CdcGenerator::Create(options);
  ASSERT_TRUE(generator.ok());
  const std::vector<TransactionFault> kinds = {
      TransactionFault::kReplacedEvent, TransactionFault::kExtraCopy,
      TransactionFault::kOvercountingEnd};
  for (int round = 0; round < 20; ++round) {
    for (TransactionFault fault : kinds) {
      (*generator)->InjectFault(fault, 3 * round);
    }
  }
  EXPECT_EQ((*generator)->faults_armed(), 60);
  ReferenceDecoder decoder;
  std::map<TransactionFault, int> seen;
  std::set<std::string> details;
  std::set<int64_t> faulted_xids;
  std::set<std::string> forgotten_keys;  // of replaced lines
  std::set<std::string> faulted_ends;
  int transactions = 0;
  int after_forgetting = 0;
  GeneratedTransaction unit;
  while (transactions < 600) {
    ASSERT_TRUE((*generator)->NextTransaction(unit).ok());
    if (unit.kind == Kind::kRedelivery) {
      for (const CdcMessage& m : unit.messages) {
        if (m.topic == CdcTopic::kTransaction) {
          EXPECT_EQ(faulted_ends.count(*m.value), 0u)
              << "a faulted transaction redelivered";
        }
      }
      continue;
    }
    ++transactions;
    for (const CdcMessage& m : unit.messages) {
      if (m.topic == CdcTopic::kOrderLine && forgotten_keys.count(m.key) != 0) {
        ADD_FAILURE() << "replaced line " << m.key << " touched again in "
                      << unit.xid;
      }
    }
    after_forgetting += forgotten_keys.empty() ? 0 : 1;
    if (unit.fault == TransactionFault::kNone) continue;
    ++seen[unit.fault];
    details.insert(unit.fault_detail);
    faulted_xids.insert(unit.xid);
    faulted_ends.insert(*unit.messages.back().value);
    EXPECT_FALSE(unit.restarted);
    simdjson::dom::parser parser;
    element end = Payload(parser, *unit.messages.back().value, options.schemas);
    ASSERT_EQ(Str(end["status"]), "END");
    std::set<std::string> collections;
    for (element c : simdjson::dom::array(end["data_collections"])) {
      collections.insert(Str(c["data_collection"]));
    }
    EXPECT_EQ(collections, (std::set<std::string>{"inventory.purchaseorder",
                                                  "inventory.orderline"}));
    const int64_t counted = int64_t(end["event_count"]);
    const std::vector<std::string> events = ChangeEvents(unit);
    EXPECT_EQ(std::set<std::string>(events.begin(), events.end()).size(),
              events.size())
        << "no repeated event";
    for (const ExpectedVersion& v : unit.expected) {
      EXPECT_EQ(v.partial, unit.fault != TransactionFault::kExtraCopy)
          << unit.xid;
    }
    if (unit.fault == TransactionFault::kOvercountingEnd) {
      EXPECT_EQ(unit.fault_record.value, unit.messages.back().value);
      EXPECT_GT(counted, static_cast<int64_t>(events.size()));
      EXPECT_LE(counted, static_cast<int64_t>(events.size()) + 2);
      for (const std::string& e : events) {
        EXPECT_TRUE(decoder.DecodeChange(e).ok());
      }
      continue;
    }
    // One spoiled event, in its place in the messages, that keeps its block.
    const std::string& spoiled = *unit.fault_record.value;
    EXPECT_FALSE(decoder.DecodeChange(spoiled).ok()) << spoiled;
    EXPECT_NE(spoiled.find(absl::StrCat("\"transaction\":{\"id\":\"",
                                        unit.xid, ":")),
              std::string::npos);
    int bad = 0;
    for (const std::string& e : events) {
      bad += decoder.DecodeChange(e).ok() ? 0 : 1;
    }
    EXPECT_EQ(bad, 1);
    EXPECT_EQ(std::count(events.begin(), events.end(), spoiled), 1);
    if (unit.fault == TransactionFault::kExtraCopy) {
      EXPECT_EQ(counted + 1, static_cast<int64_t>(events.size()));
      continue;
    }
    EXPECT_EQ(counted, static_cast<int64_t>(events.size()));
    EXPECT_EQ(unit.fault_record.topic, CdcTopic::kOrderLine);
    forgotten_keys.insert(unit.fault_record.key);
    // The order it was of, inserted by this transaction, goes without it.
    absl::StatusOr<std::string> line_id =
        decoder.DecodeKeyId(unit.fault_record.key);
    ASSERT_TRUE(line_id.ok()) << line_id.status();
    for (const ExpectedVersion& v : unit.expected) {
      ASSERT_TRUE(v.aggregate);
      EXPECT_EQ(v.aggregate->find(
                    absl::StrCat("{\"id\":", *line_id, ",\"order_id\"")),
                std::string::npos)
          << *v.aggregate;
    }
  }
  EXPECT_EQ((*generator)->faults_armed(), 0);
  for (TransactionFault fault : kinds) EXPECT_EQ(seen[fault], 20);
  EXPECT_EQ(details.size(), 4u + 4u)
      << "four spoilings; one or two more of either table counted";
  EXPECT_GT(after_forgetting, 400);
}

INSTANTIATE_TEST_SUITE_P(SchemasOnAndOff, TransactionFaultTest,
                         ::testing::Bool());

// With bad input inside transactions the reference, replaying the messages
// alone, finds the same versions as the generator: the bad event left out,
// partial where END counts more than the good events.
TEST(ReferenceModel, AgreesWithGeneratorOnFaultsInsideTransactions) {
  GeneratorOptions options;
  options.seed = 32;
  options.duplicate_rate = 0.05;
  options.redelivery_rate = 0.05;
  options.restart_inside_rate = 0.05;
  ReplayCounts counts;
  int armed = 0;
  ASSERT_NO_FATAL_FAILURE(CheckAgainstReference(
      options, 1500, &counts, [&](CdcGenerator& generator, int unit) {
        if (unit % 50 != 0) return;
        for (TransactionFault fault :
             {TransactionFault::kReplacedEvent, TransactionFault::kExtraCopy,
              TransactionFault::kOvercountingEnd}) {
          generator.InjectFault(fault, unit % 7);
          ++armed;
        }
      }));
  EXPECT_EQ(counts.bad_events, 2 * armed / 3);
  EXPECT_EQ(counts.partial_transactions, 2 * armed / 3);
}

// A primary-key update of a line: delete of the old key (before = the key),
// its tombstone, create of the new key, at one source.lsn and one
// transaction id, consecutive total_order, both counted in END; the order's
// version holds the new key and not the old.
TEST(CdcGenerator, RekeyIsDeleteAndCreateAtOneLsn) {
  GeneratorOptions options;
  options.seed = 13;
  options.mix = {.place_order = 1,
                 .cancel_line = 0,
                 .update_order_status = 0,
                 .update_quantity = 0,
                 .move_line = 0,
                 .delete_order = 0,
                 .multi_order = 0,
                 .bulk = 0,
                 .empty = 0,
                 .rekey = 1};
  auto units = Generate(options, 300);
  simdjson::dom::parser parser;
  simdjson::dom::parser end_parser;
  int rekeys = 0;
  for (const GeneratedTransaction& unit : units) {
    // BEGIN, d(old), tombstone(old), c(new), END
    if (unit.messages.size() != 5 ||
        unit.messages[1].topic != CdcTopic::kOrderLine) {
      continue;
    }
    object deleted = parser.parse(*unit.messages[1].value);
    ASSERT_EQ(std::string_view(deleted["op"]), "d");
    const int64_t old_id = int64_t(deleted["before"]["id"]);
    EXPECT_EQ(Keys(object(deleted["before"])), std::vector<std::string>{"id"});
    const int64_t delete_lsn = int64_t(deleted["source"]["lsn"]);
    const std::string delete_tx_id = Str(deleted["transaction"]["id"]);
    EXPECT_EQ(int64_t(deleted["transaction"]["total_order"]), 1);
    EXPECT_FALSE(unit.messages[2].value.has_value());
    EXPECT_EQ(unit.messages[2].key, unit.messages[1].key);

    object created = parser.parse(*unit.messages[3].value);
    ASSERT_EQ(std::string_view(created["op"]), "c");
    const int64_t new_id = int64_t(created["after"]["id"]);
    const int64_t order_id = int64_t(created["after"]["order_id"]);
    EXPECT_NE(new_id, old_id);
    EXPECT_EQ(int64_t(created["source"]["lsn"]), delete_lsn);
    EXPECT_EQ(Str(created["transaction"]["id"]), delete_tx_id);
    EXPECT_EQ(int64_t(created["transaction"]["total_order"]), 2);
    EXPECT_EQ(int64_t(created["transaction"]["data_collection_order"]), 2);

    object end = end_parser.parse(*unit.messages[4].value);
    EXPECT_EQ(int64_t(end["event_count"]), 2);
    EXPECT_EQ(unit.change_events, 2);
    ASSERT_EQ(unit.expected.size(), 1u);
    object aggregate = end_parser.parse(*unit.expected[0].aggregate);
    EXPECT_EQ(unit.expected[0].root_id, order_id);
    bool has_new = false;
    bool has_old = false;
    for (object l : simdjson::dom::array(aggregate["lines"])) {
      has_new |= int64_t(l["id"]) == new_id;
      has_old |= int64_t(l["id"]) == old_id;
    }
    EXPECT_TRUE(has_new);
    EXPECT_FALSE(has_old);
    ++rekeys;
  }
  EXPECT_GT(rekeys, 50);
}

// A connector restart inside a transaction: a second BEGIN with the same xid
// and another id, counters from 1 again after it, the events from j on
// written again (some with the LSN of an event before the restart), and an
// END counting only what followed the second BEGIN.
TEST(CdcGenerator, RestartInsideTransactionHasSecondBeginAndUndercountingEnd) {
  GeneratorOptions options;
  options.seed = 14;
  options.schemas = true;
  options.restart_inside_rate = 1;
  options.mix.bulk = 0;
  options.mix.empty = 0;
  auto units = Generate(options, 400);
  simdjson::dom::parser parser;
  int restarted = 0;
  int undercounts = 0;
  int events_written_twice = 0;
  int zero_collections = 0;
  for (const GeneratedTransaction& unit : units) {
    if (unit.change_events < 2) {
      EXPECT_FALSE(unit.restarted);
      continue;
    }
    ASSERT_TRUE(unit.restarted);
    ++restarted;
    std::vector<std::string> begin_ids;
    std::set<int64_t> lsns_before;
    int64_t before_restart = 0;
    int64_t after_restart = 0;
    std::map<std::string, int64_t> per_table_after;
    for (size_t i = 0; i < unit.messages.size(); ++i) {
      const CdcMessage& message = unit.messages[i];
      if (!message.value) continue;
      object payload = Payload(parser, *message.value, true);
      if (message.topic == CdcTopic::kTransaction) {
        const std::string status = Str(payload["status"]);
        const std::string id = Str(payload["id"]);
        EXPECT_EQ(XidOf(id), std::to_string(unit.xid));
        if (status == "BEGIN") {
          begin_ids.push_back(id);
          continue;
        }
        ASSERT_EQ(i + 1, unit.messages.size());
        ASSERT_EQ(begin_ids.size(), 2u);
        EXPECT_NE(begin_ids[0], begin_ids[1]);
        EXPECT_EQ(int64_t(payload["event_count"]), after_restart);
        if (after_restart < unit.change_events) ++undercounts;
        for (object entry : simdjson::dom::array(payload["data_collections"])) {
          const std::string name = Str(entry["data_collection"]);
          EXPECT_EQ(int64_t(entry["event_count"]), per_table_after[name])
              << name;
          zero_collections += per_table_after[name] == 0 ? 1 : 0;
        }
        continue;
      }
      const int64_t lsn = int64_t(payload["source"]["lsn"]);
      object block = payload["transaction"];
      if (begin_ids.size() == 1) {
        lsns_before.insert(lsn);
        ++before_restart;
        continue;
      }
      ++after_restart;
      const std::string table = Str(payload["source"]["table"]);
      ++per_table_after["inventory." + table];
      EXPECT_EQ(int64_t(block["total_order"]), after_restart);
      EXPECT_EQ(int64_t(block["data_collection_order"]),
                per_table_after["inventory." + table]);
      if (lsns_before.count(lsn) != 0) ++events_written_twice;
    }
    // Events 1..k, then j..n with j <= k + 1: every event at least once.
    EXPECT_GE(before_restart, 1);
    EXPECT_LT(before_restart, unit.change_events);
    EXPECT_GE(before_restart + after_restart, unit.change_events);
  }
  EXPECT_GT(restarted, 100);
  EXPECT_GT(undercounts, 50);
  EXPECT_GT(events_written_twice, 50);
  EXPECT_GT(zero_collections, 0);
}

// An order update that leaves a long note alone sends Debezium's placeholder
// for it; the expected aggregate carries the note the order had.
TEST(CdcGenerator, UnchangedLongNotesArePlaceholders) {
  GeneratorOptions options;
  options.seed = 15;
  options.long_note_rate = 0.5;
  options.note_unchanged_rate = 0.7;
  options.mix = {.place_order = 1,
                 .cancel_line = 0,
                 .update_order_status = 2,
                 .update_quantity = 0,
                 .move_line = 0,
                 .delete_order = 0,
                 .multi_order = 0,
                 .bulk = 0,
                 .empty = 0,
                 .rekey = 0};
  auto units = Generate(options, 600);
  simdjson::dom::parser parser;
  simdjson::dom::parser version_parser;
  std::map<int64_t, std::string> notes;  // order id -> its note
  int placeholders = 0;
  int long_notes_sent = 0;
  for (const GeneratedTransaction& unit : units) {
    for (const CdcMessage& message : unit.messages) {
      if (message.topic != CdcTopic::kPurchaseOrder || !message.value) {
        continue;
      }
      object envelope = parser.parse(*message.value);
      const std::string op = Str(envelope["op"]);
      if (op == "d") continue;
      object after = envelope["after"];
      const int64_t id = int64_t(after["id"]);
      const std::string note = Str(after["note"]);
      if (note != "__debezium_unavailable_value") {
        if (note.size() > 2000) ++long_notes_sent;
        notes[id] = note;
        continue;
      }
      ++placeholders;
      EXPECT_EQ(op, "u");
      ASSERT_EQ(notes.count(id), 1u);
      EXPECT_GT(notes[id].size(), 2000u) << "a short note is sent as it is";
      bool found = false;
      for (const ExpectedVersion& version : unit.expected) {
        if (version.root_id != id) continue;
        found = true;
        object aggregate = version_parser.parse(*version.aggregate);
        EXPECT_EQ(Str(aggregate["note"]), notes[id]);
      }
      EXPECT_TRUE(found);
    }
  }
  EXPECT_GT(placeholders, 50);
  EXPECT_GT(long_notes_sent, 50);
}

TEST(ReferenceModel, SnapshotReadsAreUnitsOfTheirOwn) {
  GeneratorOptions options;
  options.snapshot_orders = 3;
  auto units = Generate(options, 4);
  simdjson::dom::parser parser;
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(units[i].kind, Kind::kSnapshotRead);
    ASSERT_EQ(units[i].messages.size(), 1u);
    object envelope = parser.parse(*units[i].messages[0].value);
    EXPECT_EQ(std::string_view(envelope["op"]), "r");
    EXPECT_TRUE(envelope["transaction"].is_null());
    EXPECT_EQ(std::string_view(envelope["source"]["snapshot"]),
              i == 2 ? "last" : "true");
    ASSERT_EQ(units[i].expected.size(), 1u);
    EXPECT_EQ(units[i].expected[0].tx_id, "");
    object aggregate = parser.parse(*units[i].expected[0].aggregate);
    EXPECT_EQ(simdjson::dom::array(aggregate["lines"]).size(), 0u);
  }
  EXPECT_EQ(units[3].kind, Kind::kTransaction);
  EXPECT_EQ(units[3].xid, options.first_xid);
}

TEST(ReferenceModel, RejectsOrphansAndUnknownRows) {
  ReferenceModel model;
  DecodedChange line;
  line.op = 'c';
  line.table = "orderline";
  line.after =
      R"({"id":1,"order_id":77,"product":"x","quantity":1,"price":"AA==","status":"ENTERED"})";
  EXPECT_FALSE(model.ApplyTransaction("1", {line}).ok());
  ReferenceModel fresh;
  DecodedChange update;
  update.op = 'u';
  update.table = "purchaseorder";
  update.after = R"({"id":5,"customer_id":1,"order_date":1,"status":"PLACED"})";
  EXPECT_FALSE(fresh.ApplyTransaction("2", {update}).ok());
}

TEST(ReferenceDecoder, RejectsWhatNoConnectorWrites) {
  ReferenceDecoder decoder;
  const std::string good = R"({"before":null,"after":{"id":1},)"
                           R"("source":{"schema":"s","table":"t"},"op":"c"})";
  EXPECT_TRUE(decoder.DecodeChange(good).ok());
  using Edit = std::pair<std::string, std::string>;
  for (const auto& [from, to] : std::vector<Edit>{
           {R"("op":"c")", R"("op":"x")"},
           {R"("op":"c")", R"("op":"cc")"},
           {R"("after":{"id":1})", R"("after":7)"},
           {R"("before":null)", R"("before":"null")"}}) {
    std::string bad = good;
    bad.replace(bad.find(from), from.size(), to);
    EXPECT_FALSE(decoder.DecodeChange(bad).ok()) << bad;
  }
}

TEST(ExpectedVersion, LineFormatRoundTrips) {
  ExpectedVersion live{1001, "571", R"({"id":1001,"status":"A","lines":[]})"};
  ExpectedVersion gone{1002, "572", std::nullopt};
  ExpectedVersion partial{1003, "573", R"({"id":1003,"lines":[]})", true};
  EXPECT_EQ(FormatExpectedLine(partial),
            R"({"root":1003,"tx":"573","partial":true,)"
            R"("aggregate":{"id":1003,"lines":[]}})");
  EXPECT_EQ(*ParseExpectedLine(FormatExpectedLine(partial)), partial);
  EXPECT_EQ(
      FormatExpectedLine(live),
      R"({"root":1001,"tx":"571","aggregate":{"id":1001,"status":"A","lines":[]}})");
  EXPECT_EQ(FormatExpectedLine(gone),
            R"({"root":1002,"tx":"572","aggregate":null})");
  EXPECT_EQ(*ParseExpectedLine(FormatExpectedLine(live)), live);
  EXPECT_EQ(*ParseExpectedLine(FormatExpectedLine(gone)), gone);

  const std::string path = ::testing::TempDir() + "/cdcgen_expected.jsonl";
  {
    auto writer = ExpectedFileWriter::Open(path);
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->Write(live).ok());
    ASSERT_TRUE((*writer)->Write(gone).ok());
    ASSERT_TRUE((*writer)->Close().ok());
  }
  auto read = ReadExpectedFile(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, (std::vector<ExpectedVersion>{live, gone}));
}

TEST(JsonEquivalent, IgnoresOrderAndNamedTopLevelFields) {
  EXPECT_TRUE(*JsonEquivalent(R"({"a":1,"b":[1,{"c":2}]})",
                              R"({"b":[1,{"c":2.0}],"a":1})"));
  EXPECT_FALSE(*JsonEquivalent(R"({"a":1})", R"({"a":1,"b":2})"));
  EXPECT_FALSE(*JsonEquivalent(R"([1,2])", R"([2,1])"));
  EXPECT_TRUE(*JsonEquivalent(
      R"({"id":1,"lines":[],"source_tx":{"id":"5","position":3},"version":2})",
      R"({"lines":[],"id":1})", {"source_tx", "version"}));
  EXPECT_FALSE(JsonEquivalent("{", "{}").ok());
}

// Produces to librdkafka's mock cluster and reads everything back: every
// record sits in the partition murmur2 of its key bytes picks (markers in
// partition 0), and nothing is lost with skew and faults on.
TEST(ProduceTransactions, PartitionsLikeKafkaOnMockCluster) {
  auto cluster = MockCluster::Start();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  constexpr int kPartitions = 3;
  GeneratorOptions options;
  options.seed = 99;
  options.schemas = true;
  options.duplicate_rate = 0.05;
  options.redelivery_rate = 0.05;
  options.snapshot_orders = 4;
  options.mix.bulk = 0;
  ASSERT_TRUE(CreateTopics(**cluster, options, kPartitions).ok());

  // What should arrive: the same stream from a second generator.
  std::map<std::pair<std::string, int32_t>, int64_t> want;
  std::vector<ExpectedVersion> want_versions;
  {
    auto generator = CdcGenerator::Create(options);
    ASSERT_TRUE(generator.ok());
    GeneratedTransaction unit;
    int transactions = 0;
    while (transactions < 200) {
      ASSERT_TRUE((*generator)->NextTransaction(unit).ok());
      if (unit.kind == Kind::kTransaction) ++transactions;
      want_versions.insert(want_versions.end(), unit.expected.begin(),
                           unit.expected.end());
      for (const CdcMessage& message : unit.messages) {
        const int32_t partition = message.topic == CdcTopic::kTransaction
                                      ? 0
                                      : KeyPartition(message.key, kPartitions);
        ++want[{options.TopicName(message.topic), partition}];
      }
    }
  }

  struct Collect final : ExpectedSink {
    absl::Status Write(const ExpectedVersion& version) override {
      versions.push_back(version);
      return absl::OkStatus();
    }
    std::vector<ExpectedVersion> versions;
  } sink;
  auto producer = MakeCdcProducer((*cluster)->bootstrap_servers());
  ASSERT_TRUE(producer.ok()) << producer.status();
  auto generator = CdcGenerator::Create(options);
  ASSERT_TRUE(generator.ok());
  ProduceOptions produce;
  produce.skew_transactions = 7;
  auto stats =
      ProduceTransactions(**producer, **generator, 200, produce, &sink);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->transactions, 200);
  EXPECT_EQ(stats->snapshot_reads, 4);
  EXPECT_EQ(sink.versions, want_versions);
  int64_t want_total = 0;
  for (const auto& [where, n] : want) want_total += n;
  EXPECT_EQ(stats->messages, want_total);

  // Read everything back with a plain consumer (no group).
  internal::KafkaConf conf(rd_kafka_conf_new());
  char errstr[512];
  for (const auto& [key, value] :
       std::vector<std::pair<std::string, std::string>>{
           {"bootstrap.servers", (*cluster)->bootstrap_servers()},
           {"group.id", "cdcgen-test"},
           {"enable.auto.commit", "false"}}) {
    ASSERT_EQ(rd_kafka_conf_set(conf.get(), key.c_str(), value.c_str(), errstr,
                                sizeof(errstr)),
              RD_KAFKA_CONF_OK)
        << errstr;
  }
  internal::KafkaHandle consumer(
      rd_kafka_new(RD_KAFKA_CONSUMER, conf.get(), errstr, sizeof(errstr)));
  ASSERT_TRUE(consumer) << errstr;
  conf.release();
  internal::PartitionList assignment(rd_kafka_topic_partition_list_new(8));
  for (CdcTopic topic : {CdcTopic::kTransaction, CdcTopic::kPurchaseOrder,
                         CdcTopic::kOrderLine}) {
    const int partitions = topic == CdcTopic::kTransaction ? 1 : kPartitions;
    for (int p = 0; p < partitions; ++p) {
      rd_kafka_topic_partition_list_add(assignment.get(),
                                        options.TopicName(topic).c_str(), p)
          ->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
  }
  ASSERT_EQ(rd_kafka_assign(consumer.get(), assignment.get()),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  std::map<std::pair<std::string, int32_t>, int64_t> got;
  int64_t got_total = 0;
  int misrouted = 0;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (got_total < want_total &&
         std::chrono::steady_clock::now() < deadline) {
    internal::KafkaMessage message(rd_kafka_consumer_poll(consumer.get(), 200));
    if (!message) continue;
    if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
    const std::string topic = rd_kafka_topic_name(message->rkt);
    const std::string_view key(static_cast<const char*>(message->key),
                               message->key_len);
    const int32_t partition = topic == options.TopicName(CdcTopic::kTransaction)
                                  ? 0
                                  : KeyPartition(key, kPartitions);
    if (partition != message->partition) ++misrouted;
    ++got[{topic, message->partition}];
    ++got_total;
  }
  EXPECT_EQ(misrouted, 0);
  EXPECT_EQ(got, want);
  rd_kafka_consumer_close(consumer.get());
}

// The huge transaction of bench/huge-tx (CdcGenerator::HugeTransaction):
// after ordinary transactions (with faults on, which it must not inherit),
// one BEGIN, orders x (1 + K) inserts with increasing LSNs and 1-based
// counters, one END whose event_count and data_collections count them; each
// order gets exactly its K lines; one expected version per order with all
// of them, equal to the independent ReferenceReplay's.
class HugeTransactionTest : public ::testing::TestWithParam<bool> {};

TEST_P(HugeTransactionTest, CountsMatchAndEveryOrderGetsItsLines) {
  constexpr int64_t kOrders = 13;
  constexpr int kLines = 7;
  GeneratorOptions options;
  options.seed = 31;
  options.schemas = GetParam();
  options.snapshot_orders = 2;
  options.duplicate_rate = 0.2;
  options.redelivery_rate = 0.2;
  options.restart_inside_rate = 0.2;
  auto generator = CdcGenerator::Create(options);
  ASSERT_TRUE(generator.ok());
  GeneratedTransaction unit;
  // Not before the snapshot reads.
  EXPECT_TRUE(absl::IsFailedPrecondition(
      (*generator)->HugeTransaction(kOrders, kLines, unit)));
  EXPECT_TRUE(absl::IsInvalidArgument(
      (*generator)->HugeTransaction(0, kLines, unit)));

  ReferenceReplay replay;
  std::vector<ExpectedVersion> from_reference;
  const auto replay_unit = [&](const GeneratedTransaction& u) {
    for (const CdcMessage& message : u.messages) {
      ASSERT_NO_FATAL_FAILURE(ReplayMessage(replay, message, from_reference));
    }
  };
  int64_t last_xid = 0;
  for (int u = 0; u < 60; ++u) {
    ASSERT_TRUE((*generator)->NextTransaction(unit).ok());
    if (unit.kind == Kind::kTransaction) last_xid = unit.xid;
    ASSERT_NO_FATAL_FAILURE(replay_unit(unit));
  }
  const int64_t live_before = (*generator)->live_orders();
  from_reference.clear();

  ASSERT_TRUE((*generator)->HugeTransaction(kOrders, kLines, unit).ok());
  EXPECT_EQ(unit.kind, Kind::kTransaction);
  EXPECT_FALSE(unit.restarted);
  EXPECT_GT(unit.xid, last_xid);
  const int64_t rows = kOrders * (1 + kLines);
  EXPECT_EQ(unit.change_events, rows);
  ASSERT_EQ(static_cast<int64_t>(unit.messages.size()), rows + 2);  // no dups
  EXPECT_EQ((*generator)->live_orders(), live_before + kOrders);

  simdjson::dom::parser parser;
  const std::string xid = std::to_string(unit.xid);
  object begin = Payload(parser, *unit.messages.front().value, options.schemas);
  EXPECT_EQ(std::string_view(begin["status"]), "BEGIN");
  int64_t last_lsn = LsnOf(Str(begin["id"]));
  EXPECT_EQ(XidOf(Str(begin["id"])), xid);
  std::map<std::string, int64_t> per_table;
  std::map<int64_t, std::set<int64_t>> lines_of;  // order id -> line ids
  std::vector<int64_t> order_ids;
  int64_t current_order = -1;
  for (size_t i = 1; i + 1 < unit.messages.size(); ++i) {
    const CdcMessage& message = unit.messages[i];
    ASSERT_NE(message.topic, CdcTopic::kTransaction) << i;
    ASSERT_TRUE(message.value.has_value()) << i;
    object envelope = Payload(parser, *message.value, options.schemas);
    EXPECT_EQ(std::string_view(envelope["op"]), "c");
    object source = envelope["source"];
    EXPECT_EQ(int64_t(source["txId"]), unit.xid);
    const int64_t lsn = int64_t(source["lsn"]);
    EXPECT_GT(lsn, last_lsn) << i;
    last_lsn = lsn;
    object block = envelope["transaction"];
    EXPECT_EQ(Str(block["id"]), xid + ":" + std::to_string(lsn));
    EXPECT_EQ(int64_t(block["total_order"]), static_cast<int64_t>(i));
    const std::string table = std::string(std::string_view(source["table"]));
    EXPECT_EQ(int64_t(block["data_collection_order"]), ++per_table[table]);
    object after = envelope["after"];
    if (message.topic == CdcTopic::kPurchaseOrder) {
      EXPECT_EQ(table, "purchaseorder");
      current_order = int64_t(after["id"]);
      order_ids.push_back(current_order);
      lines_of[current_order];
    } else {
      EXPECT_EQ(table, "orderline");
      const int64_t order_id = int64_t(after["order_id"]);
      EXPECT_EQ(order_id, current_order) << "a line before its order";
      EXPECT_TRUE(lines_of[order_id].insert(int64_t(after["id"])).second);
    }
  }
  object end = Payload(parser, *unit.messages.back().value, options.schemas);
  EXPECT_EQ(std::string_view(end["status"]), "END");
  EXPECT_EQ(XidOf(Str(end["id"])), xid);
  EXPECT_GT(LsnOf(Str(end["id"])), last_lsn);
  EXPECT_EQ(int64_t(end["event_count"]), rows);
  std::vector<std::pair<std::string, int64_t>> collections;
  for (object entry : simdjson::dom::array(end["data_collections"])) {
    collections.emplace_back(Str(entry["data_collection"]),
                             int64_t(entry["event_count"]));
  }
  EXPECT_EQ(collections, (std::vector<std::pair<std::string, int64_t>>{
                             {"inventory.purchaseorder", kOrders},
                             {"inventory.orderline", kOrders * kLines}}));
  ASSERT_EQ(static_cast<int64_t>(order_ids.size()), kOrders);
  for (const auto& [order_id, lines] : lines_of) {
    EXPECT_EQ(static_cast<int>(lines.size()), kLines) << order_id;
  }

  // One expected version per order, with its K lines, as the reference has.
  ASSERT_EQ(static_cast<int64_t>(unit.expected.size()), kOrders);
  for (size_t i = 0; i < unit.expected.size(); ++i) {
    const ExpectedVersion& version = unit.expected[i];
    EXPECT_EQ(version.root_id, order_ids[i]);
    EXPECT_EQ(version.tx_id, xid);
    ASSERT_TRUE(version.aggregate.has_value());
    element aggregate = parser.parse(*version.aggregate);
    EXPECT_EQ(simdjson::dom::array(aggregate["lines"]).size(),
              static_cast<size_t>(kLines));
  }
  ASSERT_NO_FATAL_FAILURE(replay_unit(unit));
  ASSERT_EQ(from_reference.size(), unit.expected.size());
  for (size_t i = 0; i < from_reference.size(); ++i) {
    EXPECT_EQ(from_reference[i].root_id, unit.expected[i].root_id);
    EXPECT_EQ(from_reference[i].tx_id, unit.expected[i].tx_id);
    auto same = JsonEquivalent(*from_reference[i].aggregate,
                               *unit.expected[i].aggregate);
    ASSERT_TRUE(same.ok()) << same.status();
    EXPECT_TRUE(*same) << i;
  }

  // The stream goes on after it.
  ASSERT_TRUE((*generator)->NextTransaction(unit).ok());
  EXPECT_EQ(unit.kind, Kind::kTransaction);
  ASSERT_NO_FATAL_FAILURE(replay_unit(unit));
}

INSTANTIATE_TEST_SUITE_P(SchemasOnAndOff, HugeTransactionTest,
                         ::testing::Bool());

// ProduceTransactions writes the huge transaction after `count` ordinary
// ones (also with count 0, after the snapshot reads) and reports it.
TEST(ProduceTransactions, HugeTransactionAfterTheOthers) {
  auto cluster = MockCluster::Start();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  struct Collect final : ExpectedSink {
    absl::Status Write(const ExpectedVersion& version) override {
      versions.push_back(version);
      return absl::OkStatus();
    }
    std::vector<ExpectedVersion> versions;
  };
  for (int64_t count : {0, 25}) {
    GeneratorOptions options;
    options.seed = 5;
    options.topic_prefix = "huge" + std::to_string(count);
    options.snapshot_orders = 3;
    ASSERT_TRUE(CreateTopics(**cluster, options, 2).ok());
    auto producer = MakeCdcProducer((*cluster)->bootstrap_servers());
    ASSERT_TRUE(producer.ok()) << producer.status();
    auto generator = CdcGenerator::Create(options);
    ASSERT_TRUE(generator.ok());
    ProduceOptions produce;
    produce.skew_transactions = 3;
    produce.huge_tx_orders = 9;
    produce.huge_tx_lines_per_order = 4;
    Collect sink;
    auto stats = ProduceTransactions(**producer, **generator, count, produce,
                                     &sink);
    ASSERT_TRUE(stats.ok()) << stats.status();
    EXPECT_EQ(stats->transactions, count + 1);
    EXPECT_EQ(stats->snapshot_reads, 3);
    EXPECT_EQ(stats->huge_tx_rows, 9 * 5);
    ASSERT_NE(stats->huge_tx_xid, 0);
    const std::string xid = std::to_string(stats->huge_tx_xid);
    int64_t huge_versions = 0;
    for (const ExpectedVersion& version : sink.versions) {
      huge_versions += version.tx_id == xid ? 1 : 0;
    }
    EXPECT_EQ(huge_versions, 9);
    // Its versions come last.
    ASSERT_GE(sink.versions.size(), 9u);
    EXPECT_EQ(sink.versions[sink.versions.size() - 9].tx_id, xid);
  }
}

}  // namespace
}  // namespace tributary::cdcgen
