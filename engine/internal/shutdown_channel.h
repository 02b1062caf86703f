// ShutdownChannel: how an instance asks every instance of its application.id
// to stop (StreamThreadErrorResponse::kShutdownApplication). Kafka Streams
// sends the request through the group protocol (an error code in the
// assignment); librdkafka 2.0.2 has no hook into it, so Tributary uses a
// record on the one-partition topic `<application.id>-control` that each
// instance creates if missing at Start and watches from its end as of Start:
// a request written before an instance started is not for it.
// Thread-safety: Request from any thread; the callback runs on the channel's
// own watcher thread; Open and the destructor from the owner's thread.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/internal/clients.h"

namespace tributary::internal {

// The control topic of an application.
std::string ControlTopic(std::string_view application_id);

class ShutdownChannel {
 public:
  // Gets (sender's process id, reason) of each request read, in order.
  using OnRequest = std::function<void(const std::string& from, const std::string& reason)>;

  // Watches partition 0 of `topic` (REQUIRES: it exists) from its current
  // end. `consumer_settings` / `producer_settings`: librdkafka settings
  // (bootstrap.servers included; the consumer's group.id only because
  // librdkafka needs one for a consumer queue: the channel assigns, never
  // joins that group nor commits to it).
  static absl::StatusOr<std::unique_ptr<ShutdownChannel>> Open(
      const std::string& topic, std::string process_id,
      const std::map<std::string, std::string>& consumer_settings,
      const std::map<std::string, std::string>& producer_settings, OnRequest on_request);
  // Stops the watcher (at most one poll, 100 ms, later).
  ~ShutdownChannel();
  ShutdownChannel(const ShutdownChannel&) = delete;
  ShutdownChannel& operator=(const ShutdownChannel&) = delete;

  // Writes a request (key: this instance's process id, value: `reason`) and
  // waits until the broker has it (bounded by the producer's timeouts).
  absl::Status Request(std::string_view reason);

 private:
  ShutdownChannel() = default;
  void Watch();

  std::string topic_;
  std::string process_id_;
  OnRequest on_request_;
  std::unique_ptr<Consumer> consumer_;  // used by the watcher thread only
  std::mutex producer_mu_;
  std::unique_ptr<Producer> producer_;  // guarded by producer_mu_
  std::atomic<bool> stop_{false};
  std::thread watcher_;
};

}  // namespace tributary::internal
