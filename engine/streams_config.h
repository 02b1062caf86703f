// StreamsConfig: the engine's configuration under Kafka Streams' key names,
// loaded from a Java-properties file or a map and validated when loaded
// (librdkafka pass-through keys included), so a bad key fails before any
// client starts.
// Thread-safety: const methods may be called from any thread; Set() must not
// run concurrently with anything else (call it while setting up).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tributary {

// An application's own keys, accepted next to the engine's, with defaults:
//   StreamsConfig::FromFile(
//       path, AppKeys{{"orders.topic", "dbserver1.inventory.purchaseorder"},
//                     {"orders.window.ms", "60000"}});
// Their values are not validated here; read them with GetString / GetInt /
// GetBool, which fail with the key named when a value has the wrong type.
using AppKeys = std::map<std::string, std::string>;

// What happens to a record whose deserialization or processing fails.
enum class ErrorPolicy {
  kFail,      // the task fails (Kafka Streams' LogAndFail handler)
  kContinue,  // the record goes to the dead-letter topic and processing goes on
};

class StreamsConfig {
 public:
  // Loads a Java-properties file: `key=value`, `key: value` or `key value`;
  // `#` / `!` comment lines; a trailing backslash continues a line; keys and
  // values are trimmed. Errors name the key and `path:line`.
  static absl::StatusOr<StreamsConfig> FromFile(const std::string& path,
                                                const AppKeys& app_keys = {});
  // As FromFile, on properties text; `source_name` stands for the file name
  // in error messages.
  static absl::StatusOr<StreamsConfig> FromProperties(
      std::string_view text, std::string_view source_name,
      const AppKeys& app_keys = {});
  static absl::StatusOr<StreamsConfig> FromMap(
      const std::map<std::string, std::string>& values,
      const AppKeys& app_keys = {});

  // Sets one key (engine, alias, application or pass-through key) with the
  // same validation as a file line. On error the config is unchanged.
  absl::Status Set(std::string_view key, std::string_view value);

  // --- Engine settings (effective values: explicit, else default). ---
  std::string application_id() const;
  // Empty or "mock://[N]" when the embedded mock cluster is used.
  std::string bootstrap_servers() const;
  bool uses_mock_cluster() const;
  // Brokers of the mock cluster: N in "mock://N", else 1.
  int mock_cluster_brokers() const;
  // processing.guarantee == exactly_once_v2.
  bool exactly_once() const;
  int num_stream_threads() const;
  // Default 100 ms under exactly_once_v2, 30 s under at_least_once.
  absl::Duration commit_interval() const;
  std::string state_dir() const;
  // Record cache (CachingStore in front of every store) budget of the whole
  // instance, split among stream threads and then among each thread's
  // stores; 0 disables caching. Kafka Streams' cache.max.bytes (aliases
  // cache.max.bytes.buffering, statestore.cache.max.bytes). Default 10 MiB.
  int64_t cache_max_bytes() const;
  // RocksDB block cache shared by the instance's stores (memtables are
  // charged to it). rocksdb.block.cache.bytes, default 64 MiB.
  int64_t rocksdb_block_cache_bytes() const;
  // Replication factor of internal topics. Default 1 (Kafka Streams' is -1,
  // the broker default); -1 is accepted and means the broker default.
  int replication_factor() const;
  // Partitions of the dead-letter topic when the application creates it.
  int32_t dead_letter_topic_partitions() const;
  ErrorPolicy processing_error_policy() const;
  // dead.letter.topic, or "<application.id>-dlq" when not set.
  std::string dead_letter_topic() const;
  absl::Duration poll_interval() const;
  int max_poll_records() const;
  absl::Duration state_cleanup_delay() const;
  // Warm copies of each task with a persistent logged store kept by other
  // instances (see engine/internal/standby_tasks.h). Default 0.
  int num_standby_replicas() const;
  // How often (at most) a stream thread deletes, after a commit, the records
  // of its repartition partitions below their committed offsets. Kafka
  // Streams' repartition.purge.interval.ms, default 30 s.
  absl::Duration repartition_purge_interval() const;
  // "INFO" or "DEBUG".
  std::string metrics_recording_level() const;
  // Default false under exactly_once_v2 (an unclean shutdown rebuilds the
  // store from its changelog anyway), true under at_least_once.
  bool rocksdb_wal_enabled() const;
  // Passed to the transactional producer as transaction.timeout.ms.
  absl::Duration transaction_timeout() const;
  // An spdlog level name: trace, debug, info, warn, error, critical, off.
  std::string log_level() const;
  // metrics.port: where KafkaStreams serves /metrics, /health and /ready;
  // nullopt (the default, -1) when it serves nothing, 0 for any free port.
  std::optional<int> metrics_port() const;
  // metrics.host: the address the endpoint binds, default 127.0.0.1.
  std::string metrics_host() const;
  // query.port: where KafkaStreams serves interactive queries (GET
  // /<query>/<id>); nullopt (the default, -1) when it serves none, 0 for any
  // free port.
  std::optional<int> query_port() const;
  // query.host: the address the query endpoint binds, default 127.0.0.1.
  std::string query_host() const;
  // application.server (host:port): what the other instances of the
  // application are told to reach this one's query endpoint at; empty (the
  // default): query.host and the bound port. Needs query.port.
  std::string application_server() const;
  // query.token: when set, every query needs "Authorization: Bearer
  // <token>". Needs query.port. Masked in ToString.
  std::string query_token() const;

  // --- Generic access, by key: engine keys (effective value; aliases
  // accepted), application keys (value or default), pass-through keys. ---
  // NotFound for a key that is neither set nor known.
  absl::StatusOr<std::string> GetString(std::string_view key) const;
  // InvalidArgument, naming the key, when the value is not of the type.
  absl::StatusOr<int64_t> GetInt(std::string_view key) const;
  absl::StatusOr<bool> GetBool(std::string_view key) const;

  // True when `key` (canonical engine name, application key or pass-through
  // key with its prefix) was set explicitly rather than left at its default.
  bool IsSet(std::string_view key) const {
    return values_.count(key) > 0 || pass_through_.count(key) > 0;
  }

  // librdkafka settings passed through, with their prefix removed, on top of
  // the keys every client gets (`security.protocol`, `sasl.*`, `ssl.*`, set
  // without a prefix). Consumer: `consumer.*` overridden by `main.consumer.*`.
  std::map<std::string, std::string> ConsumerSettings() const;
  // Restore consumer: `consumer.*` overridden by `restore.consumer.*`.
  std::map<std::string, std::string> RestoreConsumerSettings() const;
  std::map<std::string, std::string> ProducerSettings() const;
  std::map<std::string, std::string> AdminSettings() const;

  // Every effective setting, one per line, for the startup log; values of
  // keys containing "password", "secret", "sasl", "ssl.key", "keystore" or
  // "token" are masked.
  std::string ToString() const;

 private:
  struct Entry {
    std::string value;  // normalized
    std::string where;  // "file:line", or empty when set from a map or Set()
  };

  explicit StreamsConfig(AppKeys app_keys) : app_keys_(std::move(app_keys)) {}

  static absl::StatusOr<StreamsConfig> Create(const AppKeys& app_keys);
  // Validates and stores one setting; `where` goes into error messages.
  absl::Status SetAt(std::string_view key, std::string_view value,
                     std::string_view where);
  // Checks required keys and cross-key constraints; `source` names the input.
  absl::Status Finish(std::string_view source) const;
  // Effective value of an engine key under its canonical name.
  std::string Effective(std::string_view key) const;
  std::map<std::string, std::string> PassThrough(
      std::string_view base, std::string_view specific) const;

  AppKeys app_keys_;
  // Engine and application keys set explicitly, by canonical name.
  std::map<std::string, Entry, std::less<>> values_;
  // librdkafka pass-through keys, with their prefix.
  std::map<std::string, Entry, std::less<>> pass_through_;
};

}  // namespace tributary
