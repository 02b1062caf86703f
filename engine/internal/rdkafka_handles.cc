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
