// Who may use a network at a time. Python calls into one network from any
// number of threads with the GIL released, so the core, not the GIL, keeps
// them apart, in two layers:
//
//   passes    Anything that runs the layers or touches the workspace, the
//             gradients, the optimizer state or the training settings holds
//             the network's pass mutex. The workspace is one per network by
//             design (sized for the largest batch, reused: a step allocates
//             nothing), so two passes on one network run one after the other;
//             a pass already splits its work across the OpenMP threads, so a
//             second concurrent pass would gain little and cost a second
//             workspace. Waiters wait.
//   training  A call that changes what the network learns (a step, its
//             phases, gradients, an epoch, fit as a whole, the optimizer and
//             regularization setters) also claims the network for its
//             thread. The claim nests within that thread (fit holds it across
//             its chunks and callbacks, whose own calls pass) and refuses every
//             other thread at once with TrainingBusy, naming what is running:
//             two trainings of one model would interleave their steps into a
//             state no serial order gives, so the second is a caller's bug to
//             report, never to queue.
//
// Both are RAII (Pass, Training), so exceptions and interrupts release them.
// The core stays free of Python: the binding releases the GIL before it
// waits for the pass mutex (a holder may need the GIL, to poll for Ctrl-C).
#pragma once

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

namespace fastmlp {

// A training call on a network that another thread is training (Python:
// RuntimeError).
class TrainingBusy : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Guard {
 public:
  Guard() = default;
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;

  // Claims training for this thread (nested claims count), or throws
  // TrainingBusy when another thread holds it. `what` names the call, in
  // the message another thread gets.
  void claim_training(const std::string& what) {
    std::lock_guard<std::mutex> g(claim_mutex_);
    const std::thread::id me = std::this_thread::get_id();
    if (claims_ > 0 && trainer_ != me)
      throw TrainingBusy(what +
                         ": this model is already training in another thread (" + running_ +
                         " is running there); a model trains in one thread at a time: wait for "
                         "that call to return, or train a copy of the model");
    if (claims_++ == 0) {
      trainer_ = me;
      running_ = what;
    }
  }
  void release_training() {
    std::lock_guard<std::mutex> g(claim_mutex_);
    if (claims_ > 0 && --claims_ == 0) trainer_ = std::thread::id();
  }
  // Whether a thread holds the training claim; what it is running.
  bool training() const {
    std::lock_guard<std::mutex> g(claim_mutex_);
    return claims_ > 0;
  }

  // Whether this thread is inside a pass now: taking the pass mutex again
  // would deadlock (a signal handler that runs Python between two batches).
  bool in_pass_here() const {
    return pass_thread_.load(std::memory_order_relaxed) == std::this_thread::get_id();
  }

  class Pass {
   public:
    explicit Pass(Guard& g) : g_(g) {
      g_.pass_mutex_.lock();
      g_.pass_thread_.store(std::this_thread::get_id(), std::memory_order_relaxed);
    }
    ~Pass() {
      g_.pass_thread_.store(std::thread::id(), std::memory_order_relaxed);
      g_.pass_mutex_.unlock();
    }
    Pass(const Pass&) = delete;
    Pass& operator=(const Pass&) = delete;

   private:
    Guard& g_;
  };

  class Training {
   public:
    Training(Guard& g, const char* what) : g_(g) { g_.claim_training(what); }
    ~Training() { g_.release_training(); }
    Training(const Training&) = delete;
    Training& operator=(const Training&) = delete;

   private:
    Guard& g_;
  };

 private:
  mutable std::mutex claim_mutex_;  // guards the claim's fields; never held long
  std::thread::id trainer_;
  int claims_ = 0;
  std::string running_;
  std::mutex pass_mutex_;
  std::atomic<std::thread::id> pass_thread_{};
};

}  // namespace fastmlp
