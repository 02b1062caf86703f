// The outbox router wired by AddOutboxRouter, run through TopologyTestDriver
// with Debezium PostgreSQL-shaped outbox events and JDBC-source-connector
// rows: routing by aggregate type, key / value / headers, payload as a JSON
// string or as raw JSON, repeated deliveries, ignored operations, snapshot
// reads, plain rows with and without the schema wrapper, bad input.
#include "operators/outbox_router.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"
#include "tests/support/topology_test_driver.h"

namespace tributary {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::TopologyTestDriver;

constexpr char kOutbox[] = "dbserver1.inventory.outbox";
constexpr char kOrderTopic[] = "outbox.event.order";
constexpr char kCustomerTopic[] = "outbox.event.customer";
constexpr char kDlq[] = "dlq";

// Escapes `text` as a JSON string literal, quotes included.
std::string Quote(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

// An outbox row; every argument is raw JSON text.
std::string Row(std::string_view id, std::string_view aggregate_type,
                std::string_view aggregate_id, std::string_view type,
                std::string_view payload) {
  return absl::StrCat(R"({"id":)", Sv(id), R"(,"aggregatetype":)",
                      Sv(aggregate_type), R"(,"aggregateid":)",
                      Sv(aggregate_id), R"(,"type":)", Sv(type),
                      R"(,"payload":)", Sv(payload), "}");
}

// Debezium PostgreSQL change events of table inventory.outbox.
class Pg {
 public:
  std::string Change(char op, std::string_view before, std::string_view after,
                     std::string_view table = "outbox") {
    ++lsn_;
    const bool snapshot = op == 'r';
    return absl::StrCat(
        R"({"before":)", Sv(before), R"(,"after":)", Sv(after),
        R"(,"source":{"version":"3.6.1.Final","connector":"postgresql","name":"dbserver1","ts_ms":1700000000000,"snapshot":")",
        snapshot ? "true" : "false", R"(","db":"orderdb","sequence":"[null,\")",
        lsn_, R"(\"]","schema":"inventory","table":")", Sv(table),
        R"(","txId":)", xid_, R"(,"lsn":)", lsn_,
        R"(,"xmin":null},"transaction":)",
        snapshot
            ? std::string("null")
            : absl::StrCat(R"({"id":")", xid_, ":", lsn_,
                           R"(","total_order":1,"data_collection_order":1})"),
        R"(,"op":")", std::string(1, op), R"(","ts_ms":1700000000001})");
  }
  std::string Insert(std::string_view row) { return Change('c', "null", row); }

 private:
  int64_t lsn_ = 1000;
  int64_t xid_ = 571;
};

class OutboxRouterTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(OutboxSpec{.topic = kOutbox}); }

  void Open(const OutboxSpec& spec) {
    driver_.reset();
    Topology topology;
    ASSERT_TRUE(AddOutboxRouter(topology, spec).ok());
    TopologyTestDriver::Options options;
    options.error_policy = ErrorPolicy::kContinue;
    options.dead_letter_topic = kDlq;
    auto driver = TopologyTestDriver::Create(std::move(topology), options);
    ASSERT_TRUE(driver.ok()) << driver.status();
    driver_ = *std::move(driver);
  }

  void Pipe(std::optional<std::string_view> value) {
    absl::Status status =
        driver_->PipeInput(kOutbox, R"({"id":"k"})", value, TimestampMs{42});
    ASSERT_TRUE(status.ok()) << status;
  }
  int64_t Counter(std::string_view name) {
    for (const MetricSample& s : driver_->metrics().Snapshot()) {
      if (s.name == name) return s.value;
    }
    return -1;
  }
  // Topics written, without the store's changelog.
  std::vector<std::string> RoutedTopics() {
    std::vector<std::string> out;
    for (const std::string& t : driver_->OutputTopics()) {
      if (t.find("changelog") == std::string::npos) out.push_back(t);
    }
    return out;
  }

  Pg pg_;
  std::unique_ptr<TopologyTestDriver> driver_;
};

using Hdr = OwnedRecord::OwnedHeader;

TEST_F(OutboxRouterTest, RoutesEachInsertToItsAggregateTypesTopic) {
  const std::string payload =
      R"({"id":1001,"customer":"Jane \"JD\" Doe","lines":[1,2]})";
  Pipe(pg_.Insert(Row(R"("b0a4c1c6-61b3-4bd6-8a2b-2b8e0e2b7f1a")", R"("order")",
                      R"("1001")", R"("OrderCreated")", Quote(payload))));
  Pipe(pg_.Insert(Row(R"("7c1b9f40-0d2a-4a1e-9d76-3b2f1c0a9e55")",
                      R"("customer")", R"("17")", R"("CustomerUpdated")",
                      R"("{\"name\":\"x\"}")")));

  std::vector<OwnedRecord> orders = driver_->ReadOutput(kOrderTopic);
  ASSERT_EQ(orders.size(), 1u);
  EXPECT_EQ(orders[0].key, "1001");
  EXPECT_EQ(orders[0].value, payload);
  EXPECT_EQ(orders[0].timestamp.value, 42);
  EXPECT_THAT(orders[0].headers,
              ElementsAre(Hdr{"id", "b0a4c1c6-61b3-4bd6-8a2b-2b8e0e2b7f1a"},
                          Hdr{"type", "OrderCreated"}));
  std::vector<OwnedRecord> customers = driver_->ReadOutput(kCustomerTopic);
  ASSERT_EQ(customers.size(), 1u);
  EXPECT_EQ(customers[0].key, "17");
  EXPECT_EQ(customers[0].value, R"({"name":"x"})");
  EXPECT_THAT(customers[0].headers,
              ElementsAre(Hdr{"id", "7c1b9f40-0d2a-4a1e-9d76-3b2f1c0a9e55"},
                          Hdr{"type", "CustomerUpdated"}));
  EXPECT_THAT(RoutedTopics(), ElementsAre(kCustomerTopic, kOrderTopic));
  EXPECT_EQ(Counter("outbox-events-routed-total"), 2);
}

TEST_F(OutboxRouterTest, PayloadAsRawJsonIsCarriedThroughAsWritten) {
  Pipe(pg_.Insert(Row(R"("e1")", R"("order")", R"("1")", R"("A")",
                      R"({"id": 1, "nested": {"a": [1, 2]}})")));
  Pipe(pg_.Insert(
      Row(R"("e2")", R"("order")", R"("1")", R"("B")", R"([1,"two"])")));
  Pipe(pg_.Insert(Row(R"("e3")", R"("order")", R"("1")", R"("C")", "null")));
  Pipe(pg_.Insert(Row(R"("e4")", R"("order")", R"("1")", R"("D")", "12.5")));
  std::vector<OwnedRecord> out = driver_->ReadOutput(kOrderTopic);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0].value, R"({"id": 1, "nested": {"a": [1, 2]}})");
  EXPECT_EQ(out[1].value, R"([1,"two"])");
  EXPECT_EQ(out[2].value, std::nullopt) << "a null payload is a tombstone";
  EXPECT_EQ(out[3].value, "12.5");
}

TEST_F(OutboxRouterTest, StringEscapesAreResolved) {
  // \u00e9 is é, \ud83d\ude00 a surrogate pair (U+1F600), \/ a slash.
  Pipe(pg_.Insert(Row(R"("id\/1")", R"("order")", R"("caf\u00e9")",
                      R"("Tab\tbed")",
                      R"("{\"smile\":\"\ud83d\ude00\",\"nl\":\"a\\nb\"}")")));
  std::vector<OwnedRecord> out = driver_->ReadOutput(kOrderTopic);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].key, "caf\xc3\xa9");
  EXPECT_EQ(out[0].value, "{\"smile\":\"\xf0\x9f\x98\x80\",\"nl\":\"a\\nb\"}");
  EXPECT_THAT(out[0].headers,
              ElementsAre(Hdr{"id", "id/1"}, Hdr{"type", "Tab\tbed"}));
}

TEST_F(OutboxRouterTest, NumericIdsAreTheirText) {
  Pipe(pg_.Insert(
      Row("42", R"("order")", "1001", R"("OrderCreated")", R"("{}")")));
  std::vector<OwnedRecord> out = driver_->ReadOutput(kOrderTopic);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].key, "1001");
  EXPECT_THAT(out[0].headers,
              ElementsAre(Hdr{"id", "42"}, Hdr{"type", "OrderCreated"}));
}

TEST_F(OutboxRouterTest, ARepeatedEventIsWrittenOnce) {
  const std::string row = Row(R"("dup-1")", R"("order")", R"("1001")",
                              R"("OrderCreated")", R"("{\"v\":1}")");
  const std::string first = pg_.Insert(row);
  Pipe(first);
  Pipe(first);                         // the same message re-delivered
  Pipe(pg_.Insert(row));               // the same row captured again (new LSN)
  Pipe(pg_.Change('r', "null", row));  // and read by a new snapshot
  EXPECT_EQ(driver_->ReadOutput(kOrderTopic).size(), 1u);
  EXPECT_EQ(Counter("outbox-duplicates-dropped-total"), 3);
  EXPECT_EQ(Counter("outbox-events-routed-total"), 1);
  EXPECT_TRUE(driver_->ReadOutput(kDlq).empty());
}

TEST_F(OutboxRouterTest, UpdatesDeletesAndTombstonesAreIgnored) {
  const std::string row =
      Row(R"("u1")", R"("order")", R"("1")", R"("A")", R"("{}")");
  Pipe(pg_.Change('u', "null", row));
  Pipe(pg_.Change('d', R"({"id":"u1"})", "null"));
  Pipe(std::nullopt);  // the delete's tombstone
  EXPECT_THAT(RoutedTopics(), ::testing::IsEmpty());
  EXPECT_EQ(Counter("outbox-records-ignored-total"), 3);
  // Inserted and deleted in one transaction, as outbox implementations do:
  // the insert routes, the delete and its tombstone do not.
  Pipe(pg_.Insert(row));
  Pipe(pg_.Change('d', R"({"id":"u1"})", "null"));
  Pipe(std::nullopt);
  EXPECT_EQ(driver_->ReadOutput(kOrderTopic).size(), 1u);
  EXPECT_TRUE(driver_->ReadOutput(kDlq).empty());
}

TEST_F(OutboxRouterTest, SnapshotReadsAreRouted) {
  Pipe(pg_.Change(
      'r', "null",
      Row(R"("s1")", R"("order")", R"("7")", R"("OrderCreated")", R"("{}")")));
  std::vector<OwnedRecord> out = driver_->ReadOutput(kOrderTopic);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].key, "7");
}

TEST_F(OutboxRouterTest, PlainRowsWithAndWithoutTheSchemaWrapper) {
  Open(OutboxSpec{.topic = kOutbox,
                  .input_mode = OutboxSpec::InputMode::kPlainRow});
  // JDBC source connector, incrementing mode, schemas.enable=false.
  Pipe(Row("1", R"("order")", R"("1001")", R"("OrderCreated")",
           R"("{\"status\":\"NEW\"}")"));
  // schemas.enable=true: {"schema":...,"payload":{row}}; the row's own
  // "payload" column must not be confused with the wrapper's.
  Pipe(absl::StrCat(
      R"({"schema":{"type":"struct","fields":[{"type":"int64","optional":false,"field":"id"},)",
      R"({"type":"string","optional":false,"field":"aggregatetype"},)",
      R"({"type":"string","optional":false,"field":"aggregateid"},)",
      R"({"type":"string","optional":false,"field":"type"},)",
      R"({"type":"string","optional":true,"field":"payload"}],"optional":false,"name":"outbox"},)",
      R"("payload":)",
      Row("2", R"("order")", R"("1001")", R"("OrderPaid")",
          R"("{\"status\":\"PAID\"}")"),
      "}"));
  Pipe(Row("1", R"("order")", R"("1001")", R"("OrderCreated")",
           R"("{}")"));  // polled again
  std::vector<OwnedRecord> out = driver_->ReadOutput(kOrderTopic);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].key, "1001");
  EXPECT_EQ(out[0].value, R"({"status":"NEW"})");
  EXPECT_THAT(out[0].headers,
              ElementsAre(Hdr{"id", "1"}, Hdr{"type", "OrderCreated"}));
  EXPECT_EQ(out[1].value, R"({"status":"PAID"})");
  EXPECT_THAT(out[1].headers,
              ElementsAre(Hdr{"id", "2"}, Hdr{"type", "OrderPaid"}));
  EXPECT_EQ(Counter("outbox-duplicates-dropped-total"), 1);
}

TEST_F(OutboxRouterTest, BadInputGoesToTheDeadLetterTopic) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{not json", "change event"},
      {pg_.Change('x', "null",
                  Row(R"("a")", R"("order")", R"("1")", R"("T")", "null")),
       "unknown op"},
      {pg_.Insert(
           R"({"id":"a","aggregatetype":"order","type":"T","payload":"{}"})"),
       "no column 'aggregateid'"},
      {pg_.Insert(Row(R"("a")", R"("order/x")", R"("1")", R"("T")", "null")),
       "legal Kafka topic"},
      {pg_.Insert(Row(R"("a")", R"("")", R"("1")", R"("T")", "null")),
       "legal Kafka topic"},
      {pg_.Insert(Row(R"("a")", R"("order")", R"({"id":1})", R"("T")", "null")),
       "column 'aggregateid'"},
      {pg_.Insert(Row("null", R"("order")", R"("1")", R"("T")", "null")),
       "column 'id'"},
      {pg_.Insert(Row(R"("a")", R"("order")", R"("1")", R"("T")",
                      R"("bad \q escape")")),
       "column 'payload'"},
      {pg_.Insert(Row(R"("a")", R"("order")", R"("1")", R"("T")",
                      R"("\ud83d alone")")),
       "surrogate"},
      {pg_.Change('c', "null",
                  Row(R"("a")", R"("order")", R"("1")", R"("T")", "null"),
                  "purchaseorder"),
       "inventory.purchaseorder"},
      {pg_.Change('c', "null", "null"), "without 'after'"},
  };
  for (const auto& [value, expected] : cases) Pipe(value);
  std::vector<OwnedRecord> dead = driver_->ReadOutput(kDlq);
  ASSERT_EQ(dead.size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    std::string error;
    for (const Hdr& h : dead[i].headers) {
      if (h.key == "tributary.error" && h.value) error = *h.value;
    }
    EXPECT_THAT(error, HasSubstr(cases[i].second)) << "case " << i;
    EXPECT_EQ(dead[i].value, cases[i].first) << "case " << i;
  }
  EXPECT_THAT(RoutedTopics(), ElementsAre(kDlq));
  // A failed event was not remembered: once fixed it routes.
  Pipe(pg_.Insert(Row(R"("a")", R"("order")", R"("1")", R"("T")", "null")));
  EXPECT_EQ(driver_->ReadOutput(kOrderTopic).size(), 1u);
}

TEST_F(OutboxRouterTest, SeenIdsAreForgottenOldestFirstBeyondTheRetention) {
  Open(OutboxSpec{.topic = kOutbox, .seen_retention = 2});
  auto insert = [&](std::string_view id) {
    Pipe(pg_.Insert(Row(Quote(id), R"("order")", R"("1")", R"("T")", "null")));
  };
  insert("a");
  insert("b");
  insert("c");  // forgets a
  insert("b");  // still remembered
  EXPECT_EQ(Counter("outbox-duplicates-dropped-total"), 1);
  insert("a");  // forgotten, so routed again (and forgets b)
  insert("d");  // forgets c
  std::vector<std::string> ids;
  for (const OwnedRecord& r : driver_->ReadOutput(kOrderTopic))
    ids.push_back(*r.headers[0].value);
  EXPECT_THAT(ids, ElementsAre("a", "b", "c", "a", "d"));
  KeyValueStore* store = driver_->GetStore("outbox-seen-ids");
  ASSERT_NE(store, nullptr);
  std::vector<std::string> seen;
  for (auto it = store->PrefixScan("S"); it->Valid(); it->Next()) {
    seen.emplace_back(it->key().substr(1));
  }
  EXPECT_THAT(seen, ElementsAre("a", "d"));
  auto count = store->ApproximateCount();
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 4u) << "two ids, each with its order entry";
}

TEST_F(OutboxRouterTest, TheSeenStoreIsChangelogged) {
  Pipe(pg_.Insert(Row(R"("c1")", R"("order")", R"("1")", R"("T")", "null")));
  EXPECT_THAT(driver_->OutputTopics(),
              ::testing::Contains("test-app-outbox-seen-ids-changelog"));
}

TEST(OutboxRouterSpecTest, RejectsAnIncompleteSpec) {
  Topology topology;
  EXPECT_FALSE(AddOutboxRouter(topology, OutboxSpec{}).ok()) << "no topic";
  EXPECT_FALSE(
      AddOutboxRouter(topology, OutboxSpec{.topic = "t", .payload_column = ""})
          .ok());
  EXPECT_FALSE(
      AddOutboxRouter(topology, OutboxSpec{.topic = "t", .seen_retention = 0})
          .ok());
}

}  // namespace
}  // namespace tributary
