// CdcRouter: the first CDC operator. Decodes Debezium change events of one
// table topic, or markers of the transaction topic, and forwards them keyed
// by transaction (match id) as RoutedEvents. One per task; its only state is
// the table shape it sent last (a new task sends it again on its first event).
#pragma once

#include <memory>
#include <string>

#include "engine/processor.h"
#include "operators/debezium.h"
#include "operators/transaction_aggregate.h"

namespace tributary::internal {

class CdcRouter : public Processor {
 public:
  // `table`: index into [root, children...]; -1 routes the transaction topic.
  CdcRouter(const TransactionAggregateSpec& spec, int table);

  absl::Status Init(ProcessorContext& context) override;
  absl::Status Process(const Record& record) override;

 private:
  absl::Status RouteMarker(const Record& record);
  absl::Status RouteChange(const Record& record);
  // Table routers: forwards a kProgress event when the task has read its
  // partition to the end.
  absl::Status ReportProgress(TimestampMs now);

  const TransactionAggregateSpec& spec_;
  const int table_;
  std::vector<std::string> fields_;  // key column (+ parent column)
  DebeziumDecoder decoder_;
  ProcessorContext* context_ = nullptr;
  std::string position_;  // scratch
  std::string standalone_key_;
  std::string encoded_;
  uint64_t sent_shape_ = 0;  // hash of the shape last attached to an event
};

// Zero-pads every all-digit ':'-separated part of a source position to 20
// digits so that byte order equals log order (PostgreSQL LSNs, MySQL pos).
void SortablePosition(std::string_view position, std::string& out);

}  // namespace tributary::internal
