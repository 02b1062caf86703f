// A TCP proxy on 127.0.0.1 between the engine under test and the broker's
// proxied listener (tests/chaos): forwards each accepted connection to a
// target port, and while unreachable resets every open connection and every
// new one, as a network partition the client sees as refused connections.
// It runs one thread of its own; its methods may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>

#include "absl/status/statusor.h"

namespace tributary::testing {

class TcpProxy {
 public:
  // Listens on 127.0.0.1:`listen_port` and forwards to 127.0.0.1:
  // `target_port` (which need not accept yet: a connection it refuses is
  // reset on the client's side).
  static absl::StatusOr<std::unique_ptr<TcpProxy>> Start(int listen_port,
                                                         int target_port);
  // Stops the thread and closes every socket.
  ~TcpProxy();
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  // false: resets every open connection now and each new one until set back
  // to true. Takes effect within the thread's poll interval (50 ms).
  void SetReachable(bool reachable) { reachable_ = reachable; }
  bool reachable() const { return reachable_; }
  // Connections forwarded, and reset because the proxy was unreachable.
  int64_t forwarded() const { return forwarded_; }
  int64_t reset() const { return reset_; }

 private:
  TcpProxy(int listener, int target_port)
      : listener_(listener), target_port_(target_port) {}
  void Run();

  const int listener_;
  const int target_port_;
  std::atomic<bool> reachable_{true};
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> forwarded_{0};
  std::atomic<int64_t> reset_{0};
  std::thread thread_;
};

}  // namespace tributary::testing
