// Owning handles for librdkafka's C objects, so that every exit path releases
// them. Used by the engine's Kafka wrappers and by tests; not thread-safe
// beyond what librdkafka itself guarantees for the wrapped object.
#pragma once

#include <librdkafka/rdkafka.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tributary::internal {

struct KafkaHandleDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
  void operator()(rd_kafka_conf_t* conf) const { rd_kafka_conf_destroy(conf); }
  void operator()(rd_kafka_topic_partition_list_t* list) const {
    rd_kafka_topic_partition_list_destroy(list);
  }
  void operator()(rd_kafka_message_t* message) const {
    rd_kafka_message_destroy(message);
  }
  void operator()(rd_kafka_consumer_group_metadata_t* metadata) const {
    rd_kafka_consumer_group_metadata_destroy(metadata);
  }
  void operator()(rd_kafka_error_t* error) const { rd_kafka_error_destroy(error); }
  void operator()(rd_kafka_headers_t* headers) const {
    rd_kafka_headers_destroy(headers);
  }
  void operator()(rd_kafka_queue_t* queue) const { rd_kafka_queue_destroy(queue); }
};

using KafkaHandle = std::unique_ptr<rd_kafka_t, KafkaHandleDeleter>;
using KafkaConf = std::unique_ptr<rd_kafka_conf_t, KafkaHandleDeleter>;
using PartitionList =
    std::unique_ptr<rd_kafka_topic_partition_list_t, KafkaHandleDeleter>;
using KafkaMessage = std::unique_ptr<rd_kafka_message_t, KafkaHandleDeleter>;
using GroupMetadata =
    std::unique_ptr<rd_kafka_consumer_group_metadata_t, KafkaHandleDeleter>;
using KafkaError = std::unique_ptr<rd_kafka_error_t, KafkaHandleDeleter>;
using KafkaQueue = std::unique_ptr<rd_kafka_queue_t, KafkaHandleDeleter>;

// Gets a client's statistics JSON (statistics.interval.ms), on the thread
// that polls the client; the view lasts for the call only.
using StatsCallback = std::function<void(std::string_view json)>;

// librdkafka's stats_cb for a client whose opaque is an object with a member
// `StatsCallback on_stats_` (RdKafkaConsumer, RdKafkaProducer).
template <typename Client>
int ForwardStats(rd_kafka_t* /*rk*/, char* json, size_t json_len, void* opaque) {
  auto* client = static_cast<Client*>(opaque);
  if (client != nullptr && client->on_stats_) client->on_stats_(std::string_view(json, json_len));
  return 0;  // librdkafka frees `json`
}

// A client of `type` configured with `settings` (applied in order on top of
// `base`, whose ownership is taken; null: a fresh configuration).
// InvalidArgument names the setting librdkafka refused.
absl::StatusOr<KafkaHandle> NewKafkaClient(
    rd_kafka_type_t type, const std::map<std::string, std::string>& settings,
    rd_kafka_conf_t* base = nullptr);

// The error a client reports (error_cb, or an error message on a consumer's
// queue) for a connection that no retry will make: SASL authentication
// failed (UNAUTHENTICATED, "authentication failed: ...") or the TLS
// handshake did (FAILED_PRECONDITION, "TLS handshake failed: ..."), each
// naming the settings to check. OK for any other error, which librdkafka
// retries itself.
absl::Status ConnectionError(int err, std::string_view reason);

// Collects the first ConnectionError of a client: install it with
// Install(conf) (it takes the conf's opaque) before the client is made. It
// must outlive the client; the callback runs inside rd_kafka_poll on the
// polling thread.
class ConnectionErrors {
 public:
  void Install(rd_kafka_conf_t* conf);
  const absl::Status& first() const { return first_; }

 private:
  static void Callback(rd_kafka_t* rk, int err, const char* reason, void* opaque);
  absl::Status first_;
};

// Returns once `client` (made with `errors` installed) has had an answer to
// a metadata request: OK; the first connection error `errors` collects
// meanwhile (served by polling the client); or DeadlineExceeded after
// `timeout`, naming `servers`.
absl::Status AwaitBroker(rd_kafka_t* client, const ConnectionErrors& errors,
                         std::string_view servers, absl::Duration timeout);

// Maps a librdkafka error code to an absl::Status, prefixing `context`.
absl::Status KafkaStatus(rd_kafka_resp_err_t err, std::string_view context);
// Consumes `error` (may be null: OK) into an absl::Status.
absl::Status KafkaStatus(rd_kafka_error_t* error, std::string_view context);

// The low and high watermarks of a partition (for a read_committed client the
// high one is the last stable offset). Retries the errors a freshly created or
// moving partition gives (no leader yet, unknown topic, timeout) until `timeout`.
absl::StatusOr<std::pair<int64_t, int64_t>> QueryWatermarks(rd_kafka_t* client,
                                                            const std::string& topic,
                                                            int32_t partition,
                                                            absl::Duration timeout);

}  // namespace tributary::internal
