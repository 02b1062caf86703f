// Owning handles for the librdkafka objects that bench tools use directly
// (the bare pipe, the latency probe's admin and consumer calls), which the
// engine's public clients do not expose.
#pragma once

#include <librdkafka/rdkafka.h>

#include <memory>

namespace tributary::bench {

template <auto Destroy>
struct Destroyer {
  template <typename T>
  void operator()(T* object) const {
    Destroy(object);
  }
};
using KafkaHandle = std::unique_ptr<rd_kafka_t, Destroyer<rd_kafka_destroy>>;
using KafkaConf = std::unique_ptr<rd_kafka_conf_t, Destroyer<rd_kafka_conf_destroy>>;
using KafkaQueue = std::unique_ptr<rd_kafka_queue_t, Destroyer<rd_kafka_queue_destroy>>;
using KafkaEvent = std::unique_ptr<rd_kafka_event_t, Destroyer<rd_kafka_event_destroy>>;
using KafkaMessage = std::unique_ptr<rd_kafka_message_t, Destroyer<rd_kafka_message_destroy>>;
using PartitionList = std::unique_ptr<rd_kafka_topic_partition_list_t,
                                      Destroyer<rd_kafka_topic_partition_list_destroy>>;
using GroupMetadata = std::unique_ptr<rd_kafka_consumer_group_metadata_t,
                                      Destroyer<rd_kafka_consumer_group_metadata_destroy>>;
using AdminOptions =
    std::unique_ptr<rd_kafka_AdminOptions_t, Destroyer<rd_kafka_AdminOptions_destroy>>;

}  // namespace tributary::bench
