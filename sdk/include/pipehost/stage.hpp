// The three families of components. Plugin authors derive from Source, Transform
// (or RecordTransform) and Sink; these may throw the errors of status.hpp.
// The host never calls them directly: it calls the noexcept *Stage interfaces, which
// the SDK's guards (compiled into the plugin) implement around the author's class.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "pipehost/abi.hpp"
#include "pipehost/record.hpp"
#include "pipehost/status.hpp"

namespace pipehost {

using Millis = std::chrono::milliseconds;

// A committable source position: the next offset to read in a partition.
struct Position {
  std::string_view topic;
  std::int32_t partition = 0;
  std::int64_t next_offset = 0;
};

enum class PollResult { more, end };

class PIPEHOST_EXPORT Source {
 public:
  virtual ~Source() = default;
  virtual void start() {}
  // Appends up to out.capacity records to out.records, waiting at most `max_wait` for
  // the first. Returns PollResult::end once a bounded source has nothing more.
  virtual PollResult poll(Batch& out, Millis max_wait) = 0;
  // Every record up to these positions has been acknowledged by the sink: persist them.
  // Called on the thread that calls poll.
  virtual void commit(const std::vector<Position>& positions) { (void)positions; }
  // Asks an unbounded source to end once it has read everything available now.
  virtual void finish_at_end() {}
  // Read these partitions again from these offsets: the sink lost what was written after
  // them. A source with positions must support it; the default refuses.
  virtual void seek(const std::vector<Position>& positions) {
    (void)positions;
    throw FatalError("this source cannot rewind to a sink's stored positions");
  }
  // The pipeline was paused (true) or resumed (false). Return true if the source keeps
  // its connections alive while paused: the host then keeps calling poll, which must
  // return no records until resumed (a Kafka consumer keeps answering its group). The
  // default returns false and the host stops calling poll while paused.
  virtual bool set_paused(bool paused) {
    (void)paused;
    return false;
  }
  virtual void stop() {}
};

class PIPEHOST_EXPORT Transform {
 public:
  virtual ~Transform() = default;
  virtual void start() {}
  // Rewrites the batch in place: change records, drop or reject them (Batch::drop,
  // Batch::reject), append new ones (fan out: copy the origin so they are acknowledged).
  virtual void process(Batch& batch) = 0;
  virtual void stop() {}
};

// A transform written one record at a time. Throwing InvalidRecord from apply rejects
// just that record; the rest of the batch goes on.
class PIPEHOST_EXPORT RecordTransform : public Transform {
 public:
  enum class Verdict { keep, drop };
  virtual Verdict apply(Record& record) = 0;

  void process(Batch& batch) final {
    for (std::size_t i = 0; i < batch.records.size(); ++i) {
      try {
        if (apply(batch.records[i]) == Verdict::drop) batch.drop(i);
      } catch (const InvalidRecord& e) {
        batch.reject(i, e.what());
      }
    }
  }
};

// Called exactly once per written batch, from any thread, with
//   ok         every record is durable;
//   cancelled  not written because the host is stopping (Context::stopping): not a
//              failure, and nothing from the batch on is committed;
//   fatal or invalid: the batch failed, and the pipeline stops.
// A sink that wants a batch retried throws RetriableError from write instead; calling
// done with retriable is a usage error that stops the pipeline with a message saying so.
using BatchDone = std::function<void(Status)>;

class PIPEHOST_EXPORT Sink {
 public:
  virtual ~Sink() = default;
  virtual void start() {}
  // Called before write with the same batch: reject (Batch::reject) the records this
  // sink cannot take, without writing anything. The host deals with them per the
  // pipeline's on_error (dead letter, skip or fail) and compacts the batch before write,
  // so a sink that stores positions never stores one past a record the host has not
  // dealt with yet.
  virtual void prepare(Batch& batch) { (void)batch; }
  // Writes the batch; calls done once when it is durable (see BatchDone). A synchronous
  // sink calls it before returning. Throw RetriableError (without calling done, having
  // written nothing that a repeat would double) to have the host retry the same batch
  // later; throw PositionMismatch when the batch's spans do not continue from the
  // positions stored with the data. Store positions from batch.spans, not from records.
  virtual void write(Batch& batch, BatchDone done) = 0;
  // Blocks until everything written so far is durable.
  virtual void flush() {}
  virtual void stop() {}
  // For sinks that store source positions with their data (exactly-once): the next
  // offset to read for a partition, or nullopt when none is stored.
  virtual std::optional<std::int64_t> stored_position(std::string_view topic,
                                                      std::int32_t partition) {
    (void)topic;
    (void)partition;
    return std::nullopt;
  }
};

// ---- the boundary the host calls: no exception crosses it ----

class PIPEHOST_EXPORT SourceStage {
 public:
  virtual ~SourceStage() = default;
  virtual Status start() noexcept = 0;
  virtual Status poll(Batch& out, Millis max_wait, bool& ended) noexcept = 0;
  virtual Status commit(const std::vector<Position>& positions) noexcept = 0;
  virtual Status finish_at_end() noexcept = 0;
  virtual Status seek(const std::vector<Position>& positions) noexcept = 0;
  virtual Status set_paused(bool paused, bool& keep_polling) noexcept = 0;
  virtual Status stop() noexcept = 0;
};

class PIPEHOST_EXPORT TransformStage {
 public:
  virtual ~TransformStage() = default;
  virtual Status start() noexcept = 0;
  virtual Status process(Batch& batch) noexcept = 0;
  virtual Status stop() noexcept = 0;
};

class PIPEHOST_EXPORT SinkStage {
 public:
  virtual ~SinkStage() = default;
  virtual Status start() noexcept = 0;
  virtual Status prepare(Batch& batch) noexcept = 0;
  virtual Status write(Batch& batch, BatchDone done) noexcept = 0;
  virtual Status flush() noexcept = 0;
  virtual Status stop() noexcept = 0;
  virtual Status stored_position(std::string_view topic, std::int32_t partition,
                                 std::optional<std::int64_t>& out) noexcept = 0;
};

namespace detail {

template <class F>
Status guarded(F&& f) noexcept {
  try {
    f();
    return Status::ok();
  } catch (const InvalidRecord& e) {
    return Status::invalid(e.what());
  } catch (const RetriableError& e) {
    return Status::retriable(e.what());
  } catch (const PositionMismatch& e) {
    return Status::rewind(e.what());
  } catch (const std::exception& e) {
    return Status::fatal(e.what());
  } catch (...) {
    return Status::fatal("unknown exception");
  }
}

template <class T>
class GuardedSource final : public SourceStage {
 public:
  explicit GuardedSource(std::unique_ptr<T> impl) : impl_(std::move(impl)) {}
  Status start() noexcept override { return guarded([&] { impl_->start(); }); }
  Status poll(Batch& out, Millis max_wait, bool& ended) noexcept override {
    return guarded([&] { ended = impl_->poll(out, max_wait) == PollResult::end; });
  }
  Status commit(const std::vector<Position>& positions) noexcept override {
    return guarded([&] { impl_->commit(positions); });
  }
  Status finish_at_end() noexcept override { return guarded([&] { impl_->finish_at_end(); }); }
  Status seek(const std::vector<Position>& positions) noexcept override {
    return guarded([&] { impl_->seek(positions); });
  }
  Status set_paused(bool paused, bool& keep_polling) noexcept override {
    return guarded([&] { keep_polling = impl_->set_paused(paused); });
  }
  Status stop() noexcept override { return guarded([&] { impl_->stop(); }); }

 private:
  std::unique_ptr<T> impl_;
};

template <class T>
class GuardedTransform final : public TransformStage {
 public:
  explicit GuardedTransform(std::unique_ptr<T> impl) : impl_(std::move(impl)) {}
  Status start() noexcept override { return guarded([&] { impl_->start(); }); }
  Status process(Batch& batch) noexcept override {
    return guarded([&] { impl_->process(batch); });
  }
  Status stop() noexcept override { return guarded([&] { impl_->stop(); }); }

 private:
  std::unique_ptr<T> impl_;
};

template <class T>
class GuardedSink final : public SinkStage {
 public:
  explicit GuardedSink(std::unique_ptr<T> impl) : impl_(std::move(impl)) {}
  Status start() noexcept override { return guarded([&] { impl_->start(); }); }
  Status prepare(Batch& batch) noexcept override { return guarded([&] { impl_->prepare(batch); }); }
  Status write(Batch& batch, BatchDone done) noexcept override {
    return guarded([&] { impl_->write(batch, std::move(done)); });
  }
  Status flush() noexcept override { return guarded([&] { impl_->flush(); }); }
  Status stop() noexcept override { return guarded([&] { impl_->stop(); }); }
  Status stored_position(std::string_view topic, std::int32_t partition,
                         std::optional<std::int64_t>& out) noexcept override {
    return guarded([&] { out = impl_->stored_position(topic, partition); });
  }

 private:
  std::unique_ptr<T> impl_;
};

}  // namespace detail
}  // namespace pipehost
