#include "engine/internal/rdkafka_records_deleter.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace tributary::internal {

absl::StatusOr<std::unique_ptr<RdKafkaRecordsDeleter>> RdKafkaRecordsDeleter::Create(
    const std::map<std::string, std::string>& settings, int timeout_ms) {
  TRIBUTARY_ASSIGN_OR_RETURN(KafkaHandle handle, NewKafkaClient(RD_KAFKA_PRODUCER, settings));
  return std::unique_ptr<RdKafkaRecordsDeleter>(
      new RdKafkaRecordsDeleter(std::move(handle), timeout_ms));
}

RdKafkaRecordsDeleter::RdKafkaRecordsDeleter(KafkaHandle handle, int timeout_ms)
    : handle_(std::move(handle)), queue_(rd_kafka_queue_new(handle_.get())),
      timeout_ms_(timeout_ms) {}

RdKafkaRecordsDeleter::~RdKafkaRecordsDeleter() {
  queue_.reset();  // before the client it belongs to
  handle_.reset();
}

bool RdKafkaRecordsDeleter::Start(const OffsetMap& before) {
  Drain();
  if (in_flight_ || before.empty()) return false;
  PartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(before.size())));
  for (const auto& [tp, offset] : before) {
    rd_kafka_topic_partition_list_add(list.get(), tp.first.c_str(), tp.second)->offset = offset;
  }
  rd_kafka_DeleteRecords_t* request = rd_kafka_DeleteRecords_new(list.get());
  rd_kafka_AdminOptions_t* options =
      rd_kafka_AdminOptions_new(handle_.get(), RD_KAFKA_ADMIN_OP_DELETERECORDS);
  char errstr[256];
  // Both bounded: the answer comes within the timeout, an error at worst.
  (void)rd_kafka_AdminOptions_set_request_timeout(options, timeout_ms_, errstr, sizeof(errstr));
  (void)rd_kafka_AdminOptions_set_operation_timeout(options, timeout_ms_, errstr,
                                                    sizeof(errstr));
  rd_kafka_DeleteRecords(handle_.get(), &request, 1, options, queue_.get());
  rd_kafka_DeleteRecords_destroy(request);
  rd_kafka_AdminOptions_destroy(options);
  in_flight_ = true;
  return true;
}

std::vector<RecordsDeleter::Result> RdKafkaRecordsDeleter::TakeResults() {
  Drain();
  return std::exchange(results_, {});
}

void RdKafkaRecordsDeleter::Drain() {
  while (rd_kafka_event_t* event = rd_kafka_queue_poll(queue_.get(), 0)) {
    if (rd_kafka_event_type(event) == RD_KAFKA_EVENT_DELETERECORDS_RESULT) {
      in_flight_ = false;
      const rd_kafka_resp_err_t err = rd_kafka_event_error(event);
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        results_.push_back({{"", -1},
                            KafkaStatus(err, absl::StrCat("delete records: ",
                                                          rd_kafka_event_error_string(event)))});
      } else {
        const rd_kafka_topic_partition_list_t* offsets = rd_kafka_DeleteRecords_result_offsets(
            rd_kafka_event_DeleteRecords_result(event));
        for (int i = 0; offsets != nullptr && i < offsets->cnt; ++i) {
          const rd_kafka_topic_partition_t& p = offsets->elems[i];
          Result result{{p.topic, p.partition}, absl::OkStatus(), p.offset};
          if (p.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            result.status = KafkaStatus(
                p.err, absl::StrCat("delete records of ", p.topic, "[", p.partition, "]"));
          }
          results_.push_back(std::move(result));
        }
      }
    }
    rd_kafka_event_destroy(event);
  }
}

}  // namespace tributary::internal
