#include "engine/internal/http_server.h"

#include <sys/socket.h>

#include <atomic>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "base/absl_compat.h"
#include "engine/internal/log.h"
#include "httplib.h"

namespace tributary::internal {
namespace {

std::string FindHeader(const std::vector<std::pair<std::string, std::string>>& headers,
                       std::string_view name) {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, Sv(name))) return value;
  }
  return "";
}

}  // namespace

std::string HttpRequest::Header(std::string_view name) const { return FindHeader(headers, name); }
std::string HttpResponse::Header(std::string_view name) const { return FindHeader(headers, name); }

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(HttpServerOptions options) {
  std::unique_ptr<HttpServer> self(new HttpServer());
  self->options_ = std::move(options);
  self->server_ = std::make_unique<httplib::Server>();
  httplib::Server& server = *self->server_;
  const size_t threads = self->options_.threads;
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  // cpp-httplib's default sets SO_REUSEPORT, with which a second instance
  // would bind the same port and share its requests; SO_REUSEADDR only
  // rebinds past TIME_WAIT.
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  std::vector<std::string> patterns;
  for (const HttpRoute& route : self->options_.routes) {
    patterns.push_back(route.pattern);
    const auto* handler = &route.handler;  // in options_, which the server outlives
    server.Get(route.pattern, [handler](const httplib::Request& request,
                                        httplib::Response& response) {
      HttpRequest in;
      in.path = request.path;
      if (request.matches.size() > 1) in.match = request.matches[1].str();
      for (const auto& [key, value] : request.headers) in.headers.emplace_back(key, value);
      HttpResponse out = (*handler)(in);
      response.status = out.status;
      for (auto& [key, value] : out.headers) response.set_header(key, value);
      response.set_content(std::move(out.body), out.content_type);
    });
  }

  const std::string& host = self->options_.host;
  const int port = self->options_.port;
  if (port == 0) {
    self->port_ = server.bind_to_any_port(host);
  } else if (server.bind_to_port(host, port)) {
    self->port_ = port;
  } else {
    self->port_ = -1;
  }
  if (self->port_ <= 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        self->options_.what, ": cannot listen on ", host, ":", port, " (", self->options_.keys,
        "): the port is in use or the address is not local"));
  }
  auto ended = std::make_shared<std::atomic<bool>>(false);
  self->listener_ = std::thread([&server, ended] {
    server.listen_after_bind();
    *ended = true;
  });
  // stop() does nothing before the loop runs: wait for it, so that the
  // destructor's stop() ends it. Bounded by the listener thread's start.
  while (!server.is_running() && !*ended) absl::SleepFor(absl::Milliseconds(1));
  EngineLogger()->info("{} on http://{}:{}/ ({})", self->options_.what, host, self->port_,
                       absl::StrJoin(patterns, ", "));
  return self;
}

HttpServer::~HttpServer() {
  if (server_ != nullptr) server_->stop();
  if (listener_.joinable()) listener_.join();
}

absl::StatusOr<HttpResponse> HttpGet(
    const std::string& server, const std::string& path,
    const std::vector<std::pair<std::string, std::string>>& headers, absl::Duration timeout) {
  const size_t colon = server.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(server.substr(colon + 1), &port)) {
    return absl::InvalidArgumentError(absl::StrCat("'", server, "' is not host:port"));
  }
  httplib::Client client(server.substr(0, colon), port);
  const int64_t usec = absl::ToInt64Microseconds(timeout);
  client.set_connection_timeout(usec / 1000000, usec % 1000000);
  client.set_read_timeout(usec / 1000000, usec % 1000000);
  client.set_write_timeout(usec / 1000000, usec % 1000000);
  httplib::Headers request_headers;
  for (const auto& [key, value] : headers) request_headers.emplace(key, value);
  httplib::Result result = client.Get(path, request_headers);
  if (!result) {
    return absl::UnavailableError(absl::StrCat("GET http://", server, path, ": ",
                                               httplib::to_string(result.error())));
  }
  HttpResponse response;
  response.status = result->status;
  response.body = result->body;
  for (const auto& [key, value] : result->headers) {
    if (absl::EqualsIgnoreCase(key, "Content-Type")) {
      response.content_type = value;
    } else {
      response.headers.emplace_back(key, value);
    }
  }
  return response;
}

}  // namespace tributary::internal
