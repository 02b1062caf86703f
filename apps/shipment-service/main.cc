// shipment-service: the receiving side of the outbox example. Consumes the
// order events the outbox router writes (`outbox.event.order`) and processes
// each event id once, however often Kafka delivers it: the ids already
// processed are kept in a RocksDB store, and offsets are committed only after
// the id is written (WAL on), so a crash between the two re-delivers the
// event and the store drops it.
//
//   shipment-service [--bootstrap H:P] [--topic T] [--group G] [--state-dir D]
//                    [--max-idle-ms N] [--processed-log FILE] [--log-level L]
//
// Runs until SIGINT/SIGTERM (or --max-idle-ms without a record), then prints
// "processed N, duplicates skipped M" and exits 0. Exit 1: bad arguments or
// the store cannot be opened; 2: a fatal Kafka error.
// Single-threaded: librdkafka's callbacks run inside its poll calls.
#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"
#include "state/rocksdb_store.h"

ABSL_FLAG(std::string, bootstrap, "127.0.0.1:19092", "Kafka bootstrap servers");
ABSL_FLAG(std::string, topic, "outbox.event.order",
          "topic of the order events");
ABSL_FLAG(std::string, group, "shipment-service", "consumer group id");
ABSL_FLAG(std::string, state_dir, "/tmp/shipment-service",
          "directory of the processed-event-id store");
ABSL_FLAG(
    int64_t, max_idle_ms, 0,
    "exit after this many ms without a record (0: run until SIGINT/SIGTERM)");
ABSL_FLAG(std::string, processed_log, "",
          "append each newly processed event id to this file, one per line");
ABSL_FLAG(std::string, log_level, "info", "trace, debug, info, warn, error");

namespace shipment {
namespace {

using Clock = std::chrono::steady_clock;

std::atomic<bool> stop_requested{false};

struct KafkaDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
  void operator()(rd_kafka_message_t* m) const { rd_kafka_message_destroy(m); }
  void operator()(rd_kafka_topic_partition_list_t* l) const {
    rd_kafka_topic_partition_list_destroy(l);
  }
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using Consumer = std::unique_ptr<rd_kafka_t, KafkaDeleter>;
using Message = std::unique_ptr<rd_kafka_message_t, KafkaDeleter>;
using PartitionList =
    std::unique_ptr<rd_kafka_topic_partition_list_t, KafkaDeleter>;
using File = std::unique_ptr<std::FILE, KafkaDeleter>;

std::shared_ptr<spdlog::logger> Log() {
  static std::shared_ptr<spdlog::logger> logger =
      spdlog::stderr_color_mt("shipment-service");
  return logger;
}

// What the rebalance callback reports to the poll loop.
struct GroupState {
  bool assigned = false;
  Clock::time_point last_activity = Clock::now();
};

void OnRebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                 rd_kafka_topic_partition_list_t* partitions, void* opaque) {
  auto* state = static_cast<GroupState*>(opaque);
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    Log()->info("assigned {} partition(s)", partitions->cnt);
    rd_kafka_assign(rk, partitions);
    state->assigned = true;
    state->last_activity = Clock::now();
  } else {
    // Offsets are committed per record; make the last ones final before the
    // partitions go to another member.
    rd_kafka_commit(rk, nullptr, /*async=*/0);
    rd_kafka_assign(rk, nullptr);
  }
}

absl::StatusOr<Consumer> MakeConsumer(GroupState& state) {
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  const std::pair<const char*, std::string> settings[] = {
      {"bootstrap.servers", absl::GetFlag(FLAGS_bootstrap)},
      {"group.id", absl::GetFlag(FLAGS_group)},
      {"enable.auto.commit", "false"},
      // Only handled records' offsets are stored, so the commits below never
      // cover a record that was polled but not handled.
      {"enable.auto.offset.store", "false"},
      {"auto.offset.reset", "earliest"},
      // The outbox router writes inside Kafka transactions.
      {"isolation.level", "read_committed"},
  };
  for (const auto& [key, value] : settings) {
    if (rd_kafka_conf_set(conf, key, value.c_str(), errstr, sizeof(errstr)) !=
        RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return absl::InvalidArgumentError(std::string(key) + ": " + errstr);
    }
  }
  rd_kafka_conf_set_opaque(conf, &state);
  rd_kafka_conf_set_rebalance_cb(conf, OnRebalance);
  Consumer consumer(
      rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr)));
  if (!consumer) {
    rd_kafka_conf_destroy(conf);
    return absl::InternalError(std::string("cannot create the consumer: ") +
                               errstr);
  }
  rd_kafka_poll_set_consumer(consumer.get());
  PartitionList topics(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(
      topics.get(), absl::GetFlag(FLAGS_topic).c_str(), RD_KAFKA_PARTITION_UA);
  if (rd_kafka_resp_err_t err =
          rd_kafka_subscribe(consumer.get(), topics.get())) {
    return absl::InternalError(std::string("subscribe: ") +
                               rd_kafka_err2str(err));
  }
  return consumer;
}

// The last value of header `name`, if present and not null.
std::optional<std::string_view> HeaderOf(const rd_kafka_message_t& message,
                                         const char* name) {
  rd_kafka_headers_t* headers = nullptr;
  if (rd_kafka_message_headers(&message, &headers) !=
      RD_KAFKA_RESP_ERR_NO_ERROR) {
    return std::nullopt;
  }
  const void* value = nullptr;
  size_t size = 0;
  if (rd_kafka_header_get_last(headers, name, &value, &size) !=
          RD_KAFKA_RESP_ERR_NO_ERROR ||
      value == nullptr) {
    return std::nullopt;
  }
  return std::string_view(static_cast<const char*>(value), size);
}

class ShipmentService {
 public:
  ShipmentService(std::unique_ptr<tributary::RocksDbStore> processed,
                  File processed_log)
      : processed_(std::move(processed)),
        processed_log_(std::move(processed_log)) {}

  // Handles one event. REQUIRES: `message` carries no error.
  absl::Status Handle(const rd_kafka_message_t& message) {
    const std::string where = std::string(rd_kafka_topic_name(message.rkt)) +
                              "[" + std::to_string(message.partition) + "]@" +
                              std::to_string(message.offset);
    std::optional<std::string_view> id = HeaderOf(message, "id");
    if (!id || id->empty()) {
      ++without_id_;
      Log()->warn("record {} has no 'id' header: skipped", where);
      return absl::OkStatus();
    }
    absl::StatusOr<std::optional<std::string>> seen = processed_->Get(*id);
    if (!seen.ok()) return seen.status();
    if (*seen) {
      ++duplicates_;
      Log()->debug("event {} at {} already processed: skipped", *id, where);
      return absl::OkStatus();
    }
    // Record the id first (WAL on: it survives a crash of this process), then
    // do the work. A real service writes its own effect in the same batch as
    // the id; here the effect is the log line and the processed-log entry.
    if (absl::Status s = processed_->Put(*id, "1"); !s.ok()) return s;
    const std::string_view type = HeaderOf(message, "type").value_or("?");
    const std::string_view aggregate =
        message.key ? std::string_view(static_cast<const char*>(message.key),
                                       message.key_len)
                    : std::string_view("(null)");
    Log()->info("Processing '{}' event {} for aggregate {}", type, *id,
                aggregate);
    if (processed_log_) {
      std::fprintf(processed_log_.get(), "%.*s\n", static_cast<int>(id->size()),
                   id->data());
      std::fflush(processed_log_.get());  // a killed process loses no line
    }
    ++processed_count_;
    return absl::OkStatus();
  }

  int64_t processed() const { return processed_count_; }
  int64_t duplicates() const { return duplicates_; }
  int64_t without_id() const { return without_id_; }

 private:
  std::unique_ptr<tributary::RocksDbStore> processed_;
  File processed_log_;
  int64_t processed_count_ = 0;
  int64_t duplicates_ = 0;
  int64_t without_id_ = 0;
};

int Run() {
  const std::string state_dir = absl::GetFlag(FLAGS_state_dir);
  auto resources = tributary::RocksDbResources::Create(16 << 20, 4 << 20);
  if (!resources.ok()) {
    Log()->error("{}", resources.status().ToString());
    return 1;
  }
  // WAL on (the default): a Put is in the log before the offset is committed.
  auto store = tributary::RocksDbStore::Open(
      "processed-event-ids", state_dir + "/processed-event-ids", **resources);
  if (!store.ok()) {
    Log()->error("{}", store.status().ToString());
    return 1;
  }
  File processed_log;
  if (const std::string path = absl::GetFlag(FLAGS_processed_log);
      !path.empty()) {
    processed_log.reset(std::fopen(path.c_str(), "a"));
    if (!processed_log) {
      Log()->error("cannot open --processed-log {}", path);
      return 1;
    }
  }
  ShipmentService service(*std::move(store), std::move(processed_log));

  GroupState group;
  absl::StatusOr<Consumer> consumer = MakeConsumer(group);
  if (!consumer.ok()) {
    Log()->error("{}", consumer.status().ToString());
    return 1;
  }
  rd_kafka_t* rk = consumer->get();
  Log()->info("consuming {} from {} as group {}; state in {}",
              absl::GetFlag(FLAGS_topic), absl::GetFlag(FLAGS_bootstrap),
              absl::GetFlag(FLAGS_group), state_dir);

  const int64_t max_idle_ms = absl::GetFlag(FLAGS_max_idle_ms);
  const Clock::time_point start = Clock::now();
  int exit_code = 0;
  while (!stop_requested) {
    Message message(rd_kafka_consumer_poll(rk, 100));
    if (message && message->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      group.last_activity = Clock::now();
      if (absl::Status s = service.Handle(*message); !s.ok()) {
        // Not committed: the event comes back after a restart.
        Log()->error("event at offset {}: {}", message->offset, s.ToString());
        exit_code = 2;
        break;
      }
      // After the id is written: a crash before this commit re-delivers.
      rd_kafka_offset_store(message->rkt, message->partition, message->offset);
      rd_kafka_commit_message(rk, message.get(), /*async=*/1);
    } else if (message) {
      char reason[512];
      if (rd_kafka_fatal_error(rk, reason, sizeof(reason)) !=
          RD_KAFKA_RESP_ERR_NO_ERROR) {
        Log()->error("fatal Kafka error: {}", reason);
        exit_code = 2;
        break;
      }
      if (message->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        Log()->warn("consumer: {}", rd_kafka_message_errstr(message.get()));
      }
    }
    if (max_idle_ms > 0) {
      // Before the group has assigned partitions, allow the join some time.
      const auto since = group.assigned ? group.last_activity : start;
      const int64_t limit =
          group.assigned ? max_idle_ms : std::max<int64_t>(max_idle_ms, 30000);
      const auto idle = std::chrono::duration_cast<std::chrono::milliseconds>(
                            Clock::now() - since)
                            .count();
      if (idle > limit) {
        Log()->info("no record for {} ms: stopping", idle);
        break;
      }
    }
  }
  rd_kafka_resp_err_t err = rd_kafka_commit(rk, nullptr, /*async=*/0);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR &&
      err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
    Log()->warn("final commit: {}", rd_kafka_err2str(err));
  }
  rd_kafka_consumer_close(rk);
  consumer->reset();
  if (service.without_id() > 0) {
    Log()->warn("{} record(s) without an 'id' header skipped",
                service.without_id());
  }
  std::printf("processed %lld, duplicates skipped %lld\n",
              static_cast<long long>(service.processed()),
              static_cast<long long>(service.duplicates()));
  std::fflush(stdout);
  return exit_code;
}

}  // namespace
}  // namespace shipment

int main(int argc, char** argv) {
  // Abseil's flag names use '_'; accept the dashed spellings (--state-dir).
  std::vector<std::string> args(argv, argv + argc);
  std::vector<char*> argv_fixed;
  for (std::string& arg : args) {
    if (arg.size() > 2 && arg.compare(0, 2, "--") == 0) {
      std::replace(arg.begin() + 2,
                   arg.begin() + std::min(arg.find('='), arg.size()), '-', '_');
    }
    argv_fixed.push_back(arg.data());
  }
  absl::ParseCommandLine(argc, argv_fixed.data());
  const std::string level = absl::GetFlag(FLAGS_log_level);
  const spdlog::level::level_enum parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off") {
    std::fprintf(
        stderr,
        "shipment-service: --log-level '%s': expected trace, debug, info, "
        "warn or error\n",
        level.c_str());
    return 1;
  }
  shipment::Log()->set_level(parsed);
  std::signal(SIGINT, [](int) { shipment::stop_requested = true; });
  std::signal(SIGTERM, [](int) { shipment::stop_requested = true; });
  return shipment::Run();
}
