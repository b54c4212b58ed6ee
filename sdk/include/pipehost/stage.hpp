// The three families of components. Plugin authors derive from Source, Transform
// (or RecordTransform) and Sink; these may throw the errors of status.hpp. Each is
// constructed as T(const T::Config&, Context&), T::Config being its options struct
// (see options.hpp). The host never calls them directly: it calls the noexcept
// interfaces of detail/boundary.hpp, which guards compiled into the plugin implement.
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
  // Throwing RetriableError has the host call process again with the same batch, as this
  // call left it: a transform that throws it midway must be safe to call again.
  virtual void process(Batch& batch) = 0;
  virtual void stop() {}
};

// A transform written one record at a time. Throwing InvalidRecord from apply rejects
// just that record; the rest of the batch goes on. After any other exception (a
// RetriableError: the registry is unreachable) the host's retry of the batch goes on
// from the record that threw: the ones before it are applied (or rejected) once.
class PIPEHOST_EXPORT RecordTransform : public Transform {
 public:
  enum class Verdict { keep, drop };
  virtual Verdict apply(Record& record) = 0;

  void process(Batch& batch) final {
    std::size_t i = 0;
    if (stopped_in_ == &batch && stopped_at_ < batch.records.size()) i = stopped_at_;
    stopped_in_ = nullptr;
    for (; i < batch.records.size(); ++i) {
      try {
        if (apply(batch.records[i]) == Verdict::drop) batch.drop(i);
      } catch (const InvalidRecord& e) {
        batch.reject(i, e.what());
      } catch (...) {
        stopped_in_ = &batch;
        stopped_at_ = i;
        throw;
      }
    }
  }

 private:
  const Batch* stopped_in_ = nullptr;  // the batch a retry continues, and from where
  std::size_t stopped_at_ = 0;
};

// Called exactly once per written batch, from any thread, with
//   ok         every record is durable;
//   cancelled  not written because the host is stopping (Context::stopping): not a
//              failure, and nothing from the batch on is committed;
//   rewind     the store refused records of the batch, found only after write returned
//              (a broker's delivery report): the sink remembered them (RefusedRecords)
//              and the host, once every batch in flight settled, reads again from this
//              batch's first record, so that prepare rejects them; batches written after
//              it are written again (at least once). Records without a source position
//              cannot be read again: fail instead;
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
  // For sinks that store source positions: drop the stored position of a partition
  // whose log began anew, so that the next write stores its span's position as a first
  // one. The host calls it for the embedded broker, which starts empty every run: a
  // position stored by an earlier process belongs to a log that no longer exists, and
  // resuming from it would skip this run's records. The data stays.
  virtual void forget_position(std::string_view topic, std::int32_t partition) {
    (void)topic;
    (void)partition;
  }
};

}  // namespace pipehost
