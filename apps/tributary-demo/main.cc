// tributary-demo: the embedded-default main job until the CDC aggregation
// lands. On librdkafka's in-process mock cluster it produces payments, runs a
// consume -> sum-per-account -> produce pipeline inside Kafka transactions
// (input offsets committed with send_offsets_to_transaction), reads the
// output back with read_committed and checks every balance.
#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/internal/rdkafka_handles.h"
#include "engine/mock_cluster.h"
#include "state/status_macros.h"

ABSL_FLAG(int, records, 20000, "payments to produce and process");
ABSL_FLAG(int, accounts, 50, "distinct account keys");
ABSL_FLAG(int, transaction_size, 1000, "records per Kafka transaction");

namespace tributary {
namespace {

using internal::KafkaConf;
using internal::KafkaHandle;
using internal::KafkaMessage;
using internal::KafkaStatus;

constexpr char kInput[] = "payments";
constexpr char kOutput[] = "balances";
constexpr int kPartitions = 3;
constexpr int kTimeoutMs = 30000;

absl::StatusOr<KafkaHandle> NewClient(
    rd_kafka_type_t type, const std::map<std::string, std::string>& settings) {
  KafkaConf conf(rd_kafka_conf_new());
  char errstr[512];
  for (const auto& [key, value] : settings) {
    if (rd_kafka_conf_set(conf.get(), key.c_str(), value.c_str(), errstr,
                          sizeof(errstr)) != RD_KAFKA_CONF_OK) {
      return absl::InvalidArgumentError(absl::StrCat(key, ": ", errstr));
    }
  }
  KafkaHandle handle(rd_kafka_new(type, conf.get(), errstr, sizeof(errstr)));
  if (!handle) return absl::InternalError(errstr);
  conf.release();  // owned by the handle now
  return handle;
}

absl::Status Produce(rd_kafka_t* producer, const char* topic, std::string_view key,
                     std::string_view value) {
  return KafkaStatus(
      rd_kafka_producev(producer, RD_KAFKA_V_TOPIC(topic),
                        RD_KAFKA_V_KEY(key.data(), key.size()),
                        RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
      "produce");
}

absl::Status ProduceInput(const std::string& bootstrap, int records, int accounts,
                          std::map<std::string, int64_t>& expected) {
  TRIBUTARY_ASSIGN_OR_RETURN(
      KafkaHandle producer,
      NewClient(RD_KAFKA_PRODUCER,
                {{"bootstrap.servers", bootstrap}, {"enable.idempotence", "true"}}));
  for (int i = 0; i < records; ++i) {
    std::string key = absl::StrCat("account-", i % accounts);
    int64_t cents = 100 + (i * 7919) % 10000;
    expected[key] += cents;
    absl::Status status;
    while (true) {
      status = Produce(producer.get(), kInput, key, absl::StrCat(cents));
      if (status.ok() || !absl::IsInternal(status)) break;
      rd_kafka_poll(producer.get(), 10);  // local queue full: serve delivery reports
    }
    TRIBUTARY_RETURN_IF_ERROR(status);
  }
  return KafkaStatus(rd_kafka_flush(producer.get(), kTimeoutMs), "flush input");
}

struct PipelineStats {
  int64_t consumed = 0;
  int64_t transactions = 0;
};

absl::Status CommitTransaction(rd_kafka_t* consumer, rd_kafka_t* producer) {
  internal::PartitionList positions;
  {
    rd_kafka_topic_partition_list_t* assignment = nullptr;
    TRIBUTARY_RETURN_IF_ERROR(
        KafkaStatus(rd_kafka_assignment(consumer, &assignment), "assignment"));
    positions.reset(assignment);
  }
  TRIBUTARY_RETURN_IF_ERROR(
      KafkaStatus(rd_kafka_position(consumer, positions.get()), "position"));
  internal::GroupMetadata metadata(rd_kafka_consumer_group_metadata(consumer));
  TRIBUTARY_RETURN_IF_ERROR(KafkaStatus(
      rd_kafka_send_offsets_to_transaction(producer, positions.get(), metadata.get(),
                                           kTimeoutMs),
      "send_offsets_to_transaction"));
  return KafkaStatus(rd_kafka_commit_transaction(producer, kTimeoutMs),
                     "commit_transaction");
}

absl::StatusOr<PipelineStats> RunPipeline(const std::string& bootstrap, int records,
                                          int transaction_size) {
  TRIBUTARY_ASSIGN_OR_RETURN(
      KafkaHandle consumer,
      NewClient(RD_KAFKA_CONSUMER, {{"bootstrap.servers", bootstrap},
                                    {"group.id", "tributary-demo"},
                                    {"isolation.level", "read_committed"},
                                    {"enable.auto.commit", "false"},
                                    {"auto.offset.reset", "earliest"}}));
  rd_kafka_poll_set_consumer(consumer.get());
  TRIBUTARY_ASSIGN_OR_RETURN(
      KafkaHandle producer,
      NewClient(RD_KAFKA_PRODUCER, {{"bootstrap.servers", bootstrap},
                                    {"transactional.id", "tributary-demo-0"}}));
  TRIBUTARY_RETURN_IF_ERROR(
      KafkaStatus(rd_kafka_init_transactions(producer.get(), kTimeoutMs), "init"));

  internal::PartitionList topics(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(topics.get(), kInput, RD_KAFKA_PARTITION_UA);
  TRIBUTARY_RETURN_IF_ERROR(
      KafkaStatus(rd_kafka_subscribe(consumer.get(), topics.get()), "subscribe"));

  std::map<std::string, int64_t> balances;
  PipelineStats stats;
  int in_transaction = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (stats.consumed < records) {
    if (std::chrono::steady_clock::now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "pipeline consumed only ", stats.consumed, " of ", records, " records"));
    }
    KafkaMessage message(rd_kafka_consumer_poll(consumer.get(), 100));
    if (!message) continue;
    if (message->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) continue;
    TRIBUTARY_RETURN_IF_ERROR(KafkaStatus(message->err, "consume"));
    if (in_transaction == 0) {
      TRIBUTARY_RETURN_IF_ERROR(
          KafkaStatus(rd_kafka_begin_transaction(producer.get()), "begin"));
    }
    std::string key(static_cast<const char*>(message->key), message->key_len);
    int64_t cents = 0;
    if (!absl::SimpleAtoi(absl::string_view(static_cast<const char*>(message->payload),
                                           message->len),
                          &cents)) {
      return absl::DataLossError(absl::StrCat("bad amount at offset ", message->offset));
    }
    int64_t balance = balances[key] += cents;
    TRIBUTARY_RETURN_IF_ERROR(
        Produce(producer.get(), kOutput, key, absl::StrCat(balance)));
    ++stats.consumed;
    if (++in_transaction == transaction_size || stats.consumed == records) {
      TRIBUTARY_RETURN_IF_ERROR(CommitTransaction(consumer.get(), producer.get()));
      ++stats.transactions;
      in_transaction = 0;
    }
  }
  rd_kafka_consumer_close(consumer.get());
  return stats;
}

absl::StatusOr<std::map<std::string, int64_t>> ReadBalances(const std::string& bootstrap,
                                                            int records,
                                                            int64_t& read) {
  TRIBUTARY_ASSIGN_OR_RETURN(
      KafkaHandle consumer,
      NewClient(RD_KAFKA_CONSUMER, {{"bootstrap.servers", bootstrap},
                                    {"group.id", "tributary-demo-verify"},
                                    {"isolation.level", "read_committed"},
                                    {"auto.offset.reset", "earliest"}}));
  rd_kafka_poll_set_consumer(consumer.get());
  internal::PartitionList topics(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(topics.get(), kOutput, RD_KAFKA_PARTITION_UA);
  TRIBUTARY_RETURN_IF_ERROR(
      KafkaStatus(rd_kafka_subscribe(consumer.get(), topics.get()), "subscribe"));
  std::map<std::string, int64_t> latest;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (read < records && std::chrono::steady_clock::now() < deadline) {
    KafkaMessage message(rd_kafka_consumer_poll(consumer.get(), 100));
    if (!message || message->err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
    int64_t balance = 0;
    (void)absl::SimpleAtoi(
        absl::string_view(static_cast<const char*>(message->payload), message->len),
        &balance);
    latest[std::string(static_cast<const char*>(message->key), message->key_len)] =
        balance;
    ++read;
  }
  rd_kafka_consumer_close(consumer.get());
  return latest;
}

int Run() {
  const int records = absl::GetFlag(FLAGS_records);
  const int accounts = absl::GetFlag(FLAGS_accounts);
  auto cluster = MockCluster::Start(1);
  if (!cluster.ok()) {
    std::fprintf(stderr, "error: %s\n", cluster.status().ToString().c_str());
    return 1;
  }
  const std::string& bootstrap = (*cluster)->bootstrap_servers();
  for (const char* topic : {kInput, kOutput}) {
    if (absl::Status s = (*cluster)->CreateTopic(topic, kPartitions); !s.ok()) {
      std::fprintf(stderr, "error: %s\n", s.ToString().c_str());
      return 1;
    }
  }
  std::printf("tributary-demo: embedded mock cluster at %s\n", bootstrap.c_str());

  std::map<std::string, int64_t> expected;
  if (absl::Status s = ProduceInput(bootstrap, records, accounts, expected); !s.ok()) {
    std::fprintf(stderr, "error producing input: %s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("produced %d payments for %d accounts to '%s' (%d partitions)\n",
              records, accounts, kInput, kPartitions);

  auto start = std::chrono::steady_clock::now();
  auto stats = RunPipeline(bootstrap, records, absl::GetFlag(FLAGS_transaction_size));
  if (!stats.ok()) {
    std::fprintf(stderr, "error in pipeline: %s\n", stats.status().ToString().c_str());
    return 1;
  }
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("processed %lld records in %lld Kafka transactions in %.2f s (%.0f records/s)\n",
              static_cast<long long>(stats->consumed),
              static_cast<long long>(stats->transactions), seconds,
              stats->consumed / seconds);

  int64_t read = 0;
  auto balances = ReadBalances(bootstrap, records, read);
  if (!balances.ok()) {
    std::fprintf(stderr, "error reading output: %s\n",
                 balances.status().ToString().c_str());
    return 1;
  }
  int wrong = 0;
  for (const auto& [account, cents] : expected) {
    auto it = balances->find(account);
    if (it == balances->end() || it->second != cents) ++wrong;
  }
  std::printf("read back %lld balance updates from '%s' with read_committed\n",
              static_cast<long long>(read), kOutput);
  std::printf("e.g. %s = %lld cents, %s = %lld cents\n", expected.begin()->first.c_str(),
              static_cast<long long>((*balances)[expected.begin()->first]),
              expected.rbegin()->first.c_str(),
              static_cast<long long>((*balances)[expected.rbegin()->first]));
  if (read != records || wrong != 0) {
    std::fprintf(stderr, "FAILED: %lld updates (want %d), %d wrong balances\n",
                 static_cast<long long>(read), records, wrong);
    return 1;
  }
  std::printf("OK: every one of %d balances matches the input exactly\n", accounts);
  return 0;
}

}  // namespace
}  // namespace tributary

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return tributary::Run();
}
