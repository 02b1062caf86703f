// MetricsServer: the HTTP endpoint of a KafkaStreams instance (metrics.port):
// GET /metrics (Prometheus text), /health, /ready and / (the status page,
// HTML), each answered by a function the owner gives. Serves on two threads of its own.
// Thread-safety: Start and the destructor from one thread; the handlers are
// called on the server's threads, possibly at the same time.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "engine/kafka_streams.h"

namespace httplib {
class Server;
}

namespace tributary::internal {

struct MetricsHandlers {
  std::function<std::string()> metrics;  // the exposition
  // 200 with the text when ok, else 503 with the reason.
  std::function<ProbeResult()> health;
  std::function<ProbeResult()> ready;
  std::function<std::string()> status_page;  // GET /: an HTML page
};

class MetricsServer {
 public:
  // Binds host:port (0: any free port) and serves until destroyed.
  // FailedPrecondition naming host:port when it cannot bind (in use, no
  // such address). REQUIRES: the handlers outlive the server.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(const std::string& host, int port,
                                                              MetricsHandlers handlers);
  ~MetricsServer();  // stops serving; waits for requests under way
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The bound port.
  int port() const { return port_; }

 private:
  MetricsServer() = default;

  std::unique_ptr<httplib::Server> server_;
  MetricsHandlers handlers_;
  int port_ = 0;
  std::thread listener_;
};

}  // namespace tributary::internal
