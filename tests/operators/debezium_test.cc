#include "operators/debezium.h"

#include <algorithm>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "operators/internal/connect_rewrite.h"
#include "operators/internal/connect_values.h"

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

// ---------------------------------------------------------------------------
// Readable values (ValueMode::kReadable) on samples of the real connector:
// Debezium 3.6.1, PostgreSQL 15, pgoutput, JSON converter with schemas,
// captured byte for byte by scripts/capture-samples (testdata/real/).

std::string Real(const std::string& name) { return Load("real/" + name + ".json"); }

// The text of the payload's "after" (or "before") image as the file holds it.
std::string RawImage(const std::string& value, const std::string& which) {
  const size_t payload = value.find("\"payload\":");
  const size_t start = value.find("\"" + which + "\":", payload);
  EXPECT_NE(start, std::string::npos);
  const size_t begin = start + which.size() + 3;
  const size_t end = value.find(which == "before" ? ",\"after\":" : ",\"source\":",
                                begin);
  return value.substr(begin, end - begin);
}

// The fields of a decoded row image, each as its JSON text.
class ReadableTest : public ::testing::Test {
 protected:
  // Decodes `value` and returns the named fields of its after image.
  Fields After(const std::string& value, const std::vector<std::string>& names) {
    absl::StatusOr<ChangeEvent> event = decoder_.DecodeChange(value);
    EXPECT_TRUE(event.ok()) << event.status();
    if (!event.ok() || !event->after.has_value()) return Fields(names.size());
    after_ = std::string(*event->after);
    auto fields = decoder_.ExtractFields(after_, names);
    EXPECT_TRUE(fields.ok()) << fields.status();
    return fields.ok() ? *fields : Fields(names.size());
  }

  DebeziumDecoder decoder_;
  std::string after_;
};

TEST_F(ReadableTest, RealInsertEveryTypeExactImage) {
  const std::string value = Real("insert_1");
  absl::StatusOr<ChangeEvent> event = decoder_.DecodeChange(value);
  ASSERT_TRUE(event.ok()) << event.status();
  // Every converted field; all other bytes and the key order as sent.
  EXPECT_THAT(
      event->after,
      Optional(std::string_view(
          R"({"id":1,"price":"12.50","amount":"3.14159","day":"2024-03-15","at_time":"13:45:30.123456","at_time3":"13:45:30.123","at_timetz":"11:45:30.5Z","at_ts":"2024-03-15T13:45:30.123456Z","at_ts3":"2024-03-15T13:45:30.123Z","at_tstz":"2024-03-15T12:45:30.123456Z","doc_json":{"a": [1, 2.5, "x"], "b": null},"doc":{"k": "v", "n": 1},"uid":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","mood":"happy","page":"<p>hi</p>","tags":["red","green, blue"],"nums":[1,2,3],"prices":["12.50","-0.05"],"days":["2024-03-15","1969-12-31"],"blob":"AQL/","note":"hello"})")));
  EXPECT_EQ(event->before, std::nullopt);
  EXPECT_EQ(event->source.table, "a");
  EXPECT_EQ(event->source.schema, "capture");
}

TEST_F(ReadableTest, RealInsertEveryTypeFieldByField) {
  const Fields got = After(
      Real("insert_1"),
      {"price", "amount", "day", "at_time", "at_time3", "at_timetz", "at_ts",
       "at_ts3", "at_tstz", "doc_json", "doc", "uid", "mood", "page", "tags",
       "nums", "prices", "days", "blob", "note"});
  EXPECT_EQ(got[0], R"("12.50")");        // numeric(10,2): Decimal, scale 2
  EXPECT_EQ(got[1], R"("3.14159")");      // numeric: VariableScaleDecimal
  EXPECT_EQ(got[2], R"("2024-03-15")");   // date: io.debezium.time.Date
  EXPECT_EQ(got[3], R"("13:45:30.123456")");  // time: MicroTime
  EXPECT_EQ(got[4], R"("13:45:30.123")");     // time(3): Time (ms)
  EXPECT_EQ(got[5], R"("11:45:30.5Z")");      // timetz: ZonedTime, kept
  EXPECT_EQ(got[6], R"("2024-03-15T13:45:30.123456Z")");  // MicroTimestamp
  EXPECT_EQ(got[7], R"("2024-03-15T13:45:30.123Z")");     // Timestamp (ms)
  EXPECT_EQ(got[8], R"("2024-03-15T12:45:30.123456Z")");  // ZonedTimestamp
  EXPECT_EQ(got[9], R"({"a": [1, 2.5, "x"], "b": null})");  // json: Json
  EXPECT_EQ(got[10], R"({"k": "v", "n": 1})");             // jsonb: Json
  EXPECT_EQ(got[11], R"("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")");  // Uuid
  EXPECT_EQ(got[12], R"("happy")");      // enum type: io.debezium.data.Enum
  EXPECT_EQ(got[13], R"("<p>hi</p>")");  // xml: io.debezium.data.Xml
  EXPECT_EQ(got[14], R"(["red","green, blue"])");  // text[]: no logical type
  EXPECT_EQ(got[15], "[1,2,3]");                   // int[]
  EXPECT_EQ(got[16], R"(["12.50","-0.05"])");      // numeric(10,2)[]
  EXPECT_EQ(got[17], R"(["2024-03-15","1969-12-31"])");  // date[]
  EXPECT_EQ(got[18], R"("AQL/")");   // bytea: base64, no logical type
  EXPECT_EQ(got[19], R"("hello")");  // text
}

TEST_F(ReadableTest, RealInsertNegativeBigAndPre1970) {
  const Fields got =
      After(Real("insert_2"), {"price", "amount", "day", "at_time", "at_time3",
                               "at_ts", "at_ts3", "at_tstz", "doc_json", "doc",
                               "tags", "prices", "days", "blob", "note"});
  EXPECT_EQ(got[0], R"("-0.05")");
  // numeric with 39 digits: 16 bytes of two's complement, scale 9.
  EXPECT_EQ(got[1], R"("-123456789012345678901234567890.123456789")");
  EXPECT_EQ(got[2], R"("1969-07-20")");
  EXPECT_EQ(got[3], R"("00:00:00")");
  EXPECT_EQ(got[4], R"("23:59:59.999")");
  EXPECT_EQ(got[5], R"("1969-07-20T20:17:40.5Z")");
  EXPECT_EQ(got[6], R"("1900-01-01T00:00:00Z")");
  EXPECT_EQ(got[7], R"("1969-12-31T23:59:59.999999Z")");
  EXPECT_EQ(got[8], "[]");
  EXPECT_EQ(got[9], "[]");
  EXPECT_EQ(got[10], "[]");
  EXPECT_EQ(got[11], "[]");
  EXPECT_EQ(got[12], "[]");
  EXPECT_EQ(got[13], R"("")");
  EXPECT_EQ(got[14], R"("")");
}

TEST_F(ReadableTest, RealInsertZeroesAndNulls) {
  const Fields got = After(Real("insert_3"), {"price", "amount", "day", "at_ts",
                                              "doc_json", "doc", "nums", "prices"});
  EXPECT_EQ(got[0], R"("0.00")");  // scale 2 kept, as BigDecimal prints it
  EXPECT_EQ(got[1], R"("0")");
  EXPECT_EQ(got[2], "null");
  EXPECT_EQ(got[3], "null");
  EXPECT_EQ(got[4], "null");  // SQL NULL
  // jsonb 'null' arrives as the string "null" and becomes JSON null too:
  // readable values do not tell it from SQL NULL (kRaw does).
  EXPECT_EQ(got[5], "null");
  EXPECT_EQ(got[6], "[null,5]");
  EXPECT_EQ(got[7], "null");
}

TEST_F(ReadableTest, RealToastPlaceholdersPassThrough) {
  const std::string value = Real("toast_update_1");
  // What Debezium 3.6.1 sent for the unchanged out-of-line values.
  const std::string raw = RawImage(value, "after");
  EXPECT_THAT(raw, HasSubstr(R"("doc":"__debezium_unavailable_value")"));
  EXPECT_THAT(raw, HasSubstr(R"("tags":["__debezium_unavailable_value"])"));
  EXPECT_THAT(raw,
              HasSubstr(R"("blob":"X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ==")"));
  EXPECT_THAT(raw, HasSubstr(R"("note":"__debezium_unavailable_value")"));

  const Fields got = After(value, {"price", "doc", "tags", "blob", "note"});
  EXPECT_EQ(got[0], R"("2.25")");
  EXPECT_EQ(got[1], R"("__debezium_unavailable_value")");  // jsonb
  EXPECT_EQ(got[2], R"(["__debezium_unavailable_value"])");  // text[]
  EXPECT_EQ(got[3], R"("X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ==")");  // bytea
  EXPECT_EQ(got[4], R"("__debezium_unavailable_value")");  // text
  EXPECT_EQ(kDebeziumUnavailablePlaceholder, "__debezium_unavailable_value");
}

TEST_F(ReadableTest, RealToastInsertCarriesTheLargeValues) {
  const std::string value = Real("toast_insert_1");
  const Fields got = After(value, {"price", "doc", "tags", "note"});
  EXPECT_EQ(got[0], R"("1.00")");
  ASSERT_TRUE(got[1].has_value());
  EXPECT_GT(got[1]->size(), 8000u);
  EXPECT_EQ(got[1]->substr(0, 45), R"({"items": ["c4ca4238a0b923820dcc509a6f75849b")");
  ASSERT_TRUE(got[2].has_value());
  EXPECT_GT(got[2]->size(), 8000u);
  ASSERT_TRUE(got[3].has_value());
  EXPECT_EQ(got[3]->size(), 400u * 32 + 2);
}

TEST_F(ReadableTest, RealPrimaryKeyUpdateIsDeleteAndCreate) {
  const std::string del_value = Real("pk_update_1");
  const std::string create_value = Real("pk_update_2");
  absl::StatusOr<ChangeEvent> del = decoder_.DecodeChange(del_value);
  ASSERT_TRUE(del.ok()) << del.status();
  EXPECT_EQ(del->op, ChangeOp::kDelete);
  EXPECT_EQ(del->after, std::nullopt);
  // Key-only before image: nothing to convert, the bytes as sent.
  EXPECT_THAT(del->before, Optional(std::string_view(RawImage(del_value, "before"))));
  EXPECT_THAT(std::string(*del->before), HasSubstr(R"({"id":1,"price":null,)"));
  const std::string del_position = del->source.position;
  const int64_t del_order = del->transaction->total_order;
  const std::string del_tx(del->transaction->match_id);

  absl::StatusOr<ChangeEvent> create = decoder_.DecodeChange(create_value);
  ASSERT_TRUE(create.ok()) << create.status();
  EXPECT_EQ(create->op, ChangeOp::kCreate);
  EXPECT_EQ(create->source.position, del_position);  // same source.lsn
  EXPECT_EQ(create->transaction->match_id, del_tx);
  EXPECT_EQ(del_order, 1);
  EXPECT_EQ(create->transaction->total_order, 2);
  ASSERT_TRUE(create->after.has_value());
  EXPECT_THAT(std::string(*create->after),
              HasSubstr(R"({"id":100,"price":"12.50","amount":"3.14159",)"));

  absl::StatusOr<TransactionMarker> end =
      decoder_.DecodeMarker(Real("pk_update_end"));
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(end->match_id, del_tx);
  EXPECT_EQ(end->event_count, 2);
}

TEST_F(ReadableTest, RealTwoTableTruncate) {
  absl::StatusOr<ChangeEvent> a = decoder_.DecodeChange(Real("truncate_1"));
  ASSERT_TRUE(a.ok()) << a.status();
  const std::string a_position = a->source.position;
  const std::string a_tx(a->transaction->match_id);
  EXPECT_EQ(a->op, ChangeOp::kTruncate);
  EXPECT_EQ(a->before, std::nullopt);
  EXPECT_EQ(a->after, std::nullopt);
  EXPECT_EQ(a->source.data_collection, "capture.a");
  EXPECT_EQ(a->transaction->total_order, 1);

  absl::StatusOr<ChangeEvent> b = decoder_.DecodeChange(Real("truncate_2"));
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->op, ChangeOp::kTruncate);
  EXPECT_EQ(b->source.data_collection, "capture.b");
  EXPECT_EQ(b->source.position, a_position);  // one LSN for both tables
  EXPECT_EQ(b->transaction->match_id, a_tx);
  EXPECT_EQ(b->transaction->total_order, 2);
  EXPECT_EQ(b->transaction->data_collection_order, 1);

  absl::StatusOr<TransactionMarker> begin =
      decoder_.DecodeMarker(Real("truncate_begin"));
  ASSERT_TRUE(begin.ok()) << begin.status();
  EXPECT_EQ(begin->status, TransactionMarker::Status::kBegin);
  EXPECT_EQ(begin->match_id, a_tx);
  absl::StatusOr<TransactionMarker> end =
      decoder_.DecodeMarker(Real("truncate_end"));
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(end->status, TransactionMarker::Status::kEnd);
  EXPECT_EQ(end->match_id, a_tx);
  EXPECT_EQ(end->event_count, 2);
  ASSERT_EQ(end->data_collections.size(), 2u);
}

// ALTER TABLE capture.b ADD COLUMN qty integer NOT NULL DEFAULT 7, tag text
// DEFAULT 'new', rate numeric(5,2) DEFAULT 1.50, since date DEFAULT
// '2024-01-01'; later DROP COLUMN label. Debezium reports neither; the
// schema of the next events has the new columns with their defaults (a
// Decimal's as base64, a Date's as epoch days), which the shape gives
// readable, like the values.
TEST_F(ReadableTest, RealAddColumnShapeHasReadableDefaults) {
  absl::StatusOr<ChangeEvent> before = decoder_.DecodeChange(Real("insert_4"));
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_EQ(before->shape, R"({"id":null,"label":null})");
  const uint64_t old_hash = before->shape_hash;
  EXPECT_NE(old_hash, 0u);

  absl::StatusOr<ChangeEvent> added = decoder_.DecodeChange(Real("add_column_1"));
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_EQ(added->shape,
            R"({"id":null,"label":null,"qty":7,"tag":"new","rate":"1.50","since":"2024-01-01"})");
  EXPECT_NE(added->shape_hash, old_hash);
  EXPECT_THAT(added->after,
              Optional(std::string_view(
                  R"({"id":1,"label":"uno","qty":7,"tag":"new","rate":"1.50","since":"2024-01-01"})")));
  const uint64_t added_hash = added->shape_hash;
  absl::StatusOr<ChangeEvent> second = decoder_.DecodeChange(Real("add_column_2"));
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->shape_hash, added_hash) << "one schema, one shape";

  absl::StatusOr<ChangeEvent> dropped = decoder_.DecodeChange(Real("drop_column_1"));
  ASSERT_TRUE(dropped.ok()) << dropped.status();
  EXPECT_EQ(dropped->shape, R"({"id":null,"qty":7,"tag":"new","rate":"1.50","since":"2024-01-01"})");
  EXPECT_THAT(dropped->after,
              Optional(std::string_view(
                  R"({"id":1,"qty":8,"tag":"new","rate":"1.50","since":"2024-01-01"})")));
}

TEST_F(ReadableTest, RealMarkersMatchTheirEvents) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"insert", {"insert_1", "insert_2", "insert_3", "insert_4"}},
      {"toast_insert", {"toast_insert_1"}},
      {"toast_update", {"toast_update_1"}},
      {"pk_update", {"pk_update_1", "pk_update_2"}},
      {"add_column", {"add_column_1", "add_column_2"}},
      {"drop_column", {"drop_column_1"}},
      {"truncate", {"truncate_1", "truncate_2"}}};
  for (const auto& [name, events] : cases) {
    absl::StatusOr<TransactionMarker> begin = decoder_.DecodeMarker(Real(name + "_begin"));
    ASSERT_TRUE(begin.ok()) << name << ": " << begin.status();
    const std::string xid(begin->match_id);
    absl::StatusOr<TransactionMarker> end = decoder_.DecodeMarker(Real(name + "_end"));
    ASSERT_TRUE(end.ok()) << name << ": " << end.status();
    EXPECT_EQ(end->match_id, xid) << name;
    EXPECT_EQ(end->event_count, static_cast<int64_t>(events.size())) << name;
    for (const std::string& event_name : events) {
      absl::StatusOr<ChangeEvent> event = decoder_.DecodeChange(Real(event_name));
      ASSERT_TRUE(event.ok()) << event_name << ": " << event.status();
      EXPECT_EQ(event->transaction->match_id, xid) << event_name;
    }
  }
}

TEST(RawModeTest, KeepsTheConnectorsBytes) {
  DebeziumDecoder raw(TxIdMode::kPostgres, ValueMode::kRaw);
  EXPECT_EQ(raw.value_mode(), ValueMode::kRaw);
  EXPECT_EQ(DebeziumDecoder().value_mode(), ValueMode::kReadable);
  for (const char* name : {"insert_1", "insert_2", "insert_3", "insert_4",
                           "toast_insert_1", "toast_update_1", "pk_update_2"}) {
    const std::string value = Real(name);
    absl::StatusOr<ChangeEvent> event = raw.DecodeChange(value);
    ASSERT_TRUE(event.ok()) << name << ": " << event.status();
    EXPECT_THAT(event->after, Optional(std::string_view(RawImage(value, "after"))))
        << name;
  }
  // The old samples too: the base64 price stays.
  absl::StatusOr<ChangeEvent> event =
      raw.DecodeChange(Load("pg_orderline_create_schema.json"));
  ASSERT_TRUE(event.ok()) << event.status();
  EXPECT_THAT(std::string(*event->after), HasSubstr(R"("price":"AZo=")"));
}

TEST(ReadableModeTest, NothingToConvertReturnsAViewIntoTheInputCopy) {
  DebeziumDecoder decoder;
  // capture.b has no logical types; the pk delete's before image only nulls.
  const std::string b = Real("insert_4");
  absl::StatusOr<ChangeEvent> event = decoder.DecodeChange(b);
  ASSERT_TRUE(event.ok()) << event.status();
  EXPECT_THAT(event->after, Optional(std::string_view(R"({"id":1,"label":"one"})")));
  // A view into the decoder's copy of the input, like kRaw's: its text
  // continues with the rest of the envelope.
  EXPECT_EQ(std::string_view(event->after->data() + event->after->size(), 10),
            R"(,"source":)");
}

// A schema-on envelope whose before and after images have `fields`.
std::string SchemaEnvelope(std::string_view fields, std::string_view after,
                     std::string_view before = "null") {
  const std::string image = absl::StrCat(
      R"({"type":"struct","fields":[)", Sv(fields),
      R"(],"optional":true,"name":"p.s.t.Value","field":")");
  return absl::StrCat(
      R"({"schema":{"type":"struct","fields":[)", image, R"(before"},)", image,
      R"(after"},{"type":"string","optional":false,"field":"op"}],"optional":false,"name":"p.s.t.Envelope","version":2},"payload":{"before":)",
      Sv(before), R"(,"after":)", Sv(after),
      R"(,"source":{"connector":"postgresql","db":"d","schema":"s","table":"t","lsn":7,"ts_ms":1},"op":"u","ts_ms":2}})");
}

std::string Field(std::string_view name, std::string_view type,
                  std::string_view logical = "", std::string_view extra = "") {
  std::string field = absl::StrCat(R"({"type":")", Sv(type), R"(","optional":true)");
  if (!logical.empty()) absl::StrAppend(&field, R"(,"name":")", Sv(logical), "\"");
  if (!extra.empty()) absl::StrAppend(&field, ",", Sv(extra));
  absl::StrAppend(&field, R"(,"field":")", Sv(name), "\"}");
  return field;
}

std::string DecimalField(std::string_view name, int scale) {
  return Field(name, "bytes", "org.apache.kafka.connect.data.Decimal",
               absl::StrCat(R"("parameters":{"scale":")", scale, R"("})"));
}

absl::StatusOr<std::string> ReadableAfter(std::string_view fields,
                                          std::string_view after) {
  DebeziumDecoder decoder;
  absl::StatusOr<ChangeEvent> event = decoder.DecodeChange(SchemaEnvelope(fields, after));
  if (!event.ok()) return event.status();
  return std::string(event->after.value_or("null"));
}

TEST(ReadableModeTest, TypesThePostgresConnectorDoesNotSend) {
  const std::string fields = absl::StrCat(
      Field("nt", "int64", "io.debezium.time.NanoTime"), ",",
      Field("nts", "int64", "io.debezium.time.NanoTimestamp"), ",",
      Field("cd", "int32", "org.apache.kafka.connect.data.Date"), ",",
      Field("ct", "int32", "org.apache.kafka.connect.data.Time"), ",",
      Field("cts", "int64", "org.apache.kafka.connect.data.Timestamp"), ",",
      Field("es", "string", "io.debezium.data.EnumSet"), ",",
      Field("dur", "int64", "io.debezium.time.MicroDuration"));
  EXPECT_EQ(
      ReadableAfter(fields,
                    R"({"nt":45296000000001,"nts":-1,"cd":-1,"ct":45296789,"cts":1710498123456,"es":"a,b","dur":3600000000})")
          .value_or("error"),
      R"({"nt":"12:34:56.000000001","nts":"1969-12-31T23:59:59.999999999Z","cd":"1969-12-31","ct":"12:34:56.789","cts":"2024-03-15T10:22:03.456Z","es":"a,b","dur":3600000000})");
}

TEST(ReadableModeTest, BeforeImagesFieldOrderAndWhitespace) {
  const std::string fields = absl::StrCat(R"({"type":"int32","optional":false,"field":"id"},)",
                                          Field("d", "int32", "io.debezium.time.Date"), ",",
                                          DecimalField("p", 2));
  DebeziumDecoder decoder;
  // REPLICA IDENTITY FULL before image; fields out of schema order, spaces.
  absl::StatusOr<ChangeEvent> event = decoder.DecodeChange(
      SchemaEnvelope(fields, R"({ "p" : "AZo=" , "id" : 1 , "d" : 0 })",
               R"({"id":1,"d":null,"p":"/w=="})"));
  ASSERT_TRUE(event.ok()) << event.status();
  EXPECT_THAT(event->after,
              Optional(std::string_view(R"({ "p" : "4.10" , "id" : 1 , "d" : "1970-01-01" })")));
  EXPECT_THAT(event->before, Optional(std::string_view(R"({"id":1,"d":null,"p":"-0.01"})")));
}

TEST(ReadableModeTest, NestedStructsAndArrays) {
  const std::string fields = absl::StrCat(
      R"({"type":"struct","fields":[)", DecimalField("amount", 3), ",",
      R"({"type":"string","optional":true,"field":"unit"}],"optional":true,"name":"x.Money","field":"money"},)",
      R"({"type":"array","items":{"type":"array","items":{"type":"int32","optional":true,"name":"io.debezium.time.Date"},"optional":true},"optional":true,"field":"grid"},)",
      R"({"type":"array","items":{"type":"struct","fields":[{"type":"int32","optional":false,"field":"scale"},{"type":"bytes","optional":false,"field":"value"}],"optional":true,"name":"io.debezium.data.VariableScaleDecimal"},"optional":true,"field":"vs"})");
  EXPECT_EQ(
      ReadableAfter(fields,
                    R"({"money":{"amount":"MDk=","unit":"EUR"},"grid":[[0,1],null,[]],"vs":[{"scale":2,"value":"AZo="},null,{"scale":-2,"value":"Bw=="}]})")
          .value_or("error"),
      R"({"money":{"amount":"12.345","unit":"EUR"},"grid":[["1970-01-01","1970-01-02"],null,[]],"vs":["4.10",null,"700"]})");
}

TEST(ReadableModeTest, PlaceholderAndUnconvertibleValuesAreKept) {
  const std::string fields = absl::StrCat(
      DecimalField("p", 2), ",", DecimalField("q", 2), ",",
      Field("v", "struct", "io.debezium.data.VariableScaleDecimal",
            R"("fields":[{"type":"int32","optional":false,"field":"scale"},{"type":"bytes","optional":false,"field":"value"}])"),
      ",", Field("j", "string", "io.debezium.data.Json"), ",",
      Field("k", "string", "io.debezium.data.Json"), ",",
      R"({"type":"array","items":{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"}},"optional":true,"field":"ps"},)",
      Field("ts", "int64", "io.debezium.time.MicroTimestamp"));
  // Decimal: the placeholder as a string and as base64 of its bytes; a
  // VariableScaleDecimal holding it; Json that does not parse; an array
  // holding it; a timestamp replaced by it.
  const std::string after =
      R"({"p":"__debezium_unavailable_value","q":"X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ==","v":{"scale":0,"value":"__debezium_unavailable_value"},"j":"__debezium_unavailable_value","k":"{not json","ps":["__debezium_unavailable_value"],"ts":"__debezium_unavailable_value"})";
  DebeziumDecoder decoder;
  absl::StatusOr<ChangeEvent> event = decoder.DecodeChange(SchemaEnvelope(fields, after));
  ASSERT_TRUE(event.ok()) << event.status();
  EXPECT_THAT(event->after, Optional(std::string_view(after)));
  // A custom placeholder (unavailable.value.placeholder) is kept the same way.
  DebeziumDecoder custom(TxIdMode::kPostgres, ValueMode::kReadable, "N/A");
  event = custom.DecodeChange(
      SchemaEnvelope(fields, R"({"p":"N/A","q":"Ti9B","v":null,"j":"N/A","k":"[1]","ps":["N/A","AZo="],"ts":"N/A"})"));
  ASSERT_TRUE(event.ok()) << event.status();
  EXPECT_THAT(event->after,
              Optional(std::string_view(
                  R"({"p":"N/A","q":"Ti9B","v":null,"j":"N/A","k":[1],"ps":["N/A","4.10"],"ts":"N/A"})")));
}

TEST(ReadableModeTest, DecimalsWrittenAsNumbers) {
  // JsonConverter with decimal.format=NUMERIC writes exact JSON numbers.
  EXPECT_EQ(ReadableAfter(DecimalField("p", 2), R"({"p":12.50})").value_or("error"),
            R"({"p":"12.50"})");
}

TEST(ReadableModeTest, MalformedValuesNameTheirField) {
  ExpectInvalid(ReadableAfter(DecimalField("price", 2), R"({"price":"no base64!"})"),
                "change event: 'after.price': Decimal value \"no base64!\" is not base64");
  ExpectInvalid(ReadableAfter(DecimalField("price", 2), R"({"price":""})"),
                "'after.price': decimal with no unscaled bytes");
  ExpectInvalid(ReadableAfter(DecimalField("price", 2), R"({"price":true})"),
                "'after.price': Decimal value must not be a boolean");
  ExpectInvalid(ReadableAfter(Field("day", "int32", "io.debezium.time.Date"),
                              R"({"day":"2024-03-15"})"),
                "'after.day': Date value must not be the string \"2024-03-15\"");
  ExpectInvalid(ReadableAfter(Field("t", "int64", "io.debezium.time.MicroTime"),
                              R"({"t":-5})"),
                "'after.t': time of day -5 out of range");
  ExpectInvalid(ReadableAfter(Field("t", "int64", "io.debezium.time.MicroTimestamp"),
                              R"({"t":1.5})"),
                "'after.t': Timestamp value 1.5 is not a 64-bit integer");
  ExpectInvalid(
      ReadableAfter(
          R"({"type":"array","items":{"type":"int32","name":"io.debezium.time.Date"},"field":"days"})",
          R"({"days":[1,{}]})"),
      "'after.days[1]': Date value must not be an object");
  ExpectInvalid(ReadableAfter(Field("j", "string", "io.debezium.data.Json"),
                              R"({"j":5})"),
                "'after.j': Json value must not be a number");
  ExpectInvalid(
      ReadableAfter(Field("price", "bytes", "org.apache.kafka.connect.data.Decimal"),
                    R"({"price":"AZo="})"),
      "schema of 'before.price': Decimal without an integer 'parameters.scale'");
}

TEST(SchemaPlanCacheTest, CompilesEachSchemaOnceAndStaysBounded) {
  internal::SchemaPlanCache cache(4);
  auto schema = [](int i) {
    return absl::StrCat(
        R"({"type":"struct","fields":[{"type":"struct","fields":[)",
        DecimalField("p", i),
        R"(],"optional":true,"field":"after"}],"name":"e"})");
  };
  for (int round = 0; round < 3; ++round) {
    absl::StatusOr<const internal::EnvelopePlan*> plan = cache.Get(schema(2));
    ASSERT_TRUE(plan.ok()) << plan.status();
    ASSERT_NE((*plan)->after, nullptr);
    EXPECT_EQ((*plan)->before, nullptr);
    EXPECT_EQ((*plan)->after->plans[0].scale, 2);
  }
  EXPECT_EQ(cache.compilations(), 1u);
  for (int i = 3; i < 10; ++i) ASSERT_TRUE(cache.Get(schema(i)).ok());
  EXPECT_EQ(cache.size(), 4u);
  EXPECT_EQ(cache.compilations(), 8u);
  ASSERT_TRUE(cache.Get(schema(9)).ok());  // recent: still there
  EXPECT_EQ(cache.compilations(), 8u);
  ASSERT_TRUE(cache.Get(schema(2)).ok());  // evicted long ago
  EXPECT_EQ(cache.compilations(), 9u);
}

TEST(SchemaPlanCacheTest, HashTellsTextsApart) {
  // Every length path (short, tail, 16-byte and 48-byte loops), and texts
  // that differ in one byte only.
  std::string text;
  std::vector<uint64_t> hashes;
  for (int n = 0; n < 200; ++n) {
    hashes.push_back(internal::HashSchemaText(text));
    std::string other = text + "x";
    other[other.size() / 2] ^= 1;
    hashes.push_back(internal::HashSchemaText(other));
    text.push_back(static_cast<char>('a' + n % 26));
  }
  std::sort(hashes.begin(), hashes.end());
  EXPECT_EQ(std::adjacent_find(hashes.begin(), hashes.end()), hashes.end());
  EXPECT_EQ(internal::HashSchemaText(text), internal::HashSchemaText(text));
}

TEST(SchemaPlanCacheTest, DecoderReusesPlansAcrossEvents) {
  // Same schema, many events: results stay right when the cache hits, and
  // an event of another schema in between does not disturb them.
  DebeziumDecoder decoder;
  const std::string a = SchemaEnvelope(DecimalField("p", 2), R"({"p":"AZo="})");
  const std::string b = SchemaEnvelope(DecimalField("p", 1), R"({"p":"AZo="})");
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<ChangeEvent> event = decoder.DecodeChange(a);
    ASSERT_TRUE(event.ok()) << event.status();
    EXPECT_THAT(event->after, Optional(std::string_view(R"({"p":"4.10"})")));
    event = decoder.DecodeChange(b);
    ASSERT_TRUE(event.ok()) << event.status();
    EXPECT_THAT(event->after, Optional(std::string_view(R"({"p":"41.0"})")));
  }
}

// ---------------------------------------------------------------------------
// The arithmetic behind readable values.

std::string Decimal(std::string_view bytes, int32_t scale) {
  std::string out;
  const absl::Status status = internal::AppendDecimal(bytes, scale, &out);
  return status.ok() ? out : std::string(status.message());
}

std::string Bytes(std::initializer_list<int> bytes) {
  std::string out;
  for (int b : bytes) out.push_back(static_cast<char>(b));
  return out;
}

TEST(ConnectValuesTest, Decimals) {
  EXPECT_EQ(Decimal(Bytes({0x00}), 0), "0");
  EXPECT_EQ(Decimal(Bytes({0x00}), 2), "0.00");
  EXPECT_EQ(Decimal(Bytes({0x00, 0x00, 0x00}), 0), "0");
  EXPECT_EQ(Decimal(Bytes({0x04, 0xE2}), 2), "12.50");
  EXPECT_EQ(Decimal(Bytes({0xFB}), 2), "-0.05");
  EXPECT_EQ(Decimal(Bytes({0xFF}), 0), "-1");
  EXPECT_EQ(Decimal(Bytes({0x80}), 0), "-128");
  EXPECT_EQ(Decimal(Bytes({0x7F}), 5), "0.00127");
  EXPECT_EQ(Decimal(Bytes({0x07}), -2), "700");
  EXPECT_EQ(Decimal(Bytes({0x00}), -2), "0");
  EXPECT_EQ(Decimal(Bytes({0x80, 0, 0, 0, 0, 0, 0, 0}), 0), "-9223372036854775808");
  EXPECT_EQ(Decimal(Bytes({0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}), 3),
            "9223372036854775.807");
  // Longer than 64 bits.
  EXPECT_EQ(Decimal(Bytes({0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}), 0),
            "18446744073709551615");
  EXPECT_EQ(Decimal(Bytes({0xFF, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}), 0),
            "-18446744073709551616");
  std::string min160(20, '\0');
  min160[0] = static_cast<char>(0x80);
  EXPECT_EQ(Decimal(min160, 0), "-730750818665451459101842416358141509827966271488");
  EXPECT_EQ(Decimal(min160, 50), "-0.00730750818665451459101842416358141509827966271488");
  // 10^30 + 7 in 13 bytes, with a leading zero byte kept.
  EXPECT_EQ(Decimal(Bytes({0x0C, 0x9F, 0x2C, 0x9C, 0xD0, 0x46, 0x74, 0xED, 0xEA,
                           0x40, 0x00, 0x00, 0x07}),
                    30),
            "1.000000000000000000000000000007");
  EXPECT_EQ(Decimal("", 0), "decimal with no unscaled bytes");
}

std::string Date(int64_t days) {
  std::string out;
  internal::AppendDate(days, &out);
  return out;
}

TEST(ConnectValuesTest, Dates) {
  EXPECT_EQ(Date(0), "1970-01-01");
  EXPECT_EQ(Date(-1), "1969-12-31");
  EXPECT_EQ(Date(19797), "2024-03-15");
  EXPECT_EQ(Date(11016), "2000-02-29");
  EXPECT_EQ(Date(-25567), "1900-01-01");
  EXPECT_EQ(Date(-25508), "1900-03-01");  // 1900 is no leap year
  EXPECT_EQ(Date(-719528), "0000-01-01");
  EXPECT_EQ(Date(-719529), "-0001-12-31");
  EXPECT_EQ(Date(2932896), "9999-12-31");
  EXPECT_EQ(Date(2932897), "+10000-01-01");
}

std::string Time(int64_t value, int64_t units_per_second) {
  std::string out;
  const absl::Status status = internal::AppendTimeOfDay(value, units_per_second, &out);
  return status.ok() ? out : std::string(status.message());
}

std::string Timestamp(int64_t value, int64_t units_per_second) {
  std::string out;
  internal::AppendTimestamp(value, units_per_second, &out);
  return out;
}

TEST(ConnectValuesTest, TimesOfDay) {
  EXPECT_EQ(Time(0, 1000), "00:00:00");
  EXPECT_EQ(Time(45296789, 1000), "12:34:56.789");
  EXPECT_EQ(Time(45296500, 1000), "12:34:56.5");
  EXPECT_EQ(Time(45296000120, 1000000), "12:34:56.00012");
  EXPECT_EQ(Time(1, 1000000000), "00:00:00.000000001");
  EXPECT_EQ(Time(86399999999, 1000000), "23:59:59.999999");
  EXPECT_EQ(Time(86400000, 1000), "24:00:00");  // PostgreSQL's 24:00:00
  EXPECT_EQ(Time(86400001, 1000), "time of day 86400001 out of range [0, 86400000]");
  EXPECT_EQ(Time(-1, 1000), "time of day -1 out of range [0, 86400000]");
}

TEST(ConnectValuesTest, Timestamps) {
  EXPECT_EQ(Timestamp(0, 1000), "1970-01-01T00:00:00Z");
  EXPECT_EQ(Timestamp(-1, 1000), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(Timestamp(-1, 1000000), "1969-12-31T23:59:59.999999Z");
  EXPECT_EQ(Timestamp(-86400000, 1000), "1969-12-31T00:00:00Z");
  EXPECT_EQ(Timestamp(1710510330123456, 1000000), "2024-03-15T13:45:30.123456Z");
  EXPECT_EQ(Timestamp(-2208988800000, 1000), "1900-01-01T00:00:00Z");
  EXPECT_EQ(Timestamp(INT64_MIN, 1000000000), "1677-09-21T00:12:43.145224192Z");
  EXPECT_EQ(Timestamp(INT64_MAX, 1000000000), "2262-04-11T23:47:16.854775807Z");
  EXPECT_EQ(Timestamp(-62167219200000000, 1000000), "0000-01-01T00:00:00Z");
}

}  // namespace
}  // namespace tributary
