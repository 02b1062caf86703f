#include "tests/chaos/tcp_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <list>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace tributary::testing {
namespace {

constexpr int kPollMs = 50;
constexpr size_t kBufferBytes = 256 * 1024;

sockaddr_in Loopback(int port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return address;
}

void SetNonBlocking(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

// Closes `fd` with an RST instead of a FIN: the peer sees the connection
// reset, not an orderly end.
void Reset(int fd) {
  linger hard{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
  close(fd);
}

// One side's bytes on their way to the other side.
struct Direction {
  std::string pending;  // read from the source, not yet written
  bool source_closed = false;
};

// A client connection and its upstream connection to the target.
struct Pair {
  int client = -1;
  int upstream = -1;
  Direction to_upstream;
  Direction to_client;
  bool connected = false;  // the non-blocking connect finished
  bool dead = false;
};

// Reads what `from` has into `d` (while little is pending); false when the
// connection failed.
bool ReadInto(int from, Direction& d) {
  if (d.source_closed || d.pending.size() >= kBufferBytes) return true;
  char buffer[64 * 1024];
  const ssize_t n = read(from, buffer, sizeof(buffer));
  if (n > 0) {
    d.pending.append(buffer, static_cast<size_t>(n));
  } else if (n == 0) {
    d.source_closed = true;
  } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    return false;
  }
  return true;
}

// Writes what `d` holds to `to`; false when the connection failed.
bool WriteFrom(Direction& d, int to) {
  if (d.pending.empty()) return true;
  const ssize_t n = send(to, d.pending.data(), d.pending.size(), MSG_NOSIGNAL);
  if (n > 0) {
    d.pending.erase(0, static_cast<size_t>(n));
  } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
             errno != EINTR) {
    return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TcpProxy>> TcpProxy::Start(int listen_port,
                                                          int target_port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  }
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  const sockaddr_in address = Loopback(listen_port);
  if (bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) !=
          0 ||
      listen(fd, 128) != 0) {
    const std::string error = std::strerror(errno);
    close(fd);
    return absl::UnavailableError(absl::StrCat(
        "proxy cannot listen on 127.0.0.1:", listen_port, ": ", error));
  }
  SetNonBlocking(fd);
  std::unique_ptr<TcpProxy> proxy(new TcpProxy(fd, target_port));
  proxy->thread_ = std::thread([raw = proxy.get()] { raw->Run(); });
  return proxy;
}

TcpProxy::~TcpProxy() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  close(listener_);
}

void TcpProxy::Run() {
  std::list<Pair> pairs;
  std::vector<pollfd> fds;
  std::vector<Pair*> owners;  // fds[i]'s pair; nullptr for the listener
  while (!stop_) {
    const bool reachable = reachable_;
    fds.clear();
    owners.clear();
    fds.push_back({listener_, POLLIN, 0});
    owners.push_back(nullptr);
    for (Pair& p : pairs) {
      if (!reachable) p.dead = true;
      if (p.dead) continue;
      short client_events = 0;
      short upstream_events = 0;
      if (!p.connected) {
        upstream_events = POLLOUT;
      } else {
        if (p.to_upstream.pending.size() < kBufferBytes &&
            !p.to_upstream.source_closed) {
          client_events |= POLLIN;
        }
        if (p.to_client.pending.size() < kBufferBytes &&
            !p.to_client.source_closed) {
          upstream_events |= POLLIN;
        }
        if (!p.to_client.pending.empty()) client_events |= POLLOUT;
        if (!p.to_upstream.pending.empty()) upstream_events |= POLLOUT;
      }
      fds.push_back({p.client, client_events, 0});
      owners.push_back(&p);
      fds.push_back({p.upstream, upstream_events, 0});
      owners.push_back(&p);
    }
    const int ready = poll(fds.data(), fds.size(), kPollMs);
    if (ready < 0 && errno != EINTR) break;

    for (size_t i = 1; ready > 0 && i < fds.size(); ++i) {
      Pair& p = *owners[i];
      if (p.dead || fds[i].revents == 0) continue;
      const bool is_client = fds[i].fd == p.client;
      if (!p.connected) {
        if (is_client) continue;
        int error = 0;
        socklen_t size = sizeof(error);
        getsockopt(p.upstream, SOL_SOCKET, SO_ERROR, &error, &size);
        if (error != 0) {
          p.dead = true;
          continue;
        }
        p.connected = true;
        ++forwarded_;
        continue;
      }
      if (fds[i].revents & (POLLERR | POLLNVAL)) {
        p.dead = true;
        continue;
      }
      Direction& in = is_client ? p.to_upstream : p.to_client;
      Direction& out = is_client ? p.to_client : p.to_upstream;
      if ((fds[i].revents & (POLLIN | POLLHUP)) && !ReadInto(fds[i].fd, in)) {
        p.dead = true;
      }
      if ((fds[i].revents & POLLOUT) && !WriteFrom(out, fds[i].fd)) {
        p.dead = true;
      }
    }
    // A side that closed and whose bytes are all delivered ends the pair.
    for (Pair& p : pairs) {
      if ((p.to_upstream.source_closed && p.to_upstream.pending.empty()) ||
          (p.to_client.source_closed && p.to_client.pending.empty())) {
        p.dead = true;
      }
    }
    for (auto it = pairs.begin(); it != pairs.end();) {
      if (!it->dead) {
        ++it;
        continue;
      }
      Reset(it->client);
      Reset(it->upstream);
      if (!reachable) ++reset_;
      it = pairs.erase(it);
    }

    if (fds[0].revents & POLLIN) {
      while (true) {
        const int client = accept4(listener_, nullptr, nullptr,
                                   SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (client < 0) break;
        if (!reachable_) {
          Reset(client);
          ++reset_;
          continue;
        }
        const int upstream =
            socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        const sockaddr_in target = Loopback(target_port_);
        if (upstream < 0 ||
            (connect(upstream, reinterpret_cast<const sockaddr*>(&target),
                     sizeof(target)) != 0 &&
             errno != EINPROGRESS)) {
          if (upstream >= 0) close(upstream);
          Reset(client);
          continue;
        }
        Pair& p = pairs.emplace_back();
        p.client = client;
        p.upstream = upstream;
      }
    }
  }
  for (Pair& p : pairs) {
    Reset(p.client);
    Reset(p.upstream);
  }
}

}  // namespace tributary::testing
