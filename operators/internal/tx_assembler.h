// TxAssembler: the second CDC operator, run as ONE task. Buffers routed
// change events per source transaction in a RocksDB store, queues END
// markers by their position in the transaction topic (the commit order), and
// releases each transaction, strictly in that order, once its END has arrived
// and the buffered count of every consumed data collection equals END's
// count. A released transaction becomes one RootSlice per touched root.
//
// State (all changelogged, so a restarted or moved task resumes exactly):
//   <name>-tx-events   <match id> \0 <position>  -> routed event bytes
//   <name>-tx-meta     E<match id> -> END;  Q<pos> -> match id (queue);
//                      R<match id> -> pos;  P<pos> -> match id (released)
//   <name>-child-index <table><child key>   -> root key
// The in-memory summary (counts per pending transaction) is rebuilt from the
// stores in Init.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "engine/processor.h"
#include "operators/internal/cdc_messages.h"
#include "operators/transaction_aggregate.h"

namespace tributary::internal {

class TxAssembler : public Processor {
 public:
  explicit TxAssembler(const TransactionAggregateSpec& spec);

  absl::Status Init(ProcessorContext& context) override;
  absl::Status Process(const Record& record) override;

  static std::string EventsStore(const TransactionAggregateSpec& spec) {
    return spec.name + "-tx-events";
  }
  static std::string MetaStore(const TransactionAggregateSpec& spec) {
    return spec.name + "-tx-meta";
  }
  static std::string IndexStore(const TransactionAggregateSpec& spec) {
    return spec.name + "-child-index";
  }

 private:
  struct Pending {
    std::vector<int64_t> buffered;  // distinct events per table
    bool has_end = false;
    int64_t end_position = -1;
    std::string tx_id;
    std::vector<int64_t> expected;  // per table, from END
  };

  absl::Status Rebuild();
  absl::Status OnChange(std::string_view match_id, const RoutedEvent& event,
                        std::string_view raw);
  absl::Status OnEnd(std::string_view match_id, const RoutedEvent& event,
                     std::string_view raw);
  absl::Status OnStandalone(const RoutedEvent& event);
  absl::StatusOr<bool> IsReleased(std::string_view match_id);
  bool IsComplete(const Pending& pending) const;
  absl::Status ReleaseReady();
  absl::Status Release(const std::string& match_id, bool partial);
  absl::Status Emit(std::string_view tx_id, int64_t position, bool partial,
                    const std::vector<RoutedEvent>& events);
  absl::Status CheckHead(TimestampMs now);
  int TableOf(std::string_view data_collection) const;
  void PublishGauges();

  const TransactionAggregateSpec& spec_;
  ProcessorContext* context_ = nullptr;
  KeyValueStore* events_ = nullptr;
  KeyValueStore* meta_ = nullptr;
  KeyValueStore* index_ = nullptr;
  size_t tables_ = 0;
  absl::flat_hash_map<std::string, Pending> pending_;
  std::map<int64_t, std::string> queue_;  // END position -> match id
  int64_t released_count_ = 0;
  int64_t head_position_ = -1;
  TimestampMs head_since_{0};
  TimestampMs last_warning_{0};

  Counter* released_ = nullptr;
  Counter* duplicates_ = nullptr;
  Counter* partial_ = nullptr;
  Counter* orphans_ = nullptr;
  Gauge* pending_gauge_ = nullptr;
  Gauge* oldest_age_gauge_ = nullptr;
};

}  // namespace tributary::internal
