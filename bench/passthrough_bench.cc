// End-to-end pass-through harness (not a Google Benchmark): copies N records
// from an input topic to an output topic under exactly-once, once with a bare
// librdkafka consume -> transactional produce loop (the physical limit) and
// once with a Tributary source -> sink topology, side by side on one broker.
// Each variant runs in its own child process (this program re-executed with
// --mode), so CPU seconds and peak RSS are per variant; R runs alternate the
// variants and medians are reported, as a table and as one JSON line.
//
//   passthrough_bench --bootstrap 127.0.0.1:19092 --records 1000000
//                     --value-bytes 200 --partitions 3 --runs 3
//
// Single-threaded driver; every wait is bounded (--timeout-s per run).

#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/str_format.h"
#include "base/absl_compat.h"
#include "base/progress_line.h"
#include "base/status_macros.h"
#include "bench/rdkafka_handles.h"
#include "engine/kafka_clients.h"
#include "engine/kafka_streams.h"
#include "engine/metrics.h"
#include "engine/streams_config.h"
#include "engine/topology.h"
#include "spdlog/spdlog.h"

extern char** environ;

namespace tributary {
namespace {

using Clock = std::chrono::steady_clock;

// The bare pipe is plain librdkafka by design (the physical limit the engine
// is measured against), so it owns librdkafka's objects itself; the fill,
// the check and topic admin use the engine's public clients.
using bench::Destroyer;
using bench::KafkaHandle;
using bench::KafkaConf;
using bench::KafkaMessage;
using bench::KafkaQueue;
using bench::PartitionList;
using bench::GroupMetadata;

absl::Status KafkaStatus(rd_kafka_resp_err_t err, std::string_view context) {
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(Sv(context), ": ", rd_kafka_err2name(err), ": ",
                                          rd_kafka_err2str(err)));
}

// Consumes `error` (may be null: OK).
absl::Status KafkaStatus(rd_kafka_error_t* error, std::string_view context) {
  if (error == nullptr) return absl::OkStatus();
  std::unique_ptr<rd_kafka_error_t, Destroyer<rd_kafka_error_destroy>> owned(error);
  return absl::InternalError(absl::StrCat(Sv(context), ": ", rd_kafka_error_name(error), ": ",
                                          rd_kafka_error_string(error)));
}

constexpr int kKeyBytes = 16;
constexpr int kBatch = 1000;  // records per consume batch (= max.poll.records)
constexpr auto kCommitInterval = std::chrono::milliseconds(100);
constexpr int kKafkaTimeoutMs = 30000;

struct Options {
  std::string bootstrap = "127.0.0.1:19092";
  int64_t records = 1'000'000;
  int value_bytes = 200;
  int partitions = 3;
  int runs = 3;
  int timeout_s = 300;  // per child run, and per fill / verify
  bool verify = true;
  std::string variants = "bare,tributary";
  std::string input;  // an existing, filled input topic: skips the fill
  bool keep_input = false;  // keep the filled input topic for reuse with --input
  bool print_metrics = false;  // tributary: print the engine's metrics at the end
  // Child modes only.
  std::string mode;
  std::string output;
  std::string group;
  std::string result_file;
};

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// A name no earlier run used: `base`-pid-epoch ms-counter.
std::string UniqueName(std::string_view base) {
  static int counter = 0;
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  return absl::StrCat(Sv(base), "-", getpid(), "-", ms, "-", counter++);
}

absl::StatusOr<KafkaHandle> NewClient(rd_kafka_type_t type,
                                      const std::map<std::string, std::string>& settings,
                                      KafkaConf conf = KafkaConf(rd_kafka_conf_new())) {
  char errstr[512];
  for (const auto& [key, value] : settings) {
    if (rd_kafka_conf_set(conf.get(), key.c_str(), value.c_str(), errstr,
                          sizeof(errstr)) != RD_KAFKA_CONF_OK) {
      return absl::InvalidArgumentError(absl::StrCat(key, "=", value, ": ", errstr));
    }
  }
  KafkaHandle handle(rd_kafka_new(type, conf.get(), errstr, sizeof(errstr)));
  if (!handle) return absl::InternalError(absl::StrCat("rd_kafka_new: ", errstr));
  conf.release();  // owned by the handle now
  return handle;
}

// --- Admin: create / delete topics -------------------------------------------

absl::Status CreateTopic(const Options& options, const std::string& topic) {
  TRIBUTARY_ASSIGN_OR_RETURN(std::unique_ptr<KafkaAdmin> admin,
                             KafkaAdmin::Open({{"bootstrap.servers", options.bootstrap}}));
  const KafkaAdmin::NewTopic topics[] = {{topic, options.partitions}};
  return admin->CreateTopics(topics, kKafkaTimeoutMs);
}

// Best effort: the benchmark's topics would otherwise fill the broker's disk.
void DeleteTopics(const Options& options, const std::vector<std::string>& names) {
  absl::StatusOr<std::unique_ptr<KafkaAdmin>> admin =
      KafkaAdmin::Open({{"bootstrap.servers", options.bootstrap}});
  if (!admin.ok()) return;
  // Swallowed on purpose: a leftover topic only costs disk.
  (void)(*admin)->DeleteTopics(names, kKafkaTimeoutMs);
}

// --- Fill and verify -----------------------------------------------------------

// `records` records, keys "key-%012d" (16 bytes), values `value_bytes` bytes of
// letters, murmur2-partitioned by an idempotent producer.
absl::Status Fill(const Options& options, const std::string& topic) {
  TRIBUTARY_ASSIGN_OR_RETURN(std::unique_ptr<KafkaProducer> producer,
                             KafkaProducer::Open({{"bootstrap.servers", options.bootstrap},
                                                  {"enable.idempotence", "true"},
                                                  {"partitioner", "murmur2_random"},
                                                  {"linger.ms", "20"},
                                                  {"batch.size", "1000000"}}));
  std::string pattern(4096 + options.value_bytes, '\0');
  uint32_t x = 12345;
  for (char& c : pattern) {
    x = x * 1103515245u + 12345u;
    c = static_cast<char>('a' + (x >> 16) % 26);
  }
  const Clock::time_point deadline = Clock::now() + std::chrono::seconds(options.timeout_s);
  char key[32];
  ProgressLine progress = ProgressLine::OnStderr("fill", options.records, "records");
  for (int64_t i = 0; i < options.records; ++i) {
    std::snprintf(key, sizeof(key), "key-%012lld",
                  static_cast<long long>(i % 1'000'000'000'000));
    const std::string_view value(pattern.data() + (i * 61) % 4096,
                                 static_cast<size_t>(options.value_bytes));
    TRIBUTARY_RETURN_IF_ERROR(producer->Send(topic, KafkaProducer::kAnyPartition,
                                             std::string_view(key, kKeyBytes), value));
    if (i % 10000 == 0) {
      producer->Poll(0);
      progress.Update(i);
      if (Clock::now() > deadline) return absl::DeadlineExceededError("fill: deadline");
    }
  }
  progress.Update(options.records);
  progress.Finish();
  const int left_ms = static_cast<int>(std::max<int64_t>(
      1, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now())
             .count()));
  TRIBUTARY_RETURN_IF_ERROR(producer->Flush(left_ms));
  if (producer->delivered() != options.records) {
    return absl::InternalError(absl::StrCat("fill: ", producer->delivered(), " of ",
                                            options.records, " acknowledged"));
  }
  return absl::OkStatus();
}

// Counts the committed records of `topic` as a read_committed reader sees
// them: reads every partition from the beginning to its end.
absl::StatusOr<int64_t> CountCommitted(const Options& options, const std::string& topic) {
  TRIBUTARY_ASSIGN_OR_RETURN(
      std::unique_ptr<KafkaReader> reader,
      KafkaReader::Open({{"bootstrap.servers", options.bootstrap},
                         {"group.id", UniqueName("passthrough-verify")},
                         {"enable.auto.commit", "false"},
                         {"enable.partition.eof", "true"}}));
  TRIBUTARY_RETURN_IF_ERROR(reader->AssignFromBeginning(topic, options.partitions));
  std::vector<bool> at_end(options.partitions, false);
  int ended = 0;
  int64_t count = 0;
  const Clock::time_point deadline = Clock::now() + std::chrono::seconds(options.timeout_s);
  absl::Status status;
  while (ended < options.partitions && status.ok()) {
    if (Clock::now() > deadline) {
      status = absl::DeadlineExceededError(
          absl::StrCat("verify ", topic, ": read ", count, " records, not at the end"));
      break;
    }
    absl::StatusOr<std::optional<ConsumedRecord>> record = reader->Poll(100);
    if (!record.ok()) {
      status = record.status();
    } else if (!record->has_value()) {
      continue;
    } else if ((*record)->end_of_partition) {
      if (!at_end[(*record)->partition]) ++ended;
      at_end[(*record)->partition] = true;
    } else {
      ++count;
      if (at_end[(*record)->partition]) --ended;
      at_end[(*record)->partition] = false;
    }
  }
  reader->Close();
  TRIBUTARY_RETURN_IF_ERROR(status);
  return count;
}

// --- Child modes: one variant each -------------------------------------------

// CPU seconds of this process's live threads: librdkafka's ("rdk:*") and
// the others (the application's).
struct ThreadCpu {
  double app_s = 0;
  double rdkafka_s = 0;
};

ThreadCpu OwnThreadCpu() {
  ThreadCpu cpu;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream in(entry.path() / "stat");
    std::string stat;
    std::getline(in, stat);  // one line
    const size_t open = stat.find('(');
    const size_t close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    const std::string comm = stat.substr(open + 1, close - open - 1);
    // Fields after the comm: state is field 3, utime 14, stime 15.
    std::istringstream rest(stat.substr(close + 2));
    std::string field;
    double utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
      if (i == 14) utime = std::atof(field.c_str());
      if (i == 15) stime = std::atof(field.c_str());
    }
    const double seconds = (utime + stime) / ticks;
    (comm.rfind("rdk:", 0) == 0 ? cpu.rdkafka_s : cpu.app_s) += seconds;
  }
  return cpu;
}

struct ChildResult {
  double active_s = 0;  // first record consumed -> last one committed, consumer closed
  double total_s = 0;   // process start -> done (includes group join)
  double tail_s = 0;    // last record consumed -> done (final commit and close)
  int64_t commits = 0;
  double commit_s = 0;  // time spent in send_offsets + commit_transaction
  double busy_s = 0;    // time in polls that returned records, and processing them
  ThreadCpu cpu_at_last;  // CPU by thread kind when the last record was consumed
  int64_t peak_rss_kib = 0;
};

int64_t OwnPeakRssKib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    int64_t kib = 0;
    if (std::sscanf(line.c_str(), "VmHWM: %lld kB", reinterpret_cast<long long*>(&kib)) ==
        1) {
      return kib;
    }
  }
  return 0;
}

absl::Status WriteResult(const Options& options, ChildResult result) {
  result.peak_rss_kib = OwnPeakRssKib();
  std::ofstream out(options.result_file);
  out << absl::StrFormat("%.6f %.6f %.6f %d %.6f %.6f %.3f %.3f %d\n", result.active_s,
                         result.total_s, result.tail_s, result.commits, result.commit_s,
                         result.busy_s, result.cpu_at_last.app_s,
                         result.cpu_at_last.rdkafka_s, result.peak_rss_kib);
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", options.result_file));
  return absl::OkStatus();
}

// The physical limit: consume a batch, produce each record in the open
// transaction, and every 100 ms send the consumed offsets and commit.
absl::Status RunBare(const Options& options) {
  const Clock::time_point start = Clock::now();
  const Clock::time_point deadline = start + std::chrono::seconds(options.timeout_s);
  TRIBUTARY_ASSIGN_OR_RETURN(
      KafkaHandle consumer,
      NewClient(RD_KAFKA_CONSUMER,
                {{"bootstrap.servers", options.bootstrap},
                 {"group.id", options.group},
                 {"client.id", options.group + "-consumer"},
                 {"enable.auto.commit", "false"},
                 {"enable.auto.offset.store", "false"},
                 {"auto.offset.reset", "earliest"},
                 {"isolation.level", "read_committed"},
                 {"session.timeout.ms", "10000"},
                 {"heartbeat.interval.ms", "1000"}}));
  rd_kafka_poll_set_consumer(consumer.get());

  struct Deliveries {
    rd_kafka_resp_err_t first_error = RD_KAFKA_RESP_ERR_NO_ERROR;
  } deliveries;
  KafkaConf producer_conf(rd_kafka_conf_new());
  rd_kafka_conf_set_opaque(producer_conf.get(), &deliveries);
  rd_kafka_conf_set_dr_msg_cb(
      producer_conf.get(), [](rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
        auto* d = static_cast<Deliveries*>(opaque);
        if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR &&
            d->first_error == RD_KAFKA_RESP_ERR_NO_ERROR) {
          d->first_error = m->err;
        }
      });
  // The same producer settings the engine's stream thread uses.
  TRIBUTARY_ASSIGN_OR_RETURN(KafkaHandle producer,
                             NewClient(RD_KAFKA_PRODUCER,
                                       {{"bootstrap.servers", options.bootstrap},
                                        {"client.id", options.group + "-producer"},
                                        {"transactional.id", options.group + "-txn"},
                                        {"enable.idempotence", "true"},
                                        {"partitioner", "murmur2_random"},
                                        {"linger.ms", "5"},
                                        {"transaction.timeout.ms", "10000"}},
                                       std::move(producer_conf)));
  TRIBUTARY_RETURN_IF_ERROR(KafkaStatus(
      rd_kafka_init_transactions(producer.get(), kKafkaTimeoutMs), "init_transactions"));
  rd_kafka_topic_t* out = rd_kafka_topic_new(producer.get(), options.output.c_str(), nullptr);
  std::unique_ptr<rd_kafka_topic_t, decltype(&rd_kafka_topic_destroy)> out_owner(
      out, &rd_kafka_topic_destroy);

  // --input may name several topics (comma-separated), as the order
  // aggregation's three; the output has --partitions partitions.
  const std::vector<std::string> inputs = absl::StrSplit(options.input, ',');
  PartitionList topics(rd_kafka_topic_partition_list_new(static_cast<int>(inputs.size())));
  for (const std::string& input : inputs) {
    rd_kafka_topic_partition_list_add(topics.get(), input.c_str(), RD_KAFKA_PARTITION_UA);
  }
  TRIBUTARY_RETURN_IF_ERROR(
      KafkaStatus(rd_kafka_subscribe(consumer.get(), topics.get()), "subscribe"));
  KafkaQueue queue(rd_kafka_queue_get_consumer(consumer.get()));

  std::vector<std::vector<int64_t>> next_offset(inputs.size());  // [input][partition]
  // The input index of a message's topic handle (a handful of topics: a scan).
  std::vector<std::pair<const rd_kafka_topic_t*, size_t>> input_of;
  auto input_index = [&](const rd_kafka_message_t* m) {
    for (const auto& [handle, index] : input_of) {
      if (handle == m->rkt) return index;
    }
    const std::string_view name = rd_kafka_topic_name(m->rkt);
    const size_t index = static_cast<size_t>(
        std::find(inputs.begin(), inputs.end(), name) - inputs.begin());
    input_of.emplace_back(m->rkt, index);
    return index;
  };
  std::vector<rd_kafka_message_t*> batch(kBatch);
  int64_t copied = 0;
  bool in_transaction = false;
  std::optional<Clock::time_point> first;
  Clock::time_point last_commit = Clock::now();

  int64_t commits = 0;
  Clock::duration commit_time{};
  Clock::duration busy_time{};
  auto commit = [&]() -> absl::Status {
    const Clock::time_point commit_start = Clock::now();
    PartitionList offsets(rd_kafka_topic_partition_list_new(options.partitions));
    for (size_t t = 0; t < inputs.size(); ++t) {
      for (size_t p = 0; p < next_offset[t].size(); ++p) {
        if (next_offset[t][p] < 0) continue;
        rd_kafka_topic_partition_list_add(offsets.get(), inputs[t].c_str(),
                                          static_cast<int32_t>(p))
            ->offset = next_offset[t][p];
      }
    }
    GroupMetadata metadata(rd_kafka_consumer_group_metadata(consumer.get()));
    TRIBUTARY_RETURN_IF_ERROR(KafkaStatus(
        rd_kafka_send_offsets_to_transaction(producer.get(), offsets.get(), metadata.get(),
                                             kKafkaTimeoutMs),
        "send_offsets_to_transaction"));
    TRIBUTARY_RETURN_IF_ERROR(KafkaStatus(
        rd_kafka_commit_transaction(producer.get(), kKafkaTimeoutMs), "commit_transaction"));
    in_transaction = false;
    last_commit = Clock::now();
    ++commits;
    commit_time += last_commit - commit_start;
    return KafkaStatus(deliveries.first_error, "delivery");
  };

  Clock::time_point last = start;
  ThreadCpu cpu_at_last;
  ProgressLine progress = ProgressLine::OnStderr("bare", options.records, "records");
  while (copied < options.records) {
    progress.Update(copied);
    if (Clock::now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat("bare pipe: copied ", copied, " of ",
                                                      options.records, " before the deadline"));
    }
    const Clock::time_point poll_start = Clock::now();
    ssize_t n = rd_kafka_consume_batch_queue(queue.get(), 10, batch.data(), batch.size());
    if (n < 0) return KafkaStatus(rd_kafka_last_error(), "consume_batch_queue");
    absl::Status status;
    for (ssize_t i = 0; i < n; ++i) {
      KafkaMessage m(batch[i]);
      // Release the rest of the batch after an error or past N records.
      if (!status.ok() || copied >= options.records) continue;
      if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) continue;
        status = KafkaStatus(m->err, "consume");
        continue;
      }
      if (!in_transaction) {
        status = KafkaStatus(rd_kafka_begin_transaction(producer.get()), "begin_transaction");
        if (!status.ok()) continue;
        in_transaction = true;
      }
      if (!first) first = Clock::now();
      // Headers are part of the record: a faithful copy keeps them (the
      // producer takes ownership of a copy only when produce succeeds).
      rd_kafka_headers_t* headers = nullptr;
      if (rd_kafka_message_headers(m.get(), &headers) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        headers = nullptr;
      }
      while (true) {
        rd_kafka_headers_t* copy = headers ? rd_kafka_headers_copy(headers) : nullptr;
        rd_kafka_resp_err_t err = rd_kafka_producev(
            producer.get(), RD_KAFKA_V_RKT(out), RD_KAFKA_V_PARTITION(RD_KAFKA_PARTITION_UA),
            RD_KAFKA_V_KEY(m->key, m->key_len), RD_KAFKA_V_VALUE(m->payload, m->len),
            RD_KAFKA_V_TIMESTAMP(rd_kafka_message_timestamp(m.get(), nullptr)),
            RD_KAFKA_V_HEADERS(copy), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
        if (copy) rd_kafka_headers_destroy(copy);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || Clock::now() > deadline) {
          status = KafkaStatus(err, "produce");
          break;
        }
        rd_kafka_poll(producer.get(), 10);
      }
      const size_t t = input_index(m.get());
      if (t < inputs.size()) {
        std::vector<int64_t>& offsets = next_offset[t];
        const auto p = static_cast<size_t>(m->partition);
        if (p >= offsets.size()) offsets.resize(p + 1, -1);
        offsets[p] = m->offset + 1;
      }
      ++copied;
    }
    TRIBUTARY_RETURN_IF_ERROR(status);
    if (copied >= options.records) {
      last = Clock::now();
      cpu_at_last = OwnThreadCpu();
    }
    rd_kafka_poll(producer.get(), 0);  // serve delivery reports
    if (n > 0 && first) busy_time += Clock::now() - poll_start;
    if (in_transaction &&
        (copied >= options.records || Clock::now() - last_commit >= kCommitInterval)) {
      TRIBUTARY_RETURN_IF_ERROR(commit());
    }
  }
  rd_kafka_consumer_close(consumer.get());
  const Clock::time_point done = Clock::now();
  return WriteResult(options, {Seconds(done - first.value_or(start)), Seconds(done - start),
                               Seconds(done - last), commits, Seconds(commit_time),
                               Seconds(busy_time), cpu_at_last});
}

// Sum of the engine's process-total counters over its stream threads.
int64_t ProcessedTotal(Metrics& metrics) {
  int64_t total = 0;
  for (const MetricSample& sample : metrics.Snapshot()) {
    if (sample.name == metric_names::kProcessTotal) total += sample.value;
  }
  return total;
}

// Tributary: source -> sink under exactly_once_v2, commit.interval.ms=100.
absl::Status RunTributary(const Options& options) {
  const Clock::time_point start = Clock::now();
  const Clock::time_point deadline = start + std::chrono::seconds(options.timeout_s);
  const std::string state_dir =
      (std::filesystem::temp_directory_path() / options.group).string();
  // The engine does not apply log.level itself (yet); keep its INFO lines out.
  spdlog::set_level(spdlog::level::warn);
  Topology topology;
  // One source -> sink sub-topology per input topic: topics of one
  // sub-topology must be co-partitioned, and the inputs need not be.
  const std::vector<std::string> inputs = absl::StrSplit(options.input, ',');
  for (size_t t = 0; t < inputs.size(); ++t) {
    const std::string source = absl::StrCat("source-", t);
    topology.AddSource(source, {inputs[t]})
        .AddSink(absl::StrCat("sink-", t), options.output, {source});
  }
  TRIBUTARY_ASSIGN_OR_RETURN(StreamsConfig config,
                             StreamsConfig::FromMap({
                                 {"application.id", options.group},
                                 {"bootstrap.servers", options.bootstrap},
                                 {"processing.guarantee", "exactly_once_v2"},
                                 {"commit.interval.ms", "100"},
                                 {"num.stream.threads", "1"},
                                 {"state.dir", state_dir},
                             }));
  TRIBUTARY_ASSIGN_OR_RETURN(std::unique_ptr<KafkaStreams> streams,
                             KafkaStreams::Open(std::move(topology), std::move(config)));
  TRIBUTARY_RETURN_IF_ERROR(streams->Start());
  std::optional<Clock::time_point> first;
  Clock::time_point last = start;
  ThreadCpu cpu_at_last;
  absl::Status status;
  ProgressLine progress = ProgressLine::OnStderr("tributary", options.records, "records");
  while (true) {
    const int64_t processed = ProcessedTotal(streams->metrics());
    progress.Update(processed);
    if (processed > 0 && !first) first = Clock::now();
    if (processed >= options.records) {
      last = Clock::now();
      cpu_at_last = OwnThreadCpu();
      break;
    }
    if ((streams->state() == KafkaStreams::State::kPendingError ||
         streams->state() == KafkaStreams::State::kError)) {
      status = streams->error();
      break;
    }
    if (Clock::now() > deadline) {
      status = absl::DeadlineExceededError(absl::StrCat(
          "tributary: processed ", processed, " of ", options.records, " before the deadline"));
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  // Close commits the last transaction; on error it only releases.
  absl::Status closed = streams->Close();
  const Clock::time_point done = Clock::now();
  if (options.print_metrics) {
    std::fprintf(stderr, "%s", streams->metrics().ToString().c_str());
  }
  int64_t commits = 0;
  double commit_s = 0;
  double busy_s = 0;
  for (const MetricSample& sample : streams->metrics().Snapshot()) {
    const double sum = absl::ToDoubleSeconds(sample.latency.mean) *
                       static_cast<double>(sample.latency.count);
    if (sample.name == metric_names::kCommitTotal) commits += sample.value;
    if (sample.name == metric_names::kCommitLatency) commit_s += sum;
    // The stream thread records batches that returned records (first poll's
    // wait included), as the bare pipe's busy time does.
    if (sample.name == "process-batch-latency") busy_s += sum;
  }
  streams.reset();
  std::error_code ec;
  std::filesystem::remove_all(state_dir, ec);
  TRIBUTARY_RETURN_IF_ERROR(status);
  TRIBUTARY_RETURN_IF_ERROR(closed);
  return WriteResult(options, {Seconds(done - first.value_or(start)), Seconds(done - start),
                               Seconds(done - last), commits, commit_s, busy_s, cpu_at_last});
}

// --- Driver --------------------------------------------------------------------

struct RunResult {
  std::string variant;
  int run = 0;
  double active_s = 0;
  double total_s = 0;
  double tail_s = 0;
  int64_t commits = 0;
  double commit_s = 0;
  double busy_s = 0;
  double app_cpu_s = 0;      // application threads, until the last record
  double rdkafka_cpu_s = 0;  // librdkafka's threads, until the last record
  double cpu_s = 0;
  double peak_rss_mib = 0;
  double load1 = 0;  // 1-minute load average when the run started
};

double Load1() {
  double load[1] = {0};
  return getloadavg(load, 1) == 1 ? load[0] : -1;
}

// Runs this program with `args` as a child, waits (bounded), and combines
// its report with its rusage.
absl::StatusOr<RunResult> RunChild(const Options& options, const std::string& variant,
                                   const std::string& input, int run) {
  const std::string output = UniqueName(absl::StrCat("passthrough-out-", variant));
  const std::string group = UniqueName(absl::StrCat("passthrough-", variant));
  const std::string result_file =
      (std::filesystem::temp_directory_path() / (group + ".result")).string();
  TRIBUTARY_RETURN_IF_ERROR(CreateTopic(options, output));

  std::error_code ec;
  const std::string self = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  if (ec) return absl::InternalError(absl::StrCat("/proc/self/exe: ", ec.message()));
  std::vector<std::string> args = {
      self, "--mode", variant, "--bootstrap", options.bootstrap,
      "--records", absl::StrCat(options.records), "--partitions",
      absl::StrCat(options.partitions), "--timeout-s", absl::StrCat(options.timeout_s),
      "--input", input, "--output", output, "--group", group, "--result-file", result_file};
  if (options.print_metrics) args.push_back("--metrics");
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  RunResult result;
  result.variant = variant;
  result.run = run;
  result.load1 = Load1();
  pid_t pid = 0;
  if (int err = posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv.data(), environ);
      err != 0) {
    return absl::InternalError(absl::StrCat("posix_spawn: ", std::strerror(err)));
  }
  // A little more than the child's own deadline, so that it reports first.
  const Clock::time_point deadline =
      Clock::now() + std::chrono::seconds(options.timeout_s + 30);
  int wait_status = 0;
  struct rusage usage {};
  while (true) {
    pid_t done = wait4(pid, &wait_status, WNOHANG, &usage);
    if (done == pid) break;
    if (done < 0) return absl::InternalError(absl::StrCat("wait4: ", std::strerror(errno)));
    if (Clock::now() > deadline) {
      kill(pid, SIGKILL);
      wait4(pid, &wait_status, 0, &usage);
      return absl::DeadlineExceededError(absl::StrCat(
          variant, " run ", run, " still running after ", options.timeout_s + 30,
          " s; killed"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!WIFEXITED(wait_status) || WEXITSTATUS(wait_status) != 0) {
    return absl::InternalError(absl::StrCat(variant, " run ", run, " failed (wait status ",
                                            wait_status, "); see its message above"));
  }
  std::ifstream in(result_file);
  int64_t rss_kib = 0;
  if (!(in >> result.active_s >> result.total_s >> result.tail_s >> result.commits >> result.commit_s >>
        result.busy_s >> result.app_cpu_s >> result.rdkafka_cpu_s >> rss_kib)) {
    return absl::InternalError(absl::StrCat("unreadable result file ", result_file));
  }
  in.close();
  std::filesystem::remove(result_file);
  result.peak_rss_mib = static_cast<double>(rss_kib) / 1024.0;
  result.cpu_s = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                 static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;

  if (options.verify) {
    TRIBUTARY_ASSIGN_OR_RETURN(int64_t committed, CountCommitted(options, output));
    if (committed != options.records) {
      return absl::DataLossError(absl::StrCat(variant, " run ", run, ": output ", output,
                                              " holds ", committed, " committed records, want ",
                                              options.records));
    }
  }
  DeleteTopics(options, {output});
  return result;
}

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t mid = values.size() / 2;
  return values.size() % 2 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
}

struct Summary {
  double records_per_s = 0;
  double mb_per_s = 0;
  double cpu_s_per_m = 0;
  double peak_rss_mib = 0;
  double active_s = 0;
};

Summary Summarize(const Options& options, const std::vector<RunResult>& runs,
                  const std::string& variant) {
  std::vector<double> rate, mb, cpu, rss, active;
  const double bytes = static_cast<double>(options.records) * (kKeyBytes + options.value_bytes);
  for (const RunResult& r : runs) {
    if (r.variant != variant) continue;
    rate.push_back(static_cast<double>(options.records) / r.active_s);
    mb.push_back(bytes / r.active_s / 1e6);
    cpu.push_back(r.cpu_s / (static_cast<double>(options.records) / 1e6));
    rss.push_back(r.peak_rss_mib);
    active.push_back(r.active_s);
  }
  return {Median(rate), Median(mb), Median(cpu), Median(rss), Median(active)};
}

int Drive(const Options& options) {
  std::vector<std::string> variants;
  for (std::string_view v : {"bare", "tributary"}) {
    if (options.variants.find(v) != std::string::npos) variants.emplace_back(v);
  }
  if (variants.empty()) {
    std::fprintf(stderr, "--variants: expected bare, tributary or both\n");
    return 2;
  }
  std::string input = options.input;
  if (input.empty()) {
    input = UniqueName("passthrough-in");
    std::printf("filling %s: %lld records, %d-byte keys, %d-byte values, %d partitions\n",
                input.c_str(), static_cast<long long>(options.records), kKeyBytes,
                options.value_bytes, options.partitions);
    std::fflush(stdout);
    const Clock::time_point start = Clock::now();
    absl::Status status = CreateTopic(options, input);
    if (status.ok()) status = Fill(options, input);
    if (!status.ok()) {
      std::fprintf(stderr, "fill failed: %s\n", status.ToString().c_str());
      DeleteTopics(options, {input});
      return 1;
    }
    std::printf("filled in %.1f s\n", Seconds(Clock::now() - start));
  }

  std::vector<RunResult> runs;
  int exit_code = 0;
  for (int run = 0; run < options.runs && exit_code == 0; ++run) {
    std::vector<std::string> order = variants;
    if (run % 2 == 1) std::reverse(order.begin(), order.end());
    for (const std::string& variant : order) {
      std::fflush(stdout);
      absl::StatusOr<RunResult> result = RunChild(options, variant, input, run);
      if (!result.ok()) {
        std::fprintf(stderr, "passthrough_bench: %s\n", result.status().ToString().c_str());
        exit_code = 1;
        break;
      }
      std::printf(
          "run %d %-9s %6.2f s active (%.2f s polling+processing batches, %lld commits "
          "%.2f s, final commit+close %.2f s), %.2f s total, %.0f rec/s, %.2f CPU-s "
          "(app threads %.2f, librdkafka threads %.2f), %.1f MiB peak RSS, load %.2f\n",
          run, variant.c_str(), result->active_s, result->busy_s,
          static_cast<long long>(result->commits), result->commit_s, result->tail_s,
          result->total_s,
          static_cast<double>(options.records) / result->active_s, result->cpu_s,
          result->app_cpu_s, result->rdkafka_cpu_s, result->peak_rss_mib, result->load1);
      runs.push_back(*result);
    }
  }
  if (options.input.empty()) {
    if (options.keep_input) {
      std::printf("kept input topic %s (reuse with --input)\n", input.c_str());
    } else {
      DeleteTopics(options, {input});
    }
  }
  if (exit_code != 0) return exit_code;

  std::map<std::string, Summary> summary;
  for (const std::string& v : variants) summary[v] = Summarize(options, runs, v);
  double load_min = 1e9, load_max = 0;
  for (const RunResult& r : runs) {
    load_min = std::min(load_min, r.load1);
    load_max = std::max(load_max, r.load1);
  }
  std::printf("\nmedians of %d run(s), %lld records x %d bytes (key %d + value %d), %d "
              "partitions, 1-min load %.2f..%.2f\n",
              options.runs, static_cast<long long>(options.records),
              kKeyBytes + options.value_bytes, kKeyBytes, options.value_bytes,
              options.partitions, load_min, load_max);
  std::printf("%-10s %12s %8s %14s %14s\n", "variant", "records/s", "MB/s", "CPU-s per 1M",
              "peak RSS MiB");
  for (const std::string& v : variants) {
    const Summary& s = summary[v];
    std::printf("%-10s %12.0f %8.1f %14.2f %14.1f\n", v.c_str(), s.records_per_s, s.mb_per_s,
                s.cpu_s_per_m, s.peak_rss_mib);
  }
  std::string ratios;
  if (summary.count("bare") && summary.count("tributary")) {
    const Summary& b = summary["bare"];
    const Summary& t = summary["tributary"];
    std::printf("tributary/bare: records/s %.2f, CPU per record %.2f, peak RSS %.2f\n",
                t.records_per_s / b.records_per_s, t.cpu_s_per_m / b.cpu_s_per_m,
                t.peak_rss_mib / b.peak_rss_mib);
    ratios = absl::StrFormat(
        ",\"ratio\":{\"records_per_s\":%.4f,\"cpu_per_record\":%.4f,\"peak_rss\":%.4f}",
        t.records_per_s / b.records_per_s, t.cpu_s_per_m / b.cpu_s_per_m,
        t.peak_rss_mib / b.peak_rss_mib);
  }
  std::string json = absl::StrFormat(
      "{\"bench\":\"passthrough\",\"records\":%d,\"key_bytes\":%d,\"value_bytes\":%d,"
      "\"partitions\":%d,\"runs\":%d,\"load1_min\":%.2f,\"load1_max\":%.2f,\"variants\":{",
      options.records, kKeyBytes, options.value_bytes, options.partitions, options.runs,
      load_min, load_max);
  bool comma = false;
  for (const std::string& v : variants) {
    const Summary& s = summary[v];
    absl::StrAppend(&json, comma ? "," : "",
                    absl::StrFormat("\"%s\":{\"records_per_s\":%.1f,\"mb_per_s\":%.2f,"
                                    "\"cpu_s_per_million\":%.3f,\"peak_rss_mib\":%.1f,"
                                    "\"active_s\":%.3f}",
                                    v, s.records_per_s, s.mb_per_s, s.cpu_s_per_m,
                                    s.peak_rss_mib, s.active_s));
    comma = true;
  }
  absl::StrAppend(&json, "}", ratios, "}");
  std::printf("%s\n", json.c_str());
  return 0;
}

void Usage() {
  std::fprintf(stderr,
               "usage: passthrough_bench [--bootstrap HOST:PORT] [--records N] "
               "[--value-bytes B]\n"
               "         [--partitions P] [--runs R] [--timeout-s S] "
               "[--variants bare,tributary]\n"
               "         [--input EXISTING_FILLED_TOPIC[,TOPIC...]] [--no-verify] [--keep-input] [--metrics]\n"
               "       passthrough_bench --mode bare|tributary --input T --output T "
               "--group G --result-file F ...\n");
}

// Parses the flags; nullopt (after printing why) on a bad one.
std::optional<Options> ParseFlags(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--no-verify") {
      options.verify = false;
      continue;
    }
    if (flag == "--metrics") {
      options.print_metrics = true;
      continue;
    }
    if (flag == "--keep-input") {
      options.keep_input = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "%s: missing value\n", flag.c_str());
      return std::nullopt;
    }
    const std::string value = argv[++i];
    auto positive = [&](auto* out) {
      int64_t n = 0;
      if (!absl::SimpleAtoi(value, &n) || n < 1) {
        std::fprintf(stderr, "%s: expected a positive integer, got '%s'\n", flag.c_str(),
                     value.c_str());
        return false;
      }
      *out = static_cast<std::remove_pointer_t<decltype(out)>>(n);
      return true;
    };
    bool ok = true;
    if (flag == "--bootstrap") {
      options.bootstrap = value;
    } else if (flag == "--records") {
      ok = positive(&options.records);
    } else if (flag == "--value-bytes") {
      ok = positive(&options.value_bytes);
    } else if (flag == "--partitions") {
      ok = positive(&options.partitions);
    } else if (flag == "--runs") {
      ok = positive(&options.runs);
    } else if (flag == "--timeout-s") {
      ok = positive(&options.timeout_s);
    } else if (flag == "--variants") {
      options.variants = value;
    } else if (flag == "--input") {
      options.input = value;
    } else if (flag == "--mode") {
      options.mode = value;
    } else if (flag == "--output") {
      options.output = value;
    } else if (flag == "--group") {
      options.group = value;
    } else if (flag == "--result-file") {
      options.result_file = value;
    } else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      ok = false;
    }
    if (!ok) return std::nullopt;
  }
  return options;
}

}  // namespace
}  // namespace tributary

int main(int argc, char** argv) {
  std::optional<tributary::Options> options = tributary::ParseFlags(argc, argv);
  if (!options) {
    tributary::Usage();
    return 2;
  }
  if (options->mode.empty()) return tributary::Drive(*options);
  if (options->input.empty() || options->output.empty() || options->group.empty() ||
      options->result_file.empty()) {
    std::fprintf(stderr, "--mode needs --input, --output, --group and --result-file\n");
    return 2;
  }
  absl::Status status;
  if (options->mode == "bare") {
    status = tributary::RunBare(*options);
  } else if (options->mode == "tributary") {
    status = tributary::RunTributary(*options);
  } else {
    std::fprintf(stderr, "--mode: expected bare or tributary\n");
    return 2;
  }
  if (!status.ok()) {
    std::fprintf(stderr, "passthrough_bench --mode %s: %s\n", options->mode.c_str(),
                 status.ToString().c_str());
    return 1;
  }
  return 0;
}
