// KafkaStreams' lifecycle: the state machine and its listener, the
// uncaught-error handler of the stream threads, the application-wide
// shutdown through the control topic, and the bounded Close.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/internal/http_server.h"
#include "engine/internal/kafka_stats.h"
#include "engine/internal/log.h"
#include "engine/internal/shutdown_channel.h"
#include "engine/internal/stream_thread.h"
#include "engine/kafka_streams.h"

namespace tributary {
namespace {

using State = KafkaStreams::State;

// Kafka Streams' table of valid transitions (KafkaStreams.State, 3.x).
bool Allowed(State from, State to) {
  switch (from) {
    case State::kCreated:
      return to == State::kRebalancing || to == State::kPendingShutdown;
    case State::kRebalancing:
    case State::kRunning:
      return to == State::kRebalancing || to == State::kRunning ||
             to == State::kPendingShutdown || to == State::kPendingError;
    case State::kPendingShutdown: return to == State::kNotRunning;
    case State::kPendingError: return to == State::kError;
    case State::kNotRunning:
    case State::kError: return false;
  }
  return false;
}

}  // namespace

const char* StateName(KafkaStreams::State state) {
  switch (state) {
    case State::kCreated: return "CREATED";
    case State::kRebalancing: return "REBALANCING";
    case State::kRunning: return "RUNNING";
    case State::kPendingShutdown: return "PENDING_SHUTDOWN";
    case State::kNotRunning: return "NOT_RUNNING";
    case State::kPendingError: return "PENDING_ERROR";
    case State::kError: return "ERROR";
  }
  return "?";
}

bool IsRunningOrRebalancing(KafkaStreams::State state) {
  return state == State::kRunning || state == State::kRebalancing;
}

const char* ErrorResponseName(StreamThreadErrorResponse response) {
  switch (response) {
    case StreamThreadErrorResponse::kReplaceThread: return "REPLACE_THREAD";
    case StreamThreadErrorResponse::kShutdownClient: return "SHUTDOWN_CLIENT";
    case StreamThreadErrorResponse::kShutdownApplication: return "SHUTDOWN_APPLICATION";
  }
  return "?";
}

void KafkaStreams::SetStateListener(StateListener listener) {
  absl::MutexLock lock(&transition_mu_);
  state_listener_ = std::move(listener);
}

void KafkaStreams::SetUncaughtErrorHandler(UncaughtErrorHandler handler,
                                           int max_replacements_in_a_row) {
  error_handler_ = std::move(handler);
  max_replacements_in_a_row_ = max_replacements_in_a_row;
}

KafkaStreams::State KafkaStreams::state() const {
  absl::MutexLock lock(&state_mu_);
  return state_;
}

absl::Status KafkaStreams::error() const {
  for (const auto& thread : threads_) {
    // result() is written before the state becomes kDead.
    if (thread->state() == internal::ThreadState::kDead && !thread->result().ok()) {
      return thread->result();
    }
  }
  absl::MutexLock lock(&state_mu_);
  return shutdown_request_error_;
}

bool KafkaStreams::SetState(State next) {
  absl::MutexLock lock(&transition_mu_);
  return SetStateLocked(next);
}

bool KafkaStreams::SetStateLocked(State next) {
  State old;
  {
    absl::MutexLock lock(&state_mu_);
    old = state_;
    if (old == next) return true;
    if (!Allowed(old, next)) return false;
    state_ = next;
  }
  internal::EngineLogger()->info("{}: state {} -> {}", config_.application_id(), StateName(old),
                                 StateName(next));
  if (state_listener_) state_listener_(next, old);
  return true;
}

void KafkaStreams::OnThreadStateChange(int index, internal::ThreadState old_state,
                                       internal::ThreadState new_state) {
  (void)old_state;
  if (new_state == internal::ThreadState::kDead) {
    OnThreadDead(index);
    return;
  }
  // A thread stopping (on request or on an error) is no rebalance: what the
  // client does then is Close's or OnThreadDead's to say.
  if (new_state == internal::ThreadState::kPendingShutdown) return;
  // Under the transition lock, so that the state set last follows the
  // threads' states as they are after the last change.
  absl::MutexLock lock(&transition_mu_);
  if (!IsRunningOrRebalancing(state())) return;
  bool all_running = true;
  for (const auto& thread : threads_) {
    all_running = all_running && thread->state() == internal::ThreadState::kRunning;
  }
  SetStateLocked(all_running ? State::kRunning : State::kRebalancing);
}

StreamThreadErrorResponse KafkaStreams::OnUncaughtError(int index, const absl::Status& error) {
  const StreamThreadErrorResponse response =
      error_handler_ ? error_handler_(error) : StreamThreadErrorResponse::kShutdownClient;
  internal::EngineLogger()->error("{}: stream thread {} failed: {}; the uncaught-error handler "
                                  "answers {}",
                                  config_.application_id(), index, error.ToString(),
                                  ErrorResponseName(response));
  return response;
}

bool KafkaStreams::ShutDownOnErrorLocked() {
  if (!SetStateLocked(State::kPendingError)) return false;
  for (auto& thread : threads_) thread->RequestShutdown();
  return true;
}

void KafkaStreams::OnThreadDead(int index) {
  const internal::StreamThread& thread = *threads_[static_cast<size_t>(index)];
  if (thread.error_response().has_value()) {
    if (*thread.error_response() == StreamThreadErrorResponse::kShutdownApplication) {
      const std::string reason = absl::StrCat("stream thread ", index, " of instance ",
                                              process_id_, " failed: ",
                                              thread.result().ToString());
      absl::Status written = shutdown_channel_ != nullptr
                                 ? shutdown_channel_->Request(reason)
                                 : absl::FailedPreconditionError("no shutdown channel");
      if (written.ok()) {
        internal::EngineLogger()->error("{}: asked every instance to shut down (on {})",
                                        config_.application_id(),
                                        internal::ControlTopic(config_.application_id()));
      } else {
        internal::EngineLogger()->error(
            "{}: cannot ask the other instances to shut down ({}); this one shuts down",
            config_.application_id(), written.ToString());
      }
    }
    absl::MutexLock lock(&transition_mu_);
    ShutDownOnErrorLocked();
  }
  bool all_dead;
  {
    absl::MutexLock lock(&threads_mu_);
    ++threads_dead_;
    all_dead = AllThreadsDead();
  }
  if (all_dead) {
    absl::MutexLock lock(&transition_mu_);
    if (state() == State::kPendingError) SetStateLocked(State::kError);
  }
}

void KafkaStreams::OnShutdownRequested(const std::string& from, const std::string& reason) {
  absl::MutexLock lock(&transition_mu_);
  if (!IsRunningOrRebalancing(state())) return;  // stopping already (its own request too)
  internal::EngineLogger()->error("{}: instance {} asked every instance to shut down: {}",
                                  config_.application_id(), from, reason);
  {
    absl::MutexLock state_lock(&state_mu_);
    shutdown_request_error_ = absl::AbortedError(absl::StrCat(
        "the application was shut down by instance ", from, " (kShutdownApplication): ", reason));
  }
  ShutDownOnErrorLocked();
}

absl::Status KafkaStreams::OpenShutdownChannel() {
  std::map<std::string, std::string> consumer = config_.ConsumerSettings();
  consumer["bootstrap.servers"] = bootstrap_servers_;
  consumer["group.id"] = internal::ControlTopic(config_.application_id());
  std::map<std::string, std::string> producer = config_.ProducerSettings();
  producer["bootstrap.servers"] = bootstrap_servers_;
  auto channel = internal::ShutdownChannel::Open(
      internal::ControlTopic(config_.application_id()), process_id_, consumer, producer,
      [this](const std::string& from, const std::string& reason) {
        OnShutdownRequested(from, reason);
      });
  if (!channel.ok()) {
    return absl::Status(channel.status().code(),
                        absl::StrCat("shutdown channel: ", channel.status().message()));
  }
  shutdown_channel_ = *std::move(channel);
  return absl::OkStatus();
}

absl::Status KafkaStreams::Close(absl::Duration timeout) {
  const absl::Time deadline =
      timeout == absl::InfiniteDuration() ? absl::InfiniteFuture() : absl::Now() + timeout;
  if (!close_started_) {
    close_started_ = true;
    SetState(State::kPendingShutdown);  // refused after an error: PENDING_ERROR goes on
    metrics_server_.reset();            // its handlers read the threads
    query_server_.reset();              // its handlers wait for the threads
    for (auto& thread : threads_) thread->RequestShutdown();
  }
  if (!close_finished_) {
    bool in_time;
    {
      absl::MutexLock lock(&threads_mu_);
      in_time = threads_mu_.AwaitWithDeadline(absl::Condition(this, &KafkaStreams::AllThreadsDead),
                                              deadline);
    }
    if (!in_time) {
      std::vector<std::string> closing;
      for (size_t i = 0; i < threads_.size(); ++i) {
        if (threads_[i]->state() != internal::ThreadState::kDead) {
          closing.push_back(absl::StrCat(i, " (", ThreadStateName(threads_[i]->state()), ")"));
        }
      }
      return absl::DeadlineExceededError(
          absl::StrCat("close did not finish within ", absl::FormatDuration(timeout),
                       ": stream thread(s) ", absl::StrJoin(closing, ", "), " still closing"));
    }
    for (auto& thread : threads_) (void)thread->Join();
    standby_.reset();  // checkpoints and closes the standby tasks
    if (cleaner_.joinable()) {
      {
        absl::MutexLock lock(&cleaner_mu_);
        cleaner_stop_ = true;
      }
      cleaner_.join();
    }
    shutdown_channel_.reset();
    close_finished_ = true;
    SetState(State::kNotRunning);  // from PENDING_SHUTDOWN only
  }
  return error();
}

}  // namespace tributary
