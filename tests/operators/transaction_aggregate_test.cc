// The CDC operators (route, assemble, aggregate) wired by
// AddTransactionAggregate, run through TopologyTestDriver with Debezium
// PostgreSQL-shaped traffic: out-of-order and interleaved arrival, repeats,
// missing ENDs, counts that never match, empty transactions, moved and
// deleted children, snapshot reads, a 100k-event transaction, bad input.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <simdjson.h>

#include <map>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/absl_compat.h"
#include "operators/transaction_aggregate.h"
#include "tests/operators/pg_events.h"
#include "tests/support/topology_test_driver.h"

namespace tributary {
namespace {

using testing::TopologyTestDriver;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kOrders[] = "dbserver1.inventory.purchaseorder";
constexpr char kLines[] = "dbserver1.inventory.orderline";
constexpr char kTx[] = "dbserver1.transaction";
constexpr char kOut[] = "order-aggregates";

TransactionAggregateSpec Spec() {
  TransactionAggregateSpec spec;
  spec.root = {kOrders, "inventory.purchaseorder", "id", "", ""};
  spec.children = {{kLines, "inventory.orderline", "id", "order_id", "lines"}};
  spec.transaction_topic = kTx;
  spec.output_topic = kOut;
  spec.incomplete_timeout = absl::Seconds(30);
  return spec;
}

using Pg = testing::PgEvents;

struct Version {
  std::string key;
  std::optional<std::string> value;
};

class TransactionAggregateTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(Spec()); }

  // Every test's end state: the interactive query answers, for every root
  // the output has, what its latest version shows (nothing after a
  // tombstone), read from the aggregate task's stores.
  void TearDown() override {
    if (driver_ == nullptr || HasFailure()) return;
    ExpectQueriesMatchOutput();
  }

  void ExpectQueriesMatchOutput() {
    std::map<std::string, std::optional<std::string>> latest;
    for (const OwnedRecord& r : driver_->AllOutput(kOut)) latest[*r.key] = r.value;
    Topology topology;  // the same spec's query, as the driver's topology has it
    ASSERT_TRUE(AddTransactionAggregate(topology, spec_).ok());
    const QuerySpec* query = topology.query(spec_.query_name);
    ASSERT_NE(query, nullptr);
    for (const auto& [key, value] : latest) {
      absl::StatusOr<std::string> parsed = query->key(key);
      ASSERT_TRUE(parsed.ok()) << key << ": " << parsed.status();
      absl::StatusOr<std::optional<std::string>> answer = query->run(
          [&](std::string_view store) { return driver_->GetStore(store); }, *parsed);
      ASSERT_TRUE(answer.ok()) << key << ": " << answer.status();
      EXPECT_EQ(*answer, value) << "root " << key;
    }
    ++queries_checked_;
  }

  void Open(const TransactionAggregateSpec& spec,
            ErrorPolicy policy = ErrorPolicy::kContinue, int32_t table_partitions = 1) {
    driver_.reset();
    spec_ = spec;
    Topology topology;
    ASSERT_TRUE(AddTransactionAggregate(topology, spec).ok());
    TopologyTestDriver::Options options;
    options.partitions = {{kOrders, table_partitions}, {kLines, table_partitions}};
    options.error_policy = policy;
    options.dead_letter_topic = "dlq";
    auto driver = TopologyTestDriver::Create(std::move(topology), options);
    ASSERT_TRUE(driver.ok()) << driver.status();
    driver_ = *std::move(driver);
  }

  void Pipe(const char* topic, const std::string& value) {
    ASSERT_TRUE(driver_->PipeInput(topic, "{\"id\":0}", value).ok());
  }
  // Lets every router prove it read its partition to the end, later than
  // the grace after the ENDs seen so far (a transaction with a poisoned
  // event waits for that proof).
  void ProveReadToTheEnd() {
    ASSERT_TRUE(driver_->AdvanceWallClockTime(absl::Seconds(2)).ok());
  }
  void PipeAt(const char* topic, int32_t partition, const std::string& value) {
    ASSERT_TRUE(driver_->PipeInputAt(topic, Partition{partition}, "{\"id\":0}", value).ok());
  }
  std::vector<Version> Output() {
    std::vector<Version> out;
    for (const OwnedRecord& r : driver_->ReadOutput(kOut)) out.push_back({*r.key, r.value});
    return out;
  }
  int64_t Gauge(std::string_view name) {
    for (const MetricSample& s : driver_->metrics().Snapshot()) {
      if (s.name == name) return s.value;
    }
    return -1;
  }
  // A counter summed over the tasks that keep it.
  int64_t Counter(std::string_view name) {
    int64_t sum = -1;
    for (const MetricSample& s : driver_->metrics().Snapshot()) {
      if (s.name == name) sum = std::max<int64_t>(sum, 0) + s.value;
    }
    return sum;
  }

  Pg pg_;
  TransactionAggregateSpec spec_;
  std::unique_ptr<TopologyTestDriver> driver_;
  int queries_checked_ = 0;
};

// Parses an aggregate and returns "status|line ids" for compact assertions.
std::string Summary(const std::string& json) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(json);
  std::string out{std::string_view(doc["status"])};
  out += "|";
  for (simdjson::dom::element line : doc["lines"].get_array()) {
    out += absl::StrCat(int64_t(line["id"]), ",");
  }
  return out;
}

TEST_F(TransactionAggregateTest, OneRecordPerTransactionAndRootEvenWhenEndComesFirst) {
  Pipe(kTx, pg_.Begin(571));
  Pipe(kTx, pg_.End(571, 1, 3));  // END before any change event
  Pipe(kLines, pg_.Line('c', 3, 1001, "c", 571));
  Pipe(kOrders, pg_.Order('c', 1001, "PLACED", 571));
  Pipe(kLines, pg_.Line('c', 1, 1001, "a", 571));
  EXPECT_TRUE(Output().empty()) << "one line still missing";
  Pipe(kLines, pg_.Line('c', 2, 1001, "b", 571));
  std::vector<Version> out = Output();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].key, "1001");
  ASSERT_TRUE(out[0].value);
  EXPECT_EQ(Summary(*out[0].value), "PLACED|1,2,3,");
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(*out[0].value);
  EXPECT_EQ(std::string_view(doc["source_tx"]["id"]), "571");
  EXPECT_EQ(int64_t(doc["source_tx"]["position"]), 1) << "offset of the END";
  EXPECT_EQ(int64_t(doc["version"]), 1);
  EXPECT_EQ(int64_t(doc["customer_id"]), 7);
  EXPECT_EQ(std::string_view(doc["lines"].at(0)["price"]), "BOI=");
  EXPECT_EQ(Gauge("cdc-transactions-pending"), 0);
}

TEST_F(TransactionAggregateTest, ReleasesInCommitOrderWhenALaterTransactionCompletesFirst) {
  Pipe(kOrders, pg_.Order('c', 1, "PLACED", 600));
  Pipe(kTx, pg_.End(600, 1, 1));  // 600 commits first but its line lags
  pg_.NewTransaction();
  Pipe(kOrders, pg_.Order('u', 1, "SHIPPED", 601));
  Pipe(kTx, pg_.End(601, 1, 0));  // 601 is complete
  EXPECT_TRUE(Output().empty()) << "601 must wait for 600";
  EXPECT_EQ(Gauge("cdc-transactions-pending"), 2);
  Pipe(kLines, pg_.Line('c', 10, 1, "x", 600));
  std::vector<Version> out = Output();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(Summary(*out[0].value), "PLACED|10,");
  EXPECT_EQ(Summary(*out[1].value), "SHIPPED|10,");
}

TEST_F(TransactionAggregateTest, RepeatedEventsAndRedeliveredTransactionsAreDropped) {
  std::string order = pg_.Order('c', 5, "PLACED", 700);
  std::string line = pg_.Line('c', 50, 5, "x", 700);
  std::string end = pg_.End(700, 1, 1);
  Pipe(kOrders, order);
  Pipe(kOrders, order);  // a repeat before release
  Pipe(kTx, end);
  Pipe(kLines, line);
  ASSERT_EQ(Output().size(), 1u);
  // Debezium re-delivers the whole transaction after a restart.
  Pipe(kTx, end);
  Pipe(kOrders, order);
  Pipe(kLines, line);
  EXPECT_TRUE(Output().empty());
  EXPECT_EQ(Counter("cdc-duplicates-dropped-total"), 4);
  EXPECT_EQ(Gauge("cdc-transactions-pending"), 0);
}

// A transaction delivered again after later ones (Debezium's offsets set
// back): the routers cannot tell it is a repeat, the aggregate task holds its
// changes until the assembler, which knows it was released, says to drop
// them: no version, and nothing stays held (which would keep the task's
// committed offset back for ever).
TEST_F(TransactionAggregateTest, TransactionDeliveredAgainAfterLaterOnesIsDroppedAndNotHeld) {
  const std::string order = pg_.Order('c', 5, "PLACED", 700);
  const std::string line = pg_.Line('c', 50, 5, "x", 700);
  const std::string end = pg_.End(700, 1, 1);
  Pipe(kOrders, order);
  Pipe(kLines, line);
  Pipe(kTx, end);
  pg_.NewTransaction();
  Pipe(kOrders, pg_.Order('u', 5, "SHIPPED", 701));
  Pipe(kTx, pg_.End(701, 1, 0));
  ASSERT_EQ(Output().size(), 2u);
  Pipe(kOrders, order);
  Pipe(kLines, line);
  Pipe(kTx, end);
  EXPECT_TRUE(Output().empty());
  EXPECT_EQ(Counter("cdc-duplicates-dropped-total"), 3);
  EXPECT_EQ(Gauge("cdc-held-change-bytes"), 0);
  EXPECT_EQ(Gauge("cdc-transactions-pending"), 0);
}

TEST_F(TransactionAggregateTest, MissingEndIsHeldAndVisible) {
  Pipe(kOrders, pg_.Order('c', 9, "PLACED", 800));
  ASSERT_TRUE(driver_->AdvanceWallClockTime(absl::Minutes(10)).ok());
  EXPECT_TRUE(Output().empty());
  EXPECT_EQ(Gauge("cdc-transactions-pending"), 1);
  // A later, complete transaction does not wait for one without an END.
  pg_.NewTransaction();
  Pipe(kOrders, pg_.Order('c', 10, "PLACED", 801));
  Pipe(kTx, pg_.End(801, 1, 0));
  EXPECT_EQ(Output().size(), 1u);
}

TEST_F(TransactionAggregateTest, CountsThatNeverMatchAreHeldUnderTheHoldPolicy) {
  TransactionAggregateSpec spec = Spec();
  spec.partial_policy = IncompletePolicy::kHold;
  Open(spec);
  Pipe(kOrders, pg_.Order('c', 1, "PLACED", 900));
  Pipe(kTx, pg_.End(900, 1, 2));  // one line never comes
  Pipe(kLines, pg_.Line('c', 1, 1, "a", 900));
  pg_.NewTransaction();
  Pipe(kOrders, pg_.Order('c', 2, "PLACED", 901));
  Pipe(kTx, pg_.End(901, 1, 0));
  ASSERT_TRUE(driver_->AdvanceWallClockTime(absl::Minutes(5)).ok());
  EXPECT_TRUE(Output().empty()) << "hold: nothing partial, nothing out of order";
  EXPECT_EQ(Gauge("cdc-transactions-pending"), 2);
  EXPECT_GE(Gauge("cdc-oldest-pending-age-ms"), 30000);
}

TEST_F(TransactionAggregateTest, ReleasePolicyEmitsAPartialTransactionAfterTheTimeout) {
  TransactionAggregateSpec spec = Spec();
  spec.incomplete_policy = IncompletePolicy::kRelease;
  Open(spec);
  Pipe(kOrders, pg_.Order('c', 1, "PLACED", 900));
  Pipe(kTx, pg_.End(900, 1, 2));
  Pipe(kLines, pg_.Line('c', 1, 1, "a", 900));
  pg_.NewTransaction();
  Pipe(kOrders, pg_.Order('c', 2, "PLACED", 901));
  Pipe(kTx, pg_.End(901, 1, 0));
  ASSERT_TRUE(driver_->AdvanceWallClockTime(absl::Seconds(10)).ok());
  EXPECT_TRUE(Output().empty()) << "not before the timeout";
  ASSERT_TRUE(driver_->AdvanceWallClockTime(absl::Seconds(25)).ok());
  std::vector<Version> out = Output();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].key, "1");
  EXPECT_THAT(*out[0].value, HasSubstr(R"("partial":true)"));
  EXPECT_EQ(out[1].key, "2");
  EXPECT_THAT(*out[1].value, ::testing::Not(HasSubstr("partial")));
  EXPECT_EQ(Counter("cdc-transactions-released-partial-total"), 1);
}

// The headers of a dead-lettered record, by name.
std::map<std::string, std::string> Headers(const OwnedRecord& record) {
  std::map<std::string, std::string> headers;
  for (const auto& h : record.headers) headers[h.key] = h.value.value_or("");
  return headers;
}

// A bad event inside a multi-table transaction still counts for it: the
// transaction goes out at once without it, marked partial, the later one
// whole; the bad event is in the dead-letter topic with its transaction id.
TEST_F(TransactionAggregateTest, PoisonInsideATransactionReleasesTheRestMarkedPartial) {
  Pipe(kOrders, pg_.Order('c', 1, "PLACED", 700));
  Pipe(kLines, pg_.Line('c', 11, 1, "a", 700));
  std::string bad = pg_.Line('c', 12, 1, "b", 700);
  const size_t op_at = bad.find("\"op\":\"c\"");
  ASSERT_NE(op_at, std::string::npos) << bad;
  bad[op_at + 6] = 'x';  // an op Debezium never writes
  Pipe(kLines, bad);
  Pipe(kTx, pg_.End(700, 1, 2));
  pg_.NewTransaction();
  Pipe(kLines, pg_.Line('c', 13, 1, "c", 701));
  Pipe(kTx, pg_.End(701, 0, 1));
  EXPECT_TRUE(Output().empty()) << "the bad event may be a copy of one still to come";
  ProveReadToTheEnd();

  std::vector<Version> out = Output();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(Summary(*out[0].value), "PLACED|11,");
  EXPECT_THAT(*out[0].value, HasSubstr(R"("partial":true)"));
  EXPECT_EQ(Summary(*out[1].value), "PLACED|11,13,");
  EXPECT_THAT(*out[1].value, ::testing::Not(HasSubstr("partial")));
  EXPECT_EQ(Counter("cdc-transactions-released-partial-total"), 1);
  std::vector<OwnedRecord> dead = driver_->ReadOutput("dlq");
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].value, bad);
  std::map<std::string, std::string> headers = Headers(dead[0]);
  EXPECT_THAT(headers["tributary.source.transaction"], ::testing::StartsWith("700:"));
  EXPECT_THAT(headers["tributary.error"], HasSubstr("op"));
  EXPECT_EQ(headers["tributary.source.topic"], kLines);
}

// A bad copy of an event beyond END's count (every good event is there)
// takes no event's place: the transaction is whole.
TEST_F(TransactionAggregateTest, BadEventBeyondTheEndsCountLeavesTheTransactionWhole) {
  Pipe(kOrders, pg_.Order('c', 1, "PLACED", 705));
  std::string line = pg_.Line('c', 11, 1, "a", 705);
  Pipe(kLines, line);
  line.replace(line.find("\"op\":\"c\""), 8, "\"op\":\"x\"");
  Pipe(kLines, line);
  Pipe(kTx, pg_.End(705, 1, 1));
  ProveReadToTheEnd();
  std::vector<Version> out = Output();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(Summary(*out[0].value), "PLACED|11,");
  EXPECT_THAT(*out[0].value, ::testing::Not(HasSubstr("partial")));
  EXPECT_EQ(driver_->ReadOutput("dlq").size(), 1u);
}

// A bad event whose transaction cannot be read (cut off JSON) leaves its
// transaction short; once every partition has moved past it, it goes out
// marked partial and its END goes to the dead-letter topic too.
TEST_F(TransactionAggregateTest, TransactionShortOfItsEndIsReleasedOnceEveryPartitionIsPast) {
  Pipe(kOrders, pg_.Order('c', 1, "PLACED", 710));
  const std::string line = pg_.Line('c', 11, 1, "a", 710);
  const std::string cut = line.substr(0, 40);
  Pipe(kLines, cut);
  Pipe(kTx, pg_.End(710, 1, 1));
  EXPECT_TRUE(Output().empty()) << "the line's partition is not known to be past it";
  // A later transaction's line moves that partition past it.
  pg_.NewTransaction();
  Pipe(kOrders, pg_.Order('c', 2, "PLACED", 711));
  Pipe(kLines, pg_.Line('c', 21, 2, "b", 711));
  Pipe(kTx, pg_.End(711, 1, 1));

  std::vector<Version> out = Output();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].key, "1");
  EXPECT_EQ(Summary(*out[0].value), "PLACED|");
  EXPECT_THAT(*out[0].value, HasSubstr(R"("partial":true)"));
  EXPECT_EQ(Summary(*out[1].value), "PLACED|21,");
  EXPECT_EQ(Counter("cdc-transactions-short-of-end-total"), 1);
  std::vector<OwnedRecord> dead = driver_->ReadOutput("dlq");
  ASSERT_EQ(dead.size(), 2u);
  EXPECT_EQ(dead[0].value, cut);
  std::map<std::string, std::string> end = Headers(dead[1]);
  EXPECT_EQ(end["tributary.source.topic"], kTx);
  EXPECT_THAT(end["tributary.source.transaction"], ::testing::StartsWith("710:"));
  EXPECT_THAT(end["tributary.error"], HasSubstr("inventory.orderline 0/1"));
}

// An event of a transaction released partial that comes after all is not
// dropped as a repeat: it goes to the dead-letter topic, and is counted.
TEST_F(TransactionAggregateTest, EventAfterAPartialReleaseGoesToTheDeadLetterTopic) {
  Pipe(kOrders, pg_.Order('c', 1, "PLACED", 740));
  Pipe(kTx, pg_.End(740, 1, 1));
  const std::string late = pg_.Line('c', 11, 1, "a", 740);
  pg_.NewTransaction();
  Pipe(kOrders, pg_.Order('c', 2, "PLACED", 741));
  Pipe(kLines, pg_.Line('c', 21, 2, "b", 741));
  Pipe(kTx, pg_.End(741, 1, 1));
  ASSERT_EQ(Output().size(), 2u);
  ASSERT_EQ(Counter("cdc-transactions-released-partial-total"), 1);
  ASSERT_EQ(driver_->ReadOutput("dlq").size(), 1u);  // the END

  Pipe(kLines, late);
  EXPECT_TRUE(Output().empty()) << "never applied after its transaction";
  EXPECT_EQ(Counter("cdc-late-events-total"), 1);
  EXPECT_EQ(Counter("cdc-duplicates-dropped-total"), 0);
  std::vector<OwnedRecord> dead = driver_->ReadOutput("dlq");
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].key, "1");
  EXPECT_THAT(dead[0].value.value_or(""), HasSubstr(R"("product":"a")"));
  std::map<std::string, std::string> headers = Headers(dead[0]);
  EXPECT_EQ(headers["tributary.source.transaction"], "740");
  EXPECT_THAT(headers["tributary.error"], HasSubstr("released partial"));
}

// A version over aggregate.max.bytes keeps its place as a reference (no
// gap in the versions), which also goes to the dead-letter topic; a row
// image over it is bad input (its transaction goes out partial).
TEST_F(TransactionAggregateTest, OversizeVersionIsAReferenceInItsPlace) {
  TransactionAggregateSpec spec = Spec();
  spec.max_aggregate_bytes = 600;
  Open(spec);
  Pipe(kOrders, pg_.Order('c', 1, "PLACED", 750));
  for (int line = 0; line < 8; ++line) Pipe(kLines, pg_.Line('c', 10 + line, 1, "a", 750));
  Pipe(kTx, pg_.End(750, 1, 8));
  pg_.NewTransaction();
  for (int line = 0; line < 6; ++line) Pipe(kLines, pg_.Line('d', 10 + line, 1, "a", 751));
  Pipe(kTx, pg_.End(751, 0, 6));

  std::vector<Version> out = Output();
  ASSERT_EQ(out.size(), 2u);
  simdjson::dom::parser parser;
  simdjson::dom::element reference = parser.parse(*out[0].value);
  EXPECT_EQ(int64_t(reference["id"]), 1);
  EXPECT_EQ(int64_t(reference["version"]), 1);
  EXPECT_GT(int64_t(reference["oversize"]["bytes"]), 600);
  EXPECT_EQ(int64_t(reference["oversize"]["limit"]), 600);
  EXPECT_EQ(Summary(*out[1].value), "PLACED|16,17,");
  EXPECT_THAT(*out[1].value, HasSubstr(R"("version":2)"));
  EXPECT_EQ(Counter("cdc-aggregates-oversize-total"), 1);
  std::vector<OwnedRecord> dead = driver_->ReadOutput("dlq");
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].value, *out[0].value);
  EXPECT_THAT(Headers(dead[0])["tributary.error"], HasSubstr("aggregate.max.bytes"));

  // A row image that alone is over the limit.
  pg_.NewTransaction();
  Pipe(kOrders, pg_.Order('u', 1, std::string(700, 'X'), 752));
  Pipe(kLines, pg_.Line('c', 30, 1, "b", 752));
  Pipe(kTx, pg_.End(752, 1, 1));
  ProveReadToTheEnd();
  out = Output();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(Summary(*out[0].value), "PLACED|16,17,30,");
  EXPECT_THAT(*out[0].value, HasSubstr(R"("partial":true)"));
  dead = driver_->ReadOutput("dlq");
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_THAT(Headers(dead[0])["tributary.error"], HasSubstr("row image"));
}

// Under incomplete.transaction.policy=release, a transaction whose END has
// not come the timeout after its last event, with the transaction topic read
// to its end since, expires: its held changes go to the dead-letter topic
// (it has no place in commit order), and so do its events should they come
// later; its late END changes nothing.
TEST_F(TransactionAggregateTest, TransactionWithoutEndExpiresToTheDeadLetterTopic) {
  TransactionAggregateSpec spec = Spec();
  spec.incomplete_policy = IncompletePolicy::kRelease;
  Open(spec);
  Pipe(kOrders, pg_.Order('c', 1, "PLACED", 760));  // END never comes
  pg_.NewTransaction();
  Pipe(kOrders, pg_.Order('c', 2, "PLACED", 761));
  Pipe(kTx, pg_.End(761, 1, 0));
  ASSERT_EQ(Output().size(), 1u);
  ASSERT_TRUE(driver_->AdvanceWallClockTime(absl::Seconds(20)).ok());
  EXPECT_EQ(Counter("cdc-transactions-expired-total"), 0) << "not before the timeout";
  EXPECT_TRUE(driver_->ReadOutput("dlq").empty());
  ASSERT_TRUE(driver_->AdvanceWallClockTime(absl::Seconds(15)).ok());
  // The transaction router's proof goes out at that commit; the assembler
  // checks each second.
  ASSERT_TRUE(driver_->AdvanceWallClockTime(absl::Seconds(1)).ok());
  EXPECT_EQ(Counter("cdc-transactions-expired-total"), 1);
  EXPECT_EQ(Gauge("cdc-transactions-pending"), 0);
  std::vector<OwnedRecord> dead = driver_->ReadOutput("dlq");
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].key, "1");
  EXPECT_THAT(dead[0].value.value_or(""), HasSubstr(R"("status":"PLACED")"));
  EXPECT_EQ(Headers(dead[0])["tributary.source.transaction"], "760");

  Pipe(kLines, pg_.Line('c', 11, 1, "a", 760));
  Pipe(kTx, pg_.End(760, 1, 1));
  EXPECT_TRUE(Output().empty());
  EXPECT_EQ(driver_->ReadOutput("dlq").size(), 1u);  // the late line
  EXPECT_EQ(Counter("cdc-late-events-total"), 1);
  EXPECT_EQ(Gauge("cdc-transactions-pending"), 0);
}

// PostgreSQL's xids are 32 bits and wrap. A transaction whose END never
// came (held: incomplete.transaction.policy=hold, the default) is retired
// once the source's xids are 2^31 past it, its changes to the dead-letter
// topic, so that the transaction given its xid again 2^32 later is one of
// its own instead of merging with it (which would release both orders'
// changes as one transaction).
TEST_F(TransactionAggregateTest, TransactionWithoutEndIsRetiredBeforeItsXidComesAgain) {
  Pipe(kOrders, pg_.Order('c', 1, "PLACED", 790));  // END never comes
  pg_.NewTransaction();
  Pipe(kOrders, pg_.Order('c', 2, "PLACED", 791));
  Pipe(kTx, pg_.End(791, 1, 0));
  ASSERT_EQ(Output().size(), 1u);
  ASSERT_TRUE(driver_->AdvanceWallClockTime(absl::Seconds(2)).ok());
  EXPECT_EQ(Counter("cdc-transactions-xid-retired-total"), 0) << "its xid is near";
  EXPECT_EQ(Gauge("cdc-transactions-pending"), 1);

  // The source's xids move on, in steps of a quarter cycle here.
  for (int quarter = 1; quarter <= 2; ++quarter) {
    const int64_t xid = 790 + quarter * (int64_t{1} << 30) + 5;
    pg_.NewTransaction();
    Pipe(kOrders, pg_.Order('c', 2 + quarter, "PLACED", xid));
    Pipe(kTx, pg_.End(xid, 1, 0));
    ASSERT_EQ(Output().size(), 1u);
    ASSERT_TRUE(driver_->AdvanceWallClockTime(absl::Seconds(2)).ok());
    if (quarter == 1) {
      EXPECT_EQ(Counter("cdc-transactions-xid-retired-total"), 0) << "a quarter cycle behind";
    }
  }
  EXPECT_EQ(Counter("cdc-transactions-xid-retired-total"), 1);
  EXPECT_EQ(Gauge("cdc-transactions-pending"), 0);
  std::vector<OwnedRecord> dead = driver_->ReadOutput("dlq");
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].key, "1");
  EXPECT_EQ(Headers(dead[0])["tributary.source.transaction"], "790");

  // 2^32 after 790: xid 790 again, a transaction of its own.
  pg_.NewTransaction();
  Pipe(kOrders, pg_.Order('c', 5, "PLACED", 790));
  Pipe(kTx, pg_.End(790, 1, 0));
  std::vector<Version> out = Output();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].key, "5");
  EXPECT_TRUE(driver_->ReadOutput("dlq").empty());
  EXPECT_EQ(Counter("cdc-late-events-total"), 0);
}

// A big transaction is applied in pieces (each its own commit: the record
// is left unfinished and given again) with the same versions as in one.
TEST_F(TransactionAggregateTest, BigReleaseInPiecesEmitsTheSameVersions) {
  auto run = [&](size_t piece_changes) {
    TransactionAggregateSpec spec = Spec();
    spec.release_piece_changes = piece_changes;
    Open(spec);
    pg_ = Pg();
    for (int order = 1; order <= 10; ++order) {
      Pipe(kOrders, pg_.Order('c', order, "PLACED", 770));
      for (int line = 0; line < 3; ++line) {
        Pipe(kLines, pg_.Line('c', order * 10 + line, order, "a", 770));
      }
    }
    Pipe(kTx, pg_.End(770, 10, 30));
    pg_.NewTransaction();
    Pipe(kLines, pg_.Line('c', 999, 4, "b", 771));
    Pipe(kTx, pg_.End(771, 0, 1));
    return Output();
  };
  const std::vector<Version> whole = run(0);
  EXPECT_EQ(driver_->unfinished_records(), 0);
  const std::vector<Version> pieces = run(7);
  EXPECT_GE(driver_->unfinished_records(), 4) << "40 changes in pieces of 7 (whole roots)";
  ASSERT_EQ(whole.size(), 11u);
  ASSERT_EQ(pieces.size(), whole.size());
  for (size_t i = 0; i < whole.size(); ++i) {
    EXPECT_EQ(pieces[i].key, whole[i].key) << i;
    EXPECT_EQ(*pieces[i].value, *whole[i].value) << i;
  }
}

// Without ON DELETE CASCADE, deleting an order leaves its lines in the
// database, still naming it: an order created again with the same id has
// them, as a join in PostgreSQL shows; so does its aggregate.
TEST_F(TransactionAggregateTest, OrderDeletedWithoutItsLinesGetsThemBackWhenCreatedAgain) {
  Pipe(kOrders, pg_.Order('c', 1, "PLACED", 780));
  Pipe(kLines, pg_.Line('c', 11, 1, "a", 780));
  Pipe(kTx, pg_.End(780, 1, 1));
  pg_.NewTransaction();
  Pipe(kOrders, pg_.Order('d', 1, "", 781));
  Pipe(kTx, pg_.End(781, 1, 0));
  pg_.NewTransaction();
  Pipe(kOrders, pg_.Order('c', 1, "NEW", 782));
  Pipe(kTx, pg_.End(782, 1, 0));
  std::vector<Version> out = Output();
  ASSERT_EQ(out.size(), 3u);
  EXPECT_FALSE(out[1].value.has_value()) << "a tombstone";
  EXPECT_EQ(Summary(*out[2].value), "NEW|11,");
}

TEST_F(TransactionAggregateTest, PartialPolicyFailStopsWithTheTransactionNamed) {
  TransactionAggregateSpec spec = Spec();
  spec.partial_policy = IncompletePolicy::kFail;
  Open(spec);
  Pipe(kOrders, pg_.Order('c', 1, "PLACED", 720));
  std::string bad = pg_.Line('c', 11, 1, "a", 720);
  bad.replace(bad.find("\"order_id\""), 10, "\"order_no\"");  // no parent column
  Pipe(kLines, bad);
  Pipe(kTx, pg_.End(720, 1, 1));
  absl::Status status = driver_->AdvanceWallClockTime(absl::Seconds(2));
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("720:"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("bad input"));
  EXPECT_TRUE(Output().empty());
}

TEST_F(TransactionAggregateTest, FailPolicyStopsWithTheTransactionNamed) {
  TransactionAggregateSpec spec = Spec();
  spec.incomplete_policy = IncompletePolicy::kFail;
  Open(spec);
  Pipe(kTx, pg_.End(950, 1, 0));
  absl::Status status = driver_->AdvanceWallClockTime(absl::Minutes(1));
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("transaction 950"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("inventory.purchaseorder 0/1"));
}

TEST_F(TransactionAggregateTest, EmptyTransactionsAreIgnored) {
  Pipe(kTx, pg_.Begin(990));
  Pipe(kTx, R"({"status":"END","id":"990:77","event_count":0,"data_collections":[],"ts_ms":1})");
  pg_.NewTransaction();
  Pipe(kOrders, pg_.Order('c', 3, "PLACED", 991));
  Pipe(kTx, pg_.End(991, 1, 0));
  std::vector<Version> out = Output();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].key, "3");
  EXPECT_EQ(Gauge("cdc-transactions-pending"), 0);
}

TEST_F(TransactionAggregateTest, UnconsumedCollectionsInEndAreIgnored) {
  Pipe(kOrders, pg_.Order('c', 4, "PLACED", 992));
  Pipe(kTx, R"({"status":"END","id":"992:78","event_count":3,"data_collections":[{"data_collection":"inventory.purchaseorder","event_count":1},{"data_collection":"inventory.customers","event_count":2}],"ts_ms":1})");
  EXPECT_EQ(Output().size(), 1u);
}

TEST_F(TransactionAggregateTest, MovedLineLeavesOneOrderAndJoinsAnother) {
  Pipe(kOrders, pg_.Order('c', 1, "PLACED", 100));
  Pipe(kOrders, pg_.Order('c', 2, "PLACED", 100));
  Pipe(kLines, pg_.Line('c', 7, 1, "a", 100));
  Pipe(kLines, pg_.Line('c', 8, 1, "b", 100));
  Pipe(kTx, pg_.End(100, 2, 2));
  ASSERT_EQ(Output().size(), 2u);
  pg_.NewTransaction();
  // PostgreSQL's default replica identity: the update's before is null.
  Pipe(kLines, pg_.Line('u', 7, 2, "a", 101));
  Pipe(kTx, pg_.End(101, 0, 1));
  std::vector<Version> out = Output();
  ASSERT_EQ(out.size(), 2u);
  std::map<std::string, std::string> by_key;
  for (const Version& v : out) by_key[v.key] = Summary(*v.value);
  EXPECT_EQ(by_key["1"], "PLACED|8,");
  EXPECT_EQ(by_key["2"], "PLACED|7,");
}

TEST_F(TransactionAggregateTest, DeletesRemoveLinesAndTombstoneTheOrder) {
  Pipe(kOrders, pg_.Order('c', 1, "PLACED", 100));
  Pipe(kLines, pg_.Line('c', 7, 1, "a", 100));
  Pipe(kLines, pg_.Line('c', 8, 1, "b", 100));
  Pipe(kTx, pg_.End(100, 1, 2));
  ASSERT_EQ(Output().size(), 1u);
  pg_.NewTransaction();
  Pipe(kLines, pg_.Line('d', 7, 0, "", 101));  // before holds only the key
  Pipe(kTx, pg_.End(101, 0, 1));
  std::vector<Version> out = Output();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(Summary(*out[0].value), "PLACED|8,");
  pg_.NewTransaction();
  Pipe(kLines, pg_.Line('d', 8, 0, "", 102));
  Pipe(kOrders, pg_.Order('d', 1, "", 102));
  Pipe(kTx, pg_.End(102, 1, 1));
  out = Output();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].key, "1");
  EXPECT_FALSE(out[0].value.has_value()) << "tombstone";
}

TEST_F(TransactionAggregateTest, LinesWithoutTheirOrderWaitForIt) {
  Pipe(kLines, pg_.Line('c', 7, 42, "a", 100));
  Pipe(kTx, pg_.End(100, 0, 1));
  EXPECT_TRUE(Output().empty());
  pg_.NewTransaction();
  Pipe(kOrders, pg_.Order('c', 42, "PLACED", 101));
  Pipe(kTx, pg_.End(101, 1, 0));
  std::vector<Version> out = Output();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(Summary(*out[0].value), "PLACED|7,");
}

// An initial snapshot is one consistent read: one version per order, once
// it is complete, and streaming transactions after it.
TEST_F(TransactionAggregateTest, InitialSnapshotIsOneVersionPerOrderWhenComplete) {
  Pipe(kOrders, pg_.SnapshotOrder(1, "first"));
  Pipe(kOrders, pg_.SnapshotOrder(2));
  Pipe(kLines, pg_.SnapshotLine(10, 1));
  // A streaming transaction whose events come before the snapshot's last row.
  Pipe(kOrders, pg_.Order('u', 1, "SHIPPED", 500));
  Pipe(kTx, pg_.End(500, 1, 0));
  Pipe(kLines, pg_.SnapshotLine(11, 1));
  EXPECT_TRUE(Output().empty()) << "the snapshot's last record has not come";
  driver_->SetSourceEndOffset(kLines, 4);  // one more row to come
  Pipe(kLines, pg_.SnapshotLine(12, 2, "last"));
  ASSERT_TRUE(driver_->AdvanceWallClockTime(absl::Seconds(3)).ok());
  EXPECT_TRUE(Output().empty()) << "a snapshot row may still be in the order-line topic";
  Pipe(kLines, pg_.SnapshotLine(13, 2));  // late: rows of other partitions lag
  ASSERT_TRUE(driver_->AdvanceWallClockTime(absl::Seconds(1)).ok());
  std::vector<Version> out = Output();
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].key, "1");
  EXPECT_EQ(Summary(*out[0].value), "PLACED|10,11,");
  EXPECT_THAT(*out[0].value, HasSubstr(R"("source_tx":{"id":"snapshot","position":-1},"version":1)"));
  EXPECT_EQ(out[1].key, "2");
  EXPECT_EQ(Summary(*out[1].value), "PLACED|12,13,");
  EXPECT_EQ(out[2].key, "1");
  EXPECT_EQ(Summary(*out[2].value), "SHIPPED|10,11,");
  EXPECT_THAT(*out[2].value, HasSubstr(R"("version":2)"));
}

// A snapshot larger than one delete batch (its rows are removed from the
// buffer in batches while they are applied).
// Also: held changes past held_memory_bytes spill to the local store, and
// are applied from there.
TEST_F(TransactionAggregateTest, LargeSnapshotIsOneVersionPerOrder) {
  TransactionAggregateSpec spec = Spec();
  spec.held_memory_bytes = 64 << 10;
  Open(spec);
  constexpr int kOrdersInSnapshot = 2500;
  constexpr int kLinesPerOrder = 10;
  for (int o = 1; o <= kOrdersInSnapshot; ++o) {
    Pipe(kOrders, pg_.SnapshotOrder(o, o == 1 ? "first" : "true"));
  }
  for (int o = 1; o <= kOrdersInSnapshot; ++o) {
    for (int l = 0; l < kLinesPerOrder; ++l) {
      const bool last = o == kOrdersInSnapshot && l == kLinesPerOrder - 1;
      Pipe(kLines, pg_.SnapshotLine(o * 100 + l, o, last ? "last" : "true"));
    }
  }
  EXPECT_TRUE(Output().empty());
  EXPECT_GT(Counter("cdc-held-bytes-spilled-total"), 0);
  EXPECT_TRUE(driver_->GetStore("cdc-pending")->PrefixScan("u")->Valid()) << "spilled";
  ASSERT_TRUE(driver_->AdvanceWallClockTime(absl::Seconds(2)).ok());
  std::vector<Version> out = Output();
  ASSERT_EQ(out.size(), static_cast<size_t>(kOrdersInSnapshot));
  for (const Version& v : out) {
    simdjson::dom::parser parser;
    simdjson::dom::element doc = parser.parse(*v.value);
    EXPECT_EQ(doc["lines"].get_array().size(), static_cast<size_t>(kLinesPerOrder));
    EXPECT_EQ(int64_t(doc["version"]), 1);
  }
  EXPECT_FALSE(driver_->GetStore("cdc-pending")->PrefixScan("u")->Valid()) << "applied";
  EXPECT_EQ(Gauge("cdc-held-change-bytes"), 0);
}

// With nothing streaming after it, the snapshot completes once every
// partition has been read to its end after its last record.
TEST_F(TransactionAggregateTest, SnapshotOfAnIdleDatabaseCompletesByReadingToTheEnd) {
  Pipe(kOrders, pg_.SnapshotOrder(1, "first"));
  Pipe(kLines, pg_.SnapshotLine(10, 1, "last"));
  EXPECT_TRUE(Output().empty());
  ASSERT_TRUE(driver_->AdvanceWallClockTime(absl::Milliseconds(500)).ok());
  EXPECT_TRUE(Output().empty()) << "not before the grace";
  ASSERT_TRUE(driver_->AdvanceWallClockTime(absl::Seconds(1)).ok());
  std::vector<Version> out = Output();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(Summary(*out[0].value), "PLACED|10,");
  EXPECT_EQ(Gauge("cdc-transactions-pending"), 0);
}

// Debezium 3.6.1 marks only the last row of the whole snapshot "last"; with
// the outbox table captured too, that row is the outbox's, which this
// topology does not read. The first streamed transaction (its END's LSN is
// above the snapshot's) says the snapshot has ended.
TEST_F(TransactionAggregateTest, SnapshotWhoseLastRowIsInAnotherTableEndsWithTheStream) {
  Pipe(kOrders, pg_.SnapshotOrder(1, "first"));
  Pipe(kLines, pg_.SnapshotLine(10, 1, "first_in_data_collection"));
  Pipe(kLines, pg_.SnapshotLine(11, 1, "last_in_data_collection"));
  ASSERT_TRUE(driver_->AdvanceWallClockTime(absl::Seconds(5)).ok());
  EXPECT_TRUE(Output().empty()) << "the order table's snapshot may not have ended";
  Pipe(kOrders, pg_.Order('u', 1, "SHIPPED", 500));
  Pipe(kTx, pg_.End(500, 1, 0));
  std::vector<Version> out = Output();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(Summary(*out[0].value), "PLACED|10,11,");
  EXPECT_EQ(Summary(*out[1].value), "SHIPPED|10,11,");
}

// A connector re-created with snapshot.mode=initial: snapshot 1, the
// transactions it streamed, snapshot 2 (which also holds a change made while
// no connector ran), the transactions after it. However the topics
// interleave on the way here, each goes in at its place in commit order.
TEST_F(TransactionAggregateTest, SnapshotsAndTransactionsBetweenThemApplyInCommitOrder) {
  auto order = [](std::string_view status) {
    return absl::StrCat(R"({"id":1,"customer_id":7,"order_date":19700,"status":")",
                        Sv(status), R"("})");
  };
  auto line = [](std::string_view product) {
    return absl::StrCat(R"({"id":10,"order_id":1,"product":")", Sv(product),
                        R"(","quantity":1,"price":"BOI=","status":"ENTERED"})");
  };
  // Debezium's order on each topic; all of the orders topic arrives first,
  // then the transaction topic, then the lines topic.
  Pipe(kOrders, pg_.SnapshotRow("purchaseorder", order("PLACED"), "first", 900));
  Pipe(kOrders, pg_.Change("purchaseorder", 'u', "null", order("SHIPPED"), 700));
  const std::string line_700 = pg_.Change("orderline", 'u', "null", line("a2"), 700);
  const std::string end_700 = pg_.End(700, 1, 1);
  pg_.SetLsn(5000);
  Pipe(kOrders, pg_.SnapshotRow("purchaseorder", order("OFFLINE"), "first", 5000));
  pg_.SetLsn(6000);
  pg_.NewTransaction();
  Pipe(kOrders, pg_.Change("purchaseorder", 'u', "null", order("DONE"), 800));
  const std::string end_800 = pg_.End(800, 1, 0);
  Pipe(kTx, end_700);
  Pipe(kTx, end_800);
  EXPECT_TRUE(Output().empty()) << "the lines of snapshot 1 and of 700 are still to come";
  Pipe(kLines, pg_.SnapshotRow("orderline", line("a"), "last", 900));
  Pipe(kLines, line_700);
  Pipe(kLines, pg_.SnapshotRow("orderline", line("a3"), "last", 5000));
  ASSERT_TRUE(driver_->AdvanceWallClockTime(absl::Seconds(2)).ok());
  std::vector<Version> out = Output();
  ASSERT_EQ(out.size(), 4u);
  std::vector<std::string> got;
  for (const Version& v : out) {
    simdjson::dom::parser parser;
    simdjson::dom::element doc = parser.parse(*v.value);
    got.push_back(absl::StrCat(Sv(std::string_view(doc["status"])), "/",
                               Sv(std::string_view(doc["lines"].at(0)["product"])), "/",
                               Sv(std::string_view(doc["source_tx"]["id"])), "/",
                               int64_t(doc["version"])));
  }
  EXPECT_THAT(got, ElementsAre("PLACED/a/snapshot/1", "SHIPPED/a2/700/2",
                               "OFFLINE/a3/snapshot/3", "DONE/a3/800/4"));
}

// With two partitions per table, a partition that had snapshot rows is
// past the snapshot once a streaming event follows them there.
TEST_F(TransactionAggregateTest, SnapshotCompletesWhenStreamingFollowsItsRowsEverywhere) {
  Open(Spec(), ErrorPolicy::kContinue, /*table_partitions=*/2);
  driver_->SetSourceEndOffset(kOrders, 1000000);  // never read to the end
  driver_->SetSourceEndOffset(kLines, 1000000);
  PipeAt(kOrders, 0, pg_.SnapshotOrder(1, "first"));
  PipeAt(kOrders, 1, pg_.SnapshotOrder(2));
  PipeAt(kLines, 0, pg_.SnapshotLine(10, 1));
  PipeAt(kLines, 1, pg_.SnapshotLine(11, 2, "last"));
  ASSERT_TRUE(driver_->AdvanceWallClockTime(absl::Seconds(3)).ok());
  EXPECT_TRUE(Output().empty());
  for (int p = 0; p < 2; ++p) {
    PipeAt(kOrders, p, pg_.Order('u', 1 + p, "SHIPPED", 600));
    PipeAt(kLines, p, pg_.Line('u', 10 + p, 1 + p, "x", 600));
  }
  Pipe(kTx, pg_.End(600, 2, 2));
  std::vector<Version> out = Output();
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(Summary(*out[0].value), "PLACED|10,");
  EXPECT_EQ(Summary(*out[1].value), "PLACED|11,");
  EXPECT_EQ(Summary(*out[2].value), "SHIPPED|10,");
}

// An incremental snapshot row is the row's state after every transaction
// committed before its chunk closed: it waits for the pending transaction its
// partition delivered before it.
TEST_F(TransactionAggregateTest, IncrementalSnapshotRowWaitsForItsPartitionsPendingTransaction) {
  Pipe(kOrders, pg_.Order('c', 1, "PLACED", 700));
  Pipe(kLines, pg_.Line('c', 5, 1, "a", 700));
  Pipe(kTx, pg_.End(700, 1, 1));
  ASSERT_EQ(Output().size(), 1u);
  pg_.NewTransaction();
  Pipe(kLines, pg_.Line('u', 5, 1, "b", 701));  // 701's END lags
  Pipe(kLines, pg_.SnapshotLine(6, 1, "incremental"));
  EXPECT_TRUE(Output().empty()) << "line 6 waits for 701";
  Pipe(kTx, pg_.End(701, 0, 1));
  std::vector<Version> out = Output();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(Summary(*out[0].value), "PLACED|5,");
  EXPECT_THAT(*out[0].value, HasSubstr(R"("product":"b")"));
  EXPECT_EQ(Summary(*out[1].value), "PLACED|5,6,");
  EXPECT_THAT(*out[1].value, HasSubstr(R"("source_tx":{"id":"","position":-1},"version":3)"));
}

// Most rows an incremental snapshot reads are already known: equal, they say
// nothing and emit nothing; a row not known yet is a new version.
TEST_F(TransactionAggregateTest, IncrementalSnapshotRowsEqualToTheStateEmitNothing) {
  const std::string order_row =
      R"({"id":1,"customer_id":7,"order_date":19700,"status":"PLACED"})";
  Pipe(kOrders, pg_.Change("purchaseorder", 'c', "null", order_row, 710));
  Pipe(kLines, pg_.Line('c', 5, 1, "a", 710));
  Pipe(kTx, pg_.End(710, 1, 1));
  ASSERT_EQ(Output().size(), 1u);
  Pipe(kOrders, pg_.SnapshotRow("purchaseorder", order_row, "incremental"));
  Pipe(kLines, pg_.SnapshotRow(
                   "orderline",
                   R"({"id":5,"order_id":1,"product":"a","quantity":1,"price":"BOI=","status":"ENTERED"})",
                   "incremental"));
  EXPECT_TRUE(Output().empty());
  Pipe(kLines, pg_.SnapshotLine(9, 1, "incremental"));
  std::vector<Version> out = Output();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(Summary(*out[0].value), "PLACED|5,9,");
}

// Rows of an incremental snapshot with nothing pending are units of their
// own, emitted as they come.
TEST_F(TransactionAggregateTest, IncrementalSnapshotRowsAreUnitsOfTheirOwn) {
  Pipe(kOrders, pg_.SnapshotOrder(1, "incremental"));
  Pipe(kOrders, pg_.SnapshotOrder(2, "incremental"));
  std::vector<Version> out = Output();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_THAT(*out[0].value, HasSubstr(R"("source_tx":{"id":"","position":-1})"));
}

TEST_F(TransactionAggregateTest, MalformedInputGoesToTheDeadLetterTopicAndProcessingGoesOn) {
  Pipe(kLines, "{not json");
  Pipe(kOrders, R"({"before":null,"after":{"id":1},"source":{"connector":"postgresql","db":"orderdb","schema":"inventory","table":"purchaseorder","txId":1,"lsn":5},"transaction":null,"op":"x","ts_ms":1})");
  Pipe(kOrders, pg_.Order('c', 1, "PLACED", 100));
  Pipe(kTx, pg_.End(100, 1, 0));
  EXPECT_EQ(Output().size(), 1u);
  std::vector<OwnedRecord> dead = driver_->ReadOutput("dlq");
  ASSERT_EQ(dead.size(), 2u);
  EXPECT_EQ(dead[0].value, "{not json");
  std::map<std::string, std::string> headers;
  for (const auto& h : dead[1].headers) headers[h.key] = h.value.value_or("");
  EXPECT_EQ(headers["tributary.source.topic"], kOrders);
  EXPECT_THAT(headers["tributary.error"], HasSubstr("op"));
}

TEST_F(TransactionAggregateTest, HundredThousandEventTransaction) {
  constexpr int kOrdersInTx = 1000;
  constexpr int kLinesPerOrder = 99;
  for (int o = 0; o < kOrdersInTx; ++o) {
    Pipe(kOrders, pg_.Order('c', o, "PLACED", 5000));
    for (int l = 0; l < kLinesPerOrder; ++l) {
      Pipe(kLines, pg_.Line('c', o * 1000 + l, o, "p", 5000));
    }
  }
  EXPECT_TRUE(Output().empty());
  Pipe(kTx, pg_.End(5000, kOrdersInTx, kOrdersInTx * kLinesPerOrder));
  std::vector<Version> out = Output();
  ASSERT_EQ(out.size(), static_cast<size_t>(kOrdersInTx));
  for (const Version& v : out) {
    simdjson::dom::parser parser;
    simdjson::dom::element doc = parser.parse(*v.value);
    EXPECT_EQ(doc["lines"].get_array().size(), static_cast<size_t>(kLinesPerOrder));
  }
}

// Debezium 3.6.1 on PostgreSQL 15: UPDATE orderline SET id = ... is a delete
// of the old key and a create of the new one with ONE source.lsn; both count
// in END. Merging them by (xid, lsn) stalled every later transaction.
TEST_F(TransactionAggregateTest, PrimaryKeyUpdateIsTwoEventsWithOneLsn) {
  Pipe(kOrders, pg_.Order('c', 1, "PLACED", 300));
  Pipe(kLines, pg_.Line('c', 5, 1, "a", 300));
  Pipe(kTx, pg_.End(300, 1, 1));
  ASSERT_EQ(Output().size(), 1u);
  pg_.NewTransaction();
  Pipe(kTx, pg_.Begin(301));
  const std::string removed = pg_.Line('d', 5, 0, "", 301);
  pg_.SameLsnNext();
  const std::string added = pg_.Line('c', 6, 1, "a", 301);
  Pipe(kLines, removed);
  Pipe(kLines, added);
  Pipe(kLines, removed);  // repeats of both are still repeats
  Pipe(kLines, added);
  EXPECT_EQ(Counter("cdc-duplicates-dropped-total"), 2);
  Pipe(kTx, pg_.End(301, 0, 2));
  std::vector<Version> out = Output();
  ASSERT_EQ(out.size(), 1u) << "released, not stalled";
  EXPECT_EQ(Summary(*out[0].value), "PLACED|6,");
  EXPECT_EQ(Gauge("cdc-transactions-pending"), 0);
}

// Schemas of orderline's columns before and after `ALTER TABLE orderline ADD
// COLUMN discount numeric(10,2) NOT NULL DEFAULT 0.00, ADD COLUMN gift_note
// text DEFAULT 'none'`, and after a later `DROP COLUMN product`, as the JSON
// converter writes them (Decimal defaults are base64 like the values).
constexpr char kLineFields[] =
    R"({"type":"int32","optional":false,"field":"id"},)"
    R"({"type":"int32","optional":true,"field":"order_id"},)"
    R"({"type":"string","optional":true,"field":"product"},)"
    R"({"type":"int32","optional":true,"field":"quantity"},)"
    R"({"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2"},"field":"price"},)"
    R"({"type":"string","optional":true,"field":"status"})";
constexpr char kAddedFields[] =
    R"(,{"type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2"},"default":"AA==","field":"discount"})"
    R"(,{"type":"string","optional":true,"default":"none","field":"gift_note"})";

// The names of the fields of each line of `aggregate`, and their values.
std::vector<std::string> LineColumns(const std::string& aggregate) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(aggregate);
  std::vector<std::string> lines;
  for (simdjson::dom::element line : doc["lines"].get_array()) {
    std::vector<std::string> fields;
    for (auto field : line.get_object()) {
      fields.push_back(absl::StrCat(Sv(field.key), "=", simdjson::minify(field.value)));
    }
    lines.push_back(absl::StrJoin(fields, " "));
  }
  return lines;
}

// ALTER TABLE ... ADD COLUMN (with defaults) and DROP COLUMN mid-stream:
// Debezium says nothing of the ALTER; the table's next event carries the new
// schema. Every aggregate task (two here) rewrites its stored lines to it;
// as PostgreSQL shows every line in the new shape once that transaction
// commits, every order whose lines changed shape gets a version for it
// (one each), also those it did not touch itself.
TEST_F(TransactionAggregateTest, AlterTableAddAndDropColumnReshapeStoredRows) {
  Open(Spec(), ErrorPolicy::kContinue, /*table_partitions=*/2);
  const std::string old_fields = kLineFields;
  for (int order = 1; order <= 4; ++order) {
    Pipe(kOrders, pg_.Order('c', order, "PLACED", 400));
    Pipe(kLines, Pg::WithSchema(pg_.Line('c', order * 10 + 1, order, "a", 400), old_fields));
  }
  Pipe(kOrders, pg_.Order('c', 5, "PLACED", 400));  // no lines: no line to reshape
  Pipe(kTx, pg_.End(400, 5, 4));
  ASSERT_EQ(Output().size(), 5u);

  // After the ALTER: a new line of order 1, in the new shape.
  const std::string added_fields = old_fields + kAddedFields;
  pg_.NewTransaction();
  Pipe(kLines, Pg::WithSchema(
                   pg_.Change("orderline", 'c', "null",
                              R"({"id":12,"order_id":1,"product":"b","quantity":2,"price":"BOI=","status":"ENTERED","discount":"fQ==","gift_note":"wrap"})",
                              401),
                   added_fields));
  Pipe(kTx, pg_.End(401, 0, 1));
  std::map<std::string, std::vector<std::string>> lines;
  std::vector<Version> out = Output();
  for (const Version& v : out) lines[v.key] = LineColumns(*v.value);
  ASSERT_EQ(out.size(), 4u) << "orders 1-4, once each; order 5 has no line";
  EXPECT_THAT(
      lines["1"],
      ElementsAre(
          R"(id=11 order_id=1 product="a" quantity=1 price="12.50" status="ENTERED" discount="0.00" gift_note="none")",
          R"(id=12 order_id=1 product="b" quantity=2 price="12.50" status="ENTERED" discount="1.25" gift_note="wrap")"));
  for (const char* order : {"2", "3", "4"}) {
    EXPECT_THAT(lines[order],
                ElementsAre(absl::StrCat("id=", order, R"(1 order_id=)", order,
                                         R"( product="a" quantity=1 price="12.50" status="ENTERED" discount="0.00" gift_note="none")")))
        << "order " << order << ", whichever task holds it";
  }
  EXPECT_EQ(Counter("cdc-rows-reshaped-total"), 4) << "each stored line once, in either task";

  // Orders 2-4 change their own row only: their lines keep the new shape.
  pg_.NewTransaction();
  for (int order = 2; order <= 4; ++order) Pipe(kOrders, pg_.Order('u', order, "PAID", 402));
  Pipe(kTx, pg_.End(402, 3, 0));
  out = Output();
  ASSERT_EQ(out.size(), 3u);
  for (const Version& v : out) {
    EXPECT_THAT(LineColumns(*v.value),
                ElementsAre(absl::StrCat("id=", v.key, R"(1 order_id=)", v.key,
                                         R"( product="a" quantity=1 price="12.50" status="ENTERED" discount="0.00" gift_note="none")")));
  }

  // DROP COLUMN product, then an update of line 31 (order 3): every order
  // with lines loses the column, in one version each.
  std::string dropped_fields = added_fields;
  const std::string product = R"({"type":"string","optional":true,"field":"product"},)";
  dropped_fields.erase(dropped_fields.find(product), product.size());
  pg_.NewTransaction();
  Pipe(kLines, Pg::WithSchema(
                   pg_.Change("orderline", 'u', "null",
                              R"({"id":31,"order_id":3,"quantity":5,"price":"BOI=","status":"ENTERED","discount":"AA==","gift_note":"none"})",
                              403),
                   dropped_fields));
  Pipe(kTx, pg_.End(403, 0, 1));
  out = Output();
  lines.clear();
  for (const Version& v : out) lines[v.key] = LineColumns(*v.value);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_THAT(lines["3"],
              ElementsAre(R"(id=31 order_id=3 quantity=5 price="12.50" status="ENTERED" discount="0.00" gift_note="none")"));
  EXPECT_THAT(
      lines["1"],
      ElementsAre(
          R"(id=11 order_id=1 quantity=1 price="12.50" status="ENTERED" discount="0.00" gift_note="none")",
          R"(id=12 order_id=1 quantity=2 price="12.50" status="ENTERED" discount="1.25" gift_note="wrap")"));

  // The same shape again (another event of it) changes nothing more.
  pg_.NewTransaction();
  Pipe(kLines, Pg::WithSchema(
                   pg_.Change("orderline", 'u', "null",
                              R"({"id":41,"order_id":4,"quantity":6,"price":"BOI=","status":"ENTERED","discount":"AA==","gift_note":"none"})",
                              404),
                   dropped_fields));
  Pipe(kTx, pg_.End(404, 0, 1));
  out = Output();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].key, "4");
}

// An incremental snapshot's chunk read with the schema of before an ALTER
// TABLE (seen with real Debezium: a chunk of a snapshot signalled before a
// DROP COLUMN, or started again when its offsets were set back, arrives
// after streamed changes in the new shape). Its rows neither bring the old
// shape back nor add a version: they are read in the table's present shape.
TEST_F(TransactionAggregateTest, IncrementalSnapshotRowInAnOlderShapeTakesThePresentOne) {
  const std::string old_fields = kLineFields;
  const std::string added_fields = old_fields + kAddedFields;
  const std::string line_12 =
      R"({"id":12,"order_id":1,"product":"b","quantity":2,"price":"BOI=","status":"ENTERED","discount":"fQ==","gift_note":"wrap"})";
  Pipe(kOrders, pg_.Order('c', 1, "PLACED", 420));
  Pipe(kLines, Pg::WithSchema(pg_.Line('c', 11, 1, "a", 420), old_fields));
  Pipe(kTx, pg_.End(420, 1, 1));
  pg_.NewTransaction();
  Pipe(kLines, Pg::WithSchema(pg_.Change("orderline", 'c', "null", line_12, 421), added_fields));
  Pipe(kTx, pg_.End(421, 0, 1));
  ASSERT_EQ(Output().size(), 2u);

  // Line 11 as the chunk read it, in the old shape: equal to what is held
  // once in the present shape.
  Pipe(kLines, Pg::WithSchema(
                   pg_.SnapshotRow(
                       "orderline",
                       R"({"id":11,"order_id":1,"product":"a","quantity":1,"price":"BOI=","status":"ENTERED"})",
                       "incremental"),
                   old_fields));
  EXPECT_TRUE(Output().empty()) << "no version: the row says nothing new";
  EXPECT_EQ(Counter("cdc-snapshot-rows-reshaped-total"), 1);

  // The next change keeps the present shape for every line.
  pg_.NewTransaction();
  Pipe(kOrders, pg_.Order('u', 1, "PAID", 422));
  Pipe(kTx, pg_.End(422, 1, 0));
  std::vector<Version> out = Output();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_THAT(
      LineColumns(*out[0].value),
      ElementsAre(
          R"(id=11 order_id=1 product="a" quantity=1 price="12.50" status="ENTERED" discount="0.00" gift_note="none")",
          R"(id=12 order_id=1 product="b" quantity=2 price="12.50" status="ENTERED" discount="1.25" gift_note="wrap")"));
}

// An ALTER inside a transaction, between two of its changes: one version
// per order still, in the final shape.
TEST_F(TransactionAggregateTest, AlterTableInsideATransactionIsStillOneVersion) {
  const std::string old_fields = kLineFields;
  const std::string added_fields = old_fields + kAddedFields;
  Pipe(kOrders, pg_.Order('c', 1, "PLACED", 410));
  Pipe(kLines, Pg::WithSchema(pg_.Line('c', 11, 1, "a", 410), old_fields));
  Pipe(kLines, Pg::WithSchema(
                   pg_.Change("orderline", 'c', "null",
                              R"({"id":12,"order_id":1,"product":"b","quantity":2,"price":"BOI=","status":"ENTERED","discount":"fQ==","gift_note":"wrap"})",
                              410),
                   added_fields));
  Pipe(kTx, pg_.End(410, 1, 2));
  std::vector<Version> out = Output();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_THAT(
      LineColumns(*out[0].value),
      ElementsAre(
          R"(id=11 order_id=1 product="a" quantity=1 price="12.50" status="ENTERED" discount="0.00" gift_note="none")",
          R"(id=12 order_id=1 product="b" quantity=2 price="12.50" status="ENTERED" discount="1.25" gift_note="wrap")"));
}

// TRUNCATE purchaseorder, orderline, then new rows, in one transaction (two
// aggregate tasks): a tombstone for every order there was, a version of the
// new one, one record each; lines the truncate removed never come back, and
// a line id used again belongs only to its new order.
TEST_F(TransactionAggregateTest, TruncateOfBothTablesThenInsertsIsOneRecordPerOrder) {
  Open(Spec(), ErrorPolicy::kContinue, /*table_partitions=*/2);
  for (int order = 1; order <= 3; ++order) {
    Pipe(kOrders, pg_.Order('c', order, "PLACED", 500));
    if (order < 3) Pipe(kLines, pg_.Line('c', order * 10 + 1, order, "a", 500));
  }
  Pipe(kTx, pg_.End(500, 3, 2));
  ASSERT_EQ(Output().size(), 3u);

  pg_.NewTransaction();
  std::vector<std::pair<const char*, std::string>> truncating;
  truncating.emplace_back(kOrders, pg_.Change("purchaseorder", 't', "null", "null", 501));
  pg_.SameLsnNext();
  truncating.emplace_back(kLines, pg_.Change("orderline", 't', "null", "null", 501));
  truncating.emplace_back(kOrders, pg_.Order('c', 4, "PLACED", 501));
  truncating.emplace_back(kLines, pg_.Line('c', 41, 4, "n", 501));
  truncating.emplace_back(kLines, pg_.Line('c', 42, 1, "n", 501));  // its order comes later
  truncating.emplace_back(kTx, pg_.End(501, 2, 3));
  for (const auto& [topic, value] : truncating) Pipe(topic, value);
  std::map<std::string, std::optional<std::string>> latest;
  std::vector<Version> out = Output();
  for (const Version& v : out) latest[v.key] = v.value;
  ASSERT_EQ(out.size(), 4u) << "one record per order";
  ASSERT_EQ(latest.size(), 4u);
  EXPECT_FALSE(latest["1"].has_value());
  EXPECT_FALSE(latest["2"].has_value());
  EXPECT_FALSE(latest["3"].has_value());
  ASSERT_TRUE(latest["4"].has_value());
  EXPECT_EQ(Summary(*latest["4"]), "PLACED|41,");

  pg_.NewTransaction();
  Pipe(kOrders, pg_.Order('c', 1, "PLACED", 502));
  Pipe(kTx, pg_.End(502, 1, 0));
  out = Output();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(Summary(*out[0].value), "PLACED|42,") << "line 11 was truncated";

  // Line id 11 again, now in order 4: nothing for order 1, whose line 11 the
  // truncate removed.
  pg_.NewTransaction();
  Pipe(kLines, pg_.Line('c', 11, 4, "x", 503));
  Pipe(kTx, pg_.End(503, 0, 1));
  out = Output();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].key, "4");
  EXPECT_EQ(Summary(*out[0].value), "PLACED|11,41,");

  // The truncating transaction delivered again changes nothing.
  for (const auto& [topic, value] : truncating) Pipe(topic, value);
  EXPECT_TRUE(Output().empty());
}

// TRUNCATE of the child table alone: each order that had lines gets a
// version without them; an order without lines gets none.
TEST_F(TransactionAggregateTest, TruncateOfTheChildTableEmptiesEveryOrdersLines) {
  Open(Spec(), ErrorPolicy::kContinue, /*table_partitions=*/2);
  for (int order = 1; order <= 3; ++order) {
    Pipe(kOrders, pg_.Order('c', order, "PLACED", 510));
    if (order < 3) Pipe(kLines, pg_.Line('c', order * 10 + 1, order, "a", 510));
  }
  Pipe(kTx, pg_.End(510, 3, 2));
  ASSERT_EQ(Output().size(), 3u);
  pg_.NewTransaction();
  Pipe(kLines, pg_.Change("orderline", 't', "null", "null", 511));
  Pipe(kTx, pg_.End(511, 0, 1));
  std::vector<Version> out = Output();
  ASSERT_EQ(out.size(), 2u);
  std::set<std::string> keys;
  for (const Version& v : out) {
    keys.insert(v.key);
    EXPECT_EQ(Summary(*v.value), "PLACED|");
  }
  EXPECT_EQ(keys, (std::set<std::string>{"1", "2"}));
}

// Seen with Debezium 3.6.1 after a connector restart: a transaction's
// change was skipped (its LSN equals its BEGIN's) and its END counted 0
// events; a later re-delivery (offsets set back) has the change and an END
// counting it. The release is in the past: the second delivery is dropped,
// and reported as the source's loss.
TEST_F(TransactionAggregateTest, RedeliveryWithMoreEventsThanReleasedIsReported) {
  Pipe(kOrders, pg_.Order('c', 1, "PLACED", 430));
  Pipe(kTx, pg_.End(430, 1, 0));
  ASSERT_EQ(Output().size(), 1u);
  pg_.NewTransaction();
  const std::string begin = pg_.Begin(431);
  const std::string line = pg_.Line('c', 5, 1, "a", 431);
  Pipe(kTx, begin);
  Pipe(kTx, pg_.End(431, 0, 0));  // the line was not sent
  EXPECT_TRUE(Output().empty());
  EXPECT_EQ(Counter("cdc-transactions-incomplete-at-source-total"), 0);
  Pipe(kTx, begin);  // delivered again, whole
  Pipe(kLines, line);
  Pipe(kTx, pg_.End(431, 0, 1));
  EXPECT_TRUE(Output().empty()) << "a released transaction is not released again";
  EXPECT_EQ(Counter("cdc-transactions-incomplete-at-source-total"), 1);
}

// TRUNCATE a, b: one 't' event per table, one LSN, both counted in END.
TEST_F(TransactionAggregateTest, MultiTableTruncateDoesNotStallLaterTransactions) {
  Pipe(kTx, pg_.Begin(310));
  Pipe(kOrders, pg_.Change("purchaseorder", 't', "null", "null", 310));
  pg_.SameLsnNext();
  Pipe(kLines, pg_.Change("orderline", 't', "null", "null", 310));
  Pipe(kTx, pg_.End(310, 1, 1));
  pg_.NewTransaction();
  Pipe(kOrders, pg_.Order('c', 2, "PLACED", 311));
  Pipe(kTx, pg_.End(311, 1, 0));
  std::vector<Version> out = Output();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].key, "2");
  EXPECT_EQ(Gauge("cdc-transactions-pending"), 0);
}

// The lost version of the e2e run (issue 8, item 4): the connector restarted
// inside transaction 960 after writing its order and first line; it then
// wrote a second BEGIN, the two remaining lines and an END that counts only
// those two (orderline 2, purchaseorder 0). The order and the first line sit
// in partitions that lag. By counts alone 960 looks complete when its END
// arrives; it used to be released without its order and first line, which
// then arrived and were dropped as re-deliveries of a released transaction.
TEST_F(TransactionAggregateTest, RestartInsideTransactionWaitsUntilEveryPartitionIsPast) {
  Open(Spec(), ErrorPolicy::kContinue, /*table_partitions=*/2);
  const std::string order = pg_.Order('c', 1001, "PLACED", 960);
  const std::string first_line = pg_.Line('c', 1, 1001, "a", 960);
  Pipe(kTx, pg_.Begin(960));
  // (the connector restarts; its counters start again)
  pg_.NewTransaction();
  Pipe(kTx, pg_.Begin(960));
  PipeAt(kLines, 0, pg_.Line('c', 2, 1001, "b", 960));
  PipeAt(kLines, 0, pg_.Line('c', 3, 1001, "c", 960));
  // The order topic (read by the router that reports) has a record to come.
  driver_->SetSourceEndOffset(kOrders, 1);
  Pipe(kTx, pg_.End(960, 0, 2));
  ASSERT_TRUE(driver_->AdvanceWallClockTime(absl::Seconds(3)).ok());
  EXPECT_TRUE(Output().empty()) << "buffered counts equal END's, but a second BEGIN was seen";
  EXPECT_EQ(Counter("cdc-transactions-restarted-total"), 1);
  Pipe(kOrders, order);
  PipeAt(kLines, 1, first_line);
  ASSERT_TRUE(driver_->AdvanceWallClockTime(absl::Seconds(1)).ok());
  EXPECT_TRUE(Output().empty()) << "lines partition 1 is not proven past 960";
  // A later transaction's events in lines partition 1 and orders partition 1
  // (whose router never reports here) prove it.
  pg_.NewTransaction();
  PipeAt(kLines, 1, pg_.Line('c', 4, 1001, "d", 961));
  PipeAt(kOrders, 1, pg_.Order('c', 2000, "PLACED", 961));
  Pipe(kTx, pg_.End(961, 1, 1));
  std::vector<Version> out = Output();
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(Summary(*out[0].value), "PLACED|1,2,3,");
  EXPECT_EQ(Summary(*out[1].value), "PLACED|1,2,3,4,");
  EXPECT_EQ(out[2].key, "2000");
  EXPECT_EQ(Counter("cdc-transactions-completed-by-position-total"), 1);
  EXPECT_EQ(Gauge("cdc-transactions-pending"), 0);
}

// The same restart with every partition proven by its router reading it to
// the end (no later transaction needed): the proof for an idle topic.
TEST_F(TransactionAggregateTest, RestartedTransactionCompletesWhenEveryPartitionIsReadToTheEnd) {
  const std::string order = pg_.Order('c', 1001, "PLACED", 965);
  Pipe(kTx, pg_.Begin(965));
  pg_.NewTransaction();
  Pipe(kTx, pg_.Begin(965));
  Pipe(kLines, pg_.Line('c', 2, 1001, "b", 965));
  driver_->SetSourceEndOffset(kOrders, 1);
  Pipe(kTx, pg_.End(965, 0, 1));
  ASSERT_TRUE(driver_->AdvanceWallClockTime(absl::Seconds(3)).ok());
  EXPECT_TRUE(Output().empty());
  Pipe(kOrders, order);
  ASSERT_TRUE(driver_->AdvanceWallClockTime(absl::Seconds(1)).ok());
  std::vector<Version> out = Output();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(Summary(*out[0].value), "PLACED|2,");
}

// A transaction delivered again whole (BEGIN, events, END: a rewound
// connector) while its first delivery still waits for a lagging line: the
// BEGIN after its END is no restart, and its counts stay trusted.
TEST_F(TransactionAggregateTest, BeginAfterEndIsARedeliveryNotARestart) {
  const std::string begin = pg_.Begin(975);
  const std::string order = pg_.Order('c', 1, "PLACED", 975);
  const std::string line = pg_.Line('c', 10, 1, "a", 975);
  const std::string end = pg_.End(975, 1, 1);
  Pipe(kTx, begin);
  Pipe(kOrders, order);
  Pipe(kTx, end);
  Pipe(kTx, begin);  // delivered again
  Pipe(kOrders, order);
  Pipe(kTx, end);
  EXPECT_TRUE(Output().empty());
  Pipe(kLines, line);
  std::vector<Version> out = Output();
  ASSERT_EQ(out.size(), 1u) << "released by its counts at once";
  EXPECT_EQ(Summary(*out[0].value), "PLACED|10,");
  EXPECT_EQ(Counter("cdc-transactions-restarted-total"), 0);
  EXPECT_EQ(Counter("cdc-transactions-completed-by-position-total"), 0);
}

// A report of being read to the end counts only when taken at least
// visibility_grace after the END arrived.
TEST_F(TransactionAggregateTest, ReadToTheEndCountsOnlyAfterTheGrace) {
  TransactionAggregateSpec spec = Spec();
  spec.visibility_grace = absl::Seconds(5);
  Open(spec);
  Pipe(kTx, pg_.Begin(970));
  Pipe(kTx, pg_.Begin(970));
  Pipe(kOrders, pg_.Order('c', 7, "PLACED", 970));
  Pipe(kTx, pg_.End(970, 1, 0));
  ASSERT_TRUE(driver_->AdvanceWallClockTime(absl::Seconds(4)).ok());
  EXPECT_TRUE(Output().empty());
  ASSERT_TRUE(driver_->AdvanceWallClockTime(absl::Seconds(2)).ok());
  EXPECT_EQ(Output().size(), 1u);
}

// With three partitions per table and no proof by reading to the end (the
// routers of partitions 1 and 2 never report here), a restarted transaction
// completes once every partition has delivered an event of a later one.
TEST_F(TransactionAggregateTest, RestartedTransactionCompletesWhenLaterOnesPassEveryPartition) {
  Open(Spec(), ErrorPolicy::kContinue, /*table_partitions=*/3);
  driver_->SetSourceEndOffset(kOrders, 1000000);  // never read to the end
  driver_->SetSourceEndOffset(kLines, 1000000);
  Pipe(kTx, pg_.Begin(980));
  pg_.NewTransaction();
  Pipe(kTx, pg_.Begin(980));
  PipeAt(kOrders, 0, pg_.Order('c', 1, "PLACED", 980));
  PipeAt(kLines, 1, pg_.Line('c', 11, 1, "a", 980));
  PipeAt(kLines, 2, pg_.Line('c', 12, 1, "b", 980));
  Pipe(kTx, pg_.End(980, 0, 1));
  ASSERT_TRUE(driver_->AdvanceWallClockTime(absl::Seconds(3)).ok());
  EXPECT_TRUE(Output().empty());
  // 981 touches every partition but lines partition 0.
  pg_.NewTransaction();
  Pipe(kTx, pg_.Begin(981));
  for (int p = 0; p < 3; ++p) PipeAt(kOrders, p, pg_.Order('c', 100 + p, "PLACED", 981));
  PipeAt(kLines, 1, pg_.Line('c', 21, 100, "x", 981));
  PipeAt(kLines, 2, pg_.Line('c', 22, 100, "y", 981));
  Pipe(kTx, pg_.End(981, 3, 2));
  EXPECT_TRUE(Output().empty()) << "lines partition 0 has not moved past 980";
  pg_.NewTransaction();
  PipeAt(kLines, 0, pg_.Line('c', 31, 101, "z", 982));
  EXPECT_TRUE(Output().empty()) << "982's END is not known yet";
  Pipe(kTx, pg_.End(982, 0, 1));
  std::vector<Version> out = Output();
  ASSERT_EQ(out.size(), 5u) << "980, then 981 (three orders), then 982";
  EXPECT_EQ(out[0].key, "1");
  EXPECT_EQ(Summary(*out[0].value), "PLACED|11,12,");
  EXPECT_EQ(Counter("cdc-transactions-completed-by-position-total"), 1);
}

// A transaction whose counts never match but whose every partition has
// moved past it says so: its events will not come.
TEST_F(TransactionAggregateTest, HeldTransactionSaysWhetherItsEventsCanStillCome) {
  TransactionAggregateSpec spec = Spec();
  spec.incomplete_policy = IncompletePolicy::kFail;
  Open(spec);
  Pipe(kOrders, pg_.Order('c', 1, "PLACED", 990));
  Pipe(kTx, pg_.End(990, 1, 1));
  driver_->SetSourceEndOffset(kLines, 5);
  // The order topic's router reports reading it to the end (at its next
  // commit), the line topic's cannot.
  ASSERT_TRUE(driver_->AdvanceWallClockTime(absl::Seconds(2)).ok());
  absl::Status status = driver_->AdvanceWallClockTime(absl::Minutes(1));
  EXPECT_THAT(std::string(status.message()), HasSubstr("not yet moved past it: " +
                                                       std::string(kLines) + "[0]"));
}

TEST_F(TransactionAggregateTest, UnchangedToastedColumnsKeepTheirPreviousValue) {
  auto order = [&](std::string_view note, int64_t xid) {
    return pg_.Change("purchaseorder", 'u', "null",
                      absl::StrCat(R"({"id":1,"status":"PLACED","note":)", Sv(note),
                                   R"(,"tags":["a","b"],"blob":"AAEC"})"),
                      xid);
  };
  Pipe(kOrders, order(R"("long text")", 400));
  Pipe(kLines, pg_.Line('c', 5, 1, "first product", 400));
  Pipe(kTx, pg_.End(400, 1, 1));
  ASSERT_EQ(Output().size(), 1u);
  pg_.NewTransaction();
  Pipe(kOrders, pg_.Change("purchaseorder", 'u', "null",
                           R"({"id":1,"status":"SHIPPED","note":"__debezium_unavailable_value","tags":["__debezium_unavailable_value"],"blob":"X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ=="})",
                           401));
  Pipe(kLines, pg_.Line('u', 5, 1, "__debezium_unavailable_value", 401));
  Pipe(kTx, pg_.End(401, 1, 1));
  std::vector<Version> out = Output();
  ASSERT_EQ(out.size(), 1u);
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(*out[0].value);
  EXPECT_EQ(std::string_view(doc["status"]), "SHIPPED");
  EXPECT_EQ(std::string_view(doc["note"]), "long text");
  EXPECT_EQ(std::string_view(doc["tags"].at(1)), "b");
  EXPECT_EQ(std::string_view(doc["blob"]), "AAEC");
  EXPECT_EQ(std::string_view(doc["lines"].at(0)["product"]), "first product");
  EXPECT_EQ(Counter("cdc-unavailable-values-unresolved-total"), 0);

  // No earlier value: the placeholder stays, counted.
  pg_.NewTransaction();
  Pipe(kOrders, pg_.Change("purchaseorder", 'u', "null",
                           R"({"id":2,"status":"PLACED","note":"__debezium_unavailable_value"})",
                           402));
  Pipe(kTx, pg_.End(402, 1, 0));
  out = Output();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_THAT(*out[0].value, HasSubstr(R"("note":"__debezium_unavailable_value")"));
  EXPECT_EQ(Counter("cdc-unavailable-values-unresolved-total"), 1);
}

TEST_F(TransactionAggregateTest, OwnFieldNamesAreConfigurableAndClashesAreErrors) {
  // A clash is a setting to change, not a bad record: it stops the task
  // (nothing of the release is committed) with an error naming the setting.
  const std::string with_version = pg_.Change(
      "purchaseorder", 'c', "null", R"({"id":1,"status":"PLACED","version":"v2"})", 410);
  Pipe(kOrders, with_version);
  absl::Status clash = driver_->PipeInput(kTx, "{\"id\":0}", pg_.End(410, 1, 0));
  EXPECT_THAT(std::string(clash.message()), HasSubstr("aggregate.version.field"));
  EXPECT_TRUE(Output().empty());
  EXPECT_TRUE(driver_->ReadOutput("dlq").empty());

  TransactionAggregateSpec spec = Spec();
  spec.version_field = "_version";
  spec.source_field = "_source";
  Open(spec);
  pg_.NewTransaction();
  Pipe(kOrders, pg_.Change("purchaseorder", 'c', "null",
                           R"({"id":1,"status":"PLACED","version":"v2","source_tx":"x"})", 411));
  Pipe(kTx, pg_.End(411, 1, 0));
  std::vector<Version> out = Output();
  ASSERT_EQ(out.size(), 1u);
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(*out[0].value);
  EXPECT_EQ(std::string_view(doc["version"]), "v2");
  EXPECT_EQ(int64_t(doc["_version"]), 1);
  EXPECT_EQ(std::string_view(doc["_source"]["id"]), "411");

  spec.version_field = "lines";
  Topology topology;
  EXPECT_FALSE(AddTransactionAggregate(topology, spec).ok()) << "two fields named lines";
}

// A generated workload for the assembled roots (AggregateJoin's cache of
// roots' children): a small initial snapshot, then transactions that create
// orders, add lines one by one, update them (some with the placeholder of
// an unchanged TOASTed value), move them between orders, delete them,
// delete orders and create them again; incremental snapshot rows between
// transactions; an ALTER TABLE of the lines (a new shape) half way and a
// TRUNCATE of them at three quarters. Events of the two tables interleave
// at random (each table's in order); some ENDs come before their events.
// A step without topic advances the clock (the snapshot completes).
struct Step {
  const char* topic = nullptr;
  std::string value;
};

std::vector<Step> GeneratedWorkload(int transactions, uint32_t seed) {
  Pg pg;
  std::mt19937 random(seed);
  auto chance = [&](int percent) { return static_cast<int>(random() % 100) < percent; };
  const std::string old_fields = kLineFields;
  const std::string added_fields = old_fields + kAddedFields;
  bool altered = false;
  std::map<int, int> line_order;  // line -> its order
  std::set<int> orders, deleted_orders;
  int next_order = 1, next_line = 1;
  auto line_row = [&](int line, int order, std::string_view product) {
    return absl::StrCat(R"({"id":)", line, R"(,"order_id":)", order, R"(,"product":")",
                        Sv(product), R"(","quantity":)", random() % 9 + 1,
                        R"(,"price":"BOI=","status":"ENTERED")",
                        altered ? R"(,"discount":"fQ==","gift_note":"wrap"})" : "}");
  };
  auto with_shape = [&](const std::string& event) {
    return Pg::WithSchema(event, altered ? added_fields : old_fields);
  };
  auto any_of = [&](const auto& container) {
    auto it = container.begin();
    std::advance(it, random() % container.size());
    return it;
  };

  std::vector<Step> steps;
  for (; next_order <= 3; ++next_order) {
    orders.insert(next_order);
    steps.push_back({kOrders, pg.SnapshotOrder(next_order, next_order == 1 ? "first" : "true")});
    for (int l = 0; l < 3; ++l, ++next_line) {
      line_order[next_line] = next_order;
      steps.push_back({kLines, pg.SnapshotLine(next_line, next_order,
                                               next_order == 3 && l == 2 ? "last" : "true")});
    }
  }
  steps.push_back({});
  for (int t = 0; t < transactions; ++t) {
    const int64_t xid = 2000 + t;
    pg.NewTransaction();
    altered = altered || t == transactions / 2;
    std::vector<Step> order_events, line_events;
    if (t == transactions * 3 / 4) {
      line_events.push_back({kLines, pg.Change("orderline", 't', "null", "null", xid)});
      line_order.clear();
    }
    const int ops = 1 + static_cast<int>(random() % 6);
    for (int op = 0; op < ops; ++op) {
      const int r = static_cast<int>(random() % 100);
      if (r < 12 || orders.empty()) {
        int order = next_order++;
        if (!deleted_orders.empty() && chance(50)) {
          order = *any_of(deleted_orders);
          deleted_orders.erase(order);
        }
        orders.insert(order);
        order_events.push_back({kOrders, pg.Order('c', order, "PLACED", xid)});
      } else if (r < 45 || line_order.empty()) {
        // Now and then a line whose order comes later.
        const int order = chance(5) ? next_order + 1 : *any_of(orders);
        line_order[next_line] = order;
        line_events.push_back({kLines, with_shape(pg.Change("orderline", 'c', "null",
                                                            line_row(next_line, order, "p"), xid))});
        ++next_line;
      } else if (r < 60) {
        const auto [line, order] = *any_of(line_order);
        const char* product = chance(30) ? "__debezium_unavailable_value" : "q";
        line_events.push_back({kLines, with_shape(pg.Change("orderline", 'u', "null",
                                                            line_row(line, order, product), xid))});
      } else if (r < 70) {
        const int line = any_of(line_order)->first;
        const int order = *any_of(orders);
        line_order[line] = order;
        line_events.push_back({kLines, with_shape(pg.Change("orderline", 'u', "null",
                                                            line_row(line, order, "m"), xid))});
      } else if (r < 80) {
        const auto it = any_of(line_order);
        line_events.push_back({kLines, pg.Line('d', it->first, 0, "", xid)});
        line_order.erase(it);
      } else if (r < 93) {
        order_events.push_back(
            {kOrders, pg.Order('u', *any_of(orders), chance(50) ? "PAID" : "SHIPPED", xid)});
      } else {
        const int order = *any_of(orders);
        orders.erase(order);
        deleted_orders.insert(order);
        order_events.push_back({kOrders, pg.Order('d', order, "", xid)});
      }
    }
    Step end{kTx, pg.End(xid, static_cast<int>(order_events.size()),
                         static_cast<int>(line_events.size()))};
    const bool end_first = chance(20);
    if (end_first) steps.push_back(end);
    size_t o = 0, l = 0;
    while (o < order_events.size() || l < line_events.size()) {
      const bool take_order =
          l == line_events.size() || (o < order_events.size() && chance(50));
      steps.push_back(take_order ? order_events[o++] : line_events[l++]);
    }
    if (!end_first) steps.push_back(end);
    if (chance(10) && !line_order.empty()) {
      const auto [line, order] = *any_of(line_order);
      steps.push_back(
          {kLines, with_shape(pg.SnapshotRow("orderline", line_row(line, order, "i"),
                                             "incremental"))});
    }
  }
  return steps;
}

class AssembledRootsTest : public TransactionAggregateTest {
 protected:
  struct Run {
    std::vector<Version> output;
    int64_t cached = 0;
    int64_t scanned = 0;
  };
  Run RunWith(size_t cache_bytes, const std::vector<Step>& steps) {
    TransactionAggregateSpec spec = Spec();
    spec.aggregate_cache_bytes = cache_bytes;
    Open(spec);
    for (const Step& step : steps) {
      if (step.topic == nullptr) {
        EXPECT_TRUE(driver_->AdvanceWallClockTime(absl::Seconds(3)).ok());
      } else {
        Pipe(step.topic, step.value);
      }
    }
    return {Output(), Counter("cdc-aggregate-builds-cached-total"),
            Counter("cdc-aggregate-builds-scanned-total")};
  }
};

// Every version is the same, record for record, whether the roots' children
// are cached (in a budget that evicts, or one that holds everything) or
// scanned for each version.
TEST_F(AssembledRootsTest, GeneratedWorkloadEmitsTheSameWithAndWithoutTheCache) {
  const std::vector<Step> steps = GeneratedWorkload(400, 11);
  const Run scanned = RunWith(0, steps);
  ASSERT_FALSE(HasFailure());
  const Run small = RunWith(16 << 10, steps);
  const Run large = RunWith(64 << 20, steps);
  ASSERT_GT(scanned.output.size(), 300u);
  ASSERT_EQ(small.output.size(), scanned.output.size());
  ASSERT_EQ(large.output.size(), scanned.output.size());
  for (size_t i = 0; i < scanned.output.size(); ++i) {
    EXPECT_EQ(small.output[i].key, scanned.output[i].key) << "record " << i;
    EXPECT_EQ(small.output[i].value, scanned.output[i].value) << "record " << i;
    EXPECT_EQ(large.output[i].key, scanned.output[i].key) << "record " << i;
    EXPECT_EQ(large.output[i].value, scanned.output[i].value) << "record " << i;
  }
  EXPECT_EQ(scanned.cached, 0);
  EXPECT_GT(small.cached, 0);
  EXPECT_LT(small.cached, large.cached) << "the small budget evicted";
  EXPECT_EQ(small.cached + small.scanned, scanned.scanned);
  EXPECT_EQ(large.cached + large.scanned, scanned.scanned);
  EXPECT_LE(Gauge("cdc-aggregate-cache-bytes"), 64 << 20);
  EXPECT_GT(Gauge("cdc-aggregate-cache-bytes"), 0);
}

// An order growing by one line a transaction: each version holds exactly
// the lines so far, and every version after the first is built from the
// cached children, without a scan.
TEST_F(AssembledRootsTest, OrderGrowingLineByLineIsBuiltFromItsCachedChildren) {
  constexpr int kLinesInOrder = 200;
  Pipe(kOrders, pg_.Order('c', 1, "PLACED", 3000));
  Pipe(kLines, pg_.Line('c', 1, 1, "a", 3000));
  Pipe(kTx, pg_.End(3000, 1, 1));
  for (int line = 2; line <= kLinesInOrder; ++line) {
    pg_.NewTransaction();
    Pipe(kLines, pg_.Line('c', line, 1, "a", 3000 + line));
    Pipe(kTx, pg_.End(3000 + line, 0, 1));
  }
  const std::vector<Version> out = Output();
  ASSERT_EQ(out.size(), static_cast<size_t>(kLinesInOrder));
  std::string expected = "PLACED|";
  for (int line = 1; line <= kLinesInOrder; ++line) {
    absl::StrAppend(&expected, line, ",");
    ASSERT_TRUE(out[line - 1].value);
    EXPECT_EQ(Summary(*out[line - 1].value), expected) << "version " << line;
  }
  EXPECT_EQ(Counter("cdc-aggregate-builds-scanned-total"), 1);
  EXPECT_EQ(Counter("cdc-aggregate-builds-cached-total"), kLinesInOrder - 1);
}

// A transaction topic deleted and created again (e.g. with a re-created
// connector) starts its offsets again: the engine stops and says what to do
// instead of dropping every later transaction as stale.
TEST_F(TransactionAggregateTest, TransactionTopicStartingAgainStopsWithAnError) {
  Open(Spec(), ErrorPolicy::kFail);
  for (int64_t xid = 420; xid < 423; ++xid) {
    pg_.NewTransaction();
    Pipe(kOrders, pg_.Order('c', static_cast<int>(xid), "PLACED", xid));
    Pipe(kTx, pg_.End(xid, 1, 0));
  }
  ASSERT_EQ(Output().size(), 3u);
  driver_->SetNextInputOffset(kTx, 0);
  pg_.NewTransaction();
  Pipe(kOrders, pg_.Order('c', 7, "PLACED", 5));
  absl::Status status = driver_->PipeInput(kTx, "{\"id\":0}", pg_.End(5, 1, 0));
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("deleted and created again"));
}

}  // namespace
// Interactive queries: the current aggregate of each order, as its latest
// version shows it, while versions come; nothing for an unknown or deleted
// order; ids that are not keys refused.
TEST_F(TransactionAggregateTest, QueryAnswersTheLatestVersionOfEachOrder) {
  Topology topology;
  ASSERT_TRUE(AddTransactionAggregate(topology, spec_).ok());
  const QuerySpec* query = topology.query("aggregates");
  ASSERT_NE(query, nullptr);
  EXPECT_EQ(query->store, "cdc-roots");
  auto ask = [&](std::string_view key) {
    return query->run([&](std::string_view store) { return driver_->GetStore(store); }, key);
  };
  Pipe(kOrders, pg_.Order('c', 1, "NEW", 700));
  Pipe(kLines, pg_.Line('c', 11, 1, "a", 700));
  Pipe(kOrders, pg_.Order('c', 2, "NEW", 700));
  Pipe(kTx, pg_.End(700, 2, 1));
  std::vector<Version> first = Output();
  ASSERT_EQ(first.size(), 2u);
  pg_.NewTransaction();
  Pipe(kLines, pg_.Line('c', 12, 1, "b", 701));
  Pipe(kTx, pg_.End(701, 0, 1));
  std::vector<Version> second = Output();
  ASSERT_EQ(second.size(), 1u);
  ASSERT_TRUE(ask("1").ok()) << ask("1").status();
  EXPECT_EQ(*ask("1"), second[0].value);  // order 1's second version
  EXPECT_THAT(second[0].value.value_or(""), HasSubstr(R"("source_tx":{"id":"701",)"));
  EXPECT_THAT(second[0].value.value_or(""), HasSubstr(R"("version":2)"));
  EXPECT_EQ(*ask("2"), first[0].key == "2" ? first[0].value : first[1].value);
  EXPECT_EQ(*ask("3"), std::nullopt);
  // Order 2 deleted: its tombstone is the latest version.
  pg_.NewTransaction();
  Pipe(kOrders, pg_.Order('d', 2, "NEW", 702));
  Pipe(kTx, pg_.End(702, 1, 0));
  ASSERT_EQ(Output().size(), 1u);
  EXPECT_EQ(*ask("2"), std::nullopt);
  // A line of an order that has not come: no aggregate yet.
  pg_.NewTransaction();
  Pipe(kLines, pg_.Line('c', 41, 4, "c", 703));
  Pipe(kTx, pg_.End(703, 0, 1));
  EXPECT_TRUE(Output().empty());
  EXPECT_EQ(*ask("4"), std::nullopt);

  for (std::string_view id : {"1", "0", "-7", "9223372036854775807", "\"A-7\"", "\"a\\\"b\"",
                              "\"\\u00e9\""}) {
    absl::StatusOr<std::string> key = query->key(id);
    ASSERT_TRUE(key.ok()) << id << ": " << key.status();
    EXPECT_EQ(*key, id);
  }
  for (std::string_view id : {"", "abc", "01", "1.5", "+1", " 1", "9223372036854775808",
                              "\"", "\"a", "\"a\"b\"", "\"\\x\"", "\"\\u12\"", "1e3"}) {
    absl::StatusOr<std::string> key = query->key(id);
    EXPECT_TRUE(absl::IsInvalidArgument(key.status())) << "'" << id << "'";
  }
  EXPECT_THAT(std::string(query->key("abc").status().message()), HasSubstr("an integer"));
}

TEST_F(TransactionAggregateTest, NoQueryWithoutAQueryName) {
  TransactionAggregateSpec spec = Spec();
  spec.query_name = "";
  Topology topology;
  ASSERT_TRUE(AddTransactionAggregate(topology, spec).ok());
  EXPECT_TRUE(topology.queries().empty());
}

}  // namespace tributary
