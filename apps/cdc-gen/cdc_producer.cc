#include "apps/cdc-gen/cdc_producer.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <deque>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"
#include "base/status_macros.h"

namespace tributary::cdcgen {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::array<CdcTopic, 3> kTopics = {
    CdcTopic::kTransaction, CdcTopic::kPurchaseOrder, CdcTopic::kOrderLine};

// Paces source transactions at `rate` per second. Tokens accrue
// continuously up to a small burst; waiting serves the producer's delivery
// reports.
class TokenBucket {
 public:
  explicit TokenBucket(double rate)
      : rate_(rate), burst_(std::max(1.0, rate / 50)), last_(Clock::now()) {}

  void Acquire(KafkaProducer& producer) {
    if (rate_ <= 0) return;
    while (true) {
      const Clock::time_point now = Clock::now();
      tokens_ = std::min(
          burst_,
          tokens_ + std::chrono::duration<double>(now - last_).count() * rate_);
      last_ = now;
      if (tokens_ >= 1) break;
      const int wait_ms = std::max(
          1, static_cast<int>(std::ceil((1 - tokens_) / rate_ * 1000)));
      producer.Poll(wait_ms);
    }
    tokens_ -= 1;
  }

 private:
  double rate_;
  double burst_;
  double tokens_ = 1;
  Clock::time_point last_;
};

// Sends the records of one ProduceTransactions call.
class Sender {
 public:
  Sender(KafkaProducer& producer, ProduceStats* stats)
      : producer_(producer), stats_(stats) {}

  absl::Status Open(const CdcGenerator& generator) {
    for (CdcTopic topic : kTopics) {
      const int i = static_cast<int>(topic);
      names_[i] = generator.topic(topic);
      absl::StatusOr<int32_t> partitions =
          producer_.PartitionCount(names_[i], /*timeout_ms=*/10000);
      if (absl::IsNotFound(partitions.status())) {
        return absl::NotFoundError(
            absl::StrCat(partitions.status().message(),
                         "; create it first (cdc-gen --create-topics)"));
      }
      TRIBUTARY_ASSIGN_OR_RETURN(partitions_[i], std::move(partitions));
    }
    const int32_t markers =
        partitions_[static_cast<int>(CdcTopic::kTransaction)];
    if (markers != 1) {
      return absl::FailedPreconditionError(absl::StrCat(
          "transaction topic ", generator.topic(CdcTopic::kTransaction),
          " has ", markers,
          " partitions; it must have exactly one, because BEGIN/END markers "
          "are only in commit order within one partition"));
    }
    return absl::OkStatus();
  }

  absl::Status Send(const CdcMessage& message) {
    const int i = static_cast<int>(message.topic);
    const int32_t partition = message.topic == CdcTopic::kTransaction
                                  ? 0
                                  : KeyPartition(message.key, partitions_[i]);
    std::optional<std::string_view> value;
    if (message.value) value = *message.value;
    TRIBUTARY_RETURN_IF_ERROR(
        producer_.Send(names_[i], partition, message.key, value));
    ++stats_->messages;
    stats_->bytes += static_cast<int64_t>(message.key.size() +
                                          (value ? value->size() : 0));
    if ((stats_->messages & 1023) == 0) producer_.Poll(0);
    return absl::OkStatus();
  }

 private:
  KafkaProducer& producer_;
  ProduceStats* stats_;
  std::array<std::string, 3> names_;
  std::array<int32_t, 3> partitions_{};
};

absl::Status ProduceAll(KafkaProducer& producer, CdcGenerator& generator,
                        int64_t count, const ProduceOptions& options,
                        ExpectedSink* expected, ProduceStats& stats) {
  Sender sender(producer, &stats);
  TRIBUTARY_RETURN_IF_ERROR(sender.Open(generator));
  const Clock::time_point start = Clock::now();
  TokenBucket bucket(options.rate);
  GeneratedTransaction unit;
  // Orderline records held back by `skew_transactions` units.
  std::deque<std::vector<CdcMessage>> held;
  const auto send_oldest = [&]() -> absl::Status {
    for (const CdcMessage& message : held.front()) {
      TRIBUTARY_RETURN_IF_ERROR(sender.Send(message));
    }
    held.pop_front();
    return absl::OkStatus();
  };

  // Counts one unit, reports its expected versions and sends its messages.
  const auto send_unit = [&]() -> absl::Status {
    switch (unit.kind) {
      case GeneratedTransaction::Kind::kTransaction:
        ++stats.transactions;
        break;
      case GeneratedTransaction::Kind::kSnapshotRead:
        ++stats.snapshot_reads;
        break;
      case GeneratedTransaction::Kind::kRedelivery:
        ++stats.redeliveries;
        break;
    }
    stats.change_events += unit.change_events;
    if (unit.fault != TransactionFault::kNone) ++stats.faulted_transactions;
    if (expected != nullptr) {
      for (const ExpectedVersion& version : unit.expected) {
        TRIBUTARY_RETURN_IF_ERROR(expected->Write(version));
      }
    }
    stats.expected_versions += static_cast<int64_t>(unit.expected.size());

    std::vector<CdcMessage>* lines = nullptr;
    if (options.skew_transactions > 0) lines = &held.emplace_back();
    for (size_t i = 0; i < unit.messages.size(); ++i) {
      CdcMessage& message = unit.messages[i];
      if (lines != nullptr && unit.CompleteOnlyByPosition() &&
          i + 1 == unit.messages.size()) {
        // Its END: a reader knows a restarted transaction (or one with a bad
        // event) complete only by positions, so (as Debezium does) every
        // event goes out before END.
        while (!held.empty()) TRIBUTARY_RETURN_IF_ERROR(send_oldest());
        lines = nullptr;
      }
      if (lines != nullptr && message.topic == CdcTopic::kOrderLine) {
        lines->push_back(std::move(message));
      } else {
        TRIBUTARY_RETURN_IF_ERROR(sender.Send(message));
      }
    }
    while (static_cast<int64_t>(held.size()) > options.skew_transactions) {
      TRIBUTARY_RETURN_IF_ERROR(send_oldest());
    }
    if (options.on_progress) options.on_progress(stats);
    return producer.DeliveryStatus();
  };

  while (stats.transactions < count) {
    TRIBUTARY_RETURN_IF_ERROR(generator.NextTransaction(unit));
    if (unit.kind == GeneratedTransaction::Kind::kTransaction) {
      bucket.Acquire(producer);
    }
    TRIBUTARY_RETURN_IF_ERROR(send_unit());
  }
  if (options.huge_tx_orders > 0) {
    // Snapshot reads come first even when count is 0.
    while (true) {
      absl::Status huge = generator.HugeTransaction(
          options.huge_tx_orders, options.huge_tx_lines_per_order, unit);
      if (huge.ok()) break;
      if (!absl::IsFailedPrecondition(huge)) return huge;
      TRIBUTARY_RETURN_IF_ERROR(generator.NextTransaction(unit));
      TRIBUTARY_RETURN_IF_ERROR(send_unit());
    }
    stats.huge_tx_xid = unit.xid;
    stats.huge_tx_rows = unit.change_events;
    TRIBUTARY_RETURN_IF_ERROR(send_unit());
    unit.Clear();
    unit.messages.shrink_to_fit();
  }
  while (!held.empty()) TRIBUTARY_RETURN_IF_ERROR(send_oldest());

  absl::Status flushed = producer.Flush(options.flush_timeout_ms);
  stats.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return flushed;
}

}  // namespace

int32_t KeyPartition(std::string_view key, int32_t partition_count) {
  return KafkaProducer::DefaultPartition(key, partition_count);
}

absl::StatusOr<std::unique_ptr<KafkaProducer>> MakeCdcProducer(
    std::string_view bootstrap,
    const std::vector<std::pair<std::string, std::string>>& overrides) {
  KafkaSettings settings = {
      {"bootstrap.servers", std::string(bootstrap)},
      {"enable.idempotence", "true"},
      {"acks", "all"},
      {"linger.ms", "10"},
      {"batch.num.messages", "10000"},
      {"batch.size", "1000000"},
      {"queue.buffering.max.messages", "1000000"},
      {"queue.buffering.max.kbytes", "1048576"},
  };
  for (const auto& [key, value] : overrides) settings[key] = value;
  return KafkaProducer::Open(settings);
}

absl::StatusOr<ProduceStats> ProduceTransactions(KafkaProducer& producer,
                                                 CdcGenerator& generator,
                                                 int64_t count,
                                                 const ProduceOptions& options,
                                                 ExpectedSink* expected) {
  if (count < 0 || options.skew_transactions < 0 || !(options.rate >= 0) ||
      options.huge_tx_orders < 0 || options.huge_tx_lines_per_order < 0) {
    return absl::InvalidArgumentError(
        "count, skew, rate and the huge transaction's sizes must not be "
        "negative");
  }
  ProduceStats stats;
  absl::Status status =
      ProduceAll(producer, generator, count, options, expected, stats);
  if (!status.ok()) {
    producer.Purge(/*timeout_ms=*/10000);
    return status;
  }
  return stats;
}

absl::Status CreateTopics(std::string_view bootstrap,
                          const GeneratorOptions& options, int table_partitions,
                          int timeout_ms) {
  if (table_partitions < 1) {
    return absl::InvalidArgumentError(
        "table topics need at least one partition");
  }
  TRIBUTARY_ASSIGN_OR_RETURN(
      std::unique_ptr<KafkaAdmin> admin,
      KafkaAdmin::Open({{"bootstrap.servers", std::string(bootstrap)}}));
  std::vector<KafkaAdmin::NewTopic> topics;
  for (CdcTopic topic : kTopics) {
    topics.push_back({options.TopicName(topic),
                      topic == CdcTopic::kTransaction ? 1 : table_partitions});
  }
  return admin->CreateTopics(topics, timeout_ms);
}

absl::Status CreateTopics(MockCluster& cluster, const GeneratorOptions& options,
                          int table_partitions) {
  if (table_partitions < 1) {
    return absl::InvalidArgumentError(
        "table topics need at least one partition");
  }
  for (CdcTopic topic : kTopics) {
    TRIBUTARY_RETURN_IF_ERROR(cluster.CreateTopic(
        options.TopicName(topic),
        topic == CdcTopic::kTransaction ? 1 : table_partitions));
  }
  return absl::OkStatus();
}

}  // namespace tributary::cdcgen
