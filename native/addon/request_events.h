// The one way a request's results travel from the engine thread to the JS thread
// (Model.generate's stream, Model.embed's Promise).
//
// RequestEvents<Event>::open() (JS thread) makes a per-request channel over one
// ThreadSafeFunction and returns the engine side's handle. send() (any thread) queues an
// event; the JS thread delivers the queued events in send order to the request's
// Receiver. The channel is released exactly once: by close() after the last event, or
// when the last copy of the handle goes (a request dropped unfinished: failed submit,
// engine stopped, model disposed). Until then it keeps the event loop alive; afterwards
// it does not, so an idle Node exits.
//
// The Receiver (and what it holds: the JS callback or Promise, the model's InFlight token)
// lives on the JS thread and is destroyed there, after the last event has been delivered,
// or at environment teardown (a terminated worker_thread): then the finalizer marks the
// channel dead under its mutex, and later sends are dropped instead of calling into a
// dead environment. The engine side never waits on the JS thread.
#pragma once
#include <napi.h>

#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>

namespace gpt2::addon {

template <class Event>
class RequestEvents {
 public:
  // The JS-thread end of one request.
  class Receiver {
   public:
    virtual ~Receiver() = default;
    virtual void deliver(Napi::Env env, Event& event) = 0;
  };

  // JS thread.
  static std::shared_ptr<RequestEvents> open(Napi::Env env, const char* name, std::unique_ptr<Receiver> receiver) {
    auto channel = std::make_shared<Channel>();
    auto js = std::make_unique<JsSide>(JsSide{channel, std::move(receiver)});
    channel->tsfn = Tsfn::New(env, name, 0, 1, js.get(), finalize, static_cast<void*>(nullptr));
    js.release();  // the finalizer deletes it
    return std::shared_ptr<RequestEvents>(new RequestEvents(std::move(channel)));
  }

  ~RequestEvents() { close(); }
  RequestEvents(const RequestEvents&) = delete;
  RequestEvents& operator=(const RequestEvents&) = delete;

  // Any thread. Dropped after close() or once the environment is gone.
  void send(Event&& event) {
    std::lock_guard<std::mutex> lock(channel_->mutex);
    if (channel_->closed || !channel_->live) return;
    channel_->queue.push_back(std::move(event));
    if (channel_->call_pending) return;  // the pending call delivers this one too
    channel_->call_pending = true;
    // napi_closing: the environment is going away and owns the function now; no more
    // calls on it, Release() included (its finalizer is about to mark the channel dead).
    if (channel_->tsfn.NonBlockingCall() == napi_closing) channel_->live = false;
  }

  // Any thread, idempotent: no more events; the JS side goes once the queued ones are delivered.
  void close() {
    std::lock_guard<std::mutex> lock(channel_->mutex);
    if (channel_->closed) return;
    channel_->closed = true;
    if (channel_->live) channel_->tsfn.Release();
    channel_->live = false;
  }

 private:
  struct Channel;
  struct JsSide {
    std::shared_ptr<Channel> channel;
    std::unique_ptr<Receiver> receiver;
  };
  static void deliver_queued(Napi::Env env, Napi::Function, JsSide* js, void*);
  using Tsfn = Napi::TypedThreadSafeFunction<JsSide, void, deliver_queued>;
  struct Channel {
    std::mutex mutex;
    Tsfn tsfn;
    std::deque<Event> queue;
    bool call_pending = false;
    bool closed = false;  // by the engine side
    bool live = true;     // the engine side may still call tsfn
  };

  explicit RequestEvents(std::shared_ptr<Channel> channel) : channel_(std::move(channel)) {}

  static void finalize(Napi::Env, void*, JsSide* js) {
    {
      std::lock_guard<std::mutex> lock(js->channel->mutex);
      js->channel->live = false;
      js->channel->queue.clear();
    }
    delete js;  // outside the lock: dropping the InFlight token may stop the engine
  }

  std::shared_ptr<Channel> channel_;
};

// Each call delivers everything queued so far, in order.
template <class Event>
void RequestEvents<Event>::deliver_queued(Napi::Env env, Napi::Function, JsSide* js, void*) {
  if (env == nullptr) return;  // environment teardown
  std::deque<Event> events;
  {
    std::lock_guard<std::mutex> lock(js->channel->mutex);
    events.swap(js->channel->queue);
    js->channel->call_pending = false;
  }
  // A throwing receiver does not cost the later events: the first error is rethrown after.
  std::optional<Napi::Error> first_error;
  for (Event& e : events) {
    try {
      js->receiver->deliver(env, e);
    } catch (const Napi::Error& error) {
      if (!first_error) first_error = error;
    }
  }
  if (first_error) first_error->ThrowAsJavaScriptException();
}

}  // namespace gpt2::addon
