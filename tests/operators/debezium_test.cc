#include "operators/debezium.h"

#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "state/absl_compat.h"

namespace tributary {
namespace {

using ::testing::HasSubstr;
using ::testing::Optional;

// Debezium 2.7's JSON converter output, byte for byte (see testdata/).
std::string Load(const std::string& name) {
  std::ifstream in(std::string(TESTDATA_DIR) + "/" + name, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << name;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

constexpr int64_t kCommitMs = 1710498123456;

template <typename T>
const T& ValueOrDie(const absl::StatusOr<T>& result) {
  EXPECT_TRUE(result.ok()) << result.status();
  static const T empty{};
  return result.ok() ? *result : empty;
}

// Expects `result` to fail with InvalidArgument and a message containing
// `text`.
template <typename T>
void ExpectInvalid(const absl::StatusOr<T>& result, std::string_view text) {
  ASSERT_FALSE(result.ok()) << "expected an error containing: " << text;
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument)
      << result.status();
  EXPECT_THAT(std::string(result.status().message()),
              HasSubstr(std::string(text)));
}

// Every change-event sample exists with and without the schema wrapper.
class ChangeSampleTest : public ::testing::TestWithParam<const char*> {
 protected:
  std::string Sample(const std::string& name) {
    return Load(name + GetParam() + ".json");
  }
  // The row image expected from the default decoder (ValueMode::kReadable):
  // as sent without a schema, readable with one.
  std::string_view Image(std::string_view raw, std::string_view readable) {
    return std::string(GetParam()).empty() ? raw : readable;
  }
};

std::string ModeName(const ::testing::TestParamInfo<const char*>& mode) {
  return std::string(mode.param).empty() ? "PayloadOnly" : "WithSchema";
}

INSTANTIATE_TEST_SUITE_P(SchemaModes, ChangeSampleTest,
                         ::testing::Values("", "_schema"), ModeName);

TEST_P(ChangeSampleTest, PostgresCreate) {
  DebeziumDecoder decoder;
  absl::StatusOr<ChangeEvent> result =
      decoder.DecodeChange(Sample("pg_orderline_create"));
  const ChangeEvent& event = ValueOrDie(result);
  EXPECT_EQ(event.op, ChangeOp::kCreate);
  EXPECT_EQ(event.before, std::nullopt);
  EXPECT_THAT(
      event.after,
      Optional(Image(
          R"({"id":1001,"order_id":1001,"product":"Claw hammer 16\" \\ steel","quantity":3,"price":"AZo=","status":"ENTERED"})",
          R"({"id":1001,"order_id":1001,"product":"Claw hammer 16\" \\ steel","quantity":3,"price":"4.10","status":"ENTERED"})")));
  EXPECT_EQ(event.source.connector, "postgresql");
  EXPECT_EQ(event.source.db, "orders");
  EXPECT_EQ(event.source.schema, "inventory");
  EXPECT_EQ(event.source.table, "orderline");
  EXPECT_EQ(event.source.data_collection, "inventory.orderline");
  EXPECT_EQ(event.source.position, "53195831");
  EXPECT_EQ(event.source.ts_ms, kCommitMs);
  ASSERT_TRUE(event.transaction.has_value());
  EXPECT_EQ(event.transaction->id, "571:53195831");
  EXPECT_EQ(event.transaction->match_id, "571");
  EXPECT_EQ(event.transaction->total_order, 2);
  EXPECT_EQ(event.transaction->data_collection_order, 1);
  EXPECT_EQ(event.ts_ms, kCommitMs + 331);
}

TEST_P(ChangeSampleTest, PostgresUpdateWithoutBeforeImage) {
  DebeziumDecoder decoder;
  absl::StatusOr<ChangeEvent> result =
      decoder.DecodeChange(Sample("pg_purchaseorder_update"));
  const ChangeEvent& event = ValueOrDie(result);
  EXPECT_EQ(event.op, ChangeOp::kUpdate);
  EXPECT_EQ(event.before, std::nullopt);
  EXPECT_THAT(
      event.after,
      Optional(Image(
          R"({"id":1001,"customer_id":42,"order_date":19797,"status":"CONFIRMED"})",
          R"({"id":1001,"customer_id":42,"order_date":"2024-03-15","status":"CONFIRMED"})")));
  EXPECT_EQ(event.source.connector, "postgresql");
  EXPECT_EQ(event.source.db, "orders");
  EXPECT_EQ(event.source.schema, "inventory");
  EXPECT_EQ(event.source.table, "purchaseorder");
  EXPECT_EQ(event.source.data_collection, "inventory.purchaseorder");
  EXPECT_EQ(event.source.position, "53195830");
  EXPECT_EQ(event.source.ts_ms, kCommitMs);
  ASSERT_TRUE(event.transaction.has_value());
  EXPECT_EQ(event.transaction->id, "571:53195830");
  EXPECT_EQ(event.transaction->match_id, "571");
  EXPECT_EQ(event.transaction->total_order, 1);
  EXPECT_EQ(event.transaction->data_collection_order, 1);
  EXPECT_EQ(event.ts_ms, kCommitMs + 329);
}

TEST_P(ChangeSampleTest, PostgresDeleteWithKeyOnlyBeforeImage) {
  DebeziumDecoder decoder;
  absl::StatusOr<ChangeEvent> result =
      decoder.DecodeChange(Sample("pg_orderline_delete"));
  const ChangeEvent& event = ValueOrDie(result);
  EXPECT_EQ(event.op, ChangeOp::kDelete);
  EXPECT_THAT(
      event.before,
      Optional(std::string_view(
          R"({"id":1000,"order_id":null,"product":null,"quantity":null,"price":null,"status":null})")));
  EXPECT_EQ(event.after, std::nullopt);
  EXPECT_EQ(event.source.table, "orderline");
  EXPECT_EQ(event.source.data_collection, "inventory.orderline");
  EXPECT_EQ(event.source.position, "53195832");
  EXPECT_EQ(event.source.ts_ms, kCommitMs);
  ASSERT_TRUE(event.transaction.has_value());
  EXPECT_EQ(event.transaction->id, "571:53195832");
  EXPECT_EQ(event.transaction->match_id, "571");
  EXPECT_EQ(event.transaction->total_order, 3);
  EXPECT_EQ(event.transaction->data_collection_order, 2);
  EXPECT_EQ(event.ts_ms, kCommitMs + 333);
}

TEST_P(ChangeSampleTest, PostgresSnapshotReadHasNoTransaction) {
  DebeziumDecoder decoder;
  absl::StatusOr<ChangeEvent> result =
      decoder.DecodeChange(Sample("pg_purchaseorder_read"));
  const ChangeEvent& event = ValueOrDie(result);
  EXPECT_EQ(event.op, ChangeOp::kRead);
  EXPECT_EQ(event.before, std::nullopt);
  EXPECT_THAT(
      event.after,
      Optional(Image(
          R"({"id":1000,"customer_id":7,"order_date":19790,"status":"SHIPPED"})",
          R"({"id":1000,"customer_id":7,"order_date":"2024-03-08","status":"SHIPPED"})")));
  EXPECT_EQ(event.source.connector, "postgresql");
  EXPECT_EQ(event.source.data_collection, "inventory.purchaseorder");
  EXPECT_EQ(event.source.position, "53190000");
  EXPECT_EQ(event.source.ts_ms, kCommitMs - 60000);
  EXPECT_EQ(event.transaction, std::nullopt);
  EXPECT_EQ(event.ts_ms, kCommitMs - 59000);
}

TEST_P(ChangeSampleTest, PostgresTruncate) {
  DebeziumDecoder decoder;
  absl::StatusOr<ChangeEvent> result =
      decoder.DecodeChange(Sample("pg_orderline_truncate"));
  const ChangeEvent& event = ValueOrDie(result);
  EXPECT_EQ(event.op, ChangeOp::kTruncate);
  EXPECT_EQ(event.before, std::nullopt);
  EXPECT_EQ(event.after, std::nullopt);
  EXPECT_EQ(event.source.data_collection, "inventory.orderline");
  EXPECT_EQ(event.source.position, "53196112");
  EXPECT_EQ(event.source.ts_ms, kCommitMs + 5000);
  ASSERT_TRUE(event.transaction.has_value());
  EXPECT_EQ(event.transaction->id, "574:53196112");
  EXPECT_EQ(event.transaction->match_id, "574");
  EXPECT_EQ(event.transaction->total_order, 1);
  EXPECT_EQ(event.transaction->data_collection_order, 1);
  EXPECT_EQ(event.ts_ms, kCommitMs + 5120);
}

TEST_P(ChangeSampleTest, MySqlCreate) {
  DebeziumDecoder decoder(TxIdMode::kWhole);
  absl::StatusOr<ChangeEvent> result =
      decoder.DecodeChange(Sample("mysql_orderline_create"));
  const ChangeEvent& event = ValueOrDie(result);
  EXPECT_EQ(event.op, ChangeOp::kCreate);
  EXPECT_EQ(event.before, std::nullopt);
  EXPECT_THAT(
      event.after,
      Optional(Image(
          R"({"id":1002,"order_id":1001,"product":"Nails 4cm","quantity":200,"price":"B88=","status":"ENTERED"})",
          R"({"id":1002,"order_id":1001,"product":"Nails 4cm","quantity":200,"price":"19.99","status":"ENTERED"})")));
  EXPECT_EQ(event.source.connector, "mysql");
  EXPECT_EQ(event.source.db, "inventory");
  EXPECT_EQ(event.source.schema, "");
  EXPECT_EQ(event.source.table, "orderline");
  EXPECT_EQ(event.source.data_collection, "inventory.orderline");
  EXPECT_EQ(event.source.position, "mysql-bin.000003:1543:0");
  EXPECT_EQ(event.source.ts_ms, kCommitMs);
  ASSERT_TRUE(event.transaction.has_value());
  EXPECT_EQ(event.transaction->id, "3e11fa47-71ca-11e1-9e33-c80aa9429562:23");
  EXPECT_EQ(event.transaction->match_id,
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:23");
  EXPECT_EQ(event.transaction->total_order, 1);
  EXPECT_EQ(event.transaction->data_collection_order, 1);
  EXPECT_EQ(event.ts_ms, kCommitMs + 210);
}

TEST_P(ChangeSampleTest, BeginMarker) {
  DebeziumDecoder decoder;
  absl::StatusOr<TransactionMarker> result =
      decoder.DecodeMarker(Sample("marker_begin"));
  const TransactionMarker& marker = ValueOrDie(result);
  EXPECT_EQ(marker.status, TransactionMarker::Status::kBegin);
  EXPECT_EQ(marker.id, "571:53195829");
  EXPECT_EQ(marker.match_id, "571");
  EXPECT_EQ(marker.event_count, std::nullopt);
  EXPECT_TRUE(marker.data_collections.empty());
  EXPECT_EQ(marker.ts_ms, kCommitMs);
}

TEST_P(ChangeSampleTest, EndMarker) {
  DebeziumDecoder decoder;
  absl::StatusOr<TransactionMarker> result =
      decoder.DecodeMarker(Sample("marker_end"));
  const TransactionMarker& marker = ValueOrDie(result);
  EXPECT_EQ(marker.status, TransactionMarker::Status::kEnd);
  EXPECT_EQ(marker.id, "571:53195833");
  EXPECT_EQ(marker.match_id, "571");
  EXPECT_EQ(marker.event_count, 3);
  ASSERT_EQ(marker.data_collections.size(), 2u);
  EXPECT_EQ(marker.data_collections[0].data_collection,
            "inventory.purchaseorder");
  EXPECT_EQ(marker.data_collections[0].event_count, 1);
  EXPECT_EQ(marker.data_collections[1].data_collection, "inventory.orderline");
  EXPECT_EQ(marker.data_collections[1].event_count, 2);
  EXPECT_EQ(marker.ts_ms, kCommitMs);
}

TEST_P(ChangeSampleTest, EmptyTransactionEndMarker) {
  DebeziumDecoder decoder;
  absl::StatusOr<TransactionMarker> result =
      decoder.DecodeMarker(Sample("marker_end_empty"));
  const TransactionMarker& marker = ValueOrDie(result);
  EXPECT_EQ(marker.status, TransactionMarker::Status::kEnd);
  EXPECT_EQ(marker.id, "572:53195900");
  EXPECT_EQ(marker.match_id, "572");
  EXPECT_EQ(marker.event_count, 0);
  EXPECT_TRUE(marker.data_collections.empty());
  EXPECT_EQ(marker.ts_ms, kCommitMs + 1000);
}

TEST(DebeziumDecoderTest, EndMarkerWithNullCollections) {
  DebeziumDecoder decoder;
  absl::StatusOr<TransactionMarker> result = decoder.DecodeMarker(
      R"({"status":"END","id":"9:1","event_count":0,"data_collections":null,"ts_ms":5})");
  const TransactionMarker& marker = ValueOrDie(result);
  EXPECT_EQ(marker.status, TransactionMarker::Status::kEnd);
  EXPECT_EQ(marker.event_count, 0);
  EXPECT_TRUE(marker.data_collections.empty());
  EXPECT_EQ(marker.ts_ms, 5);
}

TEST(DebeziumDecoderTest, MarkerIdModes) {
  DebeziumDecoder whole(TxIdMode::kWhole);
  absl::StatusOr<TransactionMarker> result =
      whole.DecodeMarker(Load("marker_begin.json"));
  const TransactionMarker& marker = ValueOrDie(result);
  EXPECT_EQ(marker.match_id, "571:53195829");
  EXPECT_EQ(whole.mode(), TxIdMode::kWhole);
  EXPECT_EQ(DebeziumDecoder().mode(), TxIdMode::kPostgres);
}

TEST(MatchIdTest, PostgresIdsMatchOnTheXid) {
  // BEGIN, two change events and END of one transaction: LSNs all differ.
  for (std::string_view id :
       {"571:53195829", "571:53195830", "571:53195831", "571:53195833"}) {
    EXPECT_EQ(MatchId(id, TxIdMode::kPostgres), "571") << id;
  }
  EXPECT_EQ(MatchId("571", TxIdMode::kPostgres), "571");
  EXPECT_EQ(MatchId("", TxIdMode::kPostgres), "");
  EXPECT_EQ(MatchId(":5", TxIdMode::kPostgres), "");
  EXPECT_EQ(MatchId("1:2:3", TxIdMode::kPostgres), "1");
  EXPECT_EQ(MatchId("571:53195829", TxIdMode::kWhole), "571:53195829");
  EXPECT_EQ(
      MatchId("3e11fa47-71ca-11e1-9e33-c80aa9429562:23", TxIdMode::kWhole),
      "3e11fa47-71ca-11e1-9e33-c80aa9429562:23");
}

TEST(DebeziumDecoderTest, PayloadAfterSchemaAndPrettyPrinted) {
  DebeziumDecoder decoder;
  absl::StatusOr<ChangeEvent> result = decoder.DecodeChange(R"(
    {
      "payload": {
        "before": null,
        "after": { "id": 7, "order_id": 3 } ,
        "source": { "connector": "postgresql", "db": "orders",
                    "schema": "inventory", "table": "orderline",
                    "lsn": 99, "ts_ms": 12 },
        "op": "u",
        "ts_ms": 13,
        "transaction": { "id": "8:99", "total_order": 1,
                         "data_collection_order": 1 }
      },
      "schema": { "type": "struct", "fields": [] }
    }
  )");
  const ChangeEvent& event = ValueOrDie(result);
  EXPECT_EQ(event.op, ChangeOp::kUpdate);
  EXPECT_THAT(event.after,
              Optional(std::string_view(R"({ "id": 7, "order_id": 3 })")));
  EXPECT_EQ(event.source.data_collection, "inventory.orderline");
  EXPECT_EQ(event.source.position, "99");
  EXPECT_EQ(event.source.ts_ms, 12);
  EXPECT_EQ(event.ts_ms, 13);
  ASSERT_TRUE(event.transaction.has_value());
  EXPECT_EQ(event.transaction->match_id, "8");
}

TEST(DebeziumDecoderTest, OtherConnectorsUseSchemaOrDbAndSequence) {
  DebeziumDecoder decoder(TxIdMode::kWhole);
  absl::StatusOr<ChangeEvent> result = decoder.DecodeChange(
      R"({"before":null,"after":{"id":1},"source":{"connector":"sqlserver","db":"testDB","sequence":"[\"1\",\"2\"]","schema":"dbo","table":"customers"},"op":"c","ts_ms":1,"transaction":null})");
  const ChangeEvent& sqlserver = ValueOrDie(result);
  EXPECT_EQ(sqlserver.source.data_collection, "dbo.customers");
  EXPECT_EQ(sqlserver.source.position, R"(["1","2"])");
  EXPECT_EQ(sqlserver.source.ts_ms, 0);

  result = decoder.DecodeChange(
      R"({"after":{"id":1},"source":{"connector":"x","db":"d","table":"t","sequence":null},"op":"r"})");
  const ChangeEvent& other = ValueOrDie(result);
  EXPECT_EQ(other.source.data_collection, "d.t");
  EXPECT_EQ(other.source.position, "");
  EXPECT_EQ(other.before, std::nullopt);
  EXPECT_EQ(other.ts_ms, 0);
}

TEST(DebeziumDecoderTest, EscapedStringsAreDecoded) {
  DebeziumDecoder decoder;
  absl::StatusOr<ChangeEvent> result = decoder.DecodeChange(
      R"({"after":{"id":1},"source":{"connector":"postgresql","db":"orders","schema":"inv\"entory","table":"order\u006cine","lsn":5},"op":"\u0063","transaction":{"id":"5\u003a6","total_order":1,"data_collection_order":1}})");
  const ChangeEvent& event = ValueOrDie(result);
  EXPECT_EQ(event.op, ChangeOp::kCreate);
  EXPECT_EQ(event.source.schema, "inv\"entory");
  EXPECT_EQ(event.source.table, "orderline");
  EXPECT_EQ(event.source.data_collection, "inv\"entory.orderline");
  ASSERT_TRUE(event.transaction.has_value());
  EXPECT_EQ(event.transaction->id, "5:6");
  EXPECT_EQ(event.transaction->match_id, "5");
}

TEST(DebeziumDecoderTest, ResultsPointIntoTheDecodersCopy) {
  DebeziumDecoder decoder;
  std::string value = Load("pg_orderline_create.json");
  absl::StatusOr<ChangeEvent> result = decoder.DecodeChange(value);
  const ChangeEvent& event = ValueOrDie(result);
  value.assign(value.size(), 'x');  // the caller's bytes may go away
  EXPECT_EQ(event.source.table, "orderline");
  ASSERT_TRUE(event.after.has_value());
  EXPECT_EQ(event.after->substr(0, 10), R"({"id":1001)");
  ASSERT_TRUE(event.transaction.has_value());
  EXPECT_EQ(event.transaction->id, "571:53195831");
}

TEST(DebeziumDecoderTest, ReusesItsBufferAcrossValues) {
  DebeziumDecoder decoder;
  const std::string big = Load("mysql_orderline_create_schema.json");
  const std::string small = Load("pg_purchaseorder_update.json");
  // Much larger than anything before: the buffer has to grow.
  std::string huge = Load("pg_orderline_create.json");
  huge.replace(huge.find("Claw hammer"), 4, std::string(200000, 'C'));
  const size_t huge_after_size =
      std::string_view(
          R"({"id":1001,"order_id":1001,"product":"Claw hammer 16\" \\ steel","quantity":3,"price":"AZo=","status":"ENTERED"})")
          .size() -
      4 + 200000;

  for (int round = 0; round < 2; ++round) {
    absl::StatusOr<ChangeEvent> a = decoder.DecodeChange(big);
    EXPECT_EQ(ValueOrDie(a).source.position, "mysql-bin.000003:1543:0");
    EXPECT_EQ(ValueOrDie(a).source.connector, "mysql");

    absl::StatusOr<ChangeEvent> b = decoder.DecodeChange(small);
    EXPECT_EQ(ValueOrDie(b).source.table, "purchaseorder");
    EXPECT_THAT(
        ValueOrDie(b).after,
        Optional(std::string_view(
            R"({"id":1001,"customer_id":42,"order_date":19797,"status":"CONFIRMED"})")));

    absl::StatusOr<ChangeEvent> c = decoder.DecodeChange(huge);
    ASSERT_TRUE(ValueOrDie(c).after.has_value());
    EXPECT_EQ(ValueOrDie(c).after->size(), huge_after_size);
    EXPECT_EQ(ValueOrDie(c).source.position, "53195831");

    absl::StatusOr<TransactionMarker> m =
        decoder.DecodeMarker(Load("marker_end.json"));
    EXPECT_EQ(ValueOrDie(m).data_collections.size(), 2u);

    // An error in between leaves the decoder usable.
    EXPECT_FALSE(decoder.DecodeChange("{\"op\":").ok());
  }
}

// ---------------------------------------------------------------------------
// Errors

std::string Envelope(std::string_view op, std::string_view source,
                     std::string_view extra = "") {
  return absl::StrCat(R"({"before":null,"after":{"id":1},"source":)",
                      Sv(source), R"(,"op":)", Sv(op), Sv(extra), "}");
}

constexpr std::string_view kSource =
    R"({"connector":"postgresql","db":"orders","schema":"inventory","table":"orderline","txId":5,"lsn":10})";

TEST(DebeziumDecoderErrorTest, MalformedJson) {
  DebeziumDecoder decoder;
  ExpectInvalid(
      decoder.DecodeChange(R"({"before":null,"after":{"id":1} "op":"c"})"),
      "change event: malformed JSON at byte 32: ");
  ExpectInvalid(decoder.DecodeChange(""), "change event: malformed JSON");
  ExpectInvalid(decoder.DecodeChange(R"({"op":"c",})"),
                "change event: malformed JSON");
  ExpectInvalid(decoder.DecodeChange(R"({"op":"c","source":{"table":"t"})"),
                "change event: malformed JSON at byte");
  ExpectInvalid(decoder.DecodeChange(R"({"op":"c","after":{"a":1},})"),
                "change event: malformed JSON");
  ExpectInvalid(decoder.DecodeChange(R"({"op":"c",source:{}})"),
                "change event: malformed JSON");
  ExpectInvalid(decoder.DecodeMarker(R"({"status":"BEGIN",,})"),
                "transaction marker: malformed JSON");
}

TEST(DebeziumDecoderErrorTest, TruncatedInput) {
  DebeziumDecoder decoder;
  const std::string value = Load("pg_orderline_create.json");
  for (size_t size :
       {size_t{1}, size_t{20}, value.size() / 2, value.size() - 1}) {
    ExpectInvalid(decoder.DecodeChange(std::string_view(value).substr(0, size)),
                  "change event: malformed JSON");
  }
  const std::string marker = Load("marker_end.json");
  ExpectInvalid(decoder.DecodeMarker(marker.substr(0, marker.size() - 3)),
                "transaction marker: malformed JSON");
}

TEST(DebeziumDecoderErrorTest, TrailingContent) {
  DebeziumDecoder decoder;
  const std::string value = Load("pg_orderline_create.json");
  ExpectInvalid(decoder.DecodeChange(value + "{}"),
                "malformed JSON at byte 605: unexpected content");
  ExpectInvalid(decoder.DecodeChange(value + "}"), "malformed JSON");
}

TEST(DebeziumDecoderErrorTest, NotAnObject) {
  DebeziumDecoder decoder;
  ExpectInvalid(decoder.DecodeChange("[1,2]"),
                "change event: value must be a JSON object, got array");
  ExpectInvalid(decoder.DecodeChange("\"c\""),
                "change event: value must be a JSON object, got string");
  ExpectInvalid(decoder.DecodeChange("42"),
                "change event: value must be a JSON object, got number");
  ExpectInvalid(decoder.DecodeChange("null"),
                "change event: value must be a JSON object, got null");
  ExpectInvalid(decoder.DecodeMarker("true"),
                "transaction marker: value must be a JSON object, got boolean");
}

TEST(DebeziumDecoderErrorTest, UnknownOp) {
  DebeziumDecoder decoder;
  ExpectInvalid(decoder.DecodeChange(Envelope(R"("x")", kSource)),
                "change event: unknown op 'x'");
  ExpectInvalid(decoder.DecodeChange(Envelope(R"("create")", kSource)),
                "change event: unknown op 'create'");
  ExpectInvalid(decoder.DecodeChange(Envelope(R"("")", kSource)),
                "change event: unknown op ''");
}

TEST(DebeziumDecoderErrorTest, MissingParts) {
  DebeziumDecoder decoder;
  ExpectInvalid(
      decoder.DecodeChange(R"({"before":null,"after":{"id":1},"op":"c"})"),
      "change event: missing 'source'");
  ExpectInvalid(decoder.DecodeChange(absl::StrCat(
                    R"({"after":{"id":1},"source":)", Sv(kSource), "}")),
                "change event: missing 'op'");
  ExpectInvalid(decoder.DecodeChange(Envelope(
                    R"("c")", R"({"connector":"postgresql","schema":"s"})")),
                "change event: missing 'source.table'");
  ExpectInvalid(decoder.DecodeChange(Envelope(
                    R"("c")", kSource, R"(,"transaction":{"total_order":1})")),
                "change event: missing 'transaction.id'");
  ExpectInvalid(decoder.DecodeChange(R"({"schema":{},"payload":null})"),
                "change event: 'payload' must be an object, got null");
  ExpectInvalid(decoder.DecodeChange(R"({"schema":{}})"),
                "change event: missing 'op'");
  ExpectInvalid(decoder.DecodeMarker(R"({"status":"BEGIN","ts_ms":1})"),
                "transaction marker: missing 'id'");
  ExpectInvalid(decoder.DecodeMarker(R"({"id":"1:2"})"),
                "transaction marker: missing 'status'");
  ExpectInvalid(
      decoder.DecodeMarker(
          R"({"status":"END","id":"1:2","data_collections":[{"event_count":1}]})"),
      "transaction marker: missing 'data_collections[].data_collection'");
}

TEST(DebeziumDecoderErrorTest, WrongTypes) {
  DebeziumDecoder decoder;
  ExpectInvalid(decoder.DecodeChange(Envelope("5", kSource)),
                "change event: 'op' must be a string, got number");
  ExpectInvalid(decoder.DecodeChange(Envelope("null", kSource)),
                "change event: 'op' must be a string, got null");
  ExpectInvalid(decoder.DecodeChange(Envelope(R"("c")", "[]")),
                "change event: 'source' must be an object, got array");
  ExpectInvalid(decoder.DecodeChange(Envelope(R"("c")", "null")),
                "change event: 'source' must be an object, got null");
  ExpectInvalid(
      decoder.DecodeChange(R"({"after":"x","source":{"table":"t"},"op":"c"})"),
      "change event: 'after' must be an object or null, got string");
  ExpectInvalid(decoder.DecodeChange(
                    Envelope(R"("c")", R"({"table":"t","ts_ms":"yesterday"})")),
                "change event: 'source.ts_ms' must be an integer, got string");
  ExpectInvalid(
      decoder.DecodeChange(Envelope(R"("c")", R"({"table":"t","lsn":1.5})")),
      "change event: 'source.lsn' must be a 64-bit integer, got 1.5");
  ExpectInvalid(decoder.DecodeChange(Envelope(R"("c")", R"({"table":7})")),
                "change event: 'source.table' must be a string, got number");
  ExpectInvalid(decoder.DecodeChange(Envelope(R"("c")", kSource,
                                              R"(,"transaction":{"id":571})")),
                "change event: 'transaction.id' must be a string, got number");
  ExpectInvalid(decoder.DecodeChange(
                    Envelope(R"("c")", kSource, R"(,"transaction":"571")")),
                "change event: 'transaction' must be an object or null");
  ExpectInvalid(
      decoder.DecodeChange(Envelope(R"("c")", kSource, R"(,"ts_ms":true)")),
      "change event: 'ts_ms' must be an integer, got boolean");
  ExpectInvalid(decoder.DecodeMarker(R"({"status":"COMMIT","id":"1"})"),
                "transaction marker: unknown status 'COMMIT'");
  ExpectInvalid(
      decoder.DecodeMarker(R"({"status":"END","id":"1","event_count":"3"})"),
      "transaction marker: 'event_count' must be an integer, got string");
  ExpectInvalid(
      decoder.DecodeMarker(
          R"({"status":"END","id":"1","data_collections":{"a":1}})"),
      "transaction marker: 'data_collections' must be an array or null");
}

// ---------------------------------------------------------------------------
// ExtractFields

using Fields = std::vector<std::optional<std::string_view>>;

TEST(ExtractFieldsTest, RowImage) {
  DebeziumDecoder decoder;
  absl::StatusOr<Fields> result = decoder.ExtractFields(
      R"({"id":1001,"order_id":1001,"product":"Claw hammer 16\" \\ steel","quantity":3,"price":"AZo=","status":"ENTERED"})",
      {"product", "id", "missing", "price", "quantity"});
  EXPECT_EQ(ValueOrDie(result),
            (Fields{R"("Claw hammer 16\" \\ steel")", "1001", std::nullopt,
                    R"("AZo=")", "3"}));
}

TEST(ExtractFieldsTest, EveryKindOfValueWithWhitespace) {
  DebeziumDecoder decoder;
  absl::StatusOr<Fields> result = decoder.ExtractFields(
      "{ \"a\" : { \"x\" : [1, 2], \"y\" : null } ,\n"
      "  \"b\" : null ,\t\"c\" : -1.5e3 , \"d\" : true,\r\n"
      "  \"e\" : [ ] , \"f\" : \"\\u00e9\\n\" , \"g\" : false }\n",
      {"g", "f", "e", "d", "c", "b", "a"});
  EXPECT_EQ(ValueOrDie(result),
            (Fields{"false", R"("\u00e9\n")", "[ ]", "true", "-1.5e3", "null",
                    R"({ "x" : [1, 2], "y" : null })"}));
}

TEST(ExtractFieldsTest, Keys) {
  DebeziumDecoder decoder;
  EXPECT_EQ(
      ValueOrDie(decoder.ExtractFields(Load("key_orderline.json"), {"id"})),
      (Fields{"1001"}));
  // The JSON converter's schema wrapper is looked through.
  EXPECT_EQ(ValueOrDie(decoder.ExtractFields(Load("key_orderline_schema.json"),
                                             {"id", "schema"})),
            (Fields{"1001", std::nullopt}));
  EXPECT_EQ(ValueOrDie(decoder.ExtractFields(Load("key_marker.json"), {"id"})),
            (Fields{R"("571:53195829")"}));
  EXPECT_EQ(ValueOrDie(decoder.ExtractFields(
                R"({"payload":{"id":7},"schema":{"type":"struct"}})", {"id"})),
            (Fields{"7"}));
}

TEST(ExtractFieldsTest, ObjectsThatOnlyLookWrapped) {
  DebeziumDecoder decoder;
  // A third key means these are rows with columns named schema and payload.
  EXPECT_EQ(ValueOrDie(decoder.ExtractFields(
                R"({"schema":"s","payload":{"id":1},"id":2})",
                {"id", "payload", "schema"})),
            (Fields{"2", R"({"id":1})", R"("s")"}));
  EXPECT_EQ(ValueOrDie(decoder.ExtractFields(
                R"({"payload":{"id":1},"schema":{"a":1},"id":3})",
                {"id", "payload"})),
            (Fields{"3", R"({"id":1})"}));
  EXPECT_EQ(ValueOrDie(decoder.ExtractFields(
                R"({"id":4,"schema":"s","payload":{"id":1}})", {"id"})),
            (Fields{"4"}));
  // A payload that is not an object is not a wrapper's.
  EXPECT_EQ(ValueOrDie(decoder.ExtractFields(R"({"schema":1,"payload":2})",
                                             {"payload", "id"})),
            (Fields{"2", std::nullopt}));
}

TEST(ExtractFieldsTest, EscapedKeysAndNoFields) {
  DebeziumDecoder decoder;
  EXPECT_EQ(ValueOrDie(decoder.ExtractFields(R"({"\u0069d":5,"a\"b":6})",
                                             {"id", "a\"b"})),
            (Fields{"5", "6"}));
  EXPECT_EQ(ValueOrDie(decoder.ExtractFields(R"({"id":5})", {})), Fields{});
}

TEST(ExtractFieldsTest, Errors) {
  DebeziumDecoder decoder;
  ExpectInvalid(decoder.ExtractFields(R"({"id":})", {"id"}),
                "ExtractFields: malformed JSON");
  ExpectInvalid(decoder.ExtractFields(R"({"id":1)", {"id"}),
                "ExtractFields: malformed JSON");
  ExpectInvalid(decoder.ExtractFields("[1]", {"id"}),
                "ExtractFields: value must be a JSON object, got array");
  ExpectInvalid(decoder.ExtractFields(R"({"id":nul})", {"id"}),
                "ExtractFields: malformed JSON");
  ExpectInvalid(decoder.ExtractFields("", {"id"}),
                "ExtractFields: malformed JSON");
}

TEST(ExtractFieldsTest, ReadsViewsThatDecodeChangeReturned) {
  DebeziumDecoder decoder;
  absl::StatusOr<ChangeEvent> result =
      decoder.DecodeChange(Load("pg_orderline_create_schema.json"));
  const ChangeEvent& event = ValueOrDie(result);
  ASSERT_TRUE(event.after.has_value());
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<Fields> fields =
        decoder.ExtractFields(*event.after, {"order_id", "id", "status"});
    EXPECT_EQ(ValueOrDie(fields), (Fields{"1001", "1001", R"("ENTERED")"}));
  }
  // The event is intact: ExtractFields has a buffer and parser of its own.
  EXPECT_EQ(event.source.table, "orderline");
  EXPECT_EQ(event.source.connector, "postgresql");
  ASSERT_TRUE(event.transaction.has_value());
  EXPECT_EQ(event.transaction->id, "571:53195831");
  EXPECT_EQ(event.after->substr(0, 10), R"({"id":1001)");

  absl::StatusOr<ChangeEvent> deleted =
      decoder.DecodeChange(Load("pg_orderline_delete.json"));
  ASSERT_TRUE(ValueOrDie(deleted).before.has_value());
  EXPECT_EQ(ValueOrDie(decoder.ExtractFields(*ValueOrDie(deleted).before,
                                             {"id", "order_id"})),
            (Fields{"1000", "null"}));
}

}  // namespace
}  // namespace tributary
