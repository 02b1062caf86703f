// Debezium PostgreSQL change events and transaction markers, built as the
// connector (3.6.1, JSON converter, schemas off) writes them, for tests
// that need a transaction of their own making (the real connector's bytes
// are in testdata/real/, captured by scripts/capture-samples).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/absl_compat.h"

namespace tributary::testing {

// Builds Debezium PostgreSQL change events and markers. Every message gets
// its own LSN, so ids differ in their suffix as real ones do.
class PgEvents {
 public:
  std::string Order(char op, int id, std::string_view status, int64_t xid) {
    std::string row = absl::StrCat(R"({"id":)", id,
                                   R"(,"customer_id":7,"order_date":19700,"status":")", Sv(status),
                                   R"("})");
    return Change("purchaseorder", op, op == 'd' ? absl::StrCat(R"({"id":)", id, "}") : "null",
                  op == 'd' ? "null" : row, xid);
  }
  std::string Line(char op, int id, int order, std::string_view product, int64_t xid) {
    std::string row = absl::StrCat(R"({"id":)", id, R"(,"order_id":)", order,
                                   R"(,"product":")", Sv(product),
                                   R"(","quantity":1,"price":"BOI=","status":"ENTERED"})");
    return Change("orderline", op, op == 'd' ? absl::StrCat(R"({"id":)", id, "}") : "null",
                  op == 'd' ? "null" : row, xid);
  }
  // A snapshot read; `snapshot` is source.snapshot ("first", "true", "last",
  // "incremental").
  std::string SnapshotOrder(int id, std::string_view snapshot = "true") {
    return SnapshotRow("purchaseorder",
                       absl::StrCat(R"({"id":)", id,
                                    R"(,"customer_id":7,"order_date":19700,"status":"PLACED"})"),
                       snapshot);
  }
  std::string SnapshotLine(int id, int order, std::string_view snapshot = "true") {
    return SnapshotRow("orderline",
                       absl::StrCat(R"({"id":)", id, R"(,"order_id":)", order,
                                    R"(,"product":"s","quantity":1,"price":"BOI=","status":"ENTERED"})"),
                       snapshot);
  }
  // Every row of one PostgreSQL snapshot carries the snapshot's LSN.
  std::string SnapshotRow(std::string_view table, std::string_view row,
                          std::string_view snapshot, int64_t lsn = 900) {
    return absl::StrCat(
        R"({"before":null,"after":)", Sv(row),
        R"(,"source":{"version":"3.6.1.Final","connector":"postgresql","name":"dbserver1","ts_ms":1700000000000,"snapshot":")",
        Sv(snapshot), R"(","db":"orderdb","sequence":"[null,\")", lsn,
        R"(\"]","schema":"inventory","table":")", Sv(table), R"(","txId":5,"lsn":)", lsn,
        R"(,"xmin":null},"transaction":null,"op":"r","ts_ms":1700000000001})");
  }
  // The LSN the next message gets (after a gap in the log).
  void SetLsn(int64_t lsn) { lsn_ = lsn - 1; }
  std::string End(int64_t xid, int orders, int lines) {
    std::vector<std::string> collections;
    if (orders > 0) {
      collections.push_back(absl::StrCat(
          R"({"data_collection":"inventory.purchaseorder","event_count":)", orders, "}"));
    }
    if (lines > 0) {
      collections.push_back(absl::StrCat(
          R"({"data_collection":"inventory.orderline","event_count":)", lines, "}"));
    }
    return absl::StrCat(R"({"status":"END","id":")", xid, ":", ++lsn_,
                        R"(","event_count":)", orders + lines, R"(,"data_collections":[)",
                        absl::StrJoin(collections, ","), R"(],"ts_ms":1700000000002})");
  }
  std::string Begin(int64_t xid) {
    return absl::StrCat(R"({"status":"BEGIN","id":")", xid, ":", ++lsn_,
                        R"(","event_count":null,"data_collections":null,"ts_ms":1700000000000})");
  }
  // Restarts the per-transaction counters.
  void NewTransaction() { total_ = 0; }
  // The next change event gets the LSN of the previous one, as the delete and
  // the create of a primary-key UPDATE, or a multi-table TRUNCATE, do.
  void SameLsnNext() { same_lsn_ = true; }

  std::string Change(std::string_view table, char op, std::string_view before,
                     std::string_view after, int64_t xid) {
    if (!same_lsn_) ++lsn_;
    same_lsn_ = false;
    ++total_;
    return absl::StrCat(
        R"({"before":)", Sv(before), R"(,"after":)", Sv(after),
        R"(,"source":{"version":"3.6.1.Final","connector":"postgresql","name":"dbserver1","ts_ms":1700000000000,"snapshot":"false","db":"orderdb","sequence":"[null,\")",
        lsn_, R"(\"]","schema":"inventory","table":")", Sv(table), R"(","txId":)", xid,
        R"(,"lsn":)", lsn_, R"(,"xmin":null},"transaction":{"id":")", xid, ":", lsn_,
        R"(","total_order":)", total_, R"(,"data_collection_order":)", total_,
        R"(},"op":")", std::string(1, op), R"(","ts_ms":1700000000001})");
  }
  // `event` inside the JSON converter's {"schema":...,"payload":...}, its
  // row images having the fields `fields` (JSON field schemas).
  static std::string WithSchema(const std::string& event, std::string_view fields) {
    const std::string image =
        absl::StrCat(R"({"type":"struct","fields":[)", Sv(fields),
                     R"(],"optional":true,"name":"dbserver1.inventory.orderline.Value","field":")");
    return absl::StrCat(
        R"({"schema":{"type":"struct","fields":[)", image, R"(before"},)", image,
        R"(after"},{"type":"string","optional":false,"field":"op"}],"optional":false,"name":"dbserver1.inventory.orderline.Envelope","version":2},"payload":)",
        event, "}");
  }
  int64_t lsn_ = 1000;
  int total_ = 0;
  bool same_lsn_ = false;
};

}  // namespace tributary::testing
