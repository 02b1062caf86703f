// MockCluster: librdkafka's in-process mock Kafka cluster, the engine's
// embedded default when no bootstrap.servers is configured (or "mock://").
// Keeps only the newest ~5 MiB per partition: for demos and quick tests only.
// Thread-safety: Start/CreateTopic from one thread; clients connect from any.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace tributary {

namespace internal {
struct MockClusterState;
}

class MockCluster {
 public:
  static absl::StatusOr<std::unique_ptr<MockCluster>> Start(int num_brokers = 1);
  ~MockCluster();
  MockCluster(const MockCluster&) = delete;
  MockCluster& operator=(const MockCluster&) = delete;

  // Comma-separated host:port list to use as bootstrap.servers.
  const std::string& bootstrap_servers() const { return bootstrap_servers_; }

  // Creates `topic` with `partitions` partitions (replication factor 1).
  absl::Status CreateTopic(std::string_view topic, int partitions);

 private:
  explicit MockCluster(std::unique_ptr<internal::MockClusterState> state);
  std::unique_ptr<internal::MockClusterState> state_;
  std::string bootstrap_servers_;
};

}  // namespace tributary
