#include "engine/mock_cluster.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"
#include "engine/internal/rdkafka_handles.h"

namespace tributary {
namespace internal {

struct MockClusterState {
  KafkaHandle owner;  // the mock cluster lives inside this handle's threads
  rd_kafka_mock_cluster_t* cluster = nullptr;
  ~MockClusterState() {
    if (cluster != nullptr) rd_kafka_mock_cluster_destroy(cluster);
  }
};

}  // namespace internal

absl::StatusOr<std::unique_ptr<MockCluster>> MockCluster::Start(int num_brokers) {
  char errstr[512];
  internal::KafkaConf conf(rd_kafka_conf_new());
  if (rd_kafka_conf_set(conf.get(), "log_level", "3", errstr, sizeof(errstr)) !=
      RD_KAFKA_CONF_OK) {
    return absl::InternalError(errstr);
  }
  auto state = std::make_unique<internal::MockClusterState>();
  state->owner.reset(
      rd_kafka_new(RD_KAFKA_PRODUCER, conf.release(), errstr, sizeof(errstr)));
  if (!state->owner) {
    return absl::InternalError(absl::StrCat("mock cluster: rd_kafka_new: ", errstr));
  }
  state->cluster = rd_kafka_mock_cluster_new(state->owner.get(), num_brokers);
  if (state->cluster == nullptr) {
    return absl::InternalError("mock cluster: rd_kafka_mock_cluster_new failed");
  }
  return std::unique_ptr<MockCluster>(new MockCluster(std::move(state)));
}

MockCluster::MockCluster(std::unique_ptr<internal::MockClusterState> state)
    : state_(std::move(state)),
      bootstrap_servers_(rd_kafka_mock_cluster_bootstraps(state_->cluster)) {}

MockCluster::~MockCluster() = default;

absl::Status MockCluster::CreateTopic(std::string_view topic, int partitions) {
  std::string name(topic);
  return internal::KafkaStatus(
      rd_kafka_mock_topic_create(state_->cluster, name.c_str(), partitions, 1),
      absl::StrCat("mock cluster: create topic ", Sv(topic)));
}

}  // namespace tributary
