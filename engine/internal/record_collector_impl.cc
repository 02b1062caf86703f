#include "engine/internal/record_collector_impl.h"

namespace tributary::internal {

absl::Status RecordCollectorImpl::Send(std::string_view topic, const Record& record,
                                       std::optional<Partition> partition) {
  return producer_->Send(topic, record, partition);
}

void RecordCollectorImpl::PrepareTopic(std::string_view topic) {
  producer_->producer().PrepareTopic(topic);
}

absl::StatusOr<int32_t> RecordCollectorImpl::PartitionCount(std::string_view topic) {
  return producer_->producer().PartitionCount(topic);
}

}  // namespace tributary::internal
