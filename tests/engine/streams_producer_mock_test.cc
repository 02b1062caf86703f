// StreamsProducer over the real RdKafkaProducer against librdkafka's
// in-process mock cluster, with broker errors injected by
// rd_kafka_mock_push_request_errors: the second line, after the fakes of
// stream_thread_test, for the classification the fakes take as given
// (librdkafka's fenced and abortable errors onto Producer's contract).
// No broker needed (label unit).
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "engine/internal/rdkafka_consumer.h"
#include "engine/internal/rdkafka_handles.h"
#include "engine/internal/rdkafka_producer.h"
#include "engine/internal/streams_producer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tributary::internal {
namespace {

using ::testing::HasSubstr;

constexpr int16_t kEndTxnApiKey = 26;  // RD_KAFKAP_EndTxn

class StreamsProducerMockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto owner = NewKafkaClient(RD_KAFKA_PRODUCER, {{"log_level", "3"}});
    ASSERT_TRUE(owner.ok()) << owner.status();
    owner_ = *std::move(owner);
    cluster_ = rd_kafka_mock_cluster_new(owner_.get(), 1);
    ASSERT_NE(cluster_, nullptr);
    ASSERT_EQ(rd_kafka_mock_topic_create(cluster_, "out", 1, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
    const std::string bootstrap = rd_kafka_mock_cluster_bootstraps(cluster_);
    auto producer = RdKafkaProducer::Create({{"bootstrap.servers", bootstrap},
                                             {"transactional.id", "app-p-0"},
                                             {"enable.idempotence", "true"},
                                             {"log_level", "3"}});
    ASSERT_TRUE(producer.ok()) << producer.status();
    producer_ = std::make_unique<StreamsProducer>(*std::move(producer), "app-p-0", "test");
    auto consumer = RdKafkaConsumer::Create(
        {{"bootstrap.servers", bootstrap}, {"group.id", "app"}, {"log_level", "3"}});
    ASSERT_TRUE(consumer.ok()) << consumer.status();
    consumer_ = *std::move(consumer);
    ASSERT_TRUE(producer_->Init().ok());
  }

  void TearDown() override {
    consumer_.reset();
    producer_.reset();
    if (cluster_ != nullptr) rd_kafka_mock_cluster_destroy(cluster_);
  }

  absl::Status SendOne() {
    Record record;
    record.key = "k";
    record.value = "v";
    return producer_->Send("out", record, std::nullopt);
  }

  KafkaHandle owner_;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
  std::unique_ptr<StreamsProducer> producer_;
  std::unique_ptr<RdKafkaConsumer> consumer_;
};

TEST_F(StreamsProducerMockTest, FencedOnCommitIsFatalAndSticky) {
  ASSERT_TRUE(SendOne().ok());
  rd_kafka_mock_push_request_errors(cluster_, kEndTxnApiKey, 1,
                                    RD_KAFKA_RESP_ERR_PRODUCER_FENCED);
  absl::Status status = producer_->CommitTransaction({}, *consumer_);
  EXPECT_TRUE(IsProducerFenced(status)) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("producer fenced"));
  // Nothing more is sent or committed.
  EXPECT_TRUE(IsProducerFenced(SendOne()));
  EXPECT_TRUE(IsProducerFenced(producer_->CommitTransaction({}, *consumer_)));
  EXPECT_TRUE(IsProducerFenced(producer_->AbortTransaction()));
}

TEST_F(StreamsProducerMockTest, AbortableCommitErrorAbortsAndGoesOn) {
  ASSERT_TRUE(SendOne().ok());
  rd_kafka_mock_push_request_errors(cluster_, kEndTxnApiKey, 1,
                                    RD_KAFKA_RESP_ERR_UNKNOWN);
  absl::Status status = producer_->CommitTransaction({}, *consumer_);
  EXPECT_TRUE(absl::IsAborted(status)) << status;
  EXPECT_FALSE(producer_->in_transaction());
  EXPECT_TRUE(producer_->fatal_error().ok());
  // The next transaction commits.
  ASSERT_TRUE(SendOne().ok());
  EXPECT_TRUE(producer_->CommitTransaction({}, *consumer_).ok());
}

}  // namespace
}  // namespace tributary::internal
