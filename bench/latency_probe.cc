// latency_probe: the helper of bench/e2e's latency runs (issue 10 §1). One
// program, four modes; every wait is bounded and a timeout fails loudly.
//
//   latency_probe create --bootstrap B --topic NAME:PARTITIONS [--topic ...]
//       creates the topics (an existing one is kept) and waits for leaders.
//   latency_probe wait-group --bootstrap B --group G --topics T1,T2,...
//                            [--members K] [--timeout-s 120]
//       waits until consumer group G is Stable with at least K members whose
//       assignments together cover every partition of T1,T2,... (the app
//       has joined, been assigned its inputs and is consuming them).
//   latency_probe measure --bootstrap B --transaction-topic T --output-topic O
//                         --expected FILE --ready-file R [--timeout-s 300]
//       reads T (Debezium's BEGIN/END markers) and O (the aggregates) from the
//       beginning with isolation.level=read_committed, outside any group.
//       Touches R once every partition was fetched to its end (the probe is
//       live before the load starts). Each END gives its transaction's source
//       commit time: the END record's Kafka timestamp (CreateTime, set by the
//       producer when it sent the marker; cdc-gen's ts_ms fields are
//       simulated, 1700000000000 onwards, and are not wall-clock time). Each
//       aggregate is matched to its transaction by "source_tx":{"id":...}
//       (the xid, the part of END's id before ':'). Latency of an aggregate =
//       wall-clock time this consumer received it - its transaction's commit
//       time. Once FILE.done exists, FILE (cdc-gen --expected) says which
//       transactions must produce a non-tombstone aggregate and how many; the
//       probe stops when it has seen them all and prints one JSON line:
//       {"probe":"latency","records":...,"p50_ms":...,"p99_ms":...,...}.
//       Exit 3 on timeout (with what is missing), 2 on a Kafka error.
//   latency_probe count --bootstrap B --topic O --expect K [--timeout-s 600]
//       reads O from the beginning (read_committed) until it has seen K records
//       (tombstones count), then prints the wall-clock time of the K-th in
//       seconds since the epoch ("done_at=1796000000.123"). bench/e2e's "output
//       complete" for the scaling variants, where no single process's status
//       line sees the whole run.
//   latency_probe delete --bootstrap B --prefix P
//       deletes every topic and consumer group whose name starts with P
//       (P must be at least 8 characters: cleanup of one run's names only).
//
// Single-threaded; librdkafka directly (simdjson for the JSON), the engine's
// KafkaAdmin for creating and deleting topics.

#include <librdkafka/rdkafka.h>
#include <simdjson.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "base/progress_line.h"
#include "bench/rdkafka_handles.h"
#include "engine/kafka_clients.h"

namespace tributary {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr int kUsage = 1;
constexpr int kKafka = 2;
constexpr int kTimeout = 3;

using bench::Destroyer;
using bench::KafkaHandle;
using bench::KafkaQueue;
using bench::KafkaEvent;
using bench::KafkaMessage;
using bench::AdminOptions;
using bench::PartitionList;

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int Fail(int code, const std::string& message) {
  std::fprintf(stderr, "latency_probe: %s\n", message.c_str());
  return code;
}

// --flag value pairs; a flag may repeat (--topic).
struct Args {
  std::multimap<std::string, std::string> values;
  std::string Get(const std::string& key, const std::string& otherwise = "") const {
    auto it = values.find(key);
    return it == values.end() ? otherwise : it->second;
  }
  int64_t GetInt(const std::string& key, int64_t otherwise) const {
    int64_t v = otherwise;
    auto it = values.find(key);
    if (it != values.end() && !absl::SimpleAtoi(it->second, &v)) {
      std::fprintf(stderr, "latency_probe: --%s wants a number, got '%s'\n", key.c_str(),
                   it->second.c_str());
      std::exit(kUsage);
    }
    return v;
  }
};

std::optional<Args> ParseArgs(int argc, char** argv) {
  Args args;
  for (int i = 2; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag.rfind("--", 0) != 0 || i + 1 >= argc) return std::nullopt;
    args.values.emplace(flag.substr(2), argv[++i]);
  }
  return args;
}

// A librdkafka client of `type` with bootstrap.servers and `extra`.
KafkaHandle Client(rd_kafka_type_t type, const std::string& bootstrap,
                   const std::vector<std::pair<std::string, std::string>>& extra,
                   std::string* error) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  std::vector<std::pair<std::string, std::string>> settings = {
      {"bootstrap.servers", bootstrap}, {"log_level", "3"}};
  settings.insert(settings.end(), extra.begin(), extra.end());
  for (const auto& [key, value] : settings) {
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), err, sizeof err) !=
        RD_KAFKA_CONF_OK) {
      *error = absl::StrCat(key, ": ", err);
      rd_kafka_conf_destroy(conf);
      return nullptr;
    }
  }
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof err);
  if (rk == nullptr) {
    *error = err;
    rd_kafka_conf_destroy(conf);
  }
  return KafkaHandle(rk);
}

// Waits up to `timeout_ms` for an event of `type` on `queue`.
KafkaEvent WaitEvent(rd_kafka_queue_t* queue, rd_kafka_event_type_t type, int timeout_ms) {
  const auto deadline = SteadyClock::now() + std::chrono::milliseconds(timeout_ms);
  while (SteadyClock::now() < deadline) {
    KafkaEvent event(rd_kafka_queue_poll(queue, 200));
    if (event && rd_kafka_event_type(event.get()) == type) return event;
  }
  return nullptr;
}

// Partition counts of the cluster's topics whose names start with `prefix`
// (every topic when empty), or of the one topic `exact`.
std::optional<std::map<std::string, int>> Topics(rd_kafka_t* rk, const std::string& prefix,
                                                 int timeout_ms) {
  const rd_kafka_metadata_t* metadata = nullptr;
  if (rd_kafka_metadata(rk, 1, nullptr, &metadata, timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return std::nullopt;
  }
  std::map<std::string, int> topics;
  for (int i = 0; i < metadata->topic_cnt; ++i) {
    const rd_kafka_metadata_topic_t& t = metadata->topics[i];
    if (t.err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
    std::string name = t.topic;
    if (name.rfind(prefix, 0) == 0) topics[name] = t.partition_cnt;
  }
  rd_kafka_metadata_destroy(metadata);
  return topics;
}

// ---- create ----------------------------------------------------------------

int Create(const Args& args) {
  const std::string bootstrap = args.Get("bootstrap");
  std::vector<KafkaAdmin::NewTopic> topics;
  auto [begin, end] = args.values.equal_range("topic");
  for (auto it = begin; it != end; ++it) {
    std::vector<std::string> parts = absl::StrSplit(it->second, ':');
    int partitions = 0;
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[1], &partitions) || partitions < 1) {
      return Fail(kUsage, absl::StrCat("--topic wants NAME:PARTITIONS, got ", it->second));
    }
    topics.push_back({parts[0], partitions});
  }
  if (bootstrap.empty() || topics.empty()) return Fail(kUsage, "create needs --bootstrap and --topic");
  auto admin = KafkaAdmin::Open({{"bootstrap.servers", bootstrap}});
  if (!admin.ok()) return Fail(kKafka, admin.status().ToString());
  if (absl::Status s = (*admin)->CreateTopics(topics, 60000); !s.ok()) {
    return Fail(kKafka, s.ToString());
  }
  return 0;
}

// ---- wait-group --------------------------------------------------------------

int WaitGroup(const Args& args) {
  const std::string bootstrap = args.Get("bootstrap"), group = args.Get("group");
  const std::vector<std::string> topic_names =
      absl::StrSplit(args.Get("topics"), ',', absl::SkipEmpty());
  const int64_t members = args.GetInt("members", 1);
  const int64_t timeout_s = args.GetInt("timeout-s", 120);
  if (bootstrap.empty() || group.empty() || topic_names.empty()) {
    return Fail(kUsage, "wait-group needs --bootstrap, --group and --topics");
  }
  std::string error;
  KafkaHandle rk = Client(RD_KAFKA_PRODUCER, bootstrap, {}, &error);
  if (!rk) return Fail(kKafka, error);
  KafkaQueue queue(rd_kafka_queue_new(rk.get()));
  const auto deadline = SteadyClock::now() + std::chrono::seconds(timeout_s);
  std::string last = "no answer yet";
  while (SteadyClock::now() < deadline) {
    // Every partition of the inputs, as the cluster has them now.
    auto all = Topics(rk.get(), "", 5000);
    std::set<std::pair<std::string, int>> wanted;
    bool known = all.has_value();
    for (const std::string& t : topic_names) {
      if (!all || !all->count(t)) {
        known = false;
        last = absl::StrCat("topic ", t, " not in the metadata");
        break;
      }
      for (int p = 0; p < all->at(t); ++p) wanted.insert({t, p});
    }
    if (known) {
      const char* groups[] = {group.c_str()};
      AdminOptions options(
          rd_kafka_AdminOptions_new(rk.get(), RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS));
      rd_kafka_DescribeConsumerGroups(rk.get(), groups, 1, options.get(), queue.get());
      KafkaEvent event =
          WaitEvent(queue.get(), RD_KAFKA_EVENT_DESCRIBECONSUMERGROUPS_RESULT, 10000);
      if (event && rd_kafka_event_error(event.get()) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        size_t n = 0;
        const rd_kafka_ConsumerGroupDescription_t** descs =
            rd_kafka_DescribeConsumerGroups_result_groups(
                rd_kafka_event_DescribeConsumerGroups_result(event.get()), &n);
        for (size_t i = 0; i < n; ++i) {
          const rd_kafka_ConsumerGroupDescription_t* d = descs[i];
          if (const rd_kafka_error_t* e = rd_kafka_ConsumerGroupDescription_error(d)) {
            last = rd_kafka_error_string(e);
            continue;
          }
          const rd_kafka_consumer_group_state_t state = rd_kafka_ConsumerGroupDescription_state(d);
          const size_t count = rd_kafka_ConsumerGroupDescription_member_count(d);
          size_t covered = 0;
          for (size_t m = 0; m < count; ++m) {
            const rd_kafka_topic_partition_list_t* parts = rd_kafka_MemberAssignment_partitions(
                rd_kafka_MemberDescription_assignment(
                    rd_kafka_ConsumerGroupDescription_member(d, m)));
            for (int j = 0; parts != nullptr && j < parts->cnt; ++j) {
              covered += wanted.count({parts->elems[j].topic, parts->elems[j].partition});
            }
          }
          last = absl::StrFormat("state %s, %d member(s), %d of %d input partitions assigned",
                                 rd_kafka_consumer_group_state_name(state), count, covered,
                                 wanted.size());
          if (state == RD_KAFKA_CONSUMER_GROUP_STATE_STABLE &&
              static_cast<int64_t>(count) >= members && covered >= wanted.size()) {
            std::fprintf(stderr, "latency_probe: group %s ready: %s\n", group.c_str(),
                         last.c_str());
            return 0;
          }
        }
      } else if (event) {
        last = rd_kafka_event_error_string(event.get());
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return Fail(kTimeout, absl::StrCat("group ", group, " not ready within ", timeout_s,
                                     " s (wanted Stable, ", members,
                                     " member(s), every input partition assigned): ", last));
}

// ---- measure -----------------------------------------------------------------

struct Expected {
  std::unordered_set<std::string> transactions;  // with >= 1 non-tombstone aggregate
  int64_t records = 0;                           // non-tombstone aggregates
};

std::optional<Expected> LoadExpected(const std::string& path, std::string* error) {
  std::ifstream in(path);
  if (!in) {
    *error = absl::StrCat("cannot open ", path);
    return std::nullopt;
  }
  Expected expected;
  simdjson::dom::parser parser;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    simdjson::dom::element doc;
    std::string_view tx;
    simdjson::dom::element aggregate;
    if (parser.parse(line).get(doc) != simdjson::SUCCESS ||
        doc["tx"].get_string().get(tx) != simdjson::SUCCESS ||
        doc["aggregate"].get(aggregate) != simdjson::SUCCESS) {
      *error = absl::StrCat(path, ": not a cdc-gen --expected line: ", line.substr(0, 80));
      return std::nullopt;
    }
    if (aggregate.is_null()) continue;
    expected.transactions.insert(std::string(tx));
    ++expected.records;
  }
  return expected;
}

double Percentile(const std::vector<int64_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  // Nearest rank.
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return static_cast<double>(sorted[rank - 1]);
}

int Measure(const Args& args) {
  const std::string bootstrap = args.Get("bootstrap");
  const std::string tx_topic = args.Get("transaction-topic");
  const std::string out_topic = args.Get("output-topic");
  const std::string expected_path = args.Get("expected");
  const std::string ready_file = args.Get("ready-file");
  const int64_t timeout_s = args.GetInt("timeout-s", 300);
  if (bootstrap.empty() || tx_topic.empty() || out_topic.empty() || expected_path.empty() ||
      ready_file.empty()) {
    return Fail(kUsage,
                "measure needs --bootstrap, --transaction-topic, --output-topic, --expected "
                "and --ready-file");
  }
  const auto deadline = SteadyClock::now() + std::chrono::seconds(timeout_s);
  std::string error;
  KafkaHandle rk = Client(RD_KAFKA_CONSUMER, bootstrap,
                          {{"group.id", absl::StrCat("latency-probe-", getpid())},
                           {"enable.auto.commit", "false"},
                           {"enable.auto.offset.store", "false"},
                           {"isolation.level", "read_committed"},
                           {"enable.partition.eof", "true"},
                           // A fetch answers as soon as data is there; this
                           // bounds the wait of an empty one, not the latency.
                           {"fetch.wait.max.ms", "50"}},
                          &error);
  if (!rk) return Fail(kKafka, error);

  // Both topics must exist (bench/e2e creates them before the app starts).
  std::map<std::string, int> partitions;
  while (true) {
    auto tx = Topics(rk.get(), tx_topic, 5000);
    auto out = Topics(rk.get(), out_topic, 5000);
    if (tx && out && tx->count(tx_topic) && out->count(out_topic)) {
      partitions[tx_topic] = tx->at(tx_topic);
      partitions[out_topic] = out->at(out_topic);
      break;
    }
    if (SteadyClock::now() >= deadline) {
      return Fail(kTimeout, absl::StrCat(tx_topic, " or ", out_topic, " does not exist"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  PartitionList assignment(rd_kafka_topic_partition_list_new(8));
  for (const auto& [topic, count] : partitions) {
    for (int p = 0; p < count; ++p) {
      rd_kafka_topic_partition_list_add(assignment.get(), topic.c_str(), p)->offset =
          RD_KAFKA_OFFSET_BEGINNING;
    }
  }
  if (rd_kafka_resp_err_t err = rd_kafka_assign(rk.get(), assignment.get()); err) {
    return Fail(kKafka, absl::StrCat("assign: ", rd_kafka_err2str(err)));
  }
  const size_t assigned = static_cast<size_t>(assignment->cnt);

  std::unordered_map<std::string, int64_t> commit_ms;    // xid -> first END's timestamp
  std::vector<std::pair<std::string, int64_t>> outputs;  // (xid, received at)
  std::unordered_map<std::string, int64_t> outputs_of;   // xid -> aggregates seen
  std::set<std::pair<std::string, int>> at_eof;
  int64_t ends = 0, redelivered_ends = 0, tombstones = 0, bad = 0, first_ts_ms = 0;
  bool ready = false;
  std::optional<Expected> expected;
  size_t expected_seen = 0;  // expected transactions with an aggregate seen
  simdjson::dom::parser parser;
  ProgressLine progress = ProgressLine::OnStderr("latency_probe measure", 0, "aggregates");

  while (true) {
    progress.Update(static_cast<int64_t>(outputs.size()));
    const auto now = SteadyClock::now();
    if (now >= deadline) {
      std::string missing;
      int shown = 0;
      if (expected) {
        for (const std::string& tx : expected->transactions) {
          if (outputs_of.count(tx)) continue;
          if (shown++ < 5) absl::StrAppend(&missing, " ", tx);
        }
      }
      return Fail(kTimeout,
                  absl::StrFormat("timed out after %d s: %d END markers, %d aggregates received; "
                                  "%s%s",
                                  timeout_s, ends, outputs.size(),
                                  expected ? absl::StrFormat("%d of %d expected transactions "
                                                             "seen; missing e.g.",
                                                             expected_seen,
                                                             expected->transactions.size())
                                           : std::string("cdc-gen's expected file never "
                                                         "became ready (") +
                                                 expected_path + ".done)",
                                  missing));
    }
    KafkaMessage message(rd_kafka_consumer_poll(rk.get(), 100));
    const int64_t received = WallMs();
    if (message) {
      const std::string topic = rd_kafka_topic_name(message->rkt);
      if (message->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        at_eof.insert({topic, message->partition});
      } else if (message->err) {
        std::fprintf(stderr, "latency_probe: consume: %s\n", rd_kafka_message_errstr(message.get()));
      } else if (message->payload == nullptr) {
        if (topic == out_topic) ++tombstones;
      } else {
        simdjson::dom::element doc;
        std::string_view sv(static_cast<const char*>(message->payload), message->len);
        if (parser.parse(sv.data(), sv.size()).get(doc) != simdjson::SUCCESS) {
          ++bad;
        } else if (topic == tx_topic) {
          // cdc-gen writes bare payloads; accept the schema wrapper too.
          simdjson::dom::element payload;
          if (doc["payload"].get(payload) == simdjson::SUCCESS) doc = payload;
          std::string_view status, id;
          if (doc["status"].get_string().get(status) == simdjson::SUCCESS && status == "END" &&
              doc["id"].get_string().get(id) == simdjson::SUCCESS) {
            ++ends;
            rd_kafka_timestamp_type_t type;
            const int64_t ts = rd_kafka_message_timestamp(message.get(), &type);
            if (type != RD_KAFKA_TIMESTAMP_CREATE_TIME) {
              return Fail(kUsage, absl::StrCat(tx_topic, " has no CreateTime timestamps "
                                               "(message.timestamp.type=LogAppendTime?)"));
            }
            if (first_ts_ms == 0 &&
                doc["ts_ms"].get_int64().get(first_ts_ms) != simdjson::SUCCESS) {
              first_ts_ms = 0;
            }
            const std::string xid(id.substr(0, id.find(':')));
            if (!commit_ms.emplace(xid, ts).second) ++redelivered_ends;
          }
        } else {
          std::string_view xid;
          if (doc["source_tx"]["id"].get_string().get(xid) != simdjson::SUCCESS) {
            ++bad;
          } else {
            outputs.emplace_back(std::string(xid), received);
            if (++outputs_of[std::string(xid)] == 1 && expected &&
                expected->transactions.count(std::string(xid))) {
              ++expected_seen;
            }
          }
        }
      }
    }
    if (!ready && at_eof.size() >= assigned) {
      std::ofstream(ready_file) << "ready\n";
      ready = true;
      std::fprintf(stderr, "latency_probe: reading %s and %s (%zu partitions), ready\n",
                   tx_topic.c_str(), out_topic.c_str(), assigned);
    }
    if (!expected && std::filesystem::exists(expected_path + ".done")) {
      expected = LoadExpected(expected_path, &error);
      if (!expected) return Fail(kUsage, error);
      for (const auto& [xid, n] : outputs_of) expected_seen += expected->transactions.count(xid);
    }
    if (expected && expected_seen >= expected->transactions.size() &&
        static_cast<int64_t>(outputs.size()) >= expected->records) {
      break;
    }
  }

  std::vector<int64_t> latencies;
  int64_t unmatched = 0;
  latencies.reserve(outputs.size());
  for (const auto& [xid, at] : outputs) {
    auto it = commit_ms.find(xid);
    if (it == commit_ms.end()) {
      ++unmatched;
    } else {
      latencies.push_back(at - it->second);
    }
  }
  // In arrival order, the halves' medians: warm-up (higher first) or a
  // backlog that grows (higher last, the rate is above what the app sustains).
  auto median_of = [](std::vector<int64_t> v) {
    std::sort(v.begin(), v.end());
    return Percentile(v, 0.5);
  };
  const auto half = latencies.begin() + static_cast<std::ptrdiff_t>(latencies.size() / 2);
  const double first_half = median_of({latencies.begin(), half});
  const double last_half = median_of({half, latencies.end()});
  std::sort(latencies.begin(), latencies.end());
  double sum = 0;
  for (int64_t l : latencies) sum += static_cast<double>(l);
  const int64_t unexpected = static_cast<int64_t>(outputs.size()) - expected->records;
  std::printf(
      "{\"probe\":\"latency\",\"records\":%zu,\"expected_records\":%lld,"
      "\"transactions\":%zu,\"end_markers\":%lld,\"redelivered_ends\":%lld,"
      "\"tombstones\":%lld,\"unmatched\":%lld,\"unparsed\":%lld,"
      "\"p50_ms\":%.0f,\"p90_ms\":%.0f,\"p99_ms\":%.0f,\"max_ms\":%lld,\"min_ms\":%lld,"
      "\"mean_ms\":%.1f,\"p50_first_half_ms\":%.0f,\"p50_last_half_ms\":%.0f,"
      "\"first_end_ts_ms_field\":%lld}\n",
      latencies.size(), static_cast<long long>(expected->records), expected->transactions.size(),
      static_cast<long long>(ends), static_cast<long long>(redelivered_ends),
      static_cast<long long>(tombstones), static_cast<long long>(unmatched),
      static_cast<long long>(bad), Percentile(latencies, 0.50), Percentile(latencies, 0.90),
      Percentile(latencies, 0.99), static_cast<long long>(latencies.empty() ? 0 : latencies.back()),
      static_cast<long long>(latencies.empty() ? 0 : latencies.front()), 
      latencies.empty() ? 0.0 : sum / static_cast<double>(latencies.size()), first_half,
      last_half, static_cast<long long>(first_ts_ms));
  std::fflush(stdout);
  if (unmatched > 0 || bad > 0 || unexpected != 0) {
    std::fprintf(stderr,
                 "latency_probe: warning: %lld aggregate(s) without an END, %lld unparsed, %lld "
                 "more than expected\n",
                 static_cast<long long>(unmatched), static_cast<long long>(bad),
                 static_cast<long long>(unexpected));
  }
  rd_kafka_consumer_close(rk.get());
  return 0;
}

// ---- count -------------------------------------------------------------------

int Count(const Args& args) {
  const std::string bootstrap = args.Get("bootstrap"), topic = args.Get("topic");
  const int64_t expect = args.GetInt("expect", 0);
  const int64_t timeout_s = args.GetInt("timeout-s", 600);
  if (bootstrap.empty() || topic.empty() || expect <= 0) {
    return Fail(kUsage, "count needs --bootstrap, --topic and --expect K > 0");
  }
  const auto deadline = SteadyClock::now() + std::chrono::seconds(timeout_s);
  std::string error;
  KafkaHandle rk = Client(RD_KAFKA_CONSUMER, bootstrap,
                          {{"group.id", absl::StrCat("latency-probe-", getpid())},
                           {"enable.auto.commit", "false"},
                           {"isolation.level", "read_committed"},
                           {"fetch.wait.max.ms", "50"}},
                          &error);
  if (!rk) return Fail(kKafka, error);
  int partitions = 0;
  while (partitions == 0) {
    if (auto t = Topics(rk.get(), topic, 5000); t && t->count(topic)) partitions = t->at(topic);
    if (partitions == 0 && SteadyClock::now() >= deadline) {
      return Fail(kTimeout, absl::StrCat(topic, " does not exist after ", timeout_s, " s"));
    }
    if (partitions == 0) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  PartitionList assignment(rd_kafka_topic_partition_list_new(partitions));
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(assignment.get(), topic.c_str(), p)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
  }
  if (rd_kafka_resp_err_t err = rd_kafka_assign(rk.get(), assignment.get()); err) {
    return Fail(kKafka, absl::StrCat("assign: ", rd_kafka_err2str(err)));
  }
  int64_t seen = 0;
  ProgressLine progress = ProgressLine::OnStderr("latency_probe count", expect, "records");
  while (seen < expect) {
    if (SteadyClock::now() >= deadline) {
      return Fail(kTimeout, absl::StrFormat("%s: %d of %d records after %d s", topic, seen,
                                            expect, timeout_s));
    }
    KafkaMessage message(rd_kafka_consumer_poll(rk.get(), 100));
    if (message && !message->err) ++seen;
    progress.Update(seen);
  }
  progress.Finish();
  const double done_at = static_cast<double>(WallMs()) / 1000;
  std::printf("done_at=%.3f records=%lld\n", done_at, static_cast<long long>(seen));
  std::fflush(stdout);
  rd_kafka_consumer_close(rk.get());
  return 0;
}

// ---- delete ------------------------------------------------------------------

int Delete(const Args& args) {
  const std::string bootstrap = args.Get("bootstrap"), prefix = args.Get("prefix");
  if (bootstrap.empty() || prefix.size() < 8) {
    return Fail(kUsage, "delete needs --bootstrap and a --prefix of at least 8 characters");
  }
  std::string error;
  KafkaHandle rk = Client(RD_KAFKA_PRODUCER, bootstrap, {}, &error);
  if (!rk) return Fail(kKafka, error);
  auto topics = Topics(rk.get(), prefix, 10000);
  if (!topics) return Fail(kKafka, "no metadata from the cluster");
  std::vector<std::string> names;
  for (const auto& [name, count] : *topics) names.push_back(name);
  int status = 0;
  if (!names.empty()) {
    auto admin = KafkaAdmin::Open({{"bootstrap.servers", bootstrap}});
    if (!admin.ok()) return Fail(kKafka, admin.status().ToString());
    if (absl::Status s = (*admin)->DeleteTopics(names, 30000); !s.ok()) {
      std::fprintf(stderr, "latency_probe: deleting topics: %s\n", s.ToString().c_str());
      status = kKafka;
    }
  }
  // Consumer groups of the same prefix (the apps' application.ids).
  KafkaQueue queue(rd_kafka_queue_new(rk.get()));
  rd_kafka_ListConsumerGroups(rk.get(), nullptr, queue.get());
  KafkaEvent listed = WaitEvent(queue.get(), RD_KAFKA_EVENT_LISTCONSUMERGROUPS_RESULT, 10000);
  std::vector<std::string> groups;
  if (listed) {
    size_t n = 0;
    const rd_kafka_ConsumerGroupListing_t** list = rd_kafka_ListConsumerGroups_result_valid(
        rd_kafka_event_ListConsumerGroups_result(listed.get()), &n);
    for (size_t i = 0; i < n; ++i) {
      std::string id = rd_kafka_ConsumerGroupListing_group_id(list[i]);
      if (id.rfind(prefix, 0) == 0) groups.push_back(id);
    }
  }
  // A group whose members have only just left may still be non-empty: Kafka Streams does
  // not leave the group on close, so its member stays until session.timeout.ms (45 s).
  size_t deleted = 0;
  for (int attempt = 0; attempt < 60 && !groups.empty(); ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::seconds(1));
    std::vector<rd_kafka_DeleteGroup_t*> requests;
    for (const std::string& g : groups) requests.push_back(rd_kafka_DeleteGroup_new(g.c_str()));
    rd_kafka_DeleteGroups(rk.get(), requests.data(), requests.size(), nullptr, queue.get());
    rd_kafka_DeleteGroup_destroy_array(requests.data(), requests.size());
    KafkaEvent answer = WaitEvent(queue.get(), RD_KAFKA_EVENT_DELETEGROUPS_RESULT, 10000);
    if (!answer) continue;
    size_t n = 0;
    const rd_kafka_group_result_t** results = rd_kafka_DeleteGroups_result_groups(
        rd_kafka_event_DeleteGroups_result(answer.get()), &n);
    std::vector<std::string> again;
    for (size_t i = 0; i < n; ++i) {
      const rd_kafka_error_t* e = rd_kafka_group_result_error(results[i]);
      if (e == nullptr || rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND) {
        ++deleted;
      } else {
        again.push_back(rd_kafka_group_result_name(results[i]));
      }
    }
    groups = std::move(again);
  }
  for (const std::string& g : groups) {
    std::fprintf(stderr, "latency_probe: could not delete consumer group %s\n", g.c_str());
    status = kKafka;
  }
  std::fprintf(stderr, "latency_probe: deleted %zu topic(s) and %zu group(s) named %s*\n",
               names.size(), deleted, prefix.c_str());
  return status;
}

}  // namespace
}  // namespace tributary

int main(int argc, char** argv) {
  using namespace tributary;
  const std::string mode = argc > 1 ? argv[1] : "";
  std::optional<Args> args = ParseArgs(argc, argv);
  if (!args) return Fail(kUsage, "arguments are --flag value pairs (see the header of latency_probe.cc)");
  if (mode == "create") return Create(*args);
  if (mode == "wait-group") return WaitGroup(*args);
  if (mode == "measure") return Measure(*args);
  if (mode == "count") return Count(*args);
  if (mode == "delete") return Delete(*args);
  return Fail(kUsage, "usage: latency_probe create|wait-group|measure|count|delete --bootstrap HOST:PORT ...");
}
