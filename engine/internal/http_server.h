// HttpServer: the HTTP endpoints of a KafkaStreams instance (metrics.port:
// /metrics, /health, /ready; query.port: interactive queries), each a list of
// GET routes answered by functions the owner gives; and HttpGet, the client
// a query endpoint proxies with. The only users of cpp-httplib.
// Thread-safety: Start and the destructor from one thread; the handlers are
// called on the server's threads, possibly at the same time. HttpGet from
// any thread.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace httplib {
class Server;
}

namespace tributary::internal {

struct HttpRequest {
  std::string path;   // decoded
  std::string match;  // what the route's first group matched, if it has one
  std::vector<std::pair<std::string, std::string>> headers;
  // The first header named `name` (case-insensitive), or "".
  std::string Header(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type = "text/plain; charset=utf-8";
  std::vector<std::pair<std::string, std::string>> headers;
  // The first header named `name` (case-insensitive), or "".
  std::string Header(std::string_view name) const;
};

struct HttpRoute {
  std::string pattern;  // an ECMAScript regex matched against the whole path
  std::function<HttpResponse(const HttpRequest&)> handler;
};

struct HttpServerOptions {
  // For the log and errors: "metrics endpoint", and the keys that set it:
  // "metrics.host, metrics.port".
  std::string what;
  std::string keys;
  std::string host;
  int port = 0;  // 0: any free port
  std::vector<HttpRoute> routes;
  size_t threads = 2;
};

class HttpServer {
 public:
  // Binds host:port and serves until destroyed. FailedPrecondition naming
  // host:port and the keys when it cannot bind (in use, no such address).
  // REQUIRES: what the handlers use outlives the server.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(HttpServerOptions options);
  ~HttpServer();  // stops serving; waits for requests under way
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The bound port.
  int port() const { return port_; }

 private:
  HttpServer() = default;

  std::unique_ptr<httplib::Server> server_;
  HttpServerOptions options_;
  int port_ = 0;
  std::thread listener_;
};

// GET http://<server><path> (`server` host:port) with `headers`, connecting
// and reading within `timeout` each. Unavailable naming the server when it
// cannot be reached or does not answer in time.
absl::StatusOr<HttpResponse> HttpGet(
    const std::string& server, const std::string& path,
    const std::vector<std::pair<std::string, std::string>>& headers, absl::Duration timeout);

}  // namespace tributary::internal
