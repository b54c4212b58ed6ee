// The boundary the host calls: noexcept interfaces, implemented inside the plugin by
// guards that turn the author's exceptions into a Status. No exception crosses it.
// Plugin authors never use this file directly.
#pragma once
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "pipehost/route.hpp"
#include "pipehost/stage.hpp"

namespace pipehost {

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
  virtual Status forget_position(std::string_view topic, std::int32_t partition) noexcept = 0;
};

class PIPEHOST_EXPORT RouteStage {
 public:
  virtual ~RouteStage() = default;
  virtual Status start() noexcept = 0;
  virtual Status handle(const HttpRequest& request, HttpResponse& response) noexcept = 0;
  virtual Status stop() noexcept = 0;
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
  Status forget_position(std::string_view topic, std::int32_t partition) noexcept override {
    return guarded([&] { impl_->forget_position(topic, partition); });
  }

 private:
  std::unique_ptr<T> impl_;
};

template <class T>
class GuardedRoute final : public RouteStage {
 public:
  explicit GuardedRoute(std::unique_ptr<T> impl) : impl_(std::move(impl)) {}
  Status start() noexcept override { return guarded([&] { impl_->start(); }); }
  Status handle(const HttpRequest& request, HttpResponse& response) noexcept override {
    return guarded([&] { response = impl_->handle(request); });
  }
  Status stop() noexcept override { return guarded([&] { impl_->stop(); }); }

 private:
  std::unique_ptr<T> impl_;
};

}  // namespace detail
}  // namespace pipehost
