#include "engine/internal/metrics_server.h"

#include <sys/socket.h>

#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/internal/log.h"
#include "engine/internal/prometheus.h"
#include "httplib.h"

namespace tributary::internal {
namespace {

// Requests are short (a scrape, a probe): two threads serve them.
constexpr size_t kServerThreads = 2;

void Answer(const ProbeResult& result, httplib::Response& response) {
  response.status = result.ok ? 200 : 503;
  response.set_content(result.text + "\n", "text/plain; charset=utf-8");
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(const std::string& host,
                                                                    int port,
                                                                    MetricsHandlers handlers) {
  std::unique_ptr<MetricsServer> self(new MetricsServer());
  self->handlers_ = std::move(handlers);
  self->server_ = std::make_unique<httplib::Server>();
  httplib::Server& server = *self->server_;
  server.new_task_queue = [] { return new httplib::ThreadPool(kServerThreads); };
  // cpp-httplib's default sets SO_REUSEPORT, with which a second instance
  // would bind the same port and share its scrapes; SO_REUSEADDR only
  // rebinds past TIME_WAIT.
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  MetricsServer* raw = self.get();
  server.Get("/metrics", [raw](const httplib::Request&, httplib::Response& response) {
    response.set_content(raw->handlers_.metrics(), std::string(kPrometheusContentType));
  });
  server.Get("/health", [raw](const httplib::Request&, httplib::Response& response) {
    Answer(raw->handlers_.health(), response);
  });
  server.Get("/ready", [raw](const httplib::Request&, httplib::Response& response) {
    Answer(raw->handlers_.ready(), response);
  });
  server.Get("/", [raw](const httplib::Request&, httplib::Response& response) {
    response.set_content(raw->handlers_.status_page(), "text/html; charset=utf-8");
  });

  if (port == 0) {
    self->port_ = server.bind_to_any_port(host);
  } else if (server.bind_to_port(host, port)) {
    self->port_ = port;
  } else {
    self->port_ = -1;
  }
  if (self->port_ <= 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "metrics endpoint: cannot listen on ", host, ":", port,
        " (metrics.host, metrics.port): the port is in use or the address is not local"));
  }
  auto ended = std::make_shared<std::atomic<bool>>(false);
  self->listener_ = std::thread([&server, ended] {
    server.listen_after_bind();
    *ended = true;
  });
  // stop() does nothing before the loop runs: wait for it, so that the
  // destructor's stop() ends it. Bounded by the listener thread's start.
  while (!server.is_running() && !*ended) absl::SleepFor(absl::Milliseconds(1));
  EngineLogger()->info("metrics endpoint on http://{}:{}/ (/, /metrics, /health, /ready)", host,
                       self->port_);
  return self;
}

MetricsServer::~MetricsServer() {
  if (server_ != nullptr) server_->stop();
  if (listener_.joinable()) listener_.join();
}

}  // namespace tributary::internal
