#include "engine/internal/rdkafka_handles.h"

#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"

namespace tributary::internal {

absl::StatusOr<KafkaHandle> NewKafkaClient(rd_kafka_type_t type,
                                           const std::map<std::string, std::string>& settings,
                                           rd_kafka_conf_t* base) {
  KafkaConf conf(base != nullptr ? base : rd_kafka_conf_new());
  char errstr[512];
  for (const auto& [key, value] : settings) {
    if (rd_kafka_conf_set(conf.get(), key.c_str(), value.c_str(), errstr,
                          sizeof(errstr)) != RD_KAFKA_CONF_OK) {
      return absl::InvalidArgumentError(absl::StrCat("'", key, "': ", errstr));
    }
  }
  KafkaHandle handle(rd_kafka_new(type, conf.get(), errstr, sizeof(errstr)));
  if (!handle) return absl::InternalError(absl::StrCat("rd_kafka_new: ", errstr));
  conf.release();  // owned by the handle now
  return handle;
}

absl::Status ConnectionError(int err, std::string_view reason) {
  switch (err) {
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
      return absl::UnauthenticatedError(absl::StrCat(
          "authentication failed: ", Sv(reason),
          "; check sasl.username, sasl.password and sasl.mechanism (and that the user exists "
          "on the broker for that mechanism)"));
    case RD_KAFKA_RESP_ERR__SSL:
      return absl::FailedPreconditionError(absl::StrCat(
          "TLS handshake failed: ", Sv(reason),
          "; check ssl.ca.location (the CA that signed the broker's certificate) and that "
          "bootstrap.servers names a host the certificate is for"));
    default:
      return absl::OkStatus();
  }
}

void ConnectionErrors::Install(rd_kafka_conf_t* conf) {
  rd_kafka_conf_set_error_cb(conf, &ConnectionErrors::Callback);
  rd_kafka_conf_set_opaque(conf, this);
}

void ConnectionErrors::Callback(rd_kafka_t* /*rk*/, int err, const char* reason, void* opaque) {
  auto* self = static_cast<ConnectionErrors*>(opaque);
  if (self->first_.ok()) self->first_ = ConnectionError(err, reason);
}

absl::Status AwaitBroker(rd_kafka_t* client, const ConnectionErrors& errors,
                         std::string_view servers, absl::Duration timeout) {
  // Short requests, so that an error callback is served soon after it comes.
  constexpr int kRequestTimeoutMs = 500;
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    const rd_kafka_metadata_t* metadata = nullptr;
    rd_kafka_resp_err_t err =
        rd_kafka_metadata(client, /*all_topics=*/0, nullptr, &metadata, kRequestTimeoutMs);
    if (metadata != nullptr) rd_kafka_metadata_destroy(metadata);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return absl::OkStatus();
    rd_kafka_poll(client, 0);  // serves the error callback
    if (!errors.first().ok()) return errors.first();
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "no broker of ", Sv(servers), " answered within ", absl::FormatDuration(timeout),
          " (last: ", rd_kafka_err2str(err), "); check bootstrap.servers and security.protocol"));
    }
    absl::SleepFor(absl::Milliseconds(50));  // back off, should an error come at once
  }
}

absl::Status KafkaStatus(rd_kafka_resp_err_t err, std::string_view context) {
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return absl::OkStatus();
  std::string message =
      absl::StrCat(Sv(context), ": ", rd_kafka_err2name(err), ": ", rd_kafka_err2str(err));
  switch (err) {
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
      return absl::DeadlineExceededError(message);
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
      return absl::UnavailableError(message);
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
      return absl::NotFoundError(message);
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
      return absl::InvalidArgumentError(message);
    case RD_KAFKA_RESP_ERR__STATE:
      // The client's (transaction) state is broken: fatal for that client.
      return absl::FailedPreconditionError(message);
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
      // Larger than the producer's message.max.bytes: see IsRecordTooLarge.
      return absl::OutOfRangeError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::Status KafkaStatus(rd_kafka_error_t* error, std::string_view context) {
  if (error == nullptr) return absl::OkStatus();
  KafkaError owned(error);
  absl::Status status = KafkaStatus(rd_kafka_error_code(error), context);
  std::string detail = rd_kafka_error_string(error);
  if (rd_kafka_error_is_fatal(error)) {
    return absl::FailedPreconditionError(absl::StrCat(Sv(context), ": fatal: ", detail));
  }
  if (rd_kafka_error_txn_requires_abort(error)) {
    return absl::AbortedError(absl::StrCat(Sv(context), ": transaction must abort: ", detail));
  }
  if (rd_kafka_error_is_retriable(error)) {
    return absl::UnavailableError(absl::StrCat(Sv(context), ": retriable: ", detail));
  }
  return absl::Status(status.code(), absl::StrCat(Sv(context), ": ", detail));
}

absl::StatusOr<std::pair<int64_t, int64_t>> QueryWatermarks(rd_kafka_t* client,
                                                            const std::string& topic,
                                                            int32_t partition,
                                                            absl::Duration timeout) {
  constexpr int kRequestTimeoutMs = 30000;
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int64_t low = 0, high = 0;
    rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
        client, topic.c_str(), partition, &low, &high, kRequestTimeoutMs);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return std::make_pair(low, high);
    const bool retriable = err == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION ||
                           err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ||
                           err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                           err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
                           err == RD_KAFKA_RESP_ERR__TIMED_OUT ||
                           err == RD_KAFKA_RESP_ERR__TRANSPORT;
    if (!retriable || absl::Now() > deadline) {
      return KafkaStatus(err, absl::StrCat("end offset of ", topic, "[", partition, "]"));
    }
    absl::SleepFor(absl::Milliseconds(100));  // back off before asking again
  }
}

}  // namespace tributary::internal
