#include "engine/streams_config.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/absl_compat.h"
#include "base/status_macros.h"
#include "engine/internal/rdkafka_handles.h"

namespace tributary {
namespace {

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

constexpr std::string_view kApplicationId = "application.id";
constexpr std::string_view kBootstrapServers = "bootstrap.servers";
constexpr std::string_view kProcessingGuarantee = "processing.guarantee";
constexpr std::string_view kNumStreamThreads = "num.stream.threads";
constexpr std::string_view kCommitIntervalMs = "commit.interval.ms";
constexpr std::string_view kStateDir = "state.dir";
constexpr std::string_view kCacheMaxBytes = "cache.max.bytes";
constexpr std::string_view kRocksDbBlockCacheBytes = "rocksdb.block.cache.bytes";
constexpr std::string_view kReplicationFactor = "replication.factor";
constexpr std::string_view kNumStandbyReplicas = "num.standby.replicas";
constexpr std::string_view kProcessingErrorPolicy = "processing.error.policy";
constexpr std::string_view kDeadLetterTopic = "dead.letter.topic";
constexpr std::string_view kDeadLetterTopicPartitions = "dead.letter.topic.partitions";
constexpr std::string_view kPollMs = "poll.ms";
constexpr std::string_view kMaxPollRecords = "max.poll.records";
constexpr std::string_view kStateCleanupDelayMs = "state.cleanup.delay.ms";
constexpr std::string_view kRepartitionPurgeIntervalMs = "repartition.purge.interval.ms";
constexpr std::string_view kMetricsRecordingLevel = "metrics.recording.level";
constexpr std::string_view kRocksDbWalEnabled = "rocksdb.wal.enabled";
constexpr std::string_view kTransactionTimeoutMs = "transaction.timeout.ms";
constexpr std::string_view kLogLevel = "log.level";
constexpr std::string_view kMetricsPort = "metrics.port";
constexpr std::string_view kMetricsHost = "metrics.host";
constexpr std::string_view kQueryPort = "query.port";
constexpr std::string_view kQueryHost = "query.host";
constexpr std::string_view kApplicationServer = "application.server";
constexpr std::string_view kQueryToken = "query.token";

constexpr std::string_view kExactlyOnceV2 = "exactly_once_v2";
constexpr std::string_view kAtLeastOnce = "at_least_once";
constexpr std::string_view kMockScheme = "mock://";
constexpr std::string_view kMask = "********";

// ---------------------------------------------------------------------------
// Value checks. Each takes a trimmed value and returns it normalized, or an
// InvalidArgument whose message is the reason alone; SetAt() adds the key and
// the location.

bool IsNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' ||
         c == '_' || c == '-';
}

absl::StatusOr<std::string> CheckApplicationId(std::string_view value) {
  if (value.empty() || !std::all_of(value.begin(), value.end(), IsNameChar)) {
    return absl::InvalidArgumentError(
        "expected a non-empty name of letters, digits, '.', '_' and '-' (it "
        "prefixes the consumer group and internal topic names)");
  }
  return std::string(value);
}

absl::StatusOr<std::string> CheckBootstrapServers(std::string_view value) {
  if (absl::StartsWith(Sv(value), Sv(kMockScheme))) {
    std::string_view brokers = value.substr(kMockScheme.size());
    int n = 0;
    if (!brokers.empty() &&
        (!absl::SimpleAtoi(Sv(brokers), &n) || n < 1 || n > 16)) {
      return absl::InvalidArgumentError(
          "expected 'mock://' or 'mock://N' with N brokers in [1, 16]");
    }
    return std::string(value);
  }
  if (value.empty()) return std::string();
  for (absl::string_view server : absl::StrSplit(Sv(value), ',')) {
    server = absl::StripAsciiWhitespace(server);
    if (server.empty() || std::any_of(server.begin(), server.end(), [](char c) {
          return absl::ascii_isspace(static_cast<unsigned char>(c));
        })) {
      return absl::InvalidArgumentError(
          "expected a comma-separated list of host:port, empty or 'mock://' "
          "for the embedded mock cluster");
    }
  }
  return std::string(value);
}

absl::StatusOr<std::string> CheckGuarantee(std::string_view value) {
  std::string lower = absl::AsciiStrToLower(Sv(value));
  if (lower == kExactlyOnceV2 || lower == kAtLeastOnce) return lower;
  if (lower == "exactly_once" || lower == "exactly_once_beta") {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", lower,
        "' (exactly-once v1) is not supported; use 'exactly_once_v2'"));
  }
  return absl::InvalidArgumentError(
      "expected 'exactly_once_v2' or 'at_least_once'");
}

absl::StatusOr<std::string> CheckNonEmpty(std::string_view value) {
  if (value.empty())
    return absl::InvalidArgumentError("expected a non-empty value");
  return std::string(value);
}

absl::StatusOr<std::string> CheckReplicationFactor(std::string_view value) {
  if (value == "0") {
    return absl::InvalidArgumentError(
        "expected -1 (the broker default) or at least 1");
  }
  return std::string(value);
}

// Accepts our names and Kafka Streams' handler class names.
absl::StatusOr<std::string> CheckErrorPolicy(std::string_view value) {
  std::string lower = absl::AsciiStrToLower(Sv(value));
  if (lower == "fail" || absl::StrContains(Sv(value), "LogAndFail"))
    return std::string("fail");
  if (lower == "continue" || absl::StrContains(Sv(value), "LogAndContinue")) {
    return std::string("continue");
  }
  return absl::InvalidArgumentError(
      "expected 'fail' or 'continue' (or Kafka Streams' LogAndFail / "
      "LogAndContinue "
      "exception handler class)");
}

absl::StatusOr<std::string> CheckTopicName(std::string_view value) {
  if (value.size() > 249 || value == "." || value == ".." ||
      !std::all_of(value.begin(), value.end(), IsNameChar)) {
    return absl::InvalidArgumentError(
        "expected a topic name (at most 249 letters, digits, '.', '_' and "
        "'-'), or empty for '<application.id>-dlq'");
  }
  return std::string(value);
}

absl::StatusOr<std::string> CheckRecordingLevel(std::string_view value) {
  std::string upper = absl::AsciiStrToUpper(Sv(value));
  if (upper == "INFO") return upper;
  if (upper == "DEBUG" || upper == "TRACE") {
    return absl::InvalidArgumentError(
        "'INFO' is the only level: every metric Tributary has is recorded at INFO (there are "
        "no DEBUG or TRACE metrics to turn on)");
  }
  return absl::InvalidArgumentError("expected 'INFO'");
}

// A host name or an IP address to bind, without port or scheme.
absl::StatusOr<std::string> CheckBindHost(std::string_view value) {
  if (value.empty() || std::any_of(value.begin(), value.end(), [](char c) {
        return absl::ascii_isspace(static_cast<unsigned char>(c)) || c == '/' || c == ',';
      })) {
    return absl::InvalidArgumentError(
        "expected an address to bind (e.g. 127.0.0.1, 0.0.0.0 for every interface), without "
        "port or scheme");
  }
  return std::string(value);
}

// Kafka Streams' application.server: host:port, the port in [1, 65535].
absl::StatusOr<std::string> CheckApplicationServer(std::string_view value) {
  const size_t colon = value.rfind(':');
  int port = 0;
  if (colon == std::string_view::npos || colon == 0 ||
      !absl::SimpleAtoi(Sv(value.substr(colon + 1)), &port) || port < 1 || port > 65535 ||
      std::any_of(value.begin(), value.end(), [](char c) {
        return absl::ascii_isspace(static_cast<unsigned char>(c)) || c == '/' || c == ',' ||
               c == '@';
      })) {
    return absl::InvalidArgumentError(
        "expected host:port (the address other instances reach this one's query endpoint "
        "at), port in [1, 65535], without scheme");
  }
  return std::string(value);
}

absl::StatusOr<std::string> CheckToken(std::string_view value) {
  if (value.empty() || std::any_of(value.begin(), value.end(), [](char c) {
        return !absl::ascii_isgraph(static_cast<unsigned char>(c));
      })) {
    return absl::InvalidArgumentError(
        "expected a non-empty token of printable characters without spaces");
  }
  return std::string(value);
}

absl::StatusOr<std::string> CheckLogLevel(std::string_view value) {
  std::string lower = absl::AsciiStrToLower(Sv(value));
  if (lower == "warning") lower = "warn";
  if (lower == "err") lower = "error";
  for (std::string_view level :
       {"trace", "debug", "info", "warn", "error", "critical", "off"}) {
    if (lower == level) return lower;
  }
  return absl::InvalidArgumentError(
      "expected an spdlog level: trace, debug, info, warn, error, critical "
      "or off");
}

// ---------------------------------------------------------------------------
// The engine's keys.

enum class Kind { kString, kInt, kBool };

struct KeySpec {
  std::string_view name;
  Kind kind;
  // Empty for application.id (required) and for defaults that depend on other
  // keys (see StreamsConfig::Effective).
  std::string_view default_value;
  int64_t min = 0;
  int64_t max = kInt64Max;
  absl::StatusOr<std::string> (*check)(std::string_view) = nullptr;
};

const std::vector<KeySpec>& KeySpecs() {
  static const std::vector<KeySpec> specs = {
      {kApplicationId, Kind::kString, "", 0, 0, CheckApplicationId},
      {kBootstrapServers, Kind::kString, "", 0, 0, CheckBootstrapServers},
      {kProcessingGuarantee, Kind::kString, kExactlyOnceV2, 0, 0,
       CheckGuarantee},
      {kNumStreamThreads, Kind::kInt, "1", 1, 1024},
      {kCommitIntervalMs, Kind::kInt, "", 0, kInt32Max},
      {kStateDir, Kind::kString, "/tmp/tributary-streams", 0, 0, CheckNonEmpty},
      {kCacheMaxBytes, Kind::kInt, "10485760", 0, kInt64Max},
      {kRocksDbBlockCacheBytes, Kind::kInt, "67108864", 1 << 20, kInt64Max},
      {kReplicationFactor, Kind::kInt, "1", -1, 32767, CheckReplicationFactor},
      {kNumStandbyReplicas, Kind::kInt, "0", 0, 1024},
      {kProcessingErrorPolicy, Kind::kString, "fail", 0, 0, CheckErrorPolicy},
      {kDeadLetterTopic, Kind::kString, "", 0, 0, CheckTopicName},
      {kDeadLetterTopicPartitions, Kind::kInt, "1", 1, 100000},
      {kPollMs, Kind::kInt, "100", 0, kInt32Max},
      {kMaxPollRecords, Kind::kInt, "1000", 1, kInt32Max},
      {kStateCleanupDelayMs, Kind::kInt, "600000", 0, kInt64Max},
      {kRepartitionPurgeIntervalMs, Kind::kInt, "30000", 0, kInt64Max},
      {kMetricsRecordingLevel, Kind::kString, "INFO", 0, 0,
       CheckRecordingLevel},
      {kRocksDbWalEnabled, Kind::kBool, ""},
      {kTransactionTimeoutMs, Kind::kInt, "10000", 1000, 900000},
      {kLogLevel, Kind::kString, "info", 0, 0, CheckLogLevel},
      // -1: no metrics endpoint; 0: any free port (KafkaStreams::metrics_port).
      {kMetricsPort, Kind::kInt, "-1", -1, 65535},
      {kMetricsHost, Kind::kString, "127.0.0.1", 0, 0, CheckBindHost},
      // -1: no query endpoint; 0: any free port (KafkaStreams::query_port).
      {kQueryPort, Kind::kInt, "-1", -1, 65535},
      {kQueryHost, Kind::kString, "127.0.0.1", 0, 0, CheckBindHost},
      // Empty: query.host and the bound port.
      {kApplicationServer, Kind::kString, "", 0, 0, CheckApplicationServer},
      {kQueryToken, Kind::kString, "", 0, 0, CheckToken},
  };
  return specs;
}

const KeySpec* FindSpec(std::string_view name) {
  for (const KeySpec& spec : KeySpecs()) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

// Other names accepted for engine keys (Kafka Streams' old and new names).
constexpr std::pair<std::string_view, std::string_view> kAliases[] = {
    {"cache.max.bytes.buffering", kCacheMaxBytes},
    {"statestore.cache.max.bytes", kCacheMaxBytes},
    {"default.deserialization.exception.handler", kProcessingErrorPolicy},
    {"processing.exception.handler", kProcessingErrorPolicy},
};

std::string_view Canonical(std::string_view key) {
  for (const auto& [alias, canonical] : kAliases) {
    if (key == alias) return canonical;
  }
  return key;
}

// ---------------------------------------------------------------------------
// librdkafka pass-through keys.

enum PrefixGroup : unsigned {
  kConsumers = 1,  // consumer., main.consumer., restore.consumer.
  kProducer = 2,
  kAdmin = 4,
  kAll = 7,
};

struct Prefix {
  std::string_view prefix;
  PrefixGroup group;
  // A key of every client (security): the key is the librdkafka property
  // itself, prefix included.
  bool shared = false;
};

// Longest first, so that "main.consumer." is not read as a consumer. key.
constexpr Prefix kPrefixes[] = {
    {"restore.consumer.", kConsumers},
    {"main.consumer.", kConsumers},
    {"consumer.", kConsumers},
    {"producer.", kProducer},
    {"admin.", kAdmin},
    {"security.protocol", kAll, /*shared=*/true},
    {"sasl.", kAll, /*shared=*/true},
    {"ssl.", kAll, /*shared=*/true},
};

// The librdkafka property a pass-through key sets.
std::string PropertyOf(const Prefix& prefix, const std::string& key) {
  return prefix.shared ? key : key.substr(prefix.prefix.size());
}

const Prefix* FindPrefix(std::string_view key) {
  for (const Prefix& p : kPrefixes) {
    if (absl::StartsWith(Sv(key), Sv(p.prefix))) return &p;
  }
  return nullptr;
}

struct OwnedProperty {
  std::string_view property;
  unsigned groups;
  std::string_view reason;
};

// librdkafka properties the engine sets itself.
constexpr OwnedProperty kOwned[] = {
    {"bootstrap.servers", kAll,
     "set the top-level 'bootstrap.servers' instead"},
    {"metadata.broker.list", kAll,
     "set the top-level 'bootstrap.servers' instead"},
    {"group.id", kConsumers, "the consumer group is the application.id"},
    {"enable.auto.commit", kConsumers, "the engine commits offsets itself"},
    {"enable.auto.offset.store", kConsumers,
     "the engine commits offsets itself"},
    {"isolation.level", kConsumers, "it follows processing.guarantee"},
    {"partition.assignment.strategy", kConsumers,
     "co-partitioned topics need the engine's assignment"},
    {"transactional.id", kProducer,
     "the engine derives it from application.id"},
    {"enable.idempotence", kProducer, "it follows processing.guarantee"},
    {"transaction.timeout.ms", kProducer,
     "set the top-level 'transaction.timeout.ms' instead"},
};

// ---------------------------------------------------------------------------
// Helpers.

bool IsSensitive(std::string_view key) {
  std::string lower = absl::AsciiStrToLower(Sv(key));
  return absl::StrContains(lower, "password") || absl::StrContains(lower, "secret") ||
         absl::StrContains(lower, "sasl") || absl::StrContains(lower, "ssl.key") ||
         absl::StrContains(lower, "keystore") || absl::StrContains(lower, "token");
}

// `value` as it may appear in messages and logs.
std::string Shown(std::string_view key, std::string_view value) {
  return std::string(IsSensitive(key) ? kMask : value);
}

std::string At(std::string_view where) {
  return where.empty() ? std::string() : absl::StrCat(" in ", Sv(where));
}

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1,
                         diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

bool IsBlank(char c) { return c == ' ' || c == '\t' || c == '\f'; }

std::string_view StripLeadingBlanks(std::string_view s) {
  while (!s.empty() && IsBlank(s.front())) s.remove_prefix(1);
  return s;
}

std::string_view StripTrailingBlanks(std::string_view s) {
  while (!s.empty() && (IsBlank(s.back()) || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

void AppendUtf8(uint32_t code, std::string& out) {
  if (code < 0x80) {
    out += static_cast<char>(code);
  } else if (code < 0x800) {
    out += static_cast<char>(0xC0 | (code >> 6));
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else {
    out += static_cast<char>(0xE0 | (code >> 12));
    out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  }
}

// Appends the escape sequence starting after a backslash at s[*i] and
// advances *i past it: \t \n \r \f \uXXXX, or the character itself.
void AppendEscape(std::string_view s, size_t* i, std::string& out) {
  char c = s[*i];
  ++*i;
  switch (c) {
    case 't':
      out += '\t';
      return;
    case 'n':
      out += '\n';
      return;
    case 'r':
      out += '\r';
      return;
    case 'f':
      out += '\f';
      return;
    case 'u': {
      uint32_t code = 0;
      if (*i + 4 <= s.size() &&
          absl::SimpleHexAtoi(Sv(s.substr(*i, 4)), &code)) {
        *i += 4;
        AppendUtf8(code, out);
      } else {
        out += 'u';
      }
      return;
    }
    default:
      out += c;
      return;
  }
}

std::string Unescape(std::string_view s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == '\\') {
      ++i;
      if (i < s.size()) AppendEscape(s, &i, out);
    } else {
      out += s[i++];
    }
  }
  return out;
}

struct PropertyLine {
  int line;
  std::string key;
  std::string value;
};

// Splits Java-properties text into key/value pairs, each with the number of
// the line it starts on.
absl::StatusOr<std::vector<PropertyLine>> ParseProperties(
    std::string_view text, std::string_view source) {
  std::vector<absl::string_view> lines = absl::StrSplit(Sv(text), '\n');
  std::vector<PropertyLine> result;
  size_t next = 0;
  while (next < lines.size()) {
    const int line_number = static_cast<int>(next) + 1;
    std::string_view first =
        StripTrailingBlanks(StripLeadingBlanks(Sv(lines[next++])));
    if (first.empty() || first.front() == '#' || first.front() == '!') continue;

    // Join continuation lines: a line ending in an odd number of backslashes.
    std::string logical(first);
    auto continues = [&logical] {
      size_t backslashes = 0;
      while (backslashes < logical.size() &&
             logical[logical.size() - 1 - backslashes] == '\\') {
        ++backslashes;
      }
      return backslashes % 2 == 1;
    };
    while (continues()) {
      logical.pop_back();
      if (next >= lines.size()) break;
      logical += StripTrailingBlanks(StripLeadingBlanks(Sv(lines[next++])));
    }

    // The key ends at the first unescaped '=', ':' or blank.
    std::string key;
    size_t i = 0;
    while (i < logical.size()) {
      char c = logical[i];
      if (c == '\\') {
        ++i;
        if (i < logical.size()) AppendEscape(logical, &i, key);
        continue;
      }
      if (c == '=' || c == ':' || IsBlank(c)) break;
      key += c;
      ++i;
    }
    while (i < logical.size() && IsBlank(logical[i])) ++i;
    if (i < logical.size() && (logical[i] == '=' || logical[i] == ':')) ++i;
    while (i < logical.size() && IsBlank(logical[i])) ++i;
    if (key.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("line without a key in ", Sv(source), ":", line_number));
    }
    result.push_back({line_number, std::move(key),
                      Unescape(std::string_view(logical).substr(i))});
  }
  return result;
}

}  // namespace

// ---------------------------------------------------------------------------
// Factories.

absl::StatusOr<StreamsConfig> StreamsConfig::Create(const AppKeys& app_keys) {
  for (const auto& [key, default_value] : app_keys) {
    if (key.empty() || FindSpec(Canonical(key)) != nullptr ||
        FindPrefix(key) != nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("application key '", key,
                       "' is empty or collides with an engine key or a "
                       "librdkafka pass-through prefix"));
    }
  }
  return StreamsConfig(app_keys);
}

absl::StatusOr<StreamsConfig> StreamsConfig::FromFile(const std::string& path,
                                                      const AppKeys& app_keys) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read config file '", path,
                                            "': ", std::strerror(errno)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return absl::DataLossError(
        absl::StrCat("error reading config file '", path, "'"));
  }
  return FromProperties(text.str(), path, app_keys);
}

absl::StatusOr<StreamsConfig> StreamsConfig::FromProperties(
    std::string_view text, std::string_view source_name,
    const AppKeys& app_keys) {
  TRIBUTARY_ASSIGN_OR_RETURN(StreamsConfig config, Create(app_keys));
  TRIBUTARY_ASSIGN_OR_RETURN(std::vector<PropertyLine> lines,
                             ParseProperties(text, source_name));
  for (const PropertyLine& line : lines) {
    TRIBUTARY_RETURN_IF_ERROR(config.SetAt(
        line.key, line.value, absl::StrCat(Sv(source_name), ":", line.line)));
  }
  TRIBUTARY_RETURN_IF_ERROR(config.Finish(source_name));
  return config;
}

absl::StatusOr<StreamsConfig> StreamsConfig::FromMap(
    const std::map<std::string, std::string>& values, const AppKeys& app_keys) {
  TRIBUTARY_ASSIGN_OR_RETURN(StreamsConfig config, Create(app_keys));
  for (const auto& [key, value] : values) {
    TRIBUTARY_RETURN_IF_ERROR(config.SetAt(key, value, ""));
  }
  TRIBUTARY_RETURN_IF_ERROR(config.Finish(""));
  return config;
}

absl::Status StreamsConfig::Set(std::string_view key, std::string_view value) {
  StreamsConfig updated = *this;
  TRIBUTARY_RETURN_IF_ERROR(updated.SetAt(key, value, ""));
  TRIBUTARY_RETURN_IF_ERROR(updated.Finish(""));
  *this = std::move(updated);
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Validation.

absl::Status StreamsConfig::SetAt(std::string_view raw_key,
                                  std::string_view raw_value,
                                  std::string_view where) {
  const std::string key(absl::StripAsciiWhitespace(Sv(raw_key)));
  const std::string value(absl::StripAsciiWhitespace(Sv(raw_value)));

  // Pass-through librdkafka settings.
  if (const Prefix* prefix = FindPrefix(key)) {
    const std::string property = PropertyOf(*prefix, key);
    if (property.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("config key '", key, "'", At(where),
                       " names no librdkafka property"));
    }
    for (const OwnedProperty& owned : kOwned) {
      if ((owned.groups & prefix->group) != 0 && property == owned.property) {
        return absl::InvalidArgumentError(
            absl::StrCat("config key '", key, "'", At(where),
                         " is managed by the engine: ", Sv(owned.reason)));
      }
    }
    internal::KafkaConf conf(rd_kafka_conf_new());
    char errstr[512] = {0};
    if (rd_kafka_conf_set(conf.get(), property.c_str(), value.c_str(), errstr,
                          sizeof(errstr)) != RD_KAFKA_CONF_OK) {
      return absl::InvalidArgumentError(absl::StrCat("invalid config key '",
                                                     key, "'", At(where),
                                                     ": librdkafka: ", errstr));
    }
    pass_through_[key] = Entry{value, std::string(where)};
    return absl::OkStatus();
  }

  // Application keys.
  if (app_keys_.count(key) != 0) {
    values_[key] = Entry{value, std::string(where)};
    return absl::OkStatus();
  }

  // Engine keys.
  const std::string_view canonical = Canonical(key);
  const KeySpec* spec = FindSpec(canonical);
  if (spec == nullptr) {
    std::string message =
        absl::StrCat("unknown config key '", key, "'", At(where));
    std::string_view best;
    size_t best_distance = 3;
    auto consider = [&](std::string_view candidate) {
      size_t distance = EditDistance(key, candidate);
      if (distance < best_distance) {
        best_distance = distance;
        best = candidate;
      }
    };
    for (const KeySpec& s : KeySpecs()) consider(s.name);
    for (const auto& alias : kAliases) consider(alias.first);
    for (const auto& app_key : app_keys_) consider(app_key.first);
    if (!best.empty())
      absl::StrAppend(&message, " (did you mean '", Sv(best), "'?)");
    return absl::InvalidArgumentError(message);
  }

  auto invalid = [&](std::string_view reason) {
    std::string named = absl::StrCat("'", key, "'");
    if (canonical != key)
      absl::StrAppend(&named, " (alias of '", Sv(canonical), "')");
    return absl::InvalidArgumentError(
        absl::StrCat("invalid value '", Shown(key, value), "' for config key ",
                     named, At(where), ": ", Sv(reason)));
  };

  std::string normalized = value;
  switch (spec->kind) {
    case Kind::kInt: {
      int64_t n = 0;
      if (!absl::SimpleAtoi(value, &n) || n < spec->min || n > spec->max) {
        return invalid(absl::StrCat("expected an integer in [", spec->min, ", ",
                                    spec->max, "]"));
      }
      normalized = absl::StrCat(n);
      break;
    }
    case Kind::kBool: {
      std::string lower = absl::AsciiStrToLower(value);
      if (lower != "true" && lower != "false")
        return invalid("expected 'true' or 'false'");
      normalized = lower;
      break;
    }
    case Kind::kString:
      break;
  }
  if (spec->check != nullptr) {
    absl::StatusOr<std::string> checked = spec->check(normalized);
    if (!checked.ok()) return invalid(Sv(checked.status().message()));
    normalized = *std::move(checked);
  }
  values_[std::string(canonical)] =
      Entry{std::move(normalized), std::string(where)};
  return absl::OkStatus();
}

absl::Status StreamsConfig::Finish(std::string_view source) const {
  if (values_.find(kApplicationId) == values_.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "missing required config key 'application.id'", At(source)));
  }
  if (exactly_once() && commit_interval() >= transaction_timeout()) {
    std::string where;
    if (auto it = values_.find(kCommitIntervalMs); it != values_.end()) {
      where = it->second.where;
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "config key 'commit.interval.ms'", At(where), " (",
        absl::ToInt64Milliseconds(commit_interval()),
        ") must be less than 'transaction.timeout.ms' (",
        absl::ToInt64Milliseconds(transaction_timeout()),
        ") under exactly_once_v2: each transaction spans one commit interval"));
  }
  if (!query_port()) {
    for (std::string_view key : {kApplicationServer, kQueryToken}) {
      if (auto it = values_.find(key); it != values_.end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "config key '", Sv(key), "'", At(it->second.where),
            " is set but 'query.port' is not: it only applies to the query endpoint"));
      }
    }
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Getters.

std::string StreamsConfig::Effective(std::string_view key) const {
  if (auto it = values_.find(key); it != values_.end()) return it->second.value;
  if (key == kCommitIntervalMs) return exactly_once() ? "100" : "30000";
  if (key == kRocksDbWalEnabled) return exactly_once() ? "false" : "true";
  if (key == kDeadLetterTopic) return absl::StrCat(application_id(), "-dlq");
  const KeySpec* spec = FindSpec(key);
  assert(spec != nullptr);
  return spec == nullptr ? std::string() : std::string(spec->default_value);
}

namespace {

// REQUIRES: `value` passed an integer key's validation.
int64_t ValidatedInt(const std::string& value) {
  int64_t n = 0;
  [[maybe_unused]] bool ok = absl::SimpleAtoi(value, &n);
  assert(ok);
  return n;
}

}  // namespace

std::string StreamsConfig::application_id() const {
  auto it = values_.find(kApplicationId);
  return it == values_.end() ? std::string() : it->second.value;
}

std::string StreamsConfig::bootstrap_servers() const {
  return Effective(kBootstrapServers);
}

bool StreamsConfig::uses_mock_cluster() const {
  std::string servers = bootstrap_servers();
  return servers.empty() || absl::StartsWith(servers, Sv(kMockScheme));
}

int StreamsConfig::mock_cluster_brokers() const {
  std::string servers = bootstrap_servers();
  int brokers = 1;
  if (absl::StartsWith(servers, Sv(kMockScheme)) &&
      servers.size() > kMockScheme.size()) {
    [[maybe_unused]] bool ok = absl::SimpleAtoi(
        absl::string_view(servers).substr(kMockScheme.size()), &brokers);
    assert(ok);
  }
  return brokers;
}

bool StreamsConfig::exactly_once() const {
  return Effective(kProcessingGuarantee) == kExactlyOnceV2;
}

int StreamsConfig::num_stream_threads() const {
  return static_cast<int>(ValidatedInt(Effective(kNumStreamThreads)));
}

absl::Duration StreamsConfig::commit_interval() const {
  return absl::Milliseconds(ValidatedInt(Effective(kCommitIntervalMs)));
}

std::string StreamsConfig::state_dir() const { return Effective(kStateDir); }

int64_t StreamsConfig::cache_max_bytes() const {
  return ValidatedInt(Effective(kCacheMaxBytes));
}

int64_t StreamsConfig::rocksdb_block_cache_bytes() const {
  return ValidatedInt(Effective(kRocksDbBlockCacheBytes));
}

int32_t StreamsConfig::dead_letter_topic_partitions() const {
  return static_cast<int32_t>(ValidatedInt(Effective(kDeadLetterTopicPartitions)));
}

int StreamsConfig::replication_factor() const {
  return static_cast<int>(ValidatedInt(Effective(kReplicationFactor)));
}

ErrorPolicy StreamsConfig::processing_error_policy() const {
  return Effective(kProcessingErrorPolicy) == "continue"
             ? ErrorPolicy::kContinue
             : ErrorPolicy::kFail;
}

std::string StreamsConfig::dead_letter_topic() const {
  std::string topic = Effective(kDeadLetterTopic);
  return topic.empty() ? absl::StrCat(application_id(), "-dlq") : topic;
}

absl::Duration StreamsConfig::poll_interval() const {
  return absl::Milliseconds(ValidatedInt(Effective(kPollMs)));
}

int StreamsConfig::max_poll_records() const {
  return static_cast<int>(ValidatedInt(Effective(kMaxPollRecords)));
}

absl::Duration StreamsConfig::state_cleanup_delay() const {
  return absl::Milliseconds(ValidatedInt(Effective(kStateCleanupDelayMs)));
}

int StreamsConfig::num_standby_replicas() const {
  return static_cast<int>(ValidatedInt(Effective(kNumStandbyReplicas)));
}

absl::Duration StreamsConfig::repartition_purge_interval() const {
  return absl::Milliseconds(ValidatedInt(Effective(kRepartitionPurgeIntervalMs)));
}

std::string StreamsConfig::metrics_recording_level() const {
  return Effective(kMetricsRecordingLevel);
}

bool StreamsConfig::rocksdb_wal_enabled() const {
  return Effective(kRocksDbWalEnabled) == "true";
}

absl::Duration StreamsConfig::transaction_timeout() const {
  return absl::Milliseconds(ValidatedInt(Effective(kTransactionTimeoutMs)));
}

std::string StreamsConfig::log_level() const { return Effective(kLogLevel); }

std::optional<int> StreamsConfig::metrics_port() const {
  const int64_t port = ValidatedInt(Effective(kMetricsPort));
  if (port < 0) return std::nullopt;
  return static_cast<int>(port);
}

std::string StreamsConfig::metrics_host() const { return Effective(kMetricsHost); }

std::optional<int> StreamsConfig::query_port() const {
  const int64_t port = ValidatedInt(Effective(kQueryPort));
  if (port < 0) return std::nullopt;
  return static_cast<int>(port);
}

std::string StreamsConfig::query_host() const { return Effective(kQueryHost); }

std::string StreamsConfig::application_server() const { return Effective(kApplicationServer); }

std::string StreamsConfig::query_token() const { return Effective(kQueryToken); }

absl::StatusOr<std::string> StreamsConfig::GetString(
    std::string_view key) const {
  if (FindPrefix(key) != nullptr) {
    if (auto it = pass_through_.find(key); it != pass_through_.end()) {
      return it->second.value;
    }
    return absl::NotFoundError(
        absl::StrCat("config key '", Sv(key), "' is not set"));
  }
  if (auto app = app_keys_.find(std::string(key)); app != app_keys_.end()) {
    if (auto it = values_.find(key); it != values_.end())
      return it->second.value;
    return app->second;
  }
  std::string_view canonical = Canonical(key);
  if (canonical == kDeadLetterTopic) return dead_letter_topic();
  if (FindSpec(canonical) != nullptr) return Effective(canonical);
  return absl::NotFoundError(
      absl::StrCat("unknown config key '", Sv(key), "'"));
}

absl::StatusOr<int64_t> StreamsConfig::GetInt(std::string_view key) const {
  TRIBUTARY_ASSIGN_OR_RETURN(std::string value, GetString(key));
  int64_t n = 0;
  if (!absl::SimpleAtoi(value, &n)) {
    return absl::InvalidArgumentError(
        absl::StrCat("config key '", Sv(key), "' has value '",
                     Shown(key, value), "', not an integer"));
  }
  return n;
}

absl::StatusOr<bool> StreamsConfig::GetBool(std::string_view key) const {
  TRIBUTARY_ASSIGN_OR_RETURN(std::string value, GetString(key));
  std::string lower = absl::AsciiStrToLower(value);
  if (lower == "true") return true;
  if (lower == "false") return false;
  return absl::InvalidArgumentError(
      absl::StrCat("config key '", Sv(key), "' has value '", Shown(key, value),
                   "', not 'true' or 'false'"));
}

std::map<std::string, std::string> StreamsConfig::PassThrough(
    std::string_view base, std::string_view specific) const {
  std::map<std::string, std::string> settings;
  for (const auto& [key, entry] : pass_through_) {
    const Prefix* prefix = FindPrefix(key);
    if (prefix != nullptr && prefix->shared) settings[key] = entry.value;
  }
  for (std::string_view prefix : {base, specific}) {
    if (prefix.empty()) continue;
    for (const auto& [key, entry] : pass_through_) {
      if (absl::StartsWith(key, Sv(prefix)))
        settings[key.substr(prefix.size())] = entry.value;
    }
  }
  return settings;
}

std::map<std::string, std::string> StreamsConfig::ConsumerSettings() const {
  return PassThrough("consumer.", "main.consumer.");
}

std::map<std::string, std::string> StreamsConfig::RestoreConsumerSettings()
    const {
  return PassThrough("consumer.", "restore.consumer.");
}

std::map<std::string, std::string> StreamsConfig::ProducerSettings() const {
  return PassThrough("producer.", "");
}

std::map<std::string, std::string> StreamsConfig::AdminSettings() const {
  return PassThrough("admin.", "");
}

std::string StreamsConfig::ToString() const {
  std::string out = "StreamsConfig values:\n";
  auto line = [&out](std::string_view key, std::string_view value) {
    absl::StrAppend(&out, "  ", Sv(key), " = ", Shown(key, value), "\n");
  };
  for (const KeySpec& spec : KeySpecs()) {
    line(spec.name, spec.name == kDeadLetterTopic ? dead_letter_topic()
                                                  : Effective(spec.name));
  }
  for (const auto& [key, default_value] : app_keys_) {
    auto it = values_.find(key);
    line(key, it == values_.end() ? default_value : it->second.value);
  }
  for (const auto& [key, entry] : pass_through_) line(key, entry.value);
  return out;
}

}  // namespace tributary
