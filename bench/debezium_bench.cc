// Debezium decoding micro-benchmarks: DecodeChange over generated PostgreSQL
// order-line create/update envelopes (~600 bytes of payload) without and with
// the JSON converter's schema wrapper, DecodeChange of schema-on events with
// logical types (readable vs. raw values), DecodeMarker, and ExtractFields on
// row images and keys. Reports bytes/s of JSON and items/s.
// Run: debezium_bench --benchmark_min_time=0.5

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "operators/debezium.h"

namespace tributary {
namespace {

constexpr int kEvents = 512;  // distinct envelopes, cycled through

// The value schema Debezium 2.7 writes for inventory.orderline with
// value.converter.schemas.enable=true.
constexpr char kOrderlineSchema[] =
    R"({"type":"struct","fields":[{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"int32","optional":true,"field":"order_id"},{"type":"string","optional":true,"field":"product"},{"type":"int32","optional":true,"field":"quantity"},{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"12"},"field":"price"},{"type":"string","optional":true,"field":"status"}],"optional":true,"name":"dbserver1.inventory.orderline.Value","field":"before"},{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"int32","optional":true,"field":"order_id"},{"type":"string","optional":true,"field":"product"},{"type":"int32","optional":true,"field":"quantity"},{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"12"},"field":"price"},{"type":"string","optional":true,"field":"status"}],"optional":true,"name":"dbserver1.inventory.orderline.Value","field":"after"},{"type":"struct","fields":[{"type":"string","optional":false,"field":"version"},{"type":"string","optional":false,"field":"connector"},{"type":"string","optional":false,"field":"name"},{"type":"int64","optional":false,"field":"ts_ms"},{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"},"default":"false","field":"snapshot"},{"type":"string","optional":false,"field":"db"},{"type":"string","optional":true,"field":"sequence"},{"type":"int64","optional":true,"field":"ts_us"},{"type":"int64","optional":true,"field":"ts_ns"},{"type":"string","optional":false,"field":"schema"},{"type":"string","optional":false,"field":"table"},{"type":"int64","optional":true,"field":"txId"},{"type":"int64","optional":true,"field":"lsn"},{"type":"int64","optional":true,"field":"xmin"}],"optional":false,"name":"io.debezium.connector.postgresql.Source","field":"source"},{"type":"string","optional":false,"field":"op"},{"type":"int64","optional":true,"field":"ts_ms"},{"type":"int64","optional":true,"field":"ts_us"},{"type":"int64","optional":true,"field":"ts_ns"},{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"},{"type":"int64","optional":false,"field":"total_order"},{"type":"int64","optional":false,"field":"data_collection_order"}],"optional":true,"name":"event.block","version":1,"field":"transaction"}],"optional":false,"name":"dbserver1.inventory.orderline.Envelope","version":2})";

constexpr const char* kProducts[] = {
    "Claw hammer 16oz, fibreglass handle", "Galvanised nails 4cm (box of 500)",
    "Cordless drill 18V with two batteries", "Wood screws 5x60 \\\"Torx\\\"",
    "Safety glasses, anti-fog"};
constexpr const char* kStatuses[] = {"ENTERED", "CONFIRMED", "PICKED",
                                     "SHIPPED"};

std::string RowImage(int64_t id, int64_t order_id, int i) {
  static constexpr const char* kPrices[] = {
      "AZo=", "B88=", "CcQ=", "BOI=", "AV8s"};
  return absl::StrCat(R"({"id":)", id, R"(,"order_id":)", order_id,
                      R"(,"product":")", kProducts[i % 5], R"(","quantity":)",
                      1 + i % 40, R"(,"price":")", kPrices[i % 5],
                      R"(","status":")", kStatuses[i % 4], R"("})");
}

// Envelope i of a stream of order-service transactions: creates, and
// updates with a full before image (REPLICA IDENTITY FULL) every other one.
std::string Envelope(int i, bool with_schema) {
  const int64_t xid = 571 + i / 4;
  const int64_t lsn = 53195830 + 64 * i;
  const int64_t commit_ms = 1710498123456 + 17 * i;
  const int64_t ts_ms = commit_ms + 331;
  const int64_t id = 1000 + i;
  const int64_t order_id = 1000 + i / 4;
  const bool update = i % 2 == 1;
  std::string before = update ? RowImage(id, order_id, i + 1) : "null";
  std::string payload = absl::StrCat(
      R"({"before":)", before, R"(,"after":)", RowImage(id, order_id, i),
      R"(,"source":{"version":"2.7.3.Final","connector":"postgresql","name":"dbserver1","ts_ms":)",
      commit_ms, R"(,"snapshot":"false","db":"orders","sequence":"[\")",
      lsn - 30, R"(\",\")", lsn, R"(\"]","ts_us":)", commit_ms * 1000,
      R"(,"ts_ns":)", commit_ms * 1000000,
      R"(,"schema":"inventory","table":"orderline","txId":)", xid, R"(,"lsn":)",
      lsn, R"(,"xmin":null},"op":")", update ? "u" : "c", R"(","ts_ms":)",
      ts_ms, R"(,"ts_us":)", ts_ms * 1000 + 417, R"(,"ts_ns":)",
      (ts_ms * 1000 + 417) * 1000 + 302, R"(,"transaction":{"id":")", xid, ":",
      lsn, R"(","total_order":)", 1 + i % 4, R"(,"data_collection_order":)",
      1 + i % 4, "}}");
  if (!with_schema) return payload;
  return absl::StrCat(R"({"schema":)", kOrderlineSchema, R"(,"payload":)",
                      payload, "}");
}

std::vector<std::string> Envelopes(bool with_schema) {
  std::vector<std::string> values;
  for (int i = 0; i < kEvents; ++i) values.push_back(Envelope(i, with_schema));
  return values;
}

void BM_DecodeChange(benchmark::State& state) {
  const bool with_schema = state.range(0) != 0;
  const std::vector<std::string> values = Envelopes(with_schema);
  size_t total = 0;
  for (const std::string& v : values) total += v.size();
  state.SetLabel(absl::StrCat(with_schema ? "schema+payload" : "payload only",
                              ", avg ", total / values.size(), " B"));
  DebeziumDecoder decoder;
  int64_t bytes = 0;
  size_t i = 0;
  for (auto _ : state) {
    const std::string& value = values[i];
    absl::StatusOr<ChangeEvent> event = decoder.DecodeChange(value);
    if (!event.ok()) {
      state.SkipWithError(std::string(event.status().message()).c_str());
      break;
    }
    benchmark::DoNotOptimize(event->transaction);
    benchmark::DoNotOptimize(event->source.position.data());
    bytes += static_cast<int64_t>(value.size());
    if (++i == values.size()) i = 0;
  }
  state.SetBytesProcessed(bytes);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DecodeChange)->ArgName("schema")->Arg(0)->Arg(1);

// A PostgreSQL purchase-order envelope with schemas on whose row carries
// logical types: a Decimal (numeric(12,2)), a Date and a MicroTimestamp, the
// way Debezium 3.6.1 writes them (schema layout as in testdata/real/).
constexpr char kPurchaseOrderRow[] =
    R"({"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"int32","optional":true,"name":"io.debezium.time.Date","version":1,"field":"order_date"},{"type":"int64","optional":true,"name":"io.debezium.time.MicroTimestamp","version":1,"field":"created_at"},{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"12"},"field":"total"},{"type":"string","optional":true,"field":"customer"},{"type":"string","optional":true,"field":"status"}],"optional":true,"name":"dbserver1.inventory.purchaseorder.Value","field":")";

std::string PurchaseOrderSchema() {
  return absl::StrCat(
      R"({"type":"struct","fields":[)", kPurchaseOrderRow, R"(before"},)",
      kPurchaseOrderRow,
      R"(after"},{"type":"struct","fields":[{"type":"string","optional":false,"field":"version"},{"type":"string","optional":false,"field":"connector"},{"type":"string","optional":false,"field":"name"},{"type":"int64","optional":false,"field":"ts_ms"},{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"},"default":"false","field":"snapshot"},{"type":"string","optional":false,"field":"db"},{"type":"string","optional":true,"field":"sequence"},{"type":"int64","optional":true,"field":"ts_us"},{"type":"int64","optional":true,"field":"ts_ns"},{"type":"string","optional":false,"field":"schema"},{"type":"string","optional":false,"field":"table"},{"type":"int64","optional":true,"field":"txId"},{"type":"int64","optional":true,"field":"lsn"},{"type":"int64","optional":true,"field":"xmin"}],"optional":false,"name":"io.debezium.connector.postgresql.Source","field":"source"},{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"},{"type":"int64","optional":false,"field":"total_order"},{"type":"int64","optional":false,"field":"data_collection_order"}],"optional":true,"name":"event.block","version":1,"field":"transaction"},{"type":"string","optional":false,"field":"op"},{"type":"int64","optional":true,"field":"ts_ms"},{"type":"int64","optional":true,"field":"ts_us"},{"type":"int64","optional":true,"field":"ts_ns"}],"optional":false,"name":"dbserver1.inventory.purchaseorder.Envelope","version":2})");
}

std::string PurchaseOrderEnvelope(const std::string& schema, int i) {
  static constexpr const char* kTotals[] = {"AZo=", "B88=", "CcQ=", "BOI=",
                                            "AV8s", "/zg=", "AJiWgA=="};
  const int64_t xid = 571 + i;
  const int64_t lsn = 53195830 + 64 * i;
  const int64_t commit_ms = 1710498123456 + 17 * i;
  const std::string after = absl::StrCat(
      R"({"id":)", 1000 + i, R"(,"order_date":)", 19797 + i % 30,
      R"(,"created_at":)", commit_ms * 1000 + 123 + i, R"(,"total":")",
      kTotals[i % 7], R"(","customer":")", kProducts[i % 5], R"(","status":")",
      kStatuses[i % 4], R"("})");
  return absl::StrCat(
      R"({"schema":)", schema, R"(,"payload":{"before":null,"after":)", after,
      R"(,"source":{"version":"3.6.1.Final","connector":"postgresql","name":"dbserver1","ts_ms":)",
      commit_ms, R"(,"snapshot":"false","db":"orderdb","sequence":"[null,\")",
      lsn, R"(\"]","ts_us":)", commit_ms * 1000, R"(,"ts_ns":)",
      commit_ms * 1000000,
      R"(,"schema":"inventory","table":"purchaseorder","txId":)", xid,
      R"(,"lsn":)", lsn,
      R"(,"xmin":null},"transaction":{"id":")", xid, ":", lsn,
      R"(","total_order":1,"data_collection_order":1},"op":"c","ts_ms":)",
      commit_ms + 331, R"(,"ts_us":)", (commit_ms + 331) * 1000,
      R"(,"ts_ns":)", (commit_ms + 331) * 1000000, "}}");
}

// DecodeChange of schema-on events with a Decimal, a Date and a
// MicroTimestamp in the after image; arg 0: ValueMode::kReadable (converts
// the three), arg 1: ValueMode::kRaw (views into the input, as before).
void BM_DecodeChangeLogicalTypes(benchmark::State& state) {
  const ValueMode mode =
      state.range(0) == 0 ? ValueMode::kReadable : ValueMode::kRaw;
  const std::string schema = PurchaseOrderSchema();
  std::vector<std::string> values;
  size_t total = 0;
  for (int i = 0; i < kEvents; ++i) {
    values.push_back(PurchaseOrderEnvelope(schema, i));
    total += values.back().size();
  }
  state.SetLabel(absl::StrCat(mode == ValueMode::kRaw ? "raw" : "readable",
                              ", avg ", total / values.size(), " B"));
  DebeziumDecoder decoder(TxIdMode::kPostgres, mode);
  int64_t bytes = 0;
  size_t i = 0;
  for (auto _ : state) {
    const std::string& value = values[i];
    absl::StatusOr<ChangeEvent> event = decoder.DecodeChange(value);
    if (!event.ok()) {
      state.SkipWithError(std::string(event.status().message()).c_str());
      break;
    }
    benchmark::DoNotOptimize(event->after->data());
    bytes += static_cast<int64_t>(value.size());
    if (++i == values.size()) i = 0;
  }
  state.SetBytesProcessed(bytes);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DecodeChangeLogicalTypes)->ArgName("raw")->Arg(0)->Arg(1);

void BM_DecodeMarker(benchmark::State& state) {
  const std::vector<std::string> values = {
      R"({"status":"BEGIN","id":"571:53195829","event_count":null,"data_collections":null,"ts_ms":1710498123456})",
      R"({"status":"END","id":"571:53195833","event_count":3,"data_collections":[{"data_collection":"inventory.purchaseorder","event_count":1},{"data_collection":"inventory.orderline","event_count":2}],"ts_ms":1710498123456})"};
  DebeziumDecoder decoder;
  int64_t bytes = 0;
  size_t i = 0;
  for (auto _ : state) {
    absl::StatusOr<TransactionMarker> marker = decoder.DecodeMarker(values[i]);
    benchmark::DoNotOptimize(marker->match_id);
    bytes += static_cast<int64_t>(values[i].size());
    i ^= 1;
  }
  state.SetBytesProcessed(bytes);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DecodeMarker);

// The aggregate join's access pattern: decode, then read the key columns of
// the row image the event returned.
void BM_DecodeChangeAndExtractFields(benchmark::State& state) {
  const std::vector<std::string> values = Envelopes(false);
  const std::vector<std::string> fields = {"id", "order_id"};
  DebeziumDecoder decoder;
  int64_t bytes = 0;
  size_t i = 0;
  for (auto _ : state) {
    absl::StatusOr<ChangeEvent> event = decoder.DecodeChange(values[i]);
    auto columns = decoder.ExtractFields(*event->after, fields);
    benchmark::DoNotOptimize(columns->data());
    bytes += static_cast<int64_t>(values[i].size());
    if (++i == values.size()) i = 0;
  }
  state.SetBytesProcessed(bytes);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DecodeChangeAndExtractFields);

// ExtractFields alone: on row images (arg 0: the first two columns, arg 1:
// the last one) and on keys (arg 2: plain, arg 3: schema-wrapped).
void BM_ExtractFields(benchmark::State& state) {
  std::vector<std::string> inputs;
  std::vector<std::string> fields;
  switch (state.range(0)) {
    case 0:
    case 1:
      for (int i = 0; i < kEvents; ++i) {
        inputs.push_back(RowImage(1000 + i, 1000 + i / 4, i));
      }
      fields = state.range(0) == 0 ? std::vector<std::string>{"id", "order_id"}
                                   : std::vector<std::string>{"status"};
      break;
    case 2:
      for (int i = 0; i < kEvents; ++i) {
        inputs.push_back(absl::StrCat(R"({"id":)", 1000 + i, "}"));
      }
      fields = {"id"};
      break;
    default:
      for (int i = 0; i < kEvents; ++i) {
        inputs.push_back(absl::StrCat(
            R"({"schema":{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"}],"optional":false,"name":"dbserver1.inventory.orderline.Key"},"payload":{"id":)",
            1000 + i, "}}"));
      }
      fields = {"id"};
      break;
  }
  DebeziumDecoder decoder;
  int64_t bytes = 0;
  size_t i = 0;
  for (auto _ : state) {
    auto columns = decoder.ExtractFields(inputs[i], fields);
    benchmark::DoNotOptimize(columns->data());
    bytes += static_cast<int64_t>(inputs[i].size());
    if (++i == inputs.size()) i = 0;
  }
  state.SetBytesProcessed(bytes);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ExtractFields)
    ->ArgName("input")  // 0,1: row image; 2: key; 3: wrapped key
    ->Arg(0)
    ->Arg(1)
    ->Arg(2)
    ->Arg(3);

}  // namespace
}  // namespace tributary

BENCHMARK_MAIN();
